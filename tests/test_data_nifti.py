"""NIfTI round trip, canonical orientation, resampling, to_original, and one AunetError per bad input."""
import gzip
import json

import nibabel as nib
import numpy as np
import pytest

from aunet.cli import main
from aunet.config import Config
from aunet.data import check_folder, prepare_dataset, preprocess_image, save_nifti, to_original
from aunet.data.nifti import load_nifti, read_data
from aunet.data.preprocess import preprocess_arrays
from aunet.errors import AunetError

RAS = np.array([[2.0, 0, 0, -20], [0, 3.0, 0, -30], [0, 0, 4.0, -40], [0, 0, 0, 1]])


def volume(shape=(20, 16, 12), seed=0):
    """A smooth random image with a labelled off-centre block (orientation errors would move it)."""
    rng = np.random.default_rng(seed)
    image = rng.normal(0, 30, shape).astype(np.float32) + 40
    label = np.zeros(shape, np.uint8)
    label[2:7, 3:9, 1:4] = 2
    label[12:18, 10:14, 7:11] = 1
    image[label == 2] += 150
    return image, label


def reoriented(data, affine, codes):
    """The same voxels stored in another axis order (e.g. 'LPS', 'ASL'): new data and affine."""
    from nibabel import orientations as o
    transform = o.ornt_transform(o.io_orientation(affine), o.axcodes2ornt(codes))
    return o.apply_orientation(data, transform), affine @ o.inv_ornt_aff(transform, data.shape)


def write_dataset(root, cases, labels=None, nnunet=False):
    """cases: {id: (image, label, affine)} -> a Decathlon (or nnU-Net v2) folder."""
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    for cid, (image, label, affine) in cases.items():
        save_nifti(root / "imagesTr" / (f"{cid}_0000.nii.gz" if nnunet else f"{cid}.nii.gz"), image, affine)
        save_nifti(root / "labelsTr" / f"{cid}.nii.gz", label, affine)
    labels = labels or {"0": "background", "1": "spleen", "2": "pancreas", "3": "kidney"}
    meta = ({"labels": {v: int(k) for k, v in labels.items()}, "channel_names": {"0": "CT"},
             "file_ending": ".nii.gz", "numTraining": len(cases)} if nnunet else {"labels": labels})
    (root / "dataset.json").write_text(json.dumps(meta))
    return root


def test_round_trip_keeps_affine_spacing_and_values(tmp_path):
    image, label = volume()
    lps_image, lps_affine = reoriented(image, RAS, "LPS")
    save_nifti(tmp_path / "a.nii.gz", lps_image.astype(np.int16), lps_affine)
    img = load_nifti(tmp_path / "a.nii.gz")
    np.testing.assert_allclose(img.affine, lps_affine, atol=1e-5)
    assert img.header.get_zooms() == (2.0, 3.0, 4.0)
    assert int(img.header["qform_code"]) == 1 and int(img.header["sform_code"]) == 1
    np.testing.assert_array_equal(read_data(img, "a"), lps_image.astype(np.int16))


@pytest.mark.parametrize("codes", ["LPS", "LAS", "RPI", "ASL", "SRA"])
def test_non_ras_inputs_end_up_canonical_with_labels_on_the_right_voxels(codes):
    image, label = volume()
    cfg = Config(spacing=2.0, intensity_range=(-1000, 1000))
    ref_img, ref_lab, ref_geo = preprocess_arrays(image, RAS, cfg, label)
    data, affine = reoriented(image, RAS, codes)
    lab, _ = reoriented(label, RAS, codes)
    out_img, out_lab, geo = preprocess_arrays(data, affine, cfg, lab)
    np.testing.assert_allclose(out_img, ref_img, atol=1e-5)
    np.testing.assert_array_equal(out_lab, ref_lab)
    assert geo.spacing == ref_geo.spacing and geo.canonical_spacing == (2.0, 3.0, 4.0)
    np.testing.assert_array_equal(to_original(out_lab, geo, 0), lab)  # spacing 2 mm -> 3, 4 mm and back


def test_resampling_keeps_physical_size_and_is_isotropic():
    image, label = volume((40, 30, 10))
    cfg = Config(spacing=1.5)
    img, lab, geo = preprocess_arrays(image, RAS, cfg, label)
    extent = np.array(geo.resampled_shape) * np.array(geo.spacing)
    np.testing.assert_allclose(extent, [80, 90, 40], rtol=1e-6)  # 40*2, 30*3, 10*4 mm
    np.testing.assert_allclose(geo.spacing, 1.5, rtol=0.04)
    assert all(n % 16 == 0 for n in img.shape) and img.shape == lab.shape
    assert img.dtype == np.float32 and lab.dtype == np.uint8
    # pancreas block volume in mm^3 survives resampling (within a voxel layer)
    np.testing.assert_allclose((lab == 2).sum() * np.prod(geo.spacing), (label == 2).sum() * 24, rtol=0.35)
    inner = img[tuple(slice(b, b + n) for b, n in zip(geo.pad_before, geo.resampled_shape))]
    assert abs(inner.mean()) < 1e-4 and abs(inner.std() - 1) < 1e-3  # z-scored before padding


def test_preprocess_image_and_to_original_probabilities(tmp_path):
    image, label = volume()
    data, affine = reoriented(image, RAS, "LPS")
    save_nifti(tmp_path / "x.nii.gz", data.astype(np.int16), affine)
    out, geo = preprocess_image(nib.load(tmp_path / "x.nii.gz"), Config(spacing=2.5))
    probs = np.stack([np.zeros_like(out), np.ones_like(out)])  # (C, X, Y, Z)
    back = to_original(probs, geo, order=1)
    assert back.shape == (2, *data.shape)
    np.testing.assert_allclose(back[1], 1.0)


def _one_case(tmp_path, image=None, label=None, affine=RAS, label_affine=None, labels=None):
    img, lab = volume()
    image = img if image is None else image
    label = lab if label is None else label
    root = write_dataset(tmp_path / "ds", {"c1": (image, label, affine)}, labels)
    if label_affine is not None:
        save_nifti(root / "labelsTr" / "c1.nii.gz", label, label_affine)
    return root


def _truncate(root):
    p = root / "imagesTr" / "c1.nii.gz"
    p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2])


def _garbage(root):
    (root / "labelsTr" / "c1.nii.gz").write_bytes(gzip.compress(b"this is not a nifti file" * 20))


BAD = {
    "truncated": (lambda t: _one_case(t), _truncate, "c1.nii.gz"),
    "corrupt": (lambda t: _one_case(t), _garbage, "labelsTr/c1.nii.gz"),
    "shape": (lambda t: _one_case(t, label=np.zeros((20, 16, 11), np.uint8)), None, "labelsTr/c1.nii.gz"),
    "affine": (lambda t: _one_case(t, label_affine=RAS * [[1], [1], [1.5], [1]]), None, "labelsTr/c1.nii.gz"),
    "undeclared label": (lambda t: _one_case(t, label=np.full((20, 16, 12), 7, np.uint8)), None, "labelsTr/c1.nii.gz"),
    "nan": (lambda t: _one_case(t, image=np.full((20, 16, 12), np.nan, np.float32)), None, "imagesTr/c1.nii.gz"),
}


def _huge(ending):
    def damage(root, write):  # image and label alike (else the shapes differ first): 1 TB declared in a tiny file
        for folder in ("imagesTr", "labelsTr"):
            (root / folder / "c1.nii.gz").unlink()
            write(root / folder / f"c1{ending}")
        (root / "dataset.json").write_text(json.dumps({"labels": {"0": "background"}, "training": [
            {"image": f"imagesTr/c1{ending}", "label": f"labelsTr/c1{ending}"}]}))
    return damage


BAD |= {
    "1 TB declared, gzip": (lambda t: _one_case(t), _huge(".nii.gz"), "imagesTr/c1.nii.gz: its header declares"),
    "1 TB declared": (lambda t: _one_case(t), _huge(".nii"), "imagesTr/c1.nii: its header declares"),
}


@pytest.mark.parametrize("name", list(BAD))
def test_bad_case_gives_one_sentence_naming_the_file(tmp_path, name, capsys, huge_nifti):
    make, damage, expected_file = BAD[name]
    root = make(tmp_path)
    if damage:
        damage(root, *([huge_nifti] if name.startswith("1 TB") else []))
    with pytest.raises(AunetError) as err:
        prepare_dataset(Config(data_dir=str(root), cache_dir=str(tmp_path / "cache"), test_fraction=0,
                               val_fraction=0), progress=False)
    message = str(err.value)
    assert expected_file in message and "\n" not in message
    report = check_folder(root, progress=False)
    assert report.cases == 0 and len(report.problems) == 1 and expected_file in report.problems[0]
    assert main(["data", "check", str(root), "--quiet"]) == 1
    assert "problem: " in capsys.readouterr().out


@pytest.mark.parametrize("setup,expected", [
    (lambda r: r.mkdir(), "dataset.json: missing"),
    (lambda r: (r.mkdir(), (r / "dataset.json").write_text("{not json")), "dataset.json: is not valid JSON"),
    (lambda r: (r.mkdir(), (r / "dataset.json").write_text('{"name": "x"}')), "has no 'labels'"),
    (lambda r: (r.mkdir(), (r / "dataset.json").write_text('{"labels": {"0": "bg"}}')), "contains no training images"),
    (lambda r: None, "folder not found"),
])
def test_bad_folder_gives_one_line_and_exit_2(tmp_path, setup, expected, capsys):
    root = tmp_path / "ds"
    setup(root)
    assert main(["data", "check", str(root)]) == 2
    err = capsys.readouterr().err.strip()
    assert expected in err and str(root) in err and len(err.splitlines()) == 1 and "Traceback" not in err


def test_nnunet_layout_and_macos_junk(tmp_path):
    image, label = volume()
    root = write_dataset(tmp_path / "nn", {"a": (image, label, RAS), "b": (image, label, RAS)}, nnunet=True)
    (root / "imagesTr" / "._a_0000.nii.gz").write_bytes(b"\x00\x05\x16\x07 mac resource fork")
    report = check_folder(root, progress=False)
    assert report.layout == "nnunetv2" and report.cases == 2 and not report.problems


def test_a_volume_larger_than_the_memory_available_is_refused(tmp_path, monkeypatch):
    import aunet.data.nifti as nifti

    image, _ = volume()
    save_nifti(tmp_path / "x.nii.gz", image, RAS)
    img = load_nifti(tmp_path / "x.nii.gz")
    monkeypatch.setattr(nifti, "available_memory", lambda: 1000)
    with pytest.raises(AunetError, match=r"x.nii.gz: reading its 20x16x12 voxels needs about 30.7 kB of memory but "
                                         r"1.0 kB is available"):
        read_data(img, tmp_path / "x.nii.gz")
    monkeypatch.setattr(nifti, "available_memory", lambda: None)  # unknown (not Linux): not checked
    assert read_data(img, tmp_path / "x.nii.gz").shape == (20, 16, 12)


def test_dataset_entries_stay_inside_the_folder_unless_allowed(tmp_path, capsys):
    image, label = volume()
    root = write_dataset(tmp_path / "ds", {"c1": (image, label, RAS)})
    save_nifti(tmp_path / "outside.nii.gz", image, RAS)  # beside the dataset, not in it
    meta = json.loads((root / "dataset.json").read_text())
    for path in ("../outside.nii.gz", str(tmp_path / "outside.nii.gz"), "imagesTr/../../outside.nii.gz"):
        (root / "dataset.json").write_text(json.dumps({**meta, "training": [
            {"image": path, "label": "labelsTr/c1.nii.gz"}]}))
        assert main(["data", "check", str(root), "--quiet"]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and f"training entry image {path!r} points outside {root}" in err
        with pytest.raises(AunetError, match="points outside"):
            prepare_dataset(Config(data_dir=str(root), cache_dir=str(tmp_path / "cache"), test_fraction=0,
                                   val_fraction=0), progress=False)
    assert main(["data", "check", str(root), "--quiet", "--allow-outside-paths"]) == 0  # asked for explicitly
    assert main(["data", "prepare", "--profile", "quick", "--data-dir", str(root), "--cache-dir", str(tmp_path / "c"),
                 "--val-fraction", "0", "--test-fraction", "0", "--workers", "1", "--quiet",
                 "--allow-outside-paths"]) == 0
    # a symlink placed inside the folder is followed: data kept elsewhere, laid out here
    (root / "imagesTr" / "c1.nii.gz").unlink()
    (root / "imagesTr" / "c1.nii.gz").symlink_to(tmp_path / "outside.nii.gz")
    (root / "dataset.json").write_text(json.dumps({**meta, "training": [
        {"image": "./imagesTr/c1.nii.gz", "label": "labelsTr/c1.nii.gz"}]}))
    assert check_folder(root, progress=False).cases == 1
