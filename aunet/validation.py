"""Validation during training: Dice on fixed centre crops every epoch, on whole volumes every val_every epochs.

Sliding windows over every whole validation volume after every epoch can cost as much as the epoch's
training (nnU-Net's documentation: "a proper validation takes way too long to be done each epoch"; it
validates on patches while training and on whole volumes at the end). So aunet validates twice over:

- every epoch, `patch_dice`: one forward pass on the centre crop (cfg.patch_size; the paper validates on
  centre crops) of each of the first cfg.val_patches validation cases, a fixed subset so that epochs
  compare; history columns patch_<organ>_dice and patch_mean_dice;
- every cfg.val_every epochs and after the last one, `volume_dice`: Gaussian-blended sliding windows over
  every whole validation volume (aunet.inference), the computation the test evaluation makes; history
  columns val_<organ>_dice and val_mean_dice (NaN on the other epochs). best.pt follows this one.

Dice per case and class is aunet.metrics.dice's (1 when both masks are empty); each column is the mean over
the cases that have a value, and the *_mean_dice column the mean over the organs. Under torchrun the cases
are dealt out to the processes (case k to rank k mod world) and the per-column sums and counts added up:
one process or N give the same numbers.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from aunet.config import Config
from aunet.device import autocast
from aunet.distributed import Processes
from aunet.labels import class_names


def is_volume_epoch(epoch: int, cfg: Config) -> bool:
    """Whether whole-volume validation runs after `epoch`: every val_every epochs and after the last."""
    return epoch % cfg.val_every == 0 or epoch == cfg.epochs


def patch_cases(val: Sequence[str], cfg: Config) -> list[str]:
    """The validation cases whose centre crops are validated every epoch."""
    return list(val[:cfg.val_patches] if cfg.val_patches else val)


def dice_counts(pred: torch.Tensor, true: torch.Tensor, k: int) -> float:
    """aunet.metrics.dice of class k, counted on the tensors' device: 2 TP / (|P| + |T|), 1 when both are empty."""
    p, t = pred == k, true == k
    total = int(p.sum() + t.sum())
    return 1.0 if total == 0 else 2.0 * int((p & t).sum()) / total


@torch.inference_mode()
def patch_dice(model: nn.Module, data: Any, cases: Sequence[str], cfg: Config, device: torch.device,
               processes: Processes = Processes()) -> dict[str, float]:
    """patch_<organ>_dice and patch_mean_dice: one forward pass per centre crop, eval mode."""
    from aunet.data.patches import center_crop

    names = class_names(cfg.num_classes)
    scores: dict[str, list[float]] = {f"patch_{n}_dice": [] for n in names.values()}
    was_training = model.training
    model.eval()
    try:
        for case_id in cases[processes.rank::processes.world]:
            image, label = center_crop(data.load(case_id), cfg.patch_size)
            x = torch.from_numpy(np.ascontiguousarray(image, np.float32))[None, None].to(device)  # (1, 1, *S)
            with autocast(device, cfg.amp):
                pred = model(x).argmax(1)[0]  # (*S)
            true = torch.from_numpy(np.ascontiguousarray(label)).to(device)
            for k, n in names.items():
                scores[f"patch_{n}_dice"].append(dice_counts(pred, true, k))
    finally:
        model.train(was_training)
    return _mean(scores, "patch_mean_dice", processes)


def volume_dice(model: nn.Module, data: Any, cases: Sequence[str], cfg: Config, device: torch.device,
                processes: Processes = Processes()) -> dict[str, float]:
    """val_<organ>_dice and val_mean_dice on the whole volumes (sliding window, as the test evaluation)."""
    from aunet.inference import sliding_window_predict
    from aunet.metrics import dice

    names = class_names(cfg.num_classes)
    scores: dict[str, list[float]] = {f"val_{n}_dice": [] for n in names.values()}
    for case_id in cases[processes.rank::processes.world]:
        volume = data.load(case_id)
        pred = sliding_window_predict(model, volume.image, cfg.inference_patch_size, overlap=cfg.overlap,
                                      num_classes=cfg.num_classes, device=device, progress=False, amp=cfg.amp)
        for k, n in names.items():
            scores[f"val_{n}_dice"].append(dice(pred.labels == k, volume.label == k))
    return _mean(scores, "val_mean_dice", processes)


def not_measured(prefix: str, cfg: Config) -> dict[str, float]:
    """The columns of an epoch without that validation: NaN."""
    return {f"{prefix}_{n}_dice": float("nan") for n in class_names(cfg.num_classes).values()} | \
        {f"{prefix}_mean_dice": float("nan")}


def _mean(scores: dict[str, list[float]], mean_key: str, processes: Processes) -> dict[str, float]:
    """Each column's mean over the cases of every process (NaN skipped), then the mean over columns."""
    values = np.array([[np.nansum(v), np.sum(~np.isnan(v))] for v in scores.values()], np.float64).reshape(-1, 2)
    totals = processes.sum(torch.from_numpy(values)).numpy()  # (columns, 2): sum and count
    out = {key: float(s / n) if n else float("nan") for key, (s, n) in zip(scores, totals)}
    known = [v for v in out.values() if not np.isnan(v)]
    out[mean_key] = float(np.mean(known)) if known else float("nan")
    return out
