"""HU histograms per organ: why intensity alone does not find the pancreas.

Arrays are (X, Y, Z) in RAS+ order (as `aunet.data` loads them). Slices of CT volumes are drawn by
aunet's one slice renderer, `aunet.viz.render` (`three_planes` for the three-plane figure); organ names
and colours come from `aunet.labels`.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

from aunet.errors import AunetError
from aunet.labels import CT150, colour


def hu_histograms(image: np.ndarray, label: np.ndarray, ax=None, bins=np.arange(-200, 320, 5),
                  names: Mapping[int, str] = CT150):
    """Histogram of HU inside each labelled organ (`names`: value -> organ) and in the rest of the body (> -500 HU)."""
    import matplotlib.pyplot as plt

    if np.shape(image) != np.shape(label):
        raise AunetError(f"label has shape {np.shape(label)}; expected the image's shape {np.shape(image)}.")
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 3.5))
    rest = (label == 0) & (image > -500)
    ax.hist(image[rest], bins=bins, density=True, histtype="stepfilled", color="0.8", label="other tissue")
    for value, name in names.items():
        if value != 0 and (label == value).any():
            ax.hist(image[label == value], bins=bins, density=True, histtype="step", lw=2,
                    color=colour(name), label=name)
    ax.set_xlabel("Hounsfield units"), ax.set_ylabel("density"), ax.legend()
    return ax
