"""U-Net and Attention U-Net, 2D or 3D, as in Oktay et al. (MIDL 2018), section 2 and figure 2.

Encoder: filters 16-32-64-128-256, each level (3x3x3 conv + BN + ReLU) x 2, 2x2x2 max-pooling
between levels. Decoder: trilinear x2 upsampling, concatenation with the skip, (conv + BN + ReLU) x 2.
Deep supervision: a 1x1x1 conv to the classes at each of the four decoder levels, upsampled to full
size, concatenated and fused by a final 1x1x1 conv (one loss on the fused output).

Attention U-Net gates the skips of levels 2, 3 and 4 (level 1, full resolution, is not gated).
Gating signals, as in the paper's figure: level 4 by the bottleneck (through a 1x1x1 conv + BN +
ReLU projection to `gating_channels`), level 3 by the decoder output of level 4, level 2 by the
decoder output of level 3 (`gating="decoder"`). `gating="bottleneck"` gates all three levels with the
one projected bottleneck signal, an earlier variant of the authors' code. `level_wiring` says it level
by level (1-based, as in the paper); the model is built and run from it.

Parameter counts, in_channels 1, 4 classes (checked in tests/test_unet.py):
    UNet                                                         5,888,004  (paper: 5.88 M)
    AttentionUNet() default: 2 gates/level, decoder gating, 128-ch bottleneck projection
                                                                 6,407,402  (paper: 6.40 M, +0.12 %)
    AttentionUNet(gates_per_level=2, gating_channels=256)        6,473,322  (released code)
    AttentionUNet(gates_per_level=1, gating_channels=256)        6,214,151
    AttentionUNet(gating="bottleneck", gating_channels=128)      6,411,498  (earlier variant)
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from aunet import speedups
from aunet.gate import GatedSkip
from aunet.layers import ConvBlock, UpBlock, batchnorm, conv, interpolate

PAPER_FILTERS = (16, 32, 64, 128, 256)
GATED_LEVELS = (2, 3, 4)  # 1-based, as in the paper: level 1 (full resolution) is not gated
GATING = ("decoder", "bottleneck")


@dataclass(frozen=True)
class Level:
    """One U-Net level (1-based, as in the paper) and how Attention U-Net gates its skip."""

    level: int  # 1 = full resolution ... 4 = the coarsest before the bottleneck
    channels: int  # F_l: channels of the skip (and of the decoder output) at this level
    gated_by: str | None  # None, "bottleneck" (its projection `gating_signal`) or "decoder" (output of level l+1)
    gating_channels: int  # F_g: channels of the gating signal g (0 when not gated)

    @property
    def name(self) -> str:
        """The key of this level's gates and attention map: 'level2', ..."""
        return f"level{self.level}"

    def describe(self) -> str:
        """The gating signal in words."""
        if self.gated_by is None:
            return "not gated"
        source = "bottleneck projection" if self.gated_by == "bottleneck" else f"decoder output, level {self.level + 1}"
        return f"{source} ({self.gating_channels} ch)"


def level_wiring(filters: tuple[int, ...] = PAPER_FILTERS, gating: str = "decoder",
                 gating_channels: int = 128) -> list[Level]:
    """Levels 1-4: each skip's channels, and whether, by which signal and with how many channels it is gated."""
    if gating not in GATING:
        raise ValueError(f"gating={gating!r} is not supported; expected 'decoder' or 'bottleneck'.")
    levels = []
    for l in range(1, 5):
        if l not in GATED_LEVELS:
            gated_by, F_g = None, 0
        elif l == 4 or gating == "bottleneck":  # no decoder output below level 4: the projected bottleneck
            gated_by, F_g = "bottleneck", gating_channels
        else:  # the decoder output of level l+1, which has that level's filters[l] channels
            gated_by, F_g = "decoder", filters[l]
        levels.append(Level(l, filters[l - 1], gated_by, F_g))
    return levels


def check_input_size(shape: tuple[int, ...], dim: int, multiple: int = 16) -> None:
    """Raise ValueError unless the last `dim` sizes of `shape` are multiples of `multiple`."""
    spatial = tuple(shape[-dim:])
    if len(shape) != dim + 2:
        raise ValueError(f"Input of shape {tuple(shape)} is not (B, C, {', '.join('DHW'[-dim:])}); "
                         f"a {dim}D model expects a {dim + 2}-dimensional tensor.")
    if all(s % multiple == 0 and s > 0 for s in spatial):
        return
    nearest = tuple(max(multiple, round(s / multiple) * multiple) for s in spatial)
    down = tuple(max(multiple, s // multiple * multiple) for s in spatial)
    up = tuple(-(-s // multiple) * multiple for s in spatial)
    options = sorted({down, nearest, up})
    raise ValueError(
        f"Input spatial size {spatial} is not a multiple of {multiple} in every dimension "
        f"(the network halves it 4 times); nearest valid sizes: {' or '.join(map(str, options))}."
    )


class UNet(nn.Module):
    """The paper's 3D U-Net with deep supervision (5,888,004 parameters at the defaults)."""

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 4,
        dim: int = 3,
        filters: tuple[int, ...] = PAPER_FILTERS,
        deep_supervision: bool = True,
    ) -> None:
        super().__init__()
        if len(filters) != 5:
            raise ValueError(f"filters={tuple(filters)!r} must list 5 widths (4 levels + bottleneck).")
        self.dim, self.num_classes, self.filters = dim, num_classes, tuple(filters)
        f = self.filters
        self.encoder = nn.ModuleList(ConvBlock(dim, c_in, c_out) for c_in, c_out in zip((in_channels,) + f[:3], f[:4]))
        self.center = ConvBlock(dim, f[3], f[4])
        # decoder[l - 1] produces level l (1-based): it takes the skip f[l - 1] and the coarser f[l]
        self.decoder = nn.ModuleList(UpBlock(dim, f[l], f[l - 1]) for l in range(1, 5))
        self.deep_supervision = deep_supervision
        if deep_supervision:
            self.dsv = nn.ModuleList(conv(dim, f[l - 1], num_classes, kernel_size=1) for l in range(1, 5))
            self.final = conv(dim, 4 * num_classes, num_classes, kernel_size=1)
        else:
            self.final = conv(dim, f[0], num_classes, kernel_size=1)
        self.fused_head = speedups.enabled("fused_head")  # chosen once, when the model is built
        self.fast_upsample = speedups.enabled("upsample")

    def encode(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Skip features of levels 1-4 and the bottleneck features."""
        check_input_size(tuple(x.shape), self.dim)
        pool = F.max_pool2d if self.dim == 2 else F.max_pool3d
        skips = []
        for block in self.encoder:
            x = block(x)
            skips.append(x)  # level l: (B, f[l-1], *S / 2^(l-1))
            x = pool(x, 2)
        return skips, self.center(x)  # bottleneck: (B, f[4], *S / 16)

    def head(self, decoded: list[torch.Tensor]) -> torch.Tensor:
        """Logits (B, num_classes, *S) from the decoder outputs of levels 1-4 (fine to coarse)."""
        if not self.deep_supervision:
            return self.final(decoded[0])
        size = decoded[0].shape[2:]
        if self.fused_head and (speedups.cpu_float32(decoded[0]) or speedups.cpu_bf16(decoded[0])):
            return self.head_rewritten(decoded)  # the same numbers as below, without the 4K-channel tensor
        else:  # the paper's fusion: final(cat(up(dsv_1(d_1)), ..., up(dsv_4(d_4))))
            upsampled = [interpolate(dsv(d), size, fast=self.fast_upsample) for dsv, d in zip(self.dsv, decoded)]
            return self.final(torch.cat(upsampled, dim=1))  # (B, 4K, *S) -> (B, K, *S)

    def head_rewritten(self, decoded: list[torch.Tensor]) -> torch.Tensor:
        """The paper's fusion, rewritten: sum_l up(F_l dsv_l(d_l)) + b_final, each 1x1 conv at its level's size.

        Both 1x1 convolutions and (tri)linear upsampling are linear, and upsampling keeps constants, so
        final(cat(up(dsv_1(d_1)), ..., up(dsv_4(d_4)))) = sum_l up(F_l dsv_l(d_l)) + b_final, with F_l the
        block of `final`'s weights that reads level l. Composing F_l with dsv_l first (a K x f_l matrix)
        runs each level's 1x1 conv at its own resolution and skips the 4K-channel concatenation and the
        K-channel conv at full resolution. Same parameters, same function; only cheaper (benchmarks/).
        """
        size, K = decoded[0].shape[2:], self.num_classes
        W_final = self.final.weight.flatten(1)  # (K, 4K): columns (l-1)*K..l*K read level l
        conv_nd = F.conv2d if self.dim == 2 else F.conv3d
        logits = None
        for i, (dsv, d) in enumerate(zip(self.dsv, decoded)):
            F_l = W_final[:, i * K:(i + 1) * K]  # (K, K)
            with torch.autocast(d.device.type, enabled=False):  # composed in float32 (a bf16 step rounds once, in conv)
                weight = (F_l @ dsv.weight.flatten(1)).view(K, -1, *(1,) * self.dim)  # (K, f_l, 1, 1(, 1))
                bias = F_l @ dsv.bias
            y = interpolate(conv_nd(d, weight, bias), size, fast=self.fast_upsample)  # (B, K, *S)
            logits = y if logits is None else logits + y
        return logits + self.final.bias.view(1, K, *(1,) * self.dim)

    def forward(self, x: torch.Tensor, return_attention: bool = False):
        """Logits (B, num_classes, *S); with return_attention, (logits, {}) as U-Net has no gates."""
        skips, below = self.encode(x)  # skips[l - 1] is level l
        decoded = []
        for l in (4, 3, 2, 1):  # coarse to fine
            below = self.decoder[l - 1](skips[l - 1], below)  # the decoder output of level l
            decoded.insert(0, below)
        logits = self.head(decoded)
        return (logits, {}) if return_attention else logits


class AttentionUNet(UNet):
    """U-Net with attention gates on the skips of levels 2-4; can return every level's alpha."""

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 4,
        dim: int = 3,
        filters: tuple[int, ...] = PAPER_FILTERS,
        deep_supervision: bool = True,
        gates_per_level: int = 2,
        gating: str = "decoder",
        gating_channels: int = 128,
    ) -> None:
        super().__init__(in_channels, num_classes, dim, filters, deep_supervision)
        self.gating = gating
        self.wiring = level_wiring(self.filters, gating, gating_channels)  # levels 1-4, see level_wiring
        self.gating_signal = nn.Sequential(  # projects the bottleneck to the level-4 gating signal g
            conv(dim, self.filters[4], gating_channels, kernel_size=1), batchnorm(dim, gating_channels),
            nn.ReLU(inplace=True),
        )
        self.gates = nn.ModuleDict({
            level.name: GatedSkip(level.channels, level.gating_channels, gates=gates_per_level, dim=dim)
            for level in self.wiring if level.gated_by is not None
        })

    def forward(self, x: torch.Tensor, return_attention: bool = False):
        """Logits (B, K, *S); with return_attention, (logits, {"level2": alpha, ...}), alpha (B, 1, *S_l)."""
        skips, below = self.encode(x)  # skips[l - 1] is level l; below: the bottleneck
        g_bottleneck = self.gating_signal(below)  # (B, gating_channels, *S / 16)
        attention, decoded = {}, []
        for level in reversed(self.wiring):  # levels 4, 3, 2, 1
            skip = skips[level.level - 1]  # (B, F_l, *S / 2^(l-1))
            if level.gated_by is not None:  # below is now the decoder output of level l+1
                g = g_bottleneck if level.gated_by == "bottleneck" else below
                skip, attention[level.name] = self.gates[level.name](skip, g)
            below = self.decoder[level.level - 1](skip, below)
            decoded.insert(0, below)
        logits = self.head(decoded)
        attention = {name: attention[name] for name in sorted(attention)}  # level2, level3, level4
        return (logits, attention) if return_attention else logits


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
