"""Whole-volume inference: Gaussian-blended sliding windows, and `aunet predict` on one NIfTI file.

A CT volume is larger than the training patch, so the model sees overlapping windows and each voxel's
class probabilities are a weighted mean over the windows that cover it. The weights are a Gaussian
centred on the window (sigma = 1/8 of its size per axis): a voxel near a window's edge has seen
little context there, so the window whose centre is closest dominates, and the blend has no seams.

Memory stays bounded: only one batch of windows is on the device at a time, and the full-volume
accumulators (K probability maps, one weight map, one map per attention level) are float32 on the
CPU. Windows are at most `patch_size` and their sides multiples of 16 (the network halves the size
four times); a volume smaller than a window along an axis is padded with its minimum, which after
clipping and z-scoring is air.

    pred = sliding_window_predict(model, image, cfg.inference_patch_size, overlap=cfg.overlap)
    pred.labels                 # (X, Y, Z) uint8
    pred.attention["level2"]    # (X, Y, Z) float32, with return_attention=True

    predict_file("run/best.pt", "scan.nii.gz", "labels.nii.gz")   # CLI: aunet predict CHECKPOINT IN OUT

The checkpoint is loaded and checked by aunet.run (`load_model`), the one reader of a run's files.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from aunet.device import autocast, pick_device
from aunet.errors import AunetError

MULTIPLE = 16  # the U-Net pools 4 times: window sides must divide by 2^4
SIGMA_SCALE = 1 / 8  # Gaussian sigma as a fraction of the window size


@dataclass
class Prediction:
    """A whole-volume prediction on the input's grid."""

    probabilities: np.ndarray  # (K, X, Y, Z) float32, sums to 1 over K
    labels: np.ndarray  # (X, Y, Z) uint8, argmax over K
    attention: dict[str, np.ndarray] = field(default_factory=dict)  # "level2" -> (X, Y, Z) float32


def window_starts(size: int, window: int, overlap: float) -> list[int]:
    """Start indices of windows covering 0..size, neighbours overlapping by `overlap` of a window."""
    if size <= window:
        return [0]
    stride = max(1, int(window * (1 - overlap)))
    n = -(-(size - window) // stride) + 1  # ceil: the last window ends exactly at `size`
    return sorted({min(i * stride, size - window) for i in range(n)})


def gaussian_weights(window: Sequence[int]) -> torch.Tensor:
    """Blending weights (*window) float32: a separable Gaussian, 1 at the centre, never 0."""
    weights = torch.ones(())
    for n in window:
        x = torch.arange(n, dtype=torch.float64) - (n - 1) / 2
        axis = torch.exp(-0.5 * (x / (n * SIGMA_SCALE)) ** 2)
        weights = weights[..., None] * axis  # outer product, one axis at a time
    return weights.clamp_min(1e-6).float()  # far corners must still count where only they cover a voxel


def _as_batch(image: np.ndarray | torch.Tensor) -> torch.Tensor:
    """The image as a (1, C, X, Y, Z) float32 CPU tensor; accepts (X, Y, Z), (C, X, Y, Z) or (1, C, X, Y, Z)."""
    x = torch.as_tensor(np.asarray(image) if not isinstance(image, torch.Tensor) else image)
    if x.dim() == 3:
        x = x[None, None]
    elif x.dim() == 4:
        x = x[None]
    if x.dim() != 5 or x.shape[0] != 1:
        raise AunetError(f"Image of shape {tuple(image.shape)} is not a volume; expected (X, Y, Z), "
                         f"(C, X, Y, Z) or (1, C, X, Y, Z).")
    return x.detach().to("cpu", torch.float32)


def _check_patch(patch_size: Sequence[int], overlap: float) -> tuple[int, int, int]:
    patch = tuple(int(p) for p in patch_size)
    if len(patch) != 3 or any(p <= 0 or p % MULTIPLE for p in patch):
        raise AunetError(f"patch_size={tuple(patch_size)} is not valid for sliding-window inference; "
                         f"expected 3 positive multiples of {MULTIPLE}, e.g. (160, 160, 96).")
    if not 0 <= overlap < 1:
        raise AunetError(f"overlap={overlap} is not valid; expected 0 <= overlap < 1.")
    return patch  # type: ignore[return-value]


def sliding_window_predict(
    model: nn.Module,
    image: np.ndarray | torch.Tensor,
    patch_size: Sequence[int],
    overlap: float = 0.5,
    num_classes: int | None = None,
    batch_size: int = 1,
    device: torch.device | str | None = None,
    return_attention: bool = False,
    progress: bool = True,
    amp: bool = True,
) -> Prediction:
    """Class probabilities, labels and (optionally) attention maps of a whole volume, Gaussian-blended."""
    patch = _check_patch(patch_size, overlap)
    x = _as_batch(image)  # (1, C, X, Y, Z)
    size = tuple(x.shape[2:])
    # windows no larger than needed: a 20-voxel axis gets a 32-voxel window, not a 96-voxel one
    window = tuple(min(p, -(-s // MULTIPLE) * MULTIPLE) for p, s in zip(patch, size))
    padded = tuple(max(s, w) for s, w in zip(size, window))
    if padded != size:
        pad = [p for s, t in zip(reversed(size), reversed(padded)) for p in (0, t - s)]  # at the end of each axis
        x = F.pad(x, pad, value=float(x.min()))
    device = pick_device("auto") if device is None else torch.device(device)
    weights = gaussian_weights(window)  # (*window)
    weights_device = weights.to(device)
    norm = torch.zeros(padded)  # (X, Y, Z): sum of weights per voxel
    probs: torch.Tensor | None = None  # (K, X, Y, Z), allocated once K is known
    attention: dict[str, torch.Tensor] = {}
    corners = list(itertools.product(*(window_starts(s, w, overlap) for s, w in zip(padded, window))))
    batches = [corners[i:i + batch_size] for i in range(0, len(corners), batch_size)]

    was_training = model.training
    model.to(device).eval()  # BatchNorm must use its running statistics
    try:
        with torch.inference_mode(), autocast(device, amp):
            for batch in tqdm(batches, desc="sliding window", disable=not progress, leave=False):
                boxes = [tuple(slice(c, c + w) for c, w in zip(corner, window)) for corner in batch]
                crops = torch.cat([x[(..., *box)] for box in boxes]).to(device)  # (b, C, *window)
                out = model(crops, return_attention=True) if return_attention else model(crops)
                logits, alphas = out if isinstance(out, tuple) else (out, {})
                if num_classes is not None and logits.shape[1] != num_classes:
                    raise AunetError(f"The model predicts {logits.shape[1]} classes but num_classes={num_classes} "
                                     f"was given; use the num_classes the model was trained with.")
                p = (torch.softmax(logits.float(), dim=1) * weights_device).cpu()  # (b, K, *window)
                if probs is None:
                    probs = torch.zeros((logits.shape[1], *padded))
                maps = {name: F.interpolate(a.float(), size=window, mode="trilinear", align_corners=False)
                        for name, a in alphas.items()}  # each (b, 1, *window)
                for i, box in enumerate(boxes):
                    probs[(slice(None), *box)] += p[i]
                    norm[box] += weights
                    for name, alpha in maps.items():
                        acc = attention.setdefault(name, torch.zeros(padded))
                        acc[box] += (alpha[i, 0] * weights_device).cpu()
    finally:
        model.train(was_training)

    return _normalise(probs, norm, attention, size)


def _normalise(probs: torch.Tensor, norm: torch.Tensor, attention: dict[str, torch.Tensor],
               size: tuple[int, ...]) -> Prediction:
    """Divide the weighted sums by the summed weights in place, crop the padding, take the argmax."""
    with torch.inference_mode():  # the accumulators are inference tensors: update them in this mode
        crop = tuple(slice(0, s) for s in size)
        norm = norm[crop]
        probs = probs[(slice(None), *crop)]
        probs /= norm  # in place: no second full-volume copy
        labels = np.empty(size, dtype=np.uint8)
        for i in range(0, size[0], 16):  # argmax in slabs: an int64 argmax of the whole volume is 8 bytes/voxel
            labels[i:i + 16] = probs[:, i:i + 16].argmax(0).numpy()
        maps = {}
        for name, acc in sorted(attention.items()):
            acc = acc[crop]
            acc /= norm
            maps[name] = np.ascontiguousarray(acc.numpy())
        return Prediction(np.ascontiguousarray(probs.numpy()), labels, maps)


# --- aunet predict -----------------------------------------------------------------------------


def predict_file(checkpoint: str | Path, input_path: str | Path, output_path: str | Path,
                 overlap: float | None = None, attention_dir: str | Path | None = None,
                 device: str = "auto", batch_size: int = 1, progress: bool = True) -> Prediction:
    """Segment one NIfTI image; write the labels (uint8) on the input's grid with its affine."""
    output_path = Path(output_path)
    if not output_path.name.endswith((".nii", ".nii.gz")):
        raise AunetError(f"Output {output_path} must end in .nii or .nii.gz.")
    from aunet.data import load_nifti, preprocess_image, save_nifti, to_original
    from aunet.run import load_model

    model, cfg = load_model(checkpoint)  # aunet.run: checks that the file is an aunet checkpoint
    if cfg.in_channels != 1:
        raise AunetError(f"Checkpoint {checkpoint} expects {cfg.in_channels} input channels; `aunet predict` reads "
                         "one image.")
    img = load_nifti(input_path)
    image, geometry = preprocess_image(img, cfg)  # as in training: RAS, cfg.spacing, clip + z-score, pad
    pred = sliding_window_predict(model, image, cfg.inference_patch_size, cfg.overlap if overlap is None else overlap,
                                  num_classes=cfg.num_classes, batch_size=batch_size, device=pick_device(device),
                                  return_attention=attention_dir is not None, progress=progress, amp=cfg.amp)
    save_nifti(output_path, to_original(pred.labels, geometry, order=0), img.affine, dtype=np.uint8)
    if attention_dir is not None:
        stem = Path(input_path).name.removesuffix(".gz").removesuffix(".nii")
        for name, alpha in pred.attention.items():
            save_nifti(Path(attention_dir) / f"{stem}_attention_{name}.nii.gz",
                       to_original(alpha, geometry, order=1), img.affine, dtype=np.float32)
    return pred
