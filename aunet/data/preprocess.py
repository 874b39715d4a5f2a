"""Preprocessing, as in the paper: canonical orientation, isotropic resampling, clip + z-score, pad to 16.

    original file --(reorient to RAS)--> canonical --(resample to cfg.spacing)--> resampled
                  --(clip to cfg.intensity_range, z-score)--> normalised --(pad to a multiple of 16)--> Volume

`Geometry` records every step so `to_original` can bring a prediction back onto the input's grid.
Resampling keeps the physical extent: the voxel grid edges stay put (scipy `grid_mode=True`).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import nibabel as nib
import numpy as np
from nibabel import orientations as ornts
from scipy import ndimage

from aunet.config import Config
from aunet.data.nifti import check_affine, read_data, spacing_of
from aunet.errors import AunetError

MULTIPLE = 16  # four 2x2x2 poolings
FOREGROUND_POINTS = 20000  # per class, stored for fast foreground-oversampled patch centres


@dataclass
class Geometry:
    """How a preprocessed grid relates to the original file's grid (everything `to_original` needs)."""

    original_affine: np.ndarray  # (4, 4) of the input file
    original_shape: tuple[int, int, int]  # input array shape, input axis order
    original_ornt: np.ndarray  # (3, 2) nibabel orientation of the input axes
    canonical_shape: tuple[int, int, int]  # after reorientation to RAS
    canonical_spacing: tuple[float, float, float]
    resampled_shape: tuple[int, int, int]
    pad_before: tuple[int, int, int]  # voxels added before each axis when padding
    spacing: tuple[float, float, float]  # effective spacing after resampling (~cfg.spacing)

    def to_dict(self) -> dict:
        return {k: np.asarray(v) for k, v in self.__dict__.items()}

    @classmethod
    def from_dict(cls, d) -> Geometry:
        tup = lambda k, t=int: tuple(t(v) for v in np.asarray(d[k]))  # noqa: E731
        return cls(np.asarray(d["original_affine"], np.float64), tup("original_shape"),
                   np.asarray(d["original_ornt"], np.float64), tup("canonical_shape"),
                   tup("canonical_spacing", float), tup("resampled_shape"), tup("pad_before"),
                   tup("spacing", float))


@dataclass
class Volume:
    """One preprocessed case: image and label on the canonical, isotropic, padded grid."""

    image: np.ndarray  # (X, Y, Z) float32, z-scored
    label: np.ndarray  # (X, Y, Z) uint8, remapped by cfg.label_map
    spacing: tuple[float, float, float]  # mm, after resampling
    case_id: str
    geometry: Geometry
    foreground: dict[int, np.ndarray] = field(default_factory=dict)  # class -> (N, 3) voxel indices


def to_canonical(data: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Reorder/flip array axes so they point to R, A, S; returns (data, input orientation)."""
    ornt = ornts.io_orientation(affine)
    transform = ornts.ornt_transform(ornt, ornts.axcodes2ornt("RAS"))
    return np.ascontiguousarray(ornts.apply_orientation(data, transform)), ornt


def from_canonical(data: np.ndarray, ornt: np.ndarray) -> np.ndarray:
    """Inverse of `to_canonical`: back to the input's axis order and directions."""
    transform = ornts.ornt_transform(ornts.axcodes2ornt("RAS"), ornt)
    return np.ascontiguousarray(ornts.apply_orientation(data, transform))


def resample(data: np.ndarray, shape: tuple[int, ...], order: int) -> np.ndarray:
    """Resample onto `shape` over the same physical extent (order 1: images, 0: labels)."""
    if tuple(data.shape) == tuple(shape):
        return data
    factors = [n / m for n, m in zip(shape, data.shape)]
    out = ndimage.zoom(data, factors, order=order, mode="nearest", grid_mode=True)
    assert out.shape == tuple(shape), (out.shape, shape)
    return out


def normalise(image: np.ndarray, intensity_range: tuple[float, float]) -> np.ndarray:
    """Clip to the HU window, then z-score over the volume (the paper's per-volume normalisation)."""
    lo, hi = intensity_range
    image = np.clip(image, lo, hi)
    return ((image - image.mean()) / max(float(image.std()), 1e-6)).astype(np.float32)


def pad_to_multiple(data: np.ndarray, value: float, multiple: int = MULTIPLE) -> tuple[np.ndarray, tuple[int, ...]]:
    """Pad every axis (evenly on both sides) up to a multiple of `multiple`; returns pad_before."""
    total = [(-n) % multiple for n in data.shape]
    before = tuple(t // 2 for t in total)
    padded = np.pad(data, [(b, t - b) for b, t in zip(before, total)], constant_values=value)
    return padded, before


def preprocess_arrays(image: np.ndarray, affine: np.ndarray, cfg: Config,
                      label: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None, Geometry]:
    """The full pipeline on arrays in file order; label (if given) follows the same geometry."""
    original_shape = tuple(int(n) for n in image.shape)
    image, ornt = to_canonical(image, affine)
    ras_spacing = canonical_spacing(affine, ornt)
    target = [max(1, int(round(n * s / cfg.spacing))) for n, s in zip(image.shape, ras_spacing)]
    canonical_shape = tuple(int(n) for n in image.shape)
    image = normalise(resample(image.astype(np.float32, copy=False), target, order=1), cfg.intensity_range)
    image, pad = pad_to_multiple(image, float(image.min()))
    if label is not None:
        label, _ = to_canonical(label, affine)
        label, _ = pad_to_multiple(resample(label, target, order=0), 0)
    spacing = tuple(float(s * n / m) for s, n, m in zip(ras_spacing, canonical_shape, target))
    geometry = Geometry(np.asarray(affine, np.float64), original_shape, ornt, canonical_shape,
                        ras_spacing, tuple(target), pad, spacing)
    return image, label, geometry


def canonical_spacing(affine: np.ndarray, ornt: np.ndarray) -> tuple[float, float, float]:
    """Voxel sizes in R, A, S order: input axis j becomes canonical axis ornt[j, 0]."""
    spacing = [0.0, 0.0, 0.0]
    for j, s in enumerate(spacing_of(affine)):
        spacing[int(ornt[j, 0])] = s
    return tuple(spacing)


def preprocess_image(img: nib.Nifti1Image, cfg: Config) -> tuple[np.ndarray, Geometry]:
    """Preprocess one NIfTI image without a label (inference): (X, Y, Z) float32 and its Geometry."""
    name = img.get_filename() or "image"
    check_affine(img.affine, name)
    image, _, geometry = preprocess_arrays(read_data(img, name), img.affine, cfg)
    return image, geometry


def check_label_values(values: np.ndarray, declared: dict[int, str], path) -> None:
    """AunetError unless the (unique) label values are integers declared in dataset.json."""
    if not np.array_equal(values, np.round(values)):
        raise AunetError(f"{path}: label volume has non-integer values; expected integer labels.")
    undeclared = sorted(set(int(v) for v in values) - set(declared))
    if undeclared:
        raise AunetError(f"{path}: label value(s) {undeclared} are not declared in dataset.json "
                         f"(declared: {sorted(declared)}).")


def remap_labels(label: np.ndarray, declared: dict[int, str], cfg: Config, path) -> np.ndarray:
    """Check label values against the declared ones, then apply cfg.label_map (source -> model label)."""
    values = np.unique(label)
    check_label_values(values, declared, path)  # declared values are 0..255: uint8 holds them
    lut = np.arange(256, dtype=np.int64)
    for source, target in cfg.label_map.items():
        lut[int(source)] = int(target)
    too_big = sorted(set(int(lut[int(v)]) for v in values) - set(range(cfg.num_classes)))
    if too_big:
        raise AunetError(f"{path}: label value(s) {too_big} after label_map {cfg.label_map} are >= "
                         f"num_classes={cfg.num_classes}; set label_map to map them to model labels.")
    return lut.astype(np.uint8)[label.astype(np.uint8)]  # uint8 throughout: 1 byte a voxel, not 8 (512^2 x 100 CTs)


def foreground_points(label: np.ndarray) -> dict[int, np.ndarray]:
    """Up to FOREGROUND_POINTS voxel indices per foreground class (fixed subsample: deterministic)."""
    points = {}
    for value in np.unique(label):
        if value == 0:
            continue
        idx = np.argwhere(label == value).astype(np.int32)  # (N, 3)
        if len(idx) > FOREGROUND_POINTS:
            idx = idx[np.random.default_rng(int(value)).choice(len(idx), FOREGROUND_POINTS, replace=False)]
        points[int(value)] = idx
    return points


def to_original(array: np.ndarray, ref: Volume | Geometry, order: int = 0) -> np.ndarray:
    """Map a preprocessed-grid array (X, Y, Z) or (C, X, Y, Z) back onto the original file's grid.

    Undoes the padding, resamples to the canonical shape (order 0 for labels, 1 for probabilities)
    and restores the input's axis order, so the result can be saved with the input file's affine
    (`Geometry.original_affine`).
    """
    g = ref.geometry if isinstance(ref, Volume) else ref
    if array.ndim == 4:
        return np.stack([to_original(a, g, order) for a in array])
    crop = tuple(slice(b, b + n) for b, n in zip(g.pad_before, g.resampled_shape))
    out = resample(np.asarray(array)[crop], g.canonical_shape, order)
    return from_canonical(out, g.original_ornt)
