"""`aunet data convert nih-pancreas`: synthetic DICOM series written with pydicom, converted to exact HU and geometry.

Each series has InstanceNumbers against the slice order, a rescale slope and intercept, file names in
neither order, and an oblique orientation; its label file is stored on a flipped and permuted grid.
"""
import json

import nibabel as nib
import numpy as np
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from aunet.cli import main
from aunet.data.dicom import read_series
from aunet.data.nifti import save_nifti
from aunet.data.nih import label_onto_grid
from aunet.errors import AunetError

COLUMNS, ROWS, SLICES = 5, 6, 4  # X (i), Y (j), Z (k)
SPACING = (0.8, 0.7)  # PixelSpacing: between rows, between columns
STEP = 2.5  # mm between slices
SLOPE, INTERCEPT = 2.0, -1024.0
FILE_ORDER = [2, 0, 3, 1]  # slice k (in position order) is written as file img_<FILE_ORDER[k]>.dcm


def stored_value(i, j, k):
    return 100 * k + 10 * j + i


def rotation(seed):
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    return q * np.sign(np.linalg.det(q))  # columns r, c, n: orthonormal, right-handed


def expected_affine(rot, origin):
    """RAS affine from the DICOM definition: voxel (i, j, k) -> origin + i dc r + j dr c + k STEP n, LPS -> RAS."""
    lps = np.eye(4)
    lps[:3, 0], lps[:3, 1] = rot[:, 0] * SPACING[1], rot[:, 1] * SPACING[0]
    lps[:3, 2], lps[:3, 3] = rot[:, 2] * STEP, origin
    return np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps


def write_series(folder, seed, origin=(-120.0, -150.0, 300.0), skip_slice=None):
    """One CT series of SLICES slices below folder/<study>/<series>/."""
    rot, origin = rotation(seed), np.array(origin)
    series_dir = folder / "1.2.3-study" / "4.5.6-series"
    series_dir.mkdir(parents=True)
    series_uid = generate_uid()
    for k in range(SLICES):
        if k == skip_slice:
            continue
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = CTImageStorage, generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
        ds.Modality, ds.SeriesInstanceUID, ds.StudyInstanceUID = "CT", series_uid, generate_uid()
        ds.InstanceNumber = SLICES - k  # against the slice order
        ds.ImageOrientationPatient = [float(v) for v in np.r_[rot[:, 0], rot[:, 1]]]
        ds.ImagePositionPatient = [float(v) for v in origin + k * STEP * rot[:, 2]]
        ds.PixelSpacing = list(SPACING)
        ds.Rows, ds.Columns = ROWS, COLUMNS
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.RescaleSlope, ds.RescaleIntercept = SLOPE, INTERCEPT
        j, i = np.mgrid[:ROWS, :COLUMNS]
        ds.PixelData = stored_value(i, j, k).astype("<u2").tobytes()  # (rows, columns)
        ds.save_as(series_dir / f"img_{FILE_ORDER[k]}.dcm", enforce_file_format=True)
    return expected_affine(rot, origin)


def image_label():
    """A label on the image grid (X, Y, Z) with no symmetry, so any flip or swap shows."""
    label = np.zeros((COLUMNS, ROWS, SLICES), np.uint8)
    label[1:3, 2:5, 1:3] = 1
    label[4, 0, 3] = 1
    return label


def write_label(path, label, image_affine, flip_permute=True):
    """Store `label` on a grid whose axes are (Z flipped, X, Y) of the image's, with the matching affine."""
    if not flip_permute:
        save_nifti(path, label, image_affine)
        return
    stored = np.flip(label, axis=2).transpose(2, 0, 1)  # stored[z', x, y] = label[x, y, Z-1-z']
    to_image = np.array([[0, 1, 0, 0], [0, 0, 1, 0], [-1, 0, 0, SLICES - 1], [0, 0, 0, 1]], float)
    save_nifti(path, stored, image_affine @ to_image)


@pytest.fixture
def nih_download(tmp_path):
    """Pancreas-CT/PANCREAS_0001..3 (0025 empty, as in recent downloads) and their label00NN.nii.gz files."""
    dicom, labels = tmp_path / "Pancreas-CT", tmp_path / "TCIA_pancreas_labels-02-05-2017"
    labels.mkdir()
    affines = {}
    for n, seed in ((1, 11), (2, 12), (3, 13)):
        affines[n] = write_series(dicom / f"PANCREAS_{n:04d}", seed)
        write_label(labels / f"label{n:04d}.nii.gz", image_label(), affines[n], flip_permute=n != 3)
    (dicom / "PANCREAS_0025").mkdir()
    write_label(labels / "label0025.nii.gz", image_label(), affines[1])
    return tmp_path, affines


def test_series_to_exact_hu_and_world_coordinates(tmp_path):
    affine = write_series(tmp_path / "PANCREAS_0001", seed=5)
    hu, got = read_series(tmp_path / "PANCREAS_0001")
    assert hu.dtype == np.int16 and hu.shape == (COLUMNS, ROWS, SLICES)
    for i, j, k in [(0, 0, 0), (4, 5, 3), (1, 3, 2), (3, 0, 1)]:
        assert hu[i, j, k] == SLOPE * stored_value(i, j, k) + INTERCEPT  # ordered by position, rescaled
    np.testing.assert_allclose(got, affine, atol=1e-6)
    origin = np.array([-120.0, -150.0, 300.0])
    rot = rotation(5)
    world_lps = origin + 4 * SPACING[1] * rot[:, 0] + 5 * SPACING[0] * rot[:, 1] + 3 * STEP * rot[:, 2]
    np.testing.assert_allclose(got @ [4, 5, 3, 1], np.r_[-world_lps[0], -world_lps[1], world_lps[2], 1], atol=1e-6)


def test_gap_in_the_slices_is_refused(tmp_path):
    write_series(tmp_path / "PANCREAS_0009", seed=5, skip_slice=2)
    with pytest.raises(AunetError, match="PANCREAS_0009: slice positions are not an evenly spaced stack"):
        read_series(tmp_path / "PANCREAS_0009")


def test_convert_then_check(nih_download, capsys):
    root, affines = nih_download
    out = root / "nih"
    labels = root / "TCIA_pancreas_labels-02-05-2017"
    assert main(["data", "convert", "nih-pancreas", "--dicom", str(root), "--labels", str(labels),
                 "--out", str(out), "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "3 case(s) converted, 1 skipped; split files: 61_21" in text
    assert "skipped PANCREAS_0025: no DICOM images (cases 25 and 70 are reported duplicates)" in text
    for n in (1, 2, 3):
        image = nib.load(out / "imagesTr" / f"PANCREAS_{n:04d}.nii.gz")
        label = nib.load(out / "labelsTr" / f"PANCREAS_{n:04d}.nii.gz")
        assert image.get_data_dtype() == np.int16
        hu = np.asarray(image.dataobj)
        assert hu[4, 5, 3] == SLOPE * stored_value(4, 5, 3) + INTERCEPT
        assert hu[0, 2, 1] == SLOPE * stored_value(0, 2, 1) + INTERCEPT
        np.testing.assert_allclose(image.affine, affines[n], atol=1e-4)
        np.testing.assert_allclose(label.affine, image.affine, atol=1e-6)
        np.testing.assert_array_equal(np.asarray(label.dataobj), image_label())  # on the same voxels
    meta = json.loads((out / "dataset.json").read_text())
    assert meta["labels"] == {"0": "background", "1": "pancreas"} and meta["numTraining"] == 3
    split = json.loads((out / "splits" / "61_21.json").read_text())
    assert sorted(split["train"] + split["val"] + split["test"]) == ["PANCREAS_0001", "PANCREAS_0002", "PANCREAS_0003"]
    assert split["seed"] == 0 and split["test_fraction"] == 21 / 82
    assert main(["data", "check", str(out), "--quiet"]) == 0
    assert "3 labelled case(s), 0 problem(s)" in capsys.readouterr().out


@pytest.mark.parametrize("change, message", [
    (np.diag([1.0, 1.0, 1.1, 1.0]), "not an axis flip or permutation"),  # another slice spacing
    (np.array([[1, 0, 0, 0.5], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], float), "not an axis flip or permutation"),
    (np.array([[1, 0, 0, 1], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], float),
     "shifted against the image's along axis 0"),
    (np.array([[np.cos(0.2), -np.sin(0.2), 0, 0], [np.sin(0.2), np.cos(0.2), 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]),
     "not an axis flip or permutation"),
])
def test_labels_off_the_image_grid_are_refused_naming_the_case(change, message):
    image_affine = expected_affine(rotation(3), np.zeros(3))
    with pytest.raises(AunetError, match=f"PANCREAS_0042: .*{message}"):
        label_onto_grid(image_label(), image_affine @ change, image_affine, image_label().shape, "PANCREAS_0042")


def test_missing_folders_are_one_sentence(tmp_path, capsys):
    assert main(["data", "convert", "nih-pancreas", "--dicom", str(tmp_path / "nope"), "--labels", str(tmp_path),
                 "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert "folder not found; expected the Pancreas-CT DICOM folder" in err and "\n" not in err
