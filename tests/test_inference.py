"""Sliding-window inference, checkpoint loading and the `aunet predict` command on tiny volumes."""
import nibabel as nib
import numpy as np
import pytest
import torch
from torch import nn

from aunet import AttentionUNet, inference
from aunet.cli import main
from aunet.config import Config
from aunet.errors import AunetError
from aunet.inference import gaussian_weights, sliding_window_predict, window_starts
from aunet.run import load_model


class PerVoxel(nn.Module):
    """A 1x1x1 convolution: each voxel's output depends on that voxel only, so blending must not change it."""

    def __init__(self, classes: int = 3) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv3d(1, classes, 1)

    def forward(self, x, return_attention=False):
        logits = self.conv(x) * 3
        return (logits, {"level2": torch.sigmoid(x[:, :, ::2, ::2, ::2])}) if return_attention else logits


def _direct(model, image):
    with torch.no_grad():
        return torch.softmax(model(torch.as_tensor(image)[None, None]), 1)[0].numpy()


def test_window_starts_and_weights():
    assert window_starts(100, 32, 0.5) == [0, 16, 32, 48, 64, 68]
    assert window_starts(32, 32, 0.5) == [0]
    assert window_starts(40, 32, 0.0) == [0, 8]
    w = gaussian_weights((16, 32, 48))
    assert w.shape == (16, 32, 48) and w.min() > 0 and w.max() <= 1
    assert w[7:9, 15:17, 23:25].min() > 0.9 and w[0, 0, 0] < 1e-3  # peaks in the middle, small at corners


@pytest.mark.parametrize("overlap", [0.0, 0.5, 0.75])
def test_per_voxel_model_is_unchanged_by_blending(overlap):
    image = np.random.default_rng(0).normal(size=(37, 21, 18)).astype(np.float32)  # not multiples of 16
    model = PerVoxel()
    pred = sliding_window_predict(model, image, (16, 16, 16), overlap=overlap, num_classes=3, progress=False)
    expected = _direct(model, image)
    np.testing.assert_allclose(pred.probabilities, expected, atol=1e-5)
    np.testing.assert_array_equal(pred.labels, expected.argmax(0))
    assert pred.labels.dtype == np.uint8 and pred.probabilities.dtype == np.float32


def test_image_smaller_than_patch_is_padded():
    image = np.random.default_rng(1).normal(size=(10, 12, 9)).astype(np.float32)
    model = PerVoxel()
    pred = sliding_window_predict(model, torch.from_numpy(image)[None, None], (96, 96, 64), progress=False)
    assert pred.probabilities.shape == (3, 10, 12, 9)
    np.testing.assert_allclose(pred.probabilities, _direct(model, image), atol=1e-5)


def test_attention_unet_shapes_probabilities_and_maps():
    torch.manual_seed(0)
    model = AttentionUNet(num_classes=4, filters=(2, 4, 8, 16, 32))
    model.train()
    image = np.random.default_rng(2).normal(size=(36, 20, 18)).astype(np.float32)
    pred = sliding_window_predict(model, image, (32, 32, 16), overlap=0.5, num_classes=4, batch_size=3,
                                  return_attention=True, progress=False)
    assert model.training  # the caller's mode is restored
    assert pred.probabilities.shape == (4, 36, 20, 18) and pred.labels.shape == (36, 20, 18)
    np.testing.assert_allclose(pred.probabilities.sum(0), 1.0, atol=1e-5)
    assert list(pred.attention) == ["level2", "level3", "level4"]
    for alpha in pred.attention.values():
        assert alpha.shape == (36, 20, 18) and alpha.dtype == np.float32
        np.testing.assert_allclose(alpha, 0.5, atol=1e-5)  # gates start uniform at 0.5 (aunet.gate)
    same = sliding_window_predict(model, image, (32, 32, 16), overlap=0.5, batch_size=1, progress=False)
    np.testing.assert_allclose(same.probabilities, pred.probabilities, atol=1e-5)  # batching does not matter
    assert same.attention == {}


def test_attention_of_per_voxel_model_is_blended_to_full_size():
    image = np.random.default_rng(3).normal(size=(20, 20, 20)).astype(np.float32)
    pred = sliding_window_predict(PerVoxel(), image, (16, 16, 16), return_attention=True, progress=False)
    assert pred.attention["level2"].shape == (20, 20, 20)
    assert 0 < pred.attention["level2"].min() and pred.attention["level2"].max() < 1


def test_invalid_arguments():
    image = np.zeros((16, 16, 16), np.float32)
    with pytest.raises(AunetError, match="multiples of 16"):
        sliding_window_predict(PerVoxel(), image, (20, 16, 16), progress=False)
    with pytest.raises(AunetError, match="overlap"):
        sliding_window_predict(PerVoxel(), image, (16, 16, 16), overlap=1.0, progress=False)
    with pytest.raises(AunetError, match="3 classes but num_classes=4"):
        sliding_window_predict(PerVoxel(), image, (16, 16, 16), num_classes=4, progress=False)
    with pytest.raises(AunetError, match="not a volume"):
        sliding_window_predict(PerVoxel(), np.zeros((2, 1, 16, 16, 16)), (16, 16, 16), progress=False)


# --- checkpoints ---------------------------------------------------------------------------------

def _checkpoint(path, **overrides):
    cfg = Config.from_profile("quick", base_filters=2, patch_size=(16, 16, 16), **overrides)
    torch.manual_seed(0)
    model = cfg.build_model()
    torch.save({"model": model.state_dict(), "config": cfg.to_dict(), "epoch": 3, "optimizer": {},
                "scheduler": {}, "rng": torch.get_rng_state(), "model_name": cfg.model}, path)
    return model, cfg


def test_load_model_round_trip(tmp_path):
    saved, cfg = _checkpoint(tmp_path / "a.pt")
    model, loaded = load_model(tmp_path / "a.pt", model="attention_unet", num_classes=4)
    assert loaded == cfg and not model.training
    for key, value in saved.state_dict().items():
        torch.testing.assert_close(model.state_dict()[key], value)


def test_load_model_errors(tmp_path):
    _checkpoint(tmp_path / "att.pt")
    with pytest.raises(AunetError, match="holds a 'attention_unet' model but model='unet' was requested"):
        load_model(tmp_path / "att.pt", model="unet")
    with pytest.raises(AunetError, match="predicts 4 classes but num_classes=2"):
        load_model(tmp_path / "att.pt", num_classes=2)
    with pytest.raises(AunetError, match="does not exist"):
        load_model(tmp_path / "missing.pt")
    (tmp_path / "corrupt.pt").write_bytes(b"not a checkpoint" * 10)
    with pytest.raises(AunetError, match="cannot be read"):
        load_model(tmp_path / "corrupt.pt")
    torch.save([1, 2, 3], tmp_path / "list.pt")
    with pytest.raises(AunetError, match="not an aunet checkpoint"):
        load_model(tmp_path / "list.pt")

    # weights of one model under another model's config
    _checkpoint(tmp_path / "unet.pt", model="unet")
    ckpt = torch.load(tmp_path / "unet.pt", weights_only=True)
    ckpt["config"]["model"] = ckpt["model_name"] = "attention_unet"
    torch.save(ckpt, tmp_path / "mixed.pt")
    with pytest.raises(AunetError, match="weights of a 'unet' model but its config asks for 'attention_unet'"):
        load_model(tmp_path / "mixed.pt")
    # weights for 2 classes under a config of 4
    _checkpoint(tmp_path / "two.pt", num_classes=2)
    ckpt = torch.load(tmp_path / "two.pt", weights_only=True)
    ckpt["config"]["num_classes"] = 4
    torch.save(ckpt, tmp_path / "classes.pt")
    with pytest.raises(AunetError, match="weights for 2 classes but its config says num_classes=4"):
        load_model(tmp_path / "classes.pt")


# --- aunet predict -------------------------------------------------------------------------------

def _nifti(path, shape=(20, 18, 10), zooms=(3.0, 3.0, 5.0)):
    affine = np.array([[0, 0, -zooms[2], 30], [-zooms[0], 0, 0, 10], [0, zooms[1], 0, -40], [0, 0, 0, 1]])  # not RAS
    data = np.random.default_rng(0).normal(0, 100, size=shape).astype(np.float32)
    nib.save(nib.Nifti1Image(data, affine), path)
    return affine, data


def test_predict_maps_labels_back_onto_the_input_grid(tmp_path, monkeypatch):
    """A stand-in model that labels bright voxels must give back the input's bright ball, in place."""
    zooms = (3.0, 3.0, 5.0)
    affine, _ = _nifti(tmp_path / "unused.nii.gz", zooms=zooms)
    grid = np.indices((30, 28, 16)).astype(float)
    mask = ((grid[0] - 18) ** 2 + (grid[1] - 10) ** 2 + ((grid[2] - 9) * 5 / 3) ** 2) < 49  # off-centre ball
    nib.save(nib.Nifti1Image(mask.astype(np.float32) * 300 - 100, affine), tmp_path / "ball.nii.gz")
    _checkpoint(tmp_path / "model.pt", spacing=4.5)

    def threshold(model, image, *args, **kwargs):
        labels = (image > image.min() + 0.5 * np.ptp(image)).astype(np.uint8)
        return inference.Prediction(np.stack([1.0 - labels, labels]).astype(np.float32), labels, {})

    monkeypatch.setattr(inference, "sliding_window_predict", threshold)
    inference.predict_file(tmp_path / "model.pt", tmp_path / "ball.nii.gz", tmp_path / "out.nii.gz", progress=False)
    back = np.asanyarray(nib.load(tmp_path / "out.nii.gz").dataobj).astype(bool)
    assert back.shape == mask.shape
    assert 2 * np.sum(back & mask) / (back.sum() + mask.sum()) > 0.8  # a wrong axis order or flip gives ~0


def test_predict_cli_round_trip(tmp_path, capsys):
    _checkpoint(tmp_path / "model.pt")
    affine, data = _nifti(tmp_path / "ct.nii.gz")
    out, maps = tmp_path / "out" / "labels.nii.gz", tmp_path / "maps"
    assert main(["predict", str(tmp_path / "model.pt"), str(tmp_path / "ct.nii.gz"), str(out),
                 "--overlap", "0.25", "--attention-dir", str(maps), "--device", "cpu"]) == 0
    labels = nib.load(out)
    assert labels.shape == data.shape and labels.get_data_dtype() == np.uint8
    np.testing.assert_allclose(labels.affine, affine)
    assert set(np.unique(np.asanyarray(labels.dataobj))) <= {0, 1, 2, 3}
    for level in ("level2", "level3", "level4"):
        alpha = nib.load(maps / f"ct_attention_{level}.nii.gz")
        assert alpha.shape == data.shape
        np.testing.assert_allclose(alpha.affine, affine)
    assert [p.name for p in out.parent.iterdir()] == ["labels.nii.gz"]  # no temporary file left


def test_predict_cli_errors(tmp_path, capsys):
    _checkpoint(tmp_path / "model.pt")
    assert main(["predict", str(tmp_path / "model.pt"), str(tmp_path / "nope.nii.gz"), str(tmp_path / "o.nii.gz")]) == 2
    err = capsys.readouterr().err
    assert "nope.nii.gz: file not found" in err and len(err.strip().splitlines()) == 1
    _nifti(tmp_path / "ct.nii.gz")
    assert main(["predict", str(tmp_path / "missing.pt"), str(tmp_path / "ct.nii.gz"), str(tmp_path / "o.nii.gz")]) == 2
    assert "missing.pt does not exist" in capsys.readouterr().err
    assert main(["predict", str(tmp_path / "model.pt"), str(tmp_path / "ct.nii.gz"), str(tmp_path / "o.png")]) == 2
    assert "must end in .nii or .nii.gz" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["huge.nii.gz", "huge.nii"])
def test_predict_refuses_a_header_declaring_1_tb_before_reading(tmp_path, capsys, huge_nifti, name):
    _checkpoint(tmp_path / "model.pt")
    huge = huge_nifti(tmp_path / name)  # today: MemoryError traceback (or gigabytes taken first)
    assert main(["predict", str(tmp_path / "model.pt"), str(huge), str(tmp_path / "o.nii.gz")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert f"{huge}: its header declares 10000x10000x2500 voxels of float32 (1.0 TB)" in err
    assert not (tmp_path / "o.nii.gz").exists()
