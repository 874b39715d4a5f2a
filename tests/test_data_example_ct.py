"""`aunet data example-ct`: a stand-in archive with the same member names goes through the real code path.

The real archive (TotalSegmentator 2.18.0 from PyPI, 38 MB) is not fetched in tests; its members are
replaced by small NIfTI files and its pinned sha256 by the stand-in's.
"""
import hashlib
import io
import json
import tarfile

import nibabel as nib
import numpy as np
import pytest

from aunet.cli import main
from aunet.data import example_ct
from aunet.data.nifti import save_nifti

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
    monkeypatch.setattr(example_ct, "ARCHIVE_URL", "http://127.0.0.1:9/never-fetched.tar.gz")
    assert example_ct.fetch_archive(cache=tmp_path, progress=False) == path


def test_download_failure_is_one_sentence(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(example_ct, "ARCHIVE_URL", (tmp_path / "missing.tar.gz").as_uri())
    monkeypatch.setenv("AUNET_CACHE", str(tmp_path / "cache"))
    assert main(["data", "example-ct", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("aunet data: error: ") and "download failed" in err and "--archive" in err
    assert "\n" not in err and not (tmp_path / "out").exists()
    assert [p.name for p in (tmp_path / "cache").iterdir()] == []  # no partial download left behind


def test_wrong_archive_is_refused(tmp_path, archive, capsys):
    other = tmp_path / "other.tar.gz"
    other.write_bytes(b"not the archive")
    assert main(["data", "example-ct", "--out", str(tmp_path / "out"), "--archive", str(other)]) == 2
    assert "sha256 differs" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
