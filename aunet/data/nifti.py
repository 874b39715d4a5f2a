"""Read, write and check one NIfTI volume (nibabel); every problem is one AunetError sentence.

A header is not trusted with memory: before any voxel is read (`check_fits`), the bytes it declares must
fit in the file (uncompressed: its size; gzip: at most 1032 times its size, the most deflate can expand,
so no decompression is needed to know) and, with a float32 copy, in the memory available now.
"""
from __future__ import annotations

import gzip
import math
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np

from aunet.errors import AunetError
from aunet.io import atomic_write

DEFLATE_MAX_RATIO = 1032  # deflate's longest match (258 bytes) costs at least 2 bits: no gzip data inflates more
GZIP_MAGIC, OTHER_COMPRESSED = b"\x1f\x8b", (b"BZh", b"\x28\xb5\x2f\xfd")  # bzip2, zstd


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
    check_fits(img, path, dtype)
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


def check_fits(img: nib.Nifti1Image, path: str | Path, dtype=np.float32) -> None:
    """AunetError, before any voxel is read, when the header declares more voxel bytes than the file can hold
    or than the memory available can take (the voxels on disk and their `dtype` copy)."""
    filename = img.get_filename()
    if filename is None or not nib.is_proxy(img.dataobj):
        return  # the voxels are in memory already
    voxels = math.prod(int(n) for n in img.shape)
    declared = voxels * img.get_data_dtype().itemsize
    size = Path(filename).stat().st_size
    with open(filename, "rb") as f:
        magic = f.read(4)
    if magic.startswith(GZIP_MAGIC):
        room = size * DEFLATE_MAX_RATIO
        how = f"the file ({_bytes(size)} gzip-compressed, at most {_bytes(room)} inflated)"
    elif magic.startswith(OTHER_COMPRESSED):
        room, how = None, ""  # bzip2 or zstd: no such bound; the memory check below still holds
    else:
        room, how = size, f"the file ({_bytes(size)})"
    shape = "x".join(str(int(n)) for n in img.shape)
    if room is not None and int(img.dataobj.offset) + declared > room:
        raise AunetError(f"{path}: its header declares {shape} voxels of {img.get_data_dtype()} ({_bytes(declared)}), "
                         f"more than {how} can hold; the file is truncated or its header is wrong.")
    needed, available = declared + voxels * np.dtype(dtype).itemsize, available_memory()
    if available is not None and needed > available:
        raise AunetError(f"{path}: reading its {shape} voxels needs about {_bytes(needed)} of memory but "
                         f"{_bytes(available)} is available; use a machine with more memory or a smaller volume.")


def available_memory() -> int | None:
    """Bytes this process can still allocate: MemAvailable, lowered by a cgroup v2 limit (None when unknown)."""
    found = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                found.append(int(line.split()[1]) * 1024)
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit != "max":
            found.append(int(limit) - int(Path("/sys/fs/cgroup/memory.current").read_text()))
    except (OSError, ValueError):
        pass
    return min(found) if found else None


def _bytes(n: int) -> str:
    for unit, scale in (("TB", 10 ** 12), ("GB", 10 ** 9), ("MB", 10 ** 6), ("kB", 10 ** 3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"


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
