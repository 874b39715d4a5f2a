"""Evaluation metrics on whole test volumes: Dice, precision, recall, S2S distance and HD95.

All metrics take one class's binary masks (prediction, ground truth) of the whole volume.

Overlap: TP, FP, FN are voxel counts.
    Dice = 2 TP / (2 TP + FP + FN),  precision = TP / (TP + FP),  recall = TP / (TP + FN).

S2S, the paper's "surface-to-surface distance" (mm), is the symmetric mean surface distance:
  * surface of a mask = its boundary voxels: the mask minus its binary erosion with the face
    (6-)connected structuring element, `scipy.ndimage.generate_binary_structure(3, 1)`; voxels on
    the array's border count as boundary (erosion treats the outside as background);
  * d(v, B) = Euclidean distance in mm from the centre of surface voxel v to the nearest surface
    voxel centre of the other mask, from `scipy.ndimage.distance_transform_edt(..., sampling=spacing)`;
  * S2S = mean of d over the union of both surface point sets (pred -> gt distances and
    gt -> pred distances together), so the larger surface carries more weight.
This is MONAI's `compute_average_surface_distance(symmetric=True, spacing=...)` (tests compare).
It differs from DeepMind's `surface-distance` package, which places surface elements between
voxels and weights each by its area: with thick slices, e.g. spacing (0.8, 0.8, 2.5) mm, one
boundary voxel on a cranial/caudal cap stands for 0.8 x 0.8 = 0.64 mm^2 of surface but one on a side
wall for 0.8 x 2.5 = 2 mm^2, so counting voxels equally (as here) weights the caps about 3x more per
mm^2 than DeepMind's area weighting does, and the two give different numbers on the same masks.

HD95 = max of the two directed 95th percentiles of the same distances (linear interpolation),
as MONAI's `compute_hausdorff_distance(percentile=95)`.

Empty masks: Dice, precision and recall are 1.0 when both masks are empty (nothing to find,
nothing found) and 0.0 when exactly one is empty. S2S and HD95 are NaN when either mask is empty:
a distance needs two surfaces, and an infinite value would make every mean infinite; the miss is
already counted by Dice = 0, and `summarise` skips NaN.
"""
from __future__ import annotations

import math
from typing import Iterable, Mapping, Sequence

import numpy as np
from scipy import ndimage


def _pair(pred: np.ndarray, true: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred, true = np.asarray(pred, dtype=bool), np.asarray(true, dtype=bool)
    if pred.shape != true.shape:
        raise ValueError(f"Prediction {pred.shape} and ground truth {true.shape} must have the same shape.")
    return pred, true


def _counts(pred: np.ndarray, true: np.ndarray) -> tuple[int, int, int]:
    """True positives, false positives, false negatives (voxels)."""
    pred, true = _pair(pred, true)
    tp = int(np.count_nonzero(pred & true))
    return tp, int(np.count_nonzero(pred)) - tp, int(np.count_nonzero(true)) - tp


def _ratio(num: int, den: int) -> float:
    """num / den, with 0/0 = 1.0: both masks empty is a perfect answer."""
    return 1.0 if den == 0 else num / den


def dice(pred: np.ndarray, true: np.ndarray) -> float:
    """Dice overlap 2 TP / (2 TP + FP + FN); 1.0 if both masks are empty."""
    tp, fp, fn = _counts(pred, true)
    return _ratio(2 * tp, 2 * tp + fp + fn)


def precision(pred: np.ndarray, true: np.ndarray) -> float:
    """TP / (TP + FP); 1.0 if both masks are empty, 0.0 if exactly one is."""
    tp, fp, fn = _counts(pred, true)
    return 0.0 if (tp + fp == 0) != (tp + fn == 0) else _ratio(tp, tp + fp)


def recall(pred: np.ndarray, true: np.ndarray) -> float:
    """TP / (TP + FN); 1.0 if both masks are empty, 0.0 if exactly one is."""
    tp, fp, fn = _counts(pred, true)
    return 0.0 if (tp + fp == 0) != (tp + fn == 0) else _ratio(tp, tp + fn)


def surface(mask: np.ndarray) -> np.ndarray:
    """Boundary voxels: the mask minus its erosion with face (6-)connectivity."""
    mask = np.asarray(mask, dtype=bool)
    structure = ndimage.generate_binary_structure(mask.ndim, 1)
    return mask & ~ndimage.binary_erosion(mask, structure, border_value=0)


def surface_distances(pred: np.ndarray, true: np.ndarray, spacing: Sequence[float]
                      ) -> tuple[np.ndarray, np.ndarray] | None:
    """(pred -> true, true -> pred) distances in mm from each surface voxel; None if a mask is empty."""
    pred, true = _pair(pred, true)
    if len(spacing) != pred.ndim:
        raise ValueError(f"Spacing {tuple(spacing)} must give one value per axis of the {pred.ndim}D masks.")
    if not pred.any() or not true.any():
        return None
    # crop to the union's bounding box plus one background voxel: the distances between surface
    # points do not depend on the frame, and the margin keeps erosion at the border unchanged
    box = tuple(slice(int(i.min()), int(i.max()) + 1) for i in np.nonzero(pred | true))
    pred = np.pad(pred[box], 1)
    true = np.pad(true[box], 1)
    edge_pred, edge_true = surface(pred), surface(true)
    to_true = ndimage.distance_transform_edt(~edge_true, sampling=spacing)  # mm to the nearest true surface voxel
    to_pred = ndimage.distance_transform_edt(~edge_pred, sampling=spacing)
    return to_true[edge_pred], to_pred[edge_true]


def s2s_distance(pred: np.ndarray, true: np.ndarray, spacing: Sequence[float]) -> float:
    """Symmetric mean surface distance (mm) over both surfaces' voxels; NaN if either mask is empty."""
    d = surface_distances(pred, true, spacing)
    return math.nan if d is None else float(np.concatenate(d).mean())


def hausdorff95(pred: np.ndarray, true: np.ndarray, spacing: Sequence[float]) -> float:
    """95th-percentile Hausdorff distance (mm), max over both directions; NaN if either mask is empty."""
    d = surface_distances(pred, true, spacing)
    return math.nan if d is None else float(max(np.percentile(d[0], 95), np.percentile(d[1], 95)))


def evaluate_case(pred_labels: np.ndarray, true_labels: np.ndarray, spacing: Sequence[float],
                  classes: Mapping[str, int]) -> dict[str, float]:
    """Flat metrics of one case, e.g. {"pancreas_dice": ..., "pancreas_s2s_mm": ...}, per named class."""
    pred_labels, true_labels = np.asarray(pred_labels), np.asarray(true_labels)
    if pred_labels.shape != true_labels.shape:
        raise ValueError(f"Prediction {pred_labels.shape} and ground truth {true_labels.shape} must have the same "
                         "shape.")
    row: dict[str, float] = {}
    for name, label in classes.items():
        pred, true = pred_labels == label, true_labels == label
        row[f"{name}_dice"] = dice(pred, true)
        row[f"{name}_precision"] = precision(pred, true)
        row[f"{name}_recall"] = recall(pred, true)
        distances = surface_distances(pred, true, spacing)  # computed once for both distance metrics
        if distances is None:
            row[f"{name}_s2s_mm"] = row[f"{name}_hd95_mm"] = math.nan
        else:
            row[f"{name}_s2s_mm"] = float(np.concatenate(distances).mean())
            row[f"{name}_hd95_mm"] = float(max(np.percentile(d, 95) for d in distances))
    return row


def summarise(rows: Iterable[Mapping[str, float]]) -> dict[str, tuple[float, float]]:
    """{metric: (mean, std)} over cases, skipping NaN; (NaN, NaN) if a metric has no finite value.

    std is the population standard deviation (numpy's default, ddof=0) of the values used. Columns that
    are not numbers (a case id) are left out.
    """
    columns: dict[str, list[float]] = {}
    for row in rows:
        for key, value in row.items():
            if isinstance(value, (int, float, np.number)) and not isinstance(value, bool):
                columns.setdefault(key, []).append(float(value))
    summary = {}
    for key, values in columns.items():
        kept = np.asarray([v for v in values if not math.isnan(v)], dtype=np.float64)
        summary[key] = (float(kept.mean()), float(kept.std())) if kept.size else (math.nan, math.nan)
    return summary
