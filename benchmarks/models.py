"""The models the benchmark compares, built by name so that a fresh process can rebuild them.

aunet's UNet / AttentionUNet are compared with MONAI's AttentionUnet at the same channel widths
(16-32-64-128-256) and, as its gate-free baseline, MONAI's BasicUNet with the same widths (two 3x3x3
convolutions per level, max-pooling, like MONAI's AttentionUnet blocks; MONAI's `UNet` with
num_res_units=0 has one convolution per level and 1.98 M parameters, too unlike to be a baseline).
MONAI is a benchmark-only dependency: the aunet package never imports it.
"""
from __future__ import annotations

from contextlib import nullcontext
from typing import Callable

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from aunet import fastconv, speedups
from aunet.unet import AttentionUNet, UNet

IN_CHANNELS, NUM_CLASSES = 1, 4
WIDTHS = (16, 32, 64, 128, 256)


def _monai_attention_unet() -> nn.Module:
    from monai.networks.nets import AttentionUnet

    return AttentionUnet(spatial_dims=3, in_channels=IN_CHANNELS, out_channels=NUM_CLASSES,
                         channels=WIDTHS, strides=(2, 2, 2, 2))


def _monai_basic_unet() -> nn.Module:
    from monai.networks.nets import BasicUNet

    # features: the 5 encoder widths, then the width of the last decoder level (= the first width)
    return BasicUNet(spatial_dims=3, in_channels=IN_CHANNELS, out_channels=NUM_CLASSES, features=WIDTHS + (16,))


BUILDERS: dict[str, Callable[[], nn.Module]] = {
    "aunet.UNet": lambda: UNet(IN_CHANNELS, NUM_CLASSES),
    "aunet.AttentionUNet": lambda: AttentionUNet(IN_CHANNELS, NUM_CLASSES),
    "monai.BasicUNet": _monai_basic_unet,
    "monai.AttentionUnet": _monai_attention_unet,
}

# (library, baseline without gates, model with attention gates)
PAIRS = (("aunet", "aunet.UNet", "aunet.AttentionUNet"), ("monai", "monai.BasicUNet", "monai.AttentionUnet"))


def build(name: str, device: torch.device | str = "cpu", channels_last: bool = False,
          off: tuple[str, ...] = ()) -> nn.Module:
    """A freshly initialised model (seeded, so every process builds the same weights).

    off: aunet speed-ups (names in aunet.speedups) the model is built without.
    """
    torch.manual_seed(0)
    with speedups.off(*off) if off else nullcontext():
        model = BUILDERS[name]().to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last_3d)
    return model


def optimise(model: nn.Module, channels_last: bool = False, compile: bool = False) -> nn.Module:
    """Optional speed-ups: channels-last memory format (feed it channels-last inputs too) and torch.compile."""
    if channels_last:  # convolutions and resampling in (B, D, H, W, C) order: faster on CPU (benchmarks/)
        model = model.to(memory_format=torch.channels_last_3d if getattr(model, "dim", 3) == 3 else torch.channels_last)
    if compile:
        model = torch.compile(model)
    return model


def with_fastconv(model: nn.Module) -> nn.Module:
    """The same model with every nn.Conv3d running through aunet.fastconv (a benchmark-only check of
    what aunet's convolution path would give MONAI's model: same weights, same function)."""
    for module in model.modules():
        if type(module) is nn.Conv3d:
            module.__class__ = fastconv.Conv3d
            module.fastconv = True  # what fastconv.Conv3d.__init__ would have set
    return model


def count_flops(name: str, size: tuple[int, ...], batch: int = 1, backward: bool = False) -> int:
    """FLOPs of one forward (or forward+backward) pass of the plain PyTorch model, on the meta device (no compute).

    FlopCounterMode counts aten's convolutions, not aunet.fastconv's oneDNN calls; on the meta device
    no fast path runs anyway, and the model is built plain to say so.
    """
    model = build(name, device="meta", off=speedups.NAMES)
    x = torch.empty(batch, IN_CHANNELS, *size, device="meta")
    with FlopCounterMode(display=False) as counter:
        out = model(x)
        if backward:
            out.float().mean().backward()
    return counter.get_total_flops()


def parameters(name: str) -> int:
    """Trainable parameters."""
    return sum(p.numel() for p in build(name).parameters() if p.requires_grad)
