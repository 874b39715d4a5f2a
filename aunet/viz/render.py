"""aunet's one slice renderer: a slice of a CT volume with its overlays, as an RGBA array or a PNG.

Every picture of a CT slice goes through `render_slice`: the slice viewer (aunet.viz.viewer), the
figures (aunet.viz.plots) and the notebooks' three-plane figures (`three_planes`). No widgets here:
tests call it directly.

Volumes are (X, Y, Z) arrays in RAS order, as `aunet.data.preprocess.to_canonical` leaves them:
index along X grows toward the patient's Right, Y toward Anterior, Z toward Superior.

Display is radiological, as on a scanner console: the axial slice is seen from the feet (patient's
right on the image's LEFT, anterior at the top), the coronal slice from the front (patient's right on
the left, superior at the top), the sagittal slice with anterior on the left and superior at the top.
In all three planes that is the slice transposed and flipped both ways: `slice.T[::-1, ::-1]`.

Layers, bottom to top: the CT through a window (width W, level L: L - W/2 is black, L + W/2 white),
label classes filled (or outlined), prediction classes outlined, one attention map (alpha in [0, 1]) as a
heat map hidden below a threshold. Class colours come from aunet.labels, by organ name. A 2D axial
slice (X, Y) is drawn as a volume one slice thick: `render_slice(slice_xy[:, :, None], "axial", 0)`.
"""
from __future__ import annotations

import io
from typing import Mapping, Sequence

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure
from scipy import ndimage

from aunet.errors import AunetError
from aunet.labels import COLOURS, CT150, TARGET, colour, value

# name -> array axis the plane cuts, (row axis, column axis) of the displayed picture
PLANES: dict[str, tuple[int, tuple[int, int]]] = {"axial": (2, (1, 0)), "coronal": (1, (2, 0)),
                                                  "sagittal": (0, (2, 1))}
# patient directions at the picture's (left, right, top, bottom) edges
EDGES: dict[str, tuple[str, str, str, str]] = {"axial": ("R", "L", "A", "P"), "coronal": ("R", "L", "S", "I"),
                                               "sagittal": ("A", "P", "S", "I")}
# CT window presets in Hounsfield units: (width, level)
WINDOWS: dict[str, tuple[float, float]] = {"abdomen": (400.0, 40.0), "soft tissue": (350.0, 50.0),
                                           "bone": (1800.0, 400.0), "lung": (1500.0, -600.0)}
ATTENTION_CMAP = "jet"  # alpha 0 blue .. 1 red, in the viewer and the figures alike


def check_plane(plane: str) -> int:
    """The array axis a plane cuts; AunetError for an unknown plane name."""
    if plane not in PLANES:
        raise AunetError(f"plane={plane!r} is not a plane; expected one of: {', '.join(PLANES)}.")
    return PLANES[plane][0]


def take_slice(volume: np.ndarray, plane: str, index: int) -> np.ndarray:
    """Slice `index` of a (X, Y, Z) volume in display orientation: (rows, columns), radiological."""
    axis = check_plane(plane)
    if not 0 <= index < volume.shape[axis]:
        raise AunetError(f"slice index {index} is outside the {plane} range 0..{volume.shape[axis] - 1}.")
    return np.take(volume, index, axis=axis).T[::-1, ::-1]  # (rows, columns)


def pixel_aspect(spacing: Sequence[float], plane: str) -> float:
    """Height / width of one displayed pixel in mm (matplotlib's `aspect`)."""
    rows, cols = PLANES[plane][1]
    return float(spacing[rows]) / float(spacing[cols])


def apply_window(image: np.ndarray, width: float, level: float) -> np.ndarray:
    """Grey values in [0, 1]: level - width/2 maps to 0 and level + width/2 to 1."""
    width = max(float(width), 1e-6)
    return np.clip((np.asarray(image, np.float32) - (level - width / 2)) / width, 0.0, 1.0)


def data_window(image: np.ndarray, percentiles: tuple[float, float] = (1.0, 99.0)) -> tuple[float, float]:
    """(width, level) spanning two percentiles of the image: a window for images not in HU (e.g. z-scored)."""
    lo, hi = (float(v) for v in np.percentile(image, percentiles))
    return max(hi - lo, 1e-3), (hi + lo) / 2


def class_colour(k: int, names: Mapping[int, str] = CT150) -> tuple[float, float, float]:
    """The colour of class k: its organ's (aunet.labels.COLOURS, named by `names`), else a tab10 colour."""
    name = names.get(k, "")
    # unnamed classes (e.g. 'class5') get distinct tab10 colours rather than labels.colour's one grey
    return colour(name) if name in COLOURS else tuple(float(c) for c in colormaps["tab10"](k % 10)[:3])


def label_centre(label: np.ndarray | None, shape: Sequence[int], organ: str | None = None,
                 names: Mapping[int, str] = CT150) -> tuple[int, int, int]:
    """(x, y, z) centre of `organ`'s voxels in `label`, else of all labelled voxels, else of the volume."""
    masks = [] if label is None else [label > 0]
    if label is not None and organ in names.values():
        masks.insert(0, label == value(organ, names))  # type: ignore[arg-type]
    for mask in masks:  # a case without that organ is centred on what is labelled
        if mask.any():
            return tuple(int(v) for v in np.round(np.argwhere(mask).mean(axis=0)))  # type: ignore[return-value]
    return tuple(int(n) // 2 for n in shape)  # type: ignore[return-value]


def outline(mask: np.ndarray) -> np.ndarray:
    """The boundary pixels of a 2D mask (pixels of the mask with a 4-neighbour outside it)."""
    return mask & ~ndimage.binary_erosion(mask, border_value=0)


def _blend(rgb: np.ndarray, mask: np.ndarray, tint: Sequence[float], opacity: float) -> None:
    rgb[mask] = (1 - opacity) * rgb[mask] + opacity * np.asarray(tint, np.float32)  # in place


def render_slice(
    image: np.ndarray,
    plane: str,
    index: int,
    window: tuple[float, float] = WINDOWS["abdomen"],
    label: np.ndarray | None = None,
    prediction: np.ndarray | None = None,
    attention: np.ndarray | None = None,
    label_opacity: float = 0.4,
    prediction_opacity: float = 1.0,
    attention_opacity: float = 0.5,
    threshold: float = 0.0,
    visible: Sequence[int] | None = None,
    names: Mapping[int, str] = CT150,
    label_outline: bool = False,
) -> np.ndarray:
    """The slice as (rows, columns, 4) float32 RGBA in [0, 1], overlays blended in, radiological orientation.

    `window` is (width, level) in the image's units; `visible` lists the classes drawn (None: all
    non-zero classes); attention values below `threshold` are not drawn; `names` (value -> organ)
    picks the class colours; `label_outline` outlines the label classes instead of filling them.
    """
    grey = apply_window(take_slice(image, plane, index), *window)  # (rows, columns)
    rgb = np.repeat(grey[..., None], 3, axis=-1)  # (rows, columns, 3)
    for volume, opacity, edge_only in ((label, label_opacity, label_outline), (prediction, prediction_opacity, True)):
        if volume is None or opacity <= 0:
            continue
        classes = take_slice(volume, plane, index).astype(np.int64)
        for k in (visible if visible is not None else np.unique(classes[classes > 0])):
            mask = classes == int(k)
            _blend(rgb, outline(mask) if edge_only else mask, class_colour(int(k), names), opacity)
    if attention is not None and attention_opacity > 0:
        alpha = take_slice(attention, plane, index).astype(np.float32)
        shown = alpha >= threshold
        heat = colormaps[ATTENTION_CMAP](alpha)[..., :3].astype(np.float32)  # (rows, columns, 3)
        rgb[shown] = (1 - attention_opacity) * rgb[shown] + attention_opacity * heat[shown]
    return np.concatenate([rgb, np.ones_like(rgb[..., :1])], axis=-1).astype(np.float32)


def to_png(rgba: np.ndarray, aspect: float, plane: str, title: str = "", height_in: float = 4.0,
           dpi: int = 100) -> bytes:
    """PNG bytes of an RGBA slice drawn by matplotlib with the physical `aspect`, edges labelled R/L/A/P/S/I."""
    rows, cols = rgba.shape[:2]
    width_in = height_in * cols / (rows * aspect)  # the picture's physical width/height ratio
    fig = Figure(figsize=(min(max(width_in, 1.5), 3 * height_in) + 0.6, height_in + 0.5), dpi=dpi)
    ax = fig.add_axes((0.06, 0.04, 0.88, 0.86))
    ax.imshow(rgba, aspect=aspect, interpolation="nearest")
    left, right, top, bottom = EDGES[plane]
    for text, x, y in ((left, -0.04, 0.5), (right, 1.04, 0.5), (top, 0.5, 1.02), (bottom, 0.5, -0.03)):
        ax.text(x, y, text, transform=ax.transAxes, ha="center", va="center", fontsize=10, weight="bold")
    ax.set_title(title, fontsize=9, pad=14)
    ax.set_axis_off()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")  # Figure without pyplot: no global state, any backend
    return buffer.getvalue()


def three_planes(image: np.ndarray, spacing: Sequence[float], centre: Sequence[int] | None = None,
                 overlays: Mapping[str, object] | None = None, title: str = "") -> Figure:
    """A static figure of the axial, coronal and sagittal slices through `centre` (x, y, z), same overlays each.

    `overlays` are render_slice's keyword arguments (label=, prediction=, attention=, window=, ...);
    `centre` None: through the centre of the pancreas (aunet.labels.TARGET) in `overlays["label"]`.
    """
    overlays = dict(overlays or {})
    if centre is None:
        centre = label_centre(overlays.get("label"), image.shape, TARGET,  # type: ignore[arg-type]
                              overlays.get("names", CT150))  # type: ignore[arg-type]
    fig = Figure(figsize=(12, 4), dpi=100, layout="constrained")
    axes = fig.subplots(1, 3)
    for ax, plane in zip(axes, PLANES):
        index = int(centre[PLANES[plane][0]])
        ax.imshow(render_slice(image, plane, index, **overlays), aspect=pixel_aspect(spacing, plane),
                  interpolation="nearest")
        left, right, top, bottom = EDGES[plane]
        ax.set_title(f"{plane} {index}   ({left} | {right}, {top} top)", fontsize=9)
        ax.set_axis_off()
    fig.suptitle(title, fontsize=10)
    return fig
