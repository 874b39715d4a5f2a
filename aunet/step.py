"""One optimiser step as the trainer runs it: forward, loss, backward, Adam; precision and layout chosen per device.

    step = TrainingStep(cfg, device)          # builds the model, Adam, the loss and the speed choices
    loss = step(images, labels)               # images (B, 1, X, Y, Z), labels (B, X, Y, Z): one update

The arithmetic is the paper's recipe whatever the device: the loss is computed in float32 from the
logits (`logits.float()`), Adam updates float32 weights. How the forward runs is chosen once, when the
step is built, from the device and `aunet.speedups` (the one switch; AUNET_FAST=0 turns it all off):

- CUDA: mixed precision (bfloat16 where supported, else float16 with a gradient scaler), on request
  channels_last_3d (cfg.channels_last) and torch.compile (cfg.compile);
- CPU: model and batches in channels_last_3d order where oneDNN has AVX-512 (its channels-last
  kernels spare the reorder of every activation), and the forward under bfloat16 autocast where it
  also has AMX (convolutions in bfloat16 with float32 accumulation; BatchNorm statistics in float32);
  `speedups.cpu_pays_for` holds the rules, cfg.amp=False keeps float32. Elsewhere float32, contiguous,
  with aunet's own CPU paths (aunet.fastconv, aunet.upsample); on every CPU, Adam's update as one fused
  kernel (`fused_adam`: the same formula, one pass over each tensor).

`describe()` lists what ran; the trainer writes it into the run's device record.
"""
from __future__ import annotations

import contextlib

import torch
from torch import nn

from aunet import speedups
from aunet.config import Config
from aunet.device import autocast, needs_grad_scaler
from aunet.distributed import Processes, sum_over_processes
from aunet.losses import build_loss
from aunet.optim import build_optimizer


class TrainingStep:
    """The model, Adam and the loss of one run, and one optimiser step on a batch (`__call__`)."""

    def __init__(self, cfg: Config, device: torch.device, processes: Processes | None = None,
                 net: nn.Module | None = None) -> None:
        """net: the network to train (default: cfg.build_model(); benchmarks pass others)."""
        self.cfg, self.device = cfg, device
        self.processes = processes or Processes()
        cpu = device.type == "cpu"
        # chosen once, when the step is built (aunet.speedups); the plain path is float32, contiguous
        self.bf16 = cpu and cfg.amp and speedups.enabled("bf16")
        self.channels_last = cfg.channels_last or (cpu and speedups.enabled("channels_last"))
        self.fused_adam = cpu and speedups.enabled("fused_adam")
        self.speedups = speedups.describe()  # the switch as the model below is built (off() blocks included)
        net = (net if net is not None else cfg.build_model()).to(device)
        if self.channels_last:
            net = net.to(memory_format=torch.channels_last_3d)
        # self.model: the plain network (checkpoints, validation, snapshots); self.trained: what the steps run
        self.model, self.trained = self.processes.wrap(net, device)  # DDP + global BatchNorm under torchrun
        if cfg.compile:
            self.trained = torch.compile(self.trained)
        self.optimizer = build_optimizer(cfg, self.model.parameters(), fused=self.fused_adam)
        self.scaler = torch.amp.GradScaler("cuda", enabled=needs_grad_scaler(device, cfg.amp))
        self.loss_fn = build_loss(cfg.loss, batch_sum=sum_over_processes)  # Dice sums over the global batch

    def precision(self) -> contextlib.AbstractContextManager:
        """The forward's autocast: CUDA mixed precision, CPU bfloat16 (`self.bf16`), or none."""
        if self.bf16:  # the bfloat16 step: convolutions on oneDNN's AMX kernels
            return torch.autocast("cpu", dtype=torch.bfloat16)
        else:  # float32 on the CPU; on CUDA, bfloat16 or float16 when cfg.amp
            return autocast(self.device, self.cfg.amp)

    def loss(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The float32 loss of the batch, with the graph for backward."""
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last_3d)
        with self.precision():
            logits = self.trained(images)  # (B, K, X, Y, Z)
        return self.loss_fn(logits.float(), labels)

    def update(self, loss: torch.Tensor) -> None:
        """Backward and Adam's step."""
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()

    def __call__(self, images: torch.Tensor, labels: torch.Tensor) -> float:
        """One optimiser step on (images, labels); returns the batch's loss."""
        loss = self.loss(images, labels)
        self.update(loss)
        return loss.item()

    def describe(self) -> dict[str, object]:
        """What this step runs: precision, memory layout, fused Adam, compile, and aunet.speedups' state when built."""
        dtype = "bfloat16" if self.bf16 else ("mixed" if self.device.type == "cuda" and self.cfg.amp else "float32")
        return {"forward_dtype": dtype, "channels_last": self.channels_last, "fused_adam": self.fused_adam,
                "compile": self.cfg.compile, **self.speedups}
