"""The paper's in-plane augmentation on the training device: the CPU cuts a crop, `grid_sample` resamples it.

The geometry is aunet.data.patches' (the scipy reference): voxel o of a patch of size S samples the volume at

    x(o) = centre + M (o - (S - 1) / 2),        M = augmentation_matrix(rng): flips, rotation, zoom in x-y

with trilinear interpolation for the image, nearest for the label, and outside the volume the image's
background (its minimum) and label 0, exactly as scipy's `affine_transform(mode="constant")` gives.

Why it is split in two. Resampling the 2.4 million voxels of a 160x160x96 patch costs 100-500 ms of one CPU
core with scipy; on a GPU `grid_sample` takes well under a millisecond. What only the CPU can do cheaply is
find the voxels a patch reads in the cached volume. Since M moves only x and y, trilinear interpolation
splits into linear along z then bilinear in-plane, and so does the work:

- `cut_crop` (CPU, in a DataLoader worker): copy the in-plane bounding box of the patch's footprint (its
  corners mapped through M, one voxel more for the interpolation, clipped to the volume) for the patch's
  S_z slices. Those lie at z(o) = centre_z - (S_z - 1) / 2 + o, halfway between two volume slices for an
  even S_z, so each image slice is the mean of two (the label takes the upper one, as scipy's rounding
  does). A memory copy and one addition: milliseconds.
- `warp` (the training device): the in-plane flips, rotation and zoom, one `affine_grid` + `grid_sample`
  with the crop's z slices as channels: bilinear for the image, nearest for the label.

    crop = cut_crop(volume, spec, cfg.patch_size)           # CPU: slices (S_z, cx, cy) and the in-plane theta
    image, label = warp(crop.to(device), cfg.patch_size)    # device: (1, X, Y, Z) float32, (X, Y, Z) uint8
"""
from __future__ import annotations

from typing import NamedTuple, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from aunet.data.patches import PatchSpec, crop_padded
from aunet.data.preprocess import Volume


class Crop(NamedTuple):
    """The voxels one training patch reads and how to resample them in-plane (theta None: the crop is the patch)."""

    image: torch.Tensor  # (S_z, cx, cy) float32: the patch's z slices first, as grid_sample's channels
    label: torch.Tensor  # (S_z, cx, cy) uint8
    theta: torch.Tensor | None  # (2, 3) float32: patch grid -> crop, normalised, in affine_grid's (y, x) order
    background: torch.Tensor  # () float32: the image value outside the volume

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Crop:
        """The crop on `device` (non_blocking from pinned memory: the copy overlaps the running step)."""
        return Crop(*(None if t is None else t.to(device, non_blocking=non_blocking) for t in self))


def inplane_box(spec: PatchSpec, patch_size: Sequence[int], shape: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """(start, stop) in x and y of the volume box holding the patch's in-plane samples and their neighbours."""
    half = (np.asarray(patch_size[:2], np.float64) - 1) / 2
    corners = np.array([[-half[0], -half[0], half[0], half[0]], [-half[1], half[1], -half[1], half[1]]])  # (2, 4)
    points = spec.centre[:2, None] + spec.matrix[:2, :2] @ corners  # (2, 4) volume coordinates of the corners
    start = np.floor(points.min(1)).astype(int)  # bilinear interpolation reads floor(x) and floor(x) + 1
    stop = np.floor(points.max(1)).astype(int) + 2
    limit = np.asarray(shape[:2])
    start = np.clip(start, 0, limit - 1)
    return start, np.maximum(np.minimum(stop, limit), start + 1)  # clipped to the volume, never empty


def inplane_theta(spec: PatchSpec, patch_size: Sequence[int], start: np.ndarray,
                  crop_size: Sequence[int]) -> torch.Tensor:
    """The (2, 3) `affine_grid` matrix (align_corners=False) taking the patch's x-y grid into the crop at `start`.

    With v the patch's normalised coordinate (o - (S - 1) / 2 = v S / 2) and u the crop's (x - start =
    ((u + 1) C - 1) / 2):  u = diag(1 / C) M diag(S) v + (2 (centre - start) + 1) / C - 1, in x and y.
    affine_grid orders the coordinates (W, H) = (y, x), so both sides are reversed.
    """
    S, C = np.asarray(patch_size[:2], np.float64), np.asarray(crop_size, np.float64)
    A = spec.matrix[:2, :2] * S[None, :] / C[:, None]  # (2, 2)
    b = (2 * (spec.centre[:2] - start) + 1) / C - 1  # (2,)
    theta = np.concatenate([A[::-1, ::-1], b[::-1, None]], axis=1)  # (2, 3)
    return torch.from_numpy(np.ascontiguousarray(theta, np.float32))


def patch_slices(volume: Volume, z_first: float, depth: int, box: tuple[slice, slice],
                 background: float) -> tuple[np.ndarray, np.ndarray]:
    """Image and label at z = z_first + 0..depth-1 inside `box`, (depth, cx, cy): linear / nearest in z."""
    n = volume.image.shape[2]
    z = z_first + np.arange(depth)
    lower = np.floor(z).astype(int)
    f = float(z[0] - lower[0])  # the same fraction for every slice
    inside = (z >= 0) & (z <= n - 1)  # scipy's constant mode: no interpolation beyond the outermost slices
    image_zyx = volume.image[box].transpose(2, 0, 1)  # (n, cx, cy) view
    label_zyx = volume.label[box].transpose(2, 0, 1)
    image = image_zyx[np.clip(lower, 0, n - 1)]  # (depth, cx, cy) copy
    if f > 0:
        image = (1 - f) * image + f * image_zyx[np.clip(lower + 1, 0, n - 1)]
    label = label_zyx[np.clip(np.floor(z + 0.5).astype(int), 0, n - 1)]  # ties go up, as scipy rounds
    image[~inside], label[~inside] = background, 0
    return image.astype(np.float32, copy=False), label


def cut_crop(volume: Volume, spec: PatchSpec, patch_size: Sequence[int]) -> Crop:
    """The CPU's part: the voxels patch `spec` reads, its z slices resampled, and the theta that does the rest."""
    background = float(volume.image.min())
    size = np.asarray(patch_size)
    if spec.matrix is None:  # no augmentation: the exact crop (padded where it leaves the volume) is the patch
        start = np.round(spec.centre - size / 2).astype(int)
        image, label = crop_padded(volume.image, start, size, background), crop_padded(volume.label, start, size, 0)
        theta = None
        image, label = image.transpose(2, 0, 1), label.transpose(2, 0, 1)  # (S_z, X, Y)
    else:
        start, stop = inplane_box(spec, patch_size, volume.image.shape)
        box = (slice(start[0], stop[0]), slice(start[1], stop[1]))
        image, label = patch_slices(volume, spec.centre[2] - (size[2] - 1) / 2, int(size[2]), box, background)
        theta = inplane_theta(spec, patch_size, start, stop - start)
    return Crop(torch.from_numpy(np.ascontiguousarray(image, np.float32)),
                torch.from_numpy(np.ascontiguousarray(label, np.uint8)), theta,
                torch.tensor(background, dtype=torch.float32))


def warp(crop: Crop, patch_size: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """The device's part: the in-plane resampling, to a (1, X, Y, Z) float32 image and (X, Y, Z) uint8 label."""
    if crop.theta is None:
        image, label = crop.image[None], crop.label[None]  # (1, S_z, X, Y)
    else:
        depth, cx, cy = crop.image.shape
        grid = F.affine_grid(crop.theta[None], [1, depth, *patch_size[:2]], align_corners=False)  # (1, X, Y, 2)
        image = F.grid_sample(crop.image[None], grid, mode="bilinear", padding_mode="border",
                              align_corners=False)  # (1, S_z, X, Y)
        label = F.grid_sample(crop.label[None].float(), grid, mode="nearest", padding_mode="border",
                              align_corners=False).to(torch.uint8)  # (1, S_z, X, Y)
        # scipy's constant mode: a sample outside the crop (which reaches the volume's edge there) is background
        inside = ((grid[..., 0].abs() <= 1 - 1 / cy) & (grid[..., 1].abs() <= 1 - 1 / cx))[:, None]  # (1, 1, X, Y)
        image = torch.where(inside, image, crop.background)
        label = torch.where(inside, label, torch.zeros((), dtype=label.dtype, device=label.device))
    return image.permute(0, 2, 3, 1), label[0].permute(1, 2, 0)  # (1, X, Y, Z), (X, Y, Z)
