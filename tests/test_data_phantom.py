"""Phantom: determinism, labels, physical size, domains; `aunet data phantom` then `aunet data check`."""
import json

import nibabel as nib
import numpy as np
import pytest

from aunet.cli import main
from aunet.data.phantom import make_phantom
from aunet.data.separability import best_window_dice

SMALL = (48, 40, 24)


def test_same_seed_same_case_different_seed_different():
    a = make_phantom(np.random.default_rng([0, 1]), size=SMALL)
    b = make_phantom(np.random.default_rng([0, 1]), size=SMALL)
    c = make_phantom(np.random.default_rng([0, 2]), size=SMALL)
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.label, b.label)
    assert not np.array_equal(a.image, c.image) and not np.array_equal(a.label, c.label)


def test_default_case_is_a_plausible_abdomen():
    p = make_phantom(np.random.default_rng([0, 0]))
    assert p.image.shape == (160, 128, 64) and p.image.dtype == np.int16 and p.spacing == (2.5, 2.5, 4.0)
    assert set(np.unique(p.label)) == {0, 1, 2, 3}
    voxel_ml = np.prod(p.spacing) / 1000
    spleen, pancreas, kidneys = ((p.label == v).sum() * voxel_ml for v in (1, 2, 3))
    assert 60 < spleen < 500 and 15 < pancreas < 150 and 150 < kidneys < 700, (spleen, pancreas, kidneys)
    body = (p.image > -500).any(axis=2)  # in-plane footprint of the body (plus table)
    width_mm = np.ptp(np.nonzero(body.any(axis=1))[0]) * p.spacing[0]
    assert 300 < width_mm < 400
    assert (p.image[p.label == 2] < -300).mean() < 0.01  # no air inside the pancreas
    dice, _ = best_window_dice(p.image, p.label, 2)
    assert dice < 0.5  # intensity alone cannot find the pancreas


def test_scanner_b_is_another_domain_stored_lps():
    a = make_phantom(np.random.default_rng([0, 0]), "scanner_a", SMALL)
    b = make_phantom(np.random.default_rng([0, 0]), "scanner_b", SMALL)
    assert nib.aff2axcodes(b.affine) == ("L", "P", "S") and nib.aff2axcodes(a.affine) == ("R", "A", "S")
    assert b.image.shape == SMALL
    assert make_phantom(np.random.default_rng([0, 0]), "scanner_b").spacing != a.spacing


def test_cli_phantom_then_check(tmp_path, capsys):
    out = tmp_path / "ph"
    assert main(["data", "phantom", "--out", str(out), "--cases", "2", "--seed", "3", "--size", "48,40,24"]) == 0
    meta = json.loads((out / "dataset.json").read_text())
    assert meta["labels"] == {"0": "background", "1": "spleen", "2": "pancreas", "3": "kidney"}
    assert sorted(p.name for p in (out / "imagesTr").iterdir()) == ["phantom_000.nii.gz", "phantom_001.nii.gz"]
    img = nib.load(out / "imagesTr" / "phantom_001.nii.gz")
    expected = make_phantom(np.random.default_rng([3, 1]), size=SMALL)
    np.testing.assert_array_equal(np.asarray(img.dataobj), expected.image)
    np.testing.assert_allclose(img.affine, expected.affine)
    capsys.readouterr()
    assert main(["data", "check", str(out), "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "2 labelled case(s), 0 problem(s)" in text and "48x40x24 (2)" in text and "RAS (2)" in text
    # same command again refuses to overwrite, leaving the folder intact
    before = (out / "labelsTr" / "phantom_000.nii.gz").read_bytes()
    assert main(["data", "phantom", "--out", str(out), "--cases", "1", "--size", "48,40,24"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert (out / "labelsTr" / "phantom_000.nii.gz").read_bytes() == before


def test_cli_same_seed_same_files(tmp_path):
    for name in ("a", "b"):
        assert main(["data", "phantom", "--out", str(tmp_path / name), "--cases", "1", "--size", "32,32,16"]) == 0
    for sub in ("imagesTr", "labelsTr"):
        assert (tmp_path / "a" / sub / "phantom_000.nii.gz").read_bytes() == \
            (tmp_path / "b" / sub / "phantom_000.nii.gz").read_bytes()


@pytest.mark.parametrize("args", [["--domain", "scanner_z"], ["--size", "4,4"], ["--cases", "0"]])
def test_cli_phantom_bad_arguments(tmp_path, args):
    with pytest.raises(SystemExit) if "--domain" in args or "4,4" in args else _no_raise():
        assert main(["data", "phantom", "--out", str(tmp_path / "x"), *args]) == 2
    assert not (tmp_path / "x").exists()


class _no_raise:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
