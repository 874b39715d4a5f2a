"""A real abdominal CT to try aunet on, fetched from PyPI: `aunet data example-ct --out DIR`.

No public pancreas dataset can be fetched without a registration or a large download, but the
source distribution of TotalSegmentator (Wasserthal et al., Radiology: AI 2023; Apache-2.0) on PyPI
carries two real CT volumes in its tests:

- `tests/reference_files/example_ct.nii.gz`: thorax-abdomen CT, 122 x 101 x 112 voxels of 3 mm, RAS,
  with `example_seg_fast_force_split.nii.gz`, TotalSegmentator's own (automatic, not manual)
  segmentation of it, in which spleen (1), right and left kidney (2, 3) and pancreas (7) are labelled;
- `tests/reference_files/aorta_report/example_ct.nii.gz`: a second CT, 233 x 167 x 191 voxels of
  1.5 mm stored LPS, no segmentation.

This module obtains that archive once with `pip download` (so through the index, mirror or proxy the
user's pip is configured for; no host is written here), checks its sha256, caches it, and writes a
Decathlon folder:
the first CT as `imagesTr/` + `labelsTr/` with its labels mapped to the paper's CT-150 convention
(0 background, 1 spleen, 2 pancreas, 3 kidney), the second as an unlabelled `imagesTs/` image.
Image files are copied byte for byte, so `aunet data check` sees the scanner's own headers.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np

from aunet.data.datasets import decathlon_case, write_dataset_json
from aunet.data.nifti import load_nifti, read_data, save_nifti
from aunet.errors import AunetError
from aunet.io import atomic_folder, file_digest, refuse_nonempty
from aunet.labels import CT150, TOTALSEG_TO_CT150

ARCHIVE_NAME = "totalsegmentator-2.18.0.tar.gz"
REQUIREMENT = "totalsegmentator==2.18.0"  # its source distribution, through pip's configured index
ARCHIVE_SHA256 = "5d4223ef93973bc36d710869d11e7742ead2c154c72f7f9edcaaadd5b6c4bd03"
_PREFIX = "totalsegmentator-2.18.0/tests/reference_files/"
MEMBERS = {
    "image": _PREFIX + "example_ct.nii.gz",
    "label": _PREFIX + "example_seg_fast_force_split.nii.gz",
    "test_image": _PREFIX + "aorta_report/example_ct.nii.gz",
}
CASE, TEST_CASE = "totalseg_example_ct", "totalseg_aorta_ct"


def default_cache() -> Path:
    """Where the archive is kept: $AUNET_CACHE, else ~/.cache/aunet."""
    return Path(os.environ.get("AUNET_CACHE", Path.home() / ".cache" / "aunet"))


def pip_download_command(dest: str | Path) -> list[str]:
    """The pip command that fetches the source archive into `dest` (this Python's pip, the user's pip settings)."""
    return [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", REQUIREMENT,
            "--dest", str(dest), "--disable-pip-version-check"]


def fetch_archive(cache: str | Path | None = None, progress: bool = True) -> Path:
    """The TotalSegmentator source archive: from the cache, else through `pip download`, sha256-verified."""
    path = Path(cache or default_cache()) / ARCHIVE_NAME
    if path.is_file() and file_digest(path) == ARCHIVE_SHA256:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".pip-download-", dir=path.parent) as tmp:
        command = pip_download_command(tmp)
        try:  # pip prints its own progress on stdout; its errors are kept for the message
            done = subprocess.run(command, stdout=None if progress else subprocess.DEVNULL, stderr=subprocess.PIPE,
                                  text=True)
        except OSError as e:
            done = subprocess.CompletedProcess(command, 1, stderr=str(e))
        got = Path(tmp) / ARCHIVE_NAME
        if done.returncode != 0 or not got.is_file():
            lines = [line.strip() for line in (done.stderr or "").splitlines() if line.strip()]
            why = next((line for line in reversed(lines) if line.startswith("ERROR")), lines[-1] if lines else
                       f"{ARCHIVE_NAME} not among the files it saved")
            raise AunetError(f"pip download {REQUIREMENT} failed ({why}); check pip's index settings "
                             f"(`pip config list`), or fetch {ARCHIVE_NAME} elsewhere and pass --archive PATH.")
        if file_digest(got) != ARCHIVE_SHA256:
            raise AunetError(f"pip download {REQUIREMENT}: the archive does not match its sha256 {ARCHIVE_SHA256}; "
                             "expected TotalSegmentator's published source archive (is the index a faithful mirror?).")
        os.chmod(got, 0o644)
        os.replace(got, path)
    return path


def _extract(archive: Path, member: str, dest: Path) -> None:
    try:
        with tarfile.open(archive, "r:gz") as tar:
            source = tar.extractfile(member)
            if source is None:
                raise KeyError(member)
            with source, open(dest, "wb") as out:
                shutil.copyfileobj(source, out)
    except (tarfile.TarError, KeyError, EOFError, OSError) as e:
        raise AunetError(f"{archive}: cannot read {member} ({type(e).__name__}); expected the "
                         f"{ARCHIVE_NAME} source archive of TotalSegmentator.") from None


def write_example_ct(out: str | Path, archive: str | Path | None = None, cache: str | Path | None = None,
                     overwrite: bool = False, progress: bool = True) -> Path:
    """Write the real-CT Decathlon folder (built in a temporary folder, then renamed into place)."""
    out = Path(out)
    refuse_nonempty(out, overwrite)
    if archive is not None:
        archive = Path(archive)
        if not archive.is_file():
            raise AunetError(f"{archive}: file not found; expected the TotalSegmentator archive {ARCHIVE_NAME}.")
        if file_digest(archive) != ARCHIVE_SHA256:
            raise AunetError(f"{archive}: sha256 differs from {ARCHIVE_NAME}'s {ARCHIVE_SHA256}; "
                             "expected exactly that archive.")
    else:
        archive = fetch_archive(cache, progress)
    with atomic_folder(out) as tmp:
        files = decathlon_case(tmp, CASE)
        for folder in (files.image.parent, files.label.parent, tmp / "imagesTs"):
            folder.mkdir()
        _extract(archive, MEMBERS["image"], files.image)
        _extract(archive, MEMBERS["test_image"], tmp / "imagesTs" / f"{TEST_CASE}.nii.gz")
        raw_label = tmp / "totalseg_labels.nii.gz"
        _extract(archive, MEMBERS["label"], raw_label)
        seg_nii = load_nifti(raw_label)
        seg = read_data(seg_nii, raw_label, dtype=np.int16)
        label = np.zeros(seg.shape, dtype=np.uint8)
        for source, target in TOTALSEG_TO_CT150.items():
            label[seg == source] = target
        save_nifti(files.label, label, seg_nii.affine)
        raw_label.unlink()
        write_dataset_json(
            tmp, "TotalSegmentator example CT",
            "Real CT from the tests of TotalSegmentator 2.18.0 (PyPI sdist); labels are TotalSegmentator's automatic "
            "segmentation mapped to CT-150 values.",
            "Wasserthal et al., TotalSegmentator, Radiology: Artificial Intelligence 2023",
            "Apache-2.0 (TotalSegmentator package)", CT150, [CASE], test=[TEST_CASE],
            aunet={"source": f"pip download {REQUIREMENT} (source distribution)", "sha256": ARCHIVE_SHA256,
                   "members": MEMBERS, "label_map": {str(k): v for k, v in TOTALSEG_TO_CT150.items()}})
    return out
