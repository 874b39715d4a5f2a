"""Pictures of CT volumes: three planes with label overlays, HU histograms per organ.

Arrays are (X, Y, Z) in RAS+ order (as `aunet.data` loads them). Axial slices are drawn in the
radiological convention: the patient's right on the left of the picture, anterior at the top.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

LABEL_COLOURS = {1: (0.2, 0.6, 1.0), 2: (1.0, 0.85, 0.1), 3: (1.0, 0.3, 0.3)}  # spleen, pancreas, kidney
LABEL_NAMES = {1: "spleen", 2: "pancreas", 3: "kidney"}


def plane(volume: np.ndarray, axis: int, index: int) -> np.ndarray:
    """The 2D slice `index` along `axis`, oriented for imshow(origin="lower")."""
    if axis == 2:  # axial: screen x = patient right -> left, screen y = anterior (up)
        return volume[::-1, :, index].T
    if axis == 1:  # coronal: screen x = patient right -> left, screen y = superior (up)
        return volume[::-1, index, :].T
    return volume[index, :, :].T  # sagittal: screen x = posterior -> anterior, screen y = superior


def overlay(label2d: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """RGBA image colouring each foreground label (transparent background)."""
    rgba = np.zeros((*label2d.shape, 4), np.float32)
    for value, colour in LABEL_COLOURS.items():
        rgba[label2d == value] = (*colour, alpha)
    return rgba


def show_planes(image: np.ndarray, label: np.ndarray | None = None, spacing: Sequence[float] = (1, 1, 1),
                centre: Sequence[int] | None = None, window: tuple[float, float] = (-160, 240),
                axes=None, title: str = ""):
    """Axial, coronal and sagittal slices through `centre` (default: the pancreas' centre) with labels."""
    import matplotlib.pyplot as plt

    if centre is None:
        target = label == 2 if label is not None and (label == 2).any() else None
        centre = [int(np.mean(np.nonzero(target)[d])) for d in range(3)] if target is not None \
            else [s // 2 for s in image.shape]
    if axes is None:
        _, axes = plt.subplots(1, 3, figsize=(13, 4.3))
    sx, sy, sz = spacing
    aspects = {2: sy / sx, 1: sz / sx, 0: sz / sy}
    for ax, axis, name in zip(axes, (2, 1, 0), ("axial", "coronal", "sagittal")):
        ax.imshow(plane(image, axis, centre[axis]), cmap="gray", vmin=window[0], vmax=window[1],
                  origin="lower", aspect=aspects[axis], interpolation="nearest")
        if label is not None:
            ax.imshow(overlay(plane(label, axis, centre[axis])), origin="lower", aspect=aspects[axis],
                      interpolation="nearest")
        ax.set_title(f"{name} {centre[axis]}")
        ax.set_xticks([]), ax.set_yticks([])
    if title:
        axes[0].figure.suptitle(title)
    return axes


def hu_histograms(image: np.ndarray, label: np.ndarray, ax=None, bins=np.arange(-200, 320, 5)):
    """Histogram of HU inside each labelled organ and in the rest of the body (> -500 HU)."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(7, 3.5))
    rest = (label == 0) & (image > -500)
    ax.hist(image[rest], bins=bins, density=True, histtype="stepfilled", color="0.8", label="other tissue")
    for value, name in LABEL_NAMES.items():
        if (label == value).any():
            ax.hist(image[label == value], bins=bins, density=True, histtype="step", lw=2,
                    color=LABEL_COLOURS[value], label=name)
    ax.set_xlabel("Hounsfield units"), ax.set_ylabel("density"), ax.legend()
    return ax
