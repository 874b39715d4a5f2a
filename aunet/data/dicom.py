"""One CT series from DICOM slices to a HU volume and its affine, with every step in the open.

Why pydicom and not dcm2niix: the conversion is where people get NIH Pancreas-CT wrong (labels flipped
against the images, rescale slope and intercept ignored), so aunet does it in ~100 lines of Python
that a reader can check against the DICOM standard, with pydicom (maintained, pure Python, pinned in
requirements.txt) reading the tags and pixels. dcm2niix is an excellent converter, but a compiled
binary whose choices (slice order, flips, scaling, file naming) happen out of sight and differ by
version; with pydicom the tests can also write synthetic series to check exact HU and geometry.

The geometry (DICOM PS3.3 C.7.6.2, patient coordinates LPS, mm):

    r, c = ImageOrientationPatient[:3], [3:]    direction of a row (increasing column) and of a column
    n = r x c                                   slice normal
    slice order: by ImagePositionPatient . n    (not by file name, not by InstanceNumber)
    voxel (i, j, k) -> IPP_0 + i * dc * r + j * dr * c + k * step
                       dr, dc = PixelSpacing (between rows, between columns); step = (IPP_last - IPP_0) / (N - 1)
    HU = stored value * RescaleSlope + RescaleIntercept   (per slice)

The volume is stored (X = column i, Y = row j, Z = slice k) and the affine turned from LPS to RAS,
as NIfTI expects (the first two rows negated).

    hu, affine = read_series(Path("Pancreas-CT/PANCREAS_0001"))   # int16 (X, Y, Z), (4, 4) RAS
"""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np

from aunet.errors import AunetError

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
ALONG = 0.1  # slices may stray from a straight, even stack by this share of the slice step


def dicom_files(folder: Path) -> list[tuple[Path, object]]:
    """(path, header) of every file below `folder` that reads as DICOM (hidden files skipped)."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    found = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")):
        try:
            found.append((path, pydicom.dcmread(path, stop_before_pixels=True)))  # pixels: one slice at a time, later
        except (InvalidDicomError, OSError):
            continue  # e.g. a LICENSE or md5 file beside the slices
    return found


def _vector(ds, tag: str, n: int, path: Path) -> np.ndarray:
    value = getattr(ds, tag, None)
    if value is None or len(value) != n:
        raise AunetError(f"{path}: has no {tag} with {n} values; expected a CT slice with its position and "
                         "orientation.")
    return np.array([float(v) for v in value])


def read_series(folder: Path, name: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The one CT series below `folder`: HU as int16 (X, Y, Z) and its RAS affine; AunetError naming the case."""
    import pydicom

    name = name or folder.name
    files = dicom_files(folder)
    if not files:
        raise AunetError(f"{name}: {folder} holds no DICOM files; expected one CT series.")
    by_series: dict[str, list] = defaultdict(list)
    for path, ds in files:
        by_series[str(getattr(ds, "SeriesInstanceUID", ""))].append((path, ds))
    if len(by_series) > 1:
        raise AunetError(f"{name}: {folder} holds {len(by_series)} series; expected one CT series per case.")
    slices = next(iter(by_series.values()))
    if len(slices) < 2:
        raise AunetError(f"{name}: {folder} holds one slice; expected a CT series of several slices.")
    path0, ds0 = slices[0]
    orientation = _vector(ds0, "ImageOrientationPatient", 6, path0)
    spacing = _vector(ds0, "PixelSpacing", 2, path0)  # (between rows, between columns)
    r, c = orientation[:3], orientation[3:]
    normal = np.cross(r, c)
    for path, ds in slices:
        if not np.allclose(_vector(ds, "ImageOrientationPatient", 6, path), orientation, atol=1e-4) \
                or not np.allclose(_vector(ds, "PixelSpacing", 2, path), spacing, atol=1e-4) \
                or (ds.Rows, ds.Columns) != (ds0.Rows, ds0.Columns):
            raise AunetError(f"{name}: {path.name} differs from {path0.name} in orientation, pixel spacing or size; "
                             "expected one regular stack of slices.")
    positions = np.array([_vector(ds, "ImagePositionPatient", 3, path) for path, ds in slices])
    order = np.argsort(positions @ normal, kind="stable")
    positions = positions[order]
    step = (positions[-1] - positions[0]) / (len(slices) - 1)
    along = float(np.linalg.norm(step))
    stray = np.linalg.norm(positions - (positions[0] + np.arange(len(slices))[:, None] * step), axis=1).max()
    if along < 1e-3 or stray > ALONG * along:
        raise AunetError(f"{name}: slice positions are not an evenly spaced stack (step {along:.3g} mm, a slice "
                         f"{stray:.3g} mm off it: a gap, a duplicate or a second stack); expected one regular series.")
    hu = np.empty((int(ds0.Columns), int(ds0.Rows), len(slices)), np.int16)  # (X, Y, Z)
    for k, index in enumerate(order):
        path, ds = slices[index]
        try:
            stored = pydicom.dcmread(path).pixel_array.astype(np.float64)  # (rows, columns)
        except Exception as e:  # pydicom raises several kinds for undecodable pixel data
            raise AunetError(f"{name}: cannot decode the pixels of {path.name} ({e}).") from None
        slope, intercept = float(getattr(ds, "RescaleSlope", 1) or 1), float(getattr(ds, "RescaleIntercept", 0))
        values = np.rint(stored * slope + intercept)
        if values.min() < -32768 or values.max() > 32767:
            raise AunetError(f"{name}: {path.name} has values beyond int16 after rescaling; expected CT numbers in HU.")
        hu[:, :, k] = values.T
    lps = np.eye(4)
    lps[:3, 0], lps[:3, 1], lps[:3, 2], lps[:3, 3] = r * spacing[1], c * spacing[0], step, positions[0]
    return hu, LPS_TO_RAS @ lps
