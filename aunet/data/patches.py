"""Training patches with foreground oversampling and the paper's augmentation; centre crops for validation.

Training patch i is a pure function of (seed, i): `draw_patch` seeds `np.random.default_rng([seed, i])`
and picks the case, the patch centre and the augmentation (`PatchSpec`), so a resumed run sees exactly
the same batches.

Augmentation (Oktay et al., MIDL 2018, section 3), all in-plane (x, y), as one affine resampling
of the patch: flips (p 0.5 per axis), rotation +-15 deg about z, translation +-10 % of the patch,
zoom 0.7-1.3. Image: linear interpolation; label: nearest.

Two implementations of the same resampling: `PatchDataset` here, with scipy on the CPU, is the
reference (short and readable, ~130 ms per 160x160x96 patch); the trainer uses aunet.data.augment,
where the CPU only cuts a crop and `grid_sample` resamples it on the training device, tested against
this one (tests/test_pipeline.py).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy import ndimage

from aunet.config import Config
from aunet.data.prepared import PreparedDataset
from aunet.data.preprocess import Volume


def sample_centre(volume: Volume, patch_size, rng: np.random.Generator, foreground_fraction: float) -> np.ndarray:
    """A patch centre: a voxel of a random foreground class (p = foreground_fraction) or a random crop."""
    shape = np.array(volume.image.shape)
    if volume.foreground and rng.random() < foreground_fraction:
        classes = sorted(volume.foreground)  # uniform over classes: the small pancreas is not drowned out
        points = volume.foreground[classes[rng.integers(len(classes))]]
        return points[rng.integers(len(points))].astype(np.float64)
    half = np.array(patch_size) / 2
    lo, hi = np.minimum(half, shape / 2), np.maximum(shape - half, shape / 2)
    return np.floor(rng.uniform(lo, hi))


def augmentation_matrix(rng: np.random.Generator) -> np.ndarray:
    """(3, 3) map from patch offsets to volume offsets: flips, rotation and zoom in the x-y plane."""
    angle = np.deg2rad(rng.uniform(-15, 15))
    zoom = rng.uniform(0.7, 1.3)
    flips = np.where(rng.random(2) < 0.5, -1.0, 1.0)
    c, s = np.cos(angle), np.sin(angle)
    m = np.eye(3)
    m[:2, :2] = np.array([[c, -s], [s, c]]) @ np.diag(flips) / zoom  # zoom > 1 magnifies
    return m


def extract_patch(volume: Volume, centre, patch_size,
                  matrix: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Image and label patches around `centre`, resampled through `matrix` (None: a plain crop)."""
    size = np.array(patch_size)
    background = float(volume.image.min())
    if matrix is None:  # exact crop, padded where the patch leaves the volume
        start = np.round(np.asarray(centre) - size / 2).astype(int)
        return crop_padded(volume.image, start, size, background), crop_padded(volume.label, start, size, 0)
    offset = np.asarray(centre) - matrix @ ((size - 1) / 2)  # patch centre lands on `centre`
    image = ndimage.affine_transform(volume.image, matrix, offset, output_shape=tuple(size), order=1,
                                     mode="constant", cval=background)
    label = ndimage.affine_transform(volume.label, matrix, offset, output_shape=tuple(size), order=0,
                                     mode="constant", cval=0)
    return image.astype(np.float32), label


@dataclass
class PatchSpec:
    """Where training patch i comes from: case, centre (voxels) and the in-plane map (None: no augmentation)."""

    case_id: str
    centre: np.ndarray  # (3,) float64, voxel coordinates of the patch centre in the volume
    matrix: np.ndarray | None  # (3, 3) patch offsets -> volume offsets (augmentation_matrix), or None


def draw_patch(dataset: PreparedDataset, case_ids: list[str], cfg: Config, seed: int, index: int) -> PatchSpec:
    """The case, centre and augmentation of training patch `index`, from the generator seeded [seed, index]."""
    rng = np.random.default_rng([seed, int(index)])
    case_id = case_ids[rng.integers(len(case_ids))]
    centre = sample_centre(dataset.load(case_id), cfg.patch_size, rng, cfg.foreground_fraction)
    matrix = None
    if cfg.augment:
        matrix = augmentation_matrix(rng)
        # translation +-10 % of the patch, in-plane
        centre = centre + np.array([*rng.uniform(-0.1, 0.1, 2) * cfg.patch_size[:2], 0.0])
    return PatchSpec(case_id, centre, matrix)


def crop_padded(array: np.ndarray, start, size, value) -> np.ndarray:
    """array[start:start+size] with `value` outside the array."""
    out = np.full(tuple(size), value, dtype=array.dtype)
    src = tuple(slice(max(a, 0), min(a + n, m)) for a, n, m in zip(start, size, array.shape))
    dst = tuple(slice(s.start - a, s.stop - a) for s, a in zip(src, start))
    if all(s.stop > s.start for s in src):
        out[dst] = array[src]
    return out


def center_crop(volume: Volume, patch_size) -> tuple[np.ndarray, np.ndarray]:
    """The centre patch of the volume (the paper validates on centre crops); pads if smaller."""
    return extract_patch(volume, np.array(volume.image.shape) / 2, patch_size)


def _tensors(image: np.ndarray, label: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.from_numpy(np.ascontiguousarray(image, np.float32))[None], \
        torch.from_numpy(np.ascontiguousarray(label).astype(np.int64))  # (1, X, Y, Z), (X, Y, Z)


class PatchDataset(torch.utils.data.Dataset):
    """Random training patches resampled by scipy (the reference); item i depends only on (seed, i)."""

    def __init__(self, dataset: PreparedDataset, case_ids: list[str], cfg: Config, seed: int, length: int = 10 ** 9):
        if not case_ids:
            raise ValueError("PatchDataset needs at least one case")
        self.dataset, self.case_ids, self.cfg, self.seed, self.length = dataset, list(case_ids), cfg, seed, length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        spec = draw_patch(self.dataset, self.case_ids, self.cfg, self.seed, index)
        return _tensors(*extract_patch(self.dataset.load(spec.case_id), spec.centre, self.cfg.patch_size, spec.matrix))
