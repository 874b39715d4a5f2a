"""Training losses: the paper's soft Dice over all classes, and cross-entropy + Dice as an option.

Oktay et al. (2018) train with a soft Dice loss over all classes, background included, with a
smoothing constant of 0.01. With softmax probabilities p (B, K, *S) and the one-hot target t:

    Dice_k = (2 * sum_{b,s} p_bks t_bks + smooth) / (sum_{b,s} p_bks + sum_{b,s} t_bks + smooth)
    loss   = 1 - mean_k Dice_k

Sums run over the batch and the spatial dimensions together, so a class absent from one patch
still gets a well-defined Dice from the others. Because 2 p t <= p + t for p, t in [0, 1], every
Dice_k lies in [0, 1] and so does the loss; the smoothing term keeps an empty class (no voxel in the
target, ~0 predicted) at Dice ~1 instead of 0/0.

    loss_fn = build_loss(cfg.loss)          # "dice" or "dice_ce"
    loss = loss_fn(logits, labels)          # logits (B, K, *S), labels (B, *S) int64

Several training processes (torchrun) each hold a share of the batch; `batch_sum` adds the per-class
sums of the others (aunet.distributed.sum_over_processes), so the Dice spans the global batch and N
processes optimise what one process would.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from aunet.errors import AunetError

SMOOTH = 0.01  # the paper's smoothing constant
BatchSum = Callable[[torch.Tensor], torch.Tensor]  # sums a tensor over the processes sharing the batch


def _local(values: torch.Tensor) -> torch.Tensor:
    return values  # one process holds the whole batch


def _check(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The target as (B, *S) int64, after checking it matches the logits (B, K, *S)."""
    if target.dim() == logits.dim() and target.shape[1] == 1:
        target = target[:, 0]  # (B, 1, *S) -> (B, *S): label maps often keep a channel axis
    if target.shape != logits.shape[:1] + logits.shape[2:]:
        raise ValueError(f"Target of shape {tuple(target.shape)} does not match logits {tuple(logits.shape)}; "
                         f"expected (B, *S) = {(logits.shape[0], *logits.shape[2:])}.")
    if target.is_floating_point():
        raise ValueError(f"Target has dtype {target.dtype}; expected integer class labels.")
    return target.long()


def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor, smooth: float = SMOOTH,
                   batch_sum: BatchSum = _local) -> torch.Tensor:
    """1 - mean over classes of the soft Dice of softmax(logits) with the one-hot target (sums: batch_sum)."""
    target = _check(logits, target)
    num_classes = logits.shape[1]
    # float32 even under autocast: fp16 sums over ~10^6 voxels lose the small classes
    with torch.autocast(device_type=logits.device.type, enabled=False):
        probs = torch.softmax(logits.float(), dim=1)  # (B, K, *S)
        one_hot = F.one_hot(target, num_classes).movedim(-1, 1).to(probs.dtype)  # (B, K, *S)
        dims = (0, *range(2, logits.dim()))  # batch and spatial: one Dice per class
        sums = batch_sum(torch.stack([(probs * one_hot).sum(dims), probs.sum(dims) + one_hot.sum(dims)]))  # (2, K)
        intersection, denominator = sums  # (K,) each, over the global batch
        dice = (2 * intersection + smooth) / (denominator + smooth)  # (K,)
        return 1 - dice.mean()


class SoftDiceLoss(nn.Module):
    """The paper's loss: soft Dice over all classes, background included, smoothing 0.01."""

    def __init__(self, smooth: float = SMOOTH, batch_sum: BatchSum = _local) -> None:
        super().__init__()
        self.smooth, self.batch_sum = smooth, batch_sum

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return soft_dice_loss(logits, target, self.smooth, self.batch_sum)


class DiceCELoss(nn.Module):
    """Cross-entropy + soft Dice (equal weights): CE gives useful gradients early, Dice balances classes.

    Under several processes the cross-entropy stays each process's own mean: DDP's gradient average makes
    it the mean over the global batch (equal shares).
    """

    def __init__(self, smooth: float = SMOOTH, ce_weight: float = 1.0, dice_weight: float = 1.0,
                 batch_sum: BatchSum = _local) -> None:
        super().__init__()
        self.smooth, self.ce_weight, self.dice_weight, self.batch_sum = smooth, ce_weight, dice_weight, batch_sum

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        target = _check(logits, target)
        with torch.autocast(device_type=logits.device.type, enabled=False):
            ce = F.cross_entropy(logits.float(), target)
        return self.ce_weight * ce + self.dice_weight * soft_dice_loss(logits, target, self.smooth, self.batch_sum)


LOSSES = {"dice": SoftDiceLoss, "dice_ce": DiceCELoss}


def build_loss(name: str, batch_sum: BatchSum = _local) -> nn.Module:
    """The loss named by Config.loss: "dice" (the paper's) or "dice_ce"; batch_sum spans processes' batches."""
    if name not in LOSSES:
        raise AunetError(f"Unknown loss {name!r}; expected one of: {', '.join(LOSSES)}.")
    return LOSSES[name](batch_sum=batch_sum)
