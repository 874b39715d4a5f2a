"""One label table (aunet.labels) and one slice renderer (aunet.viz.render): the phantom, the figures, the
viewer and the notebooks' plots take values, names and colours from the one and draw through the other."""
import matplotlib

matplotlib.use("Agg")  # noqa: E402  (figures without a display)
import matplotlib.pyplot as plt
import numpy as np
import pytest

from aunet.data.phantom import TISSUE_LABEL
from aunet.data.plots import hu_histograms
from aunet.errors import AunetError
from aunet.labels import COLOURS, CT150, MSD_PANCREAS, TARGET, TOTALSEG_TO_CT150, class_names, label_map, value
from aunet.viz.plots import overlay_alpha, show_ct
from aunet.viz.render import class_colour, label_centre, outline, render_slice, take_slice, three_planes
from aunet.viz.viewer import SliceViewer


def test_values_and_names_of_the_conventions():
    assert value("pancreas") == 2 and value(TARGET) == 2 and value("pancreas", MSD_PANCREAS) == 1
    assert class_names(4) == {1: "spleen", 2: "pancreas", 3: "kidney"} and class_names(3) == {1: "class1", 2: "class2"}
    assert label_map("msd-pancreas") == {"1": 2, "2": 2}
    assert set(TISSUE_LABEL.values()) == set(CT150) - {0}, "the phantom paints every CT-150 organ, by value"
    assert set(TOTALSEG_TO_CT150.values()) == set(CT150) - {0}


@pytest.mark.parametrize("call, named", [(lambda: value("liver"), "Organ 'liver'"),
                                         (lambda: label_map("task07"), "convention 'task07'")])
def test_unknown_names_are_one_sentence(call, named):
    with pytest.raises(AunetError, match=named) as info:
        call()
    assert "\n" not in str(info.value) and str(info.value).endswith(".")


def test_class_colours_follow_the_organ_not_the_value():
    assert class_colour(value("pancreas")) == COLOURS["pancreas"]
    assert class_colour(1, MSD_PANCREAS) == COLOURS["pancreas"], "MSD's pancreas (1) has the pancreas' colour"
    assert len({class_colour(k, class_names(8)) for k in range(1, 8)}) == 7, "unnamed classes stay distinct"


def test_viewer_colours_a_task07_label_by_its_names():
    image = np.zeros((8, 6, 4), np.float32)
    label = np.zeros(image.shape, np.uint8)
    label[2:5, 2:4, 1:3] = 1  # MSD: 1 = pancreas
    viewer = SliceViewer(image, (1, 1, 1), label=label, class_names=MSD_PANCREAS)
    viewer.slice.value, viewer.label_opacity.value = 1, 1.0
    inside = take_slice(label, "axial", 1) == 1
    np.testing.assert_allclose(viewer.rgba()[inside][:, :3], np.broadcast_to(COLOURS["pancreas"], (inside.sum(), 3)))
    assert viewer.classes[1].description == "1 pancreas"
    with pytest.raises(AunetError, match="class_names is a list"):
        SliceViewer(image, (1, 1, 1), class_names=["background", "pancreas"])


def test_figures_draw_axial_slices_as_the_viewer_does():
    slice_xy = np.zeros((10, 8), np.float32)
    slice_xy[-1] = 1.0  # the patient's right face (X grows toward the Right)
    slice_xy[:, -1] = 2.0  # the anterior face
    label = np.zeros((10, 8), np.uint8)
    label[3:7, 2:5] = value("pancreas")
    fig, (ax1, ax2) = plt.subplots(1, 2)
    show_ct(ax1, slice_xy, label)
    shown = np.asarray(ax1.images[0].get_array())
    expected = render_slice(slice_xy[:, :, None], "axial", 0, (2.0, 1.0), label=label[:, :, None],
                            label_opacity=1.0, label_outline=True)
    np.testing.assert_allclose(shown, expected)
    assert (shown[1:, 0, 0] == 0.5).all() and (shown[0, :, 0] == 1.0).all(), "right on the left, anterior at the top"
    pancreas = take_slice(label[:, :, None], "axial", 0) == value("pancreas")
    edge = outline(pancreas)
    np.testing.assert_allclose(shown[edge][:, :3], np.broadcast_to(COLOURS["pancreas"], (edge.sum(), 3)))
    assert (shown[pancreas & ~edge][:, :3] == 0.0).all(), "outlined in the pancreas' colour, the CT (0: black) inside"
    alpha = np.array([[0.0, 1.0], [0.0, 1.0]], np.float32)  # coarse (x, y) grid: posterior 0, anterior 1
    scale = overlay_alpha(ax2, slice_xy, alpha, vmax=0.5)
    heat = np.asarray(ax2.images[0].get_array())
    assert scale.norm.vmax == 0.5 and not np.allclose(heat[:4], heat[4:]), "alpha is drawn on its own half"
    plt.close(fig)


def test_three_planes_default_to_the_pancreas_centre():
    image = np.zeros((12, 10, 8), np.float32)
    label = np.zeros(image.shape, np.uint8)
    label[1:3, 1:3, 1:3] = value("spleen")
    label[8:11, 6:9, 4:7] = value(TARGET)
    assert label_centre(label, label.shape, TARGET) == (9, 7, 5)
    assert label_centre(label, label.shape) != (9, 7, 5) and label_centre(None, (12, 10, 8)) == (6, 5, 4)
    fig = three_planes(image, (1, 1, 1), overlays={"label": label})
    assert [ax.get_title().split()[:2] for ax in fig.axes] == [["axial", "5"], ["coronal", "7"], ["sagittal", "9"]]


def test_hu_histograms_refuses_a_label_of_another_shape():
    with pytest.raises(AunetError, match=r"label has shape \(2, 2, 2\); expected the image's shape \(3, 3, 3\)\."):
        hu_histograms(np.zeros((3, 3, 3)), np.zeros((2, 2, 2)))
