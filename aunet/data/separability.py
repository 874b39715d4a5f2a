"""How well intensity alone finds an organ: the best single HU window's Dice, and histogram overlap.

A pancreas that a threshold window could segment would make attention pointless; the phantom is
calibrated so that it cannot (its HU overlaps duodenum, bowel wall, liver and vessels).

    aunet data separability data/phantom          # prints the numbers for the pancreas (aunet.labels.TARGET)
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from aunet.labels import TARGET, value

PANCREAS = value(TARGET)

BINS = np.arange(-300, 401, 2.0)  # HU bin edges


def best_window_dice(image: np.ndarray, label: np.ndarray, value: int = PANCREAS) -> tuple[float, tuple[float, float]]:
    """Best Dice of `image in [lo, hi]` against `label == value` over all HU windows; (dice, (lo, hi))."""
    target = label == value
    pos, _ = np.histogram(image[target], BINS)
    neg, _ = np.histogram(image[~target], BINS)
    cp, cn = np.concatenate([[0], np.cumsum(pos)]), np.concatenate([[0], np.cumsum(neg)])
    tp = cp[None, :] - cp[:, None]  # window from bin i (row) to bin j (column)
    fp = cn[None, :] - cn[:, None]
    dice = np.where(tp > 0, 2 * tp / np.maximum(target.sum() + tp + fp, 1), 0.0)
    i, j = np.unravel_index(np.argmax(dice), dice.shape)
    return float(dice[i, j]), (float(BINS[i]), float(BINS[j]))


def neighbour_overlap(image: np.ndarray, label: np.ndarray, spacing, value: int = PANCREAS, mm: float = 15.0) -> float:
    """Overlap (0..1, 1 = identical) of the HU histograms of the organ and a `mm` shell around it."""
    target = label == value
    iterations = max(1, int(round(mm / min(spacing))))
    shell = ndimage.binary_dilation(target, iterations=iterations) & ~target & (image > -500)
    a, _ = np.histogram(image[target], BINS, density=True)
    b, _ = np.histogram(image[shell], BINS, density=True)
    return float(np.minimum(a, b).sum() * np.diff(BINS)[0])


def separability_report(folder: str, value: int = PANCREAS) -> list[str]:
    """One line per case of a dataset folder (best HU window Dice, neighbourhood overlap), then their mean."""
    from aunet.data.datasets import read_case, read_dataset

    lines, dices, overlaps = [], [], []
    for case in read_dataset(folder).cases:
        image, label, img = read_case(case)
        label = label.astype(np.uint8)
        dice, window = best_window_dice(image, label, value)
        overlap = neighbour_overlap(image, label, img.header.get_zooms()[:3], value)
        dices.append(dice), overlaps.append(overlap)
        lines.append(f"{case.case_id}: best window {window[0]:.0f}..{window[1]:.0f} HU Dice {dice:.3f}, "
                     f"histogram overlap with 15 mm neighbourhood {overlap:.2f}")
    lines.append(f"mean over {len(dices)} cases: best single-window Dice {np.mean(dices):.3f} "
                 f"(sd {np.std(dices):.3f}), neighbourhood histogram overlap {np.mean(overlaps):.2f}")
    return lines
