"""Has a run finished learning? A plateau test on its validation pancreas Dice curve.

A run that stops while its validation Dice is still climbing steeply ends wherever a small change
(another CPU's float rounding, another thread count) sends it, and its test scores say little about the
architecture. The criterion:

    smoothed[i]  mean of the last SMOOTH validation scores up to point i (a trailing moving mean)
    rise         smoothed at the last point - smoothed a quarter of the curve earlier
    converged    rise < TOLERANCE (0.02 Dice)

The curve is one score per validated epoch in epoch order; epochs without validation (NaN or missing in
the history) are left out, so SMOOTH and the quarter count validation points. A curve shorter than
SMOOTH + its quarter (a 20-epoch run has 5 + 5 and is just long enough) is not called converged: there
is not enough of it to tell.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Mapping, Sequence

import numpy as np

SMOOTH = 5  # validation points in the moving mean
FRACTION = 0.25  # the last quarter of the curve
TOLERANCE = 0.02  # Dice: a smaller rise over that quarter is a plateau
COLUMN = "val_pancreas_dice"  # the history column the reproduction judges


@dataclass(frozen=True)
class Convergence:
    """The plateau test's result: converged or not, the smoothed rise, over how many validation points."""

    converged: bool
    rise: float  # smoothed Dice at the end minus `window` points earlier (NaN: curve too short)
    window: int  # validation points in the last quarter

    def to_dict(self) -> dict[str, bool | float | int]:
        return asdict(self)


def moving_mean(values: Sequence[float], width: int = SMOOTH) -> np.ndarray:
    """Trailing mean of `width` consecutive values: len(values) - width + 1 points (none if fewer values)."""
    v = np.asarray(values, float)
    if len(v) < width:
        return np.empty(0)
    sums = np.cumsum(np.concatenate([[0.0], v]))
    return (sums[width:] - sums[:-width]) / width


def convergence(curve: Sequence[float], smooth: int = SMOOTH, fraction: float = FRACTION,
                tolerance: float = TOLERANCE) -> Convergence:
    """Plateau test of a validation curve (one score per epoch, NaN where not validated)."""
    v = np.asarray(curve, float)
    v = v[~np.isnan(v)]
    window = max(1, math.ceil(fraction * len(v)))
    smoothed = moving_mean(v, smooth)
    if len(smoothed) <= window:
        return Convergence(False, math.nan, window)
    rise = float(smoothed[-1] - smoothed[-1 - window])
    return Convergence(rise < tolerance, rise, window)


def history_convergence(rows: Sequence[Mapping[str, float]], column: str = COLUMN) -> Convergence:
    """Plateau test of one column of a run's history rows (aunet.run.RunFolder.read_history)."""
    return convergence([float(r.get(column, math.nan)) for r in rows])
