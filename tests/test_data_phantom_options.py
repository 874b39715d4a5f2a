"""Harder phantoms (PhantomOptions): decoys, a wider field of view, a thinner pancreas; the defaults unchanged."""
import json

import numpy as np
import pytest
from scipy import ndimage

from aunet.cli import main
from aunet.data import write_phantom_dataset
from aunet.data.phantom import PhantomOptions, field_of_view, make_phantom
from aunet.errors import AunetError

SMALL = (48, 40, 24)


def case(options: PhantomOptions | None = None, size=None, index: int = 0):
    return make_phantom(np.random.default_rng([0, index]), size=size, options=options)


def test_default_options_draw_the_default_phantom():
    plain, default = case(size=SMALL), case(PhantomOptions(), size=SMALL)
    for a, b in ((plain.image, default.image), (plain.label, default.label), (plain.affine, default.affine)):
        np.testing.assert_array_equal(a, b)
    assert plain.decoys is None and default.info["distractors"] == 0


def test_decoys_look_like_the_pancreas_but_are_background():
    plain, decoyed = case(), case(PhantomOptions(distractors=3))
    np.testing.assert_array_equal(plain.label, decoyed.label)  # same body, same labels: decoys are background
    d = decoyed.decoys
    ml = np.prod(decoyed.spacing) / 1000
    assert d.sum() * ml > 20 and not (decoyed.label[d] > 0).any()
    core, pancreas = ndimage.binary_erosion(d), ndimage.binary_erosion(decoyed.label == 2)
    assert abs(decoyed.image[core].mean() - decoyed.image[pancreas].mean()) < 20  # the pancreas's intensity
    assert abs(decoyed.image[core].std() - decoyed.image[pancreas].std()) < 15  # and texture
    near = ndimage.binary_dilation(d, iterations=4)  # blur reaches a few voxels; elsewhere the same noise
    np.testing.assert_array_equal(plain.image[~near], decoyed.image[~near])
    centre = np.argwhere(decoyed.label == 2).mean(0) * decoyed.spacing
    assert np.linalg.norm(np.argwhere(d) * decoyed.spacing - centre, axis=1).min() > 10  # elsewhere


def test_wider_field_of_view_around_a_thinner_pancreas():
    plain, wide = case(), case(PhantomOptions(fov_scale=1.25, pancreas_scale=0.7))
    assert wide.image.shape == (200, 160, 64) and wide.spacing == plain.spacing
    assert field_of_view(options=PhantomOptions(fov_scale=1.25)) == (500.0, 400.0, 256.0)
    # body width along x through the centre of the field of view (the table, below the body, is wider)
    width = [np.ptp(np.nonzero(p.image[:, p.image.shape[1] // 2, p.image.shape[2] // 2] > -500)[0]) * p.spacing[0]
             for p in (plain, wide)]
    assert abs(width[0] - width[1]) < 15 and width[0] > 250  # the body keeps its size: there is more around it
    volumes = [(p.label == 2).sum() * np.prod(p.spacing) for p in (plain, wide)]
    assert 0.3 < volumes[1] / volumes[0] < 0.7  # radii x 0.7: about half the volume
    assert (wide.label == 2).mean() < 0.4 * (plain.label == 2).mean()


@pytest.mark.parametrize("options, named", [(PhantomOptions(distractors=-1), "distractors"),
                                            (PhantomOptions(fov_scale=0.5), "fov_scale"),
                                            (PhantomOptions(pancreas_scale=2.0), "pancreas_scale")])
def test_bad_options_are_one_sentence(options, named):
    with pytest.raises(AunetError, match=named):
        case(options, size=SMALL)


def test_folder_records_its_options_and_cli_writes_them(tmp_path, capsys):
    plain = write_phantom_dataset(tmp_path / "plain", 1, size=SMALL, progress=False)
    assert json.loads((plain / "dataset.json").read_text())["aunet"]["options"] == PhantomOptions().to_dict()
    out = tmp_path / "decoys"
    assert main(["data", "phantom", "--out", str(out), "--cases", "1", "--distractors", "2"]) == 0
    assert "distractors 2" in capsys.readouterr().out
    meta = json.loads((out / "dataset.json").read_text())["aunet"]
    assert meta["options"] == {"distractors": 2, "fov_scale": 1.0, "pancreas_scale": 1.0}
    assert main(["data", "phantom", "--out", str(tmp_path / "bad"), "--fov-scale", "3"]) == 2
    assert "fov_scale=3.0 is not valid" in capsys.readouterr().err
