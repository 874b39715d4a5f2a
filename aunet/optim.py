"""The optimiser and the learning-rate schedule of a run (Config.optimizer, Config.lr_schedule).

    optimizer = build_optimizer(cfg, model.parameters())   # Adam (the paper) or SGD with Nesterov momentum
    schedule = build_schedule(cfg, optimizer)             # stepped once per epoch

The paper trains with Adam (lr 1e-4, weight decay 1e-6) and a step schedule (lr_gamma every lr_step
epochs). nnU-Net (Isensee et al., 2021) trains with SGD, Nesterov momentum 0.99, and the "poly" schedule
lr_e = lr * (1 - e / epochs)^0.9, which falls to 0 at the last epoch: the weights stop changing by
construction (whether the run had stopped learning is aunet.convergence's test). docs/reproduction.md
measures each against the quick profile's budget.
"""
from __future__ import annotations

from typing import Iterable

import torch

from aunet.config import Config

SGD_MOMENTUM = 0.99  # nnU-Net's
POLY_EXPONENT = 0.9  # nnU-Net's


def build_optimizer(cfg: Config, params: Iterable[torch.nn.Parameter], fused: bool = False) -> torch.optim.Optimizer:
    """cfg.optimizer: "adam" (the paper) or "sgd" (Nesterov momentum 0.99); fused: one kernel per update."""
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=SGD_MOMENTUM, nesterov=True,
                               weight_decay=cfg.weight_decay, fused=True if fused else None)
    return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True if fused else None)


def poly_factor(epoch: int, epochs: int) -> float:
    """The poly schedule's lr factor for the epoch that follows `epoch` completed epochs."""
    return (1 - min(epoch, epochs) / epochs) ** POLY_EXPONENT


def build_schedule(cfg: Config, optimizer: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LRScheduler:
    """cfg.lr_schedule: "step" (x lr_gamma every lr_step epochs, the paper) or "poly" (to 0 at cfg.epochs)."""
    if cfg.lr_schedule == "poly":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: poly_factor(epoch, cfg.epochs))
    return torch.optim.lr_scheduler.StepLR(optimizer, step_size=cfg.lr_step, gamma=cfg.lr_gamma)
