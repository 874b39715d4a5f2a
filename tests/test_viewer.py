"""The slice viewer without a browser: controls change the picture as they should, orientation is
radiological, and every bad input is one AunetError naming it. (tests/test_viewer_browser.py drives
the same widget in JupyterLab.)"""
import numpy as np
import pytest
import torch

from aunet.data.nifti import save_nifti
from aunet.data.phantom import make_phantom
from aunet.data.preprocess import to_canonical
from aunet.errors import AunetError
from aunet.viz.render import WINDOWS, pixel_aspect, render_slice, take_slice, three_planes
from aunet.viz.viewer import SliceViewer

SHAPE = (20, 16, 12)  # X, Y, Z: every axis a different length so planes are told apart by shape
SPACING = (1.0, 1.5, 3.0)


@pytest.fixture
def volume():
    """HU values that grow along every axis, a label box of class 2 and a class-3 box, attention 0.2 / 0.8."""
    x, y, z = np.meshgrid(*(np.arange(n) for n in SHAPE), indexing="ij")
    image = (-200 + 10 * x + 7 * y + 25 * z).astype(np.float32)  # spans soft tissue and bone windows
    label = np.zeros(SHAPE, np.uint8)
    label[4:10, 4:10, 3:9] = 2
    label[12:16, 8:12, 3:9] = 3
    attention = np.where(x < 10, 0.2, 0.8).astype(np.float32)
    return image, label, attention


def _viewer(volume, **kw):
    image, label, attention = volume
    return SliceViewer(image, SPACING, label=label, attention={"level2": attention}, **kw)


def test_slider_renders_another_slice(volume):
    viewer = _viewer(volume)
    before, png_before = viewer.rgba(), bytes(viewer.picture.value)
    viewer.slice.value = viewer.slice.value + 1
    assert not np.array_equal(before, viewer.rgba())
    assert bytes(viewer.picture.value) != png_before and bytes(viewer.picture.value).startswith(b"\x89PNG")


def test_plane_switch_changes_shape_range_and_aspect(volume):
    viewer = _viewer(volume)
    seen = {}
    for plane, shape, count in (("axial", (16, 20), 12), ("coronal", (12, 20), 16), ("sagittal", (12, 16), 20)):
        viewer.plane.value = plane
        assert viewer.rgba().shape == (*shape, 4)
        assert viewer.slice.max == count - 1
        seen[plane] = pixel_aspect(viewer.spacing, plane)
    assert seen == {"axial": 1.5, "coronal": 3.0, "sagittal": 2.0}  # row spacing / column spacing
    viewer.plane.value = "axial"
    viewer.slice.value = 2
    viewer.plane.value = "coronal"
    viewer.plane.value = "axial"
    assert viewer.slice.value == 2, "a plane keeps its slice when the user comes back to it"


def test_window_preset_changes_pixels_and_custom_follows_sliders(volume):
    viewer = _viewer(volume, window="abdomen")
    abdomen = viewer.rgba()
    viewer.window.value = "bone"
    assert (viewer.width.value, viewer.level.value) == WINDOWS["bone"]
    assert not np.allclose(abdomen, viewer.rgba())
    viewer.level.value = 100.0
    assert viewer.window.value == "custom"
    # the picture is the windowed grey value: L - W/2 black, L + W/2 white
    grey = render_slice(volume[0], "axial", 0, window=(100.0, 0.0))[..., 0]
    expected = np.clip((take_slice(volume[0], "axial", 0) + 50) / 100, 0, 1)
    np.testing.assert_allclose(grey, expected, atol=1e-6)


def test_label_overlay_and_class_checkboxes(volume):
    image, label, _ = volume
    viewer = _viewer(volume)
    viewer.attention_map.value = "none"
    z = 5
    viewer.slice.value = z
    inside = take_slice(label, "axial", z) == 2
    on = viewer.rgba()
    viewer.label_opacity.value = 0.0
    off = viewer.rgba()
    background = take_slice(label, "axial", z) == 0
    assert not np.allclose(on[inside], off[inside]) and np.array_equal(on[background], off[background])
    viewer.label_opacity.value = 0.4
    viewer.classes[2].value = False
    hidden = viewer.rgba()
    assert np.array_equal(hidden[inside], off[inside]), "an unchecked class is not drawn"
    assert not np.array_equal(hidden, off), "the other classes still are"


def test_prediction_is_outlined(volume):
    image, label, _ = volume
    viewer = SliceViewer(image, SPACING, prediction=label)
    viewer.slice.value = 5
    changed = np.any(viewer.rgba() != render_slice(image, "axial", 5), axis=-1)
    mask = take_slice(label, "axial", 5) > 0
    assert changed[mask].any() and not changed[~mask].any()
    assert not changed[mask].all(), "the inside of an outline shows the CT"


def test_threshold_hides_low_attention(volume):
    image, _, attention = volume
    low = take_slice(attention, "axial", 0) < 0.5
    plain = render_slice(image, "axial", 0)
    shown = render_slice(image, "axial", 0, attention=attention, threshold=0.0)
    assert not np.allclose(shown[low], plain[low]) and not np.allclose(shown[~low], plain[~low])
    viewer = _viewer(volume)
    viewer.label_opacity.value = 0.0
    viewer.slice.value = 0
    viewer.threshold.value = 0.5
    hidden = viewer.rgba()
    np.testing.assert_array_equal(hidden[low], plain[low])
    assert not np.allclose(hidden[~low], plain[~low])


def test_display_is_radiological():
    bright = np.zeros(SHAPE, np.float32)
    bright[-1], bright[:, -1], bright[:, :, -1] = 1000, 2000, 3000  # patient's right, anterior, superior faces
    axial = take_slice(bright, "axial", 5)
    assert (axial[1:, 0] == 1000).all()  # right on the image's left (row 0 is the anterior face)
    assert (axial[0] == 2000).all()  # anterior at the top
    coronal = take_slice(bright, "coronal", 5)
    assert (coronal[0] == 3000).all() and (coronal[1:, 0] == 1000).all()  # superior top, right left
    sagittal = take_slice(bright, "sagittal", 5)
    assert (sagittal[0] == 3000).all() and (sagittal[1:, 0] == 2000).all()  # superior top, anterior left


def test_phantom_file_in_lps_is_shown_radiologically(tmp_path):
    case = make_phantom(np.random.default_rng([0, 0]), "scanner_b", (48, 40, 24))  # stored LPS
    save_nifti(tmp_path / "ct.nii.gz", case.image, case.affine)
    save_nifti(tmp_path / "seg.nii.gz", case.label, case.affine)
    viewer = SliceViewer(tmp_path / "ct.nii.gz", label=tmp_path / "seg.nii.gz", prediction=case.label)
    np.testing.assert_array_equal(viewer.volume, to_canonical(case.image, case.affine)[0])
    np.testing.assert_array_equal(viewer.prediction, viewer.label)  # an array follows the file's storage order
    spleen = np.argwhere(take_slice(viewer.label, "axial", viewer.centre[2]) == 1)
    assert spleen[:, 1].mean() > 24, "the spleen (patient's left) is on the image's right"
    fig = three_planes(viewer.volume, viewer.spacing, viewer.centre, {"label": viewer.label})
    assert len(fig.axes) == 3


def test_torch_attention_with_batch_and_channel_axes(volume):
    image, _, attention = volume
    viewer = SliceViewer(image, SPACING, attention={"level2": torch.from_numpy(attention)[None, None]})
    assert viewer.attention["level2"].shape == SHAPE and viewer.attention_map.value == "level2"
    assert viewer.classes == {}, "no label or prediction: no class checkboxes"


@pytest.mark.parametrize("kwargs, named", [
    (dict(image="missing.nii.gz"), "missing.nii.gz"),
    (dict(image=np.zeros((4, 4)), spacing=SPACING), "image has shape"),
    (dict(image=np.zeros(SHAPE)), "spacing"),
    (dict(image=np.zeros(SHAPE), spacing=(1, 1)), "spacing"),
    (dict(image=np.zeros(SHAPE), spacing=SPACING, label=np.zeros((20, 16, 11))), "label has shape"),
    (dict(image=np.zeros(SHAPE), spacing=SPACING, label=np.full(SHAPE, 0.5)), "label has negative or non-integer"),
    (dict(image=np.zeros(SHAPE), spacing=SPACING, prediction=np.zeros((1, 2) + SHAPE)), "prediction has shape"),
    (dict(image=np.zeros(SHAPE), spacing=SPACING, prediction="nope.nii.gz"), "nope.nii.gz"),
    (dict(image=np.zeros(SHAPE), spacing=SPACING, attention={"level2": np.full(SHAPE, 3.0)}), "attention 'level2'"),
    (dict(image=np.zeros(SHAPE), spacing=SPACING, attention={"level3": np.zeros((10, 8, 6))}), "attention 'level3'"),
    (dict(image=np.zeros(SHAPE), spacing=SPACING, attention=np.zeros(SHAPE)), "attention is a ndarray"),
    (dict(image=np.full(SHAPE, np.nan), spacing=SPACING), "image contains NaN"),
    (dict(image=np.zeros(SHAPE), spacing=SPACING, plane="oblique"), "plane='oblique'"),
    (dict(image=np.zeros(SHAPE), spacing=SPACING, window="brain"), "window='brain'"),
    (dict(image="scan.nii.gz", spacing=SPACING), "spacing"),
])
def test_bad_input_is_one_sentence_naming_it(kwargs, named):
    with pytest.raises(AunetError, match=named.replace("(", r"\(").replace(".", r"\.")) as info:
        SliceViewer(**kwargs)
    assert "\n" not in str(info.value) and str(info.value).endswith((".", "...")), str(info.value)


def test_overlay_file_on_another_grid_is_refused(tmp_path):
    affine = np.diag([1.0, 1.5, 3.0, 1.0])
    save_nifti(tmp_path / "ct.nii.gz", np.zeros(SHAPE, np.int16), affine)
    save_nifti(tmp_path / "seg.nii.gz", np.zeros(SHAPE, np.uint8), np.diag([-1.0, 1.5, 3.0, 1.0]))
    save_nifti(tmp_path / "small.nii.gz", np.zeros((20, 16, 10), np.uint8), affine)
    with pytest.raises(AunetError, match="seg.nii.gz has another affine"):
        SliceViewer(tmp_path / "ct.nii.gz", label=tmp_path / "seg.nii.gz")
    with pytest.raises(AunetError, match=r"small.nii.gz has shape \(20, 16, 10\)"):
        SliceViewer(tmp_path / "ct.nii.gz", label=tmp_path / "small.nii.gz")


def test_slice_index_out_of_range_is_named(volume):
    with pytest.raises(AunetError, match="slice index 12 is outside the axial range 0..11"):
        render_slice(volume[0], "axial", 12)
