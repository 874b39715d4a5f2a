"""Read, write and check one NIfTI volume (nibabel); every problem is one AunetError sentence."""
from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np

from aunet.errors import AunetError
from aunet.io import atomic_write


def load_nifti(path: str | Path) -> nib.Nifti1Image:
    """Open a .nii or .nii.gz file; only the header is read here."""
    path = Path(path)
    if not path.is_file():
        raise AunetError(f"{path}: file not found; expected a NIfTI volume (.nii or .nii.gz).")
    try:
        img = nib.load(str(path))
    except Exception as e:  # nibabel raises many kinds for broken files; all mean the same to a user
        raise AunetError(f"{path}: cannot read the NIfTI header ({_short(e)}); the file is corrupt or not "
                         "NIfTI.") from None
    if not isinstance(img, (nib.Nifti1Image, nib.Nifti2Image)):
        raise AunetError(f"{path}: is a {type(img).__name__}, expected a NIfTI volume (.nii or .nii.gz).")
    return img


def read_data(img: nib.Nifti1Image, path: str | Path, dtype=np.float32) -> np.ndarray:
    """The voxel array (X, Y, Z) with scl_slope/scl_inter applied; errors name `path`."""
    try:
        data = np.asarray(img.dataobj, dtype=dtype)
    except (EOFError, OSError, ValueError, zlib.error, gzip.BadGzipFile) as e:
        raise AunetError(f"{path}: the voxel data is truncated or corrupt ({_short(e)}).") from None
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]  # some tools store 3D volumes with a singleton 4th axis
    if data.ndim != 3:
        raise AunetError(f"{path}: has shape {data.shape}; expected a 3D volume.")
    if np.issubdtype(data.dtype, np.floating) and not np.isfinite(data).all():
        bad = int((~np.isfinite(data)).sum())
        raise AunetError(f"{path}: contains {bad} NaN or infinite voxel(s); expected finite intensities.")
    return data


def read_volume(path: str | Path, dtype=np.float32) -> tuple[np.ndarray, nib.Nifti1Image]:
    """Open one NIfTI volume and check it: its voxels (X, Y, Z) in file order, and the file's image (header, affine)."""
    img = load_nifti(path)
    check_affine(img.affine, path)
    return read_data(img, path, dtype), img


def spacing_of(affine: np.ndarray) -> tuple[float, float, float]:
    """Voxel size in mm along each array axis (column norms of the affine)."""
    return tuple(float(v) for v in np.linalg.norm(np.asarray(affine)[:3, :3], axis=0))


def orientation_code(affine: np.ndarray) -> str:
    """Axis codes such as 'RAS' or 'LPS' (where each array axis points, in patient terms)."""
    return "".join(nib.aff2axcodes(affine))


def check_affine(affine: np.ndarray, path: str | Path) -> None:
    """Reject affines that cannot place voxels in space (zero, singular, non-finite)."""
    a = np.asarray(affine, dtype=np.float64)
    if not np.isfinite(a).all() or abs(np.linalg.det(a[:3, :3])) < 1e-9:
        raise AunetError(f"{path}: has a singular or non-finite affine; expected voxel sizes > 0.")


def check_pair(image: nib.Nifti1Image, label: nib.Nifti1Image, image_path, label_path) -> None:
    """Image and label must share shape and affine (same voxels in the same place)."""
    ishape, lshape = image.shape[:3], label.shape[:3]
    if ishape != lshape:
        raise AunetError(f"{label_path}: label shape {lshape} differs from image {Path(image_path).name} "
                         f"shape {ishape}.")
    # tolerance: 1e-3 mm (headers round-trip through float32)
    if not np.allclose(image.affine, label.affine, atol=1e-3, rtol=0):
        raise AunetError(f"{label_path}: label affine differs from image {Path(image_path).name}'s affine; "
                         "expected the same voxel grid.")


def save_nifti(path: str | Path, data: np.ndarray, affine: np.ndarray, dtype=None) -> None:
    """Write a NIfTI-1 file atomically (.nii.gz compressed), qform and sform both set to `affine`."""
    path = Path(path)
    data = np.asarray(data if dtype is None else data.astype(dtype))
    img = nib.Nifti1Image(data, np.asarray(affine, dtype=np.float64))
    img.header.set_xyzt_units("mm", "sec")
    img.set_qform(affine, code=1)  # 1 = scanner coordinates, as in the Decathlon files
    img.set_sform(affine, code=1)
    raw = img.to_bytes()
    if path.name.endswith(".gz"):
        raw = gzip.compress(raw, compresslevel=1, mtime=0)  # mtime=0: same data, same bytes
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(raw))


def _short(e: BaseException) -> str:
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return text[:120]
