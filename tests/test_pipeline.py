"""The batch pipeline: the device-side augmentation matches the scipy reference; batches do not depend on workers."""
from pathlib import Path

import numpy as np
import pytest
import torch

from aunet.config import Config
from aunet.data import PatchDataset, prepare_dataset, write_phantom_dataset
from aunet.data.augment import cut_crop, warp
from aunet.data.loader import TrainingBatches, automatic_workers, batch_indices
from aunet.data.patches import draw_patch


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    out = tmp_path_factory.mktemp("data") / "phantom"
    write_phantom_dataset(out, cases=3, seed=0, size=(80, 64, 32), progress=False)
    cfg = tiny(out)
    return cfg, prepare_dataset(cfg, progress=False)


def tiny(data_dir: Path, **overrides) -> Config:
    # 8 mm: volumes of 64x48x32 voxels, so 32^3 patches, rotated and zoomed out, often leave the volume
    return Config.from_profile("quick", **{"data_dir": str(data_dir), "spacing": 8.0, "patch_size": (32, 32, 32),
                                           "batch_size": 2, "val_fraction": 0.0, "test_fraction": 0.0,
                                           "device": "cpu", **overrides})


def test_device_augmentation_matches_scipy_reference(data):
    cfg, ds = data
    reference = PatchDataset(ds, ds.train, cfg, seed=cfg.seed)
    for index in range(12):
        spec = draw_patch(ds, ds.train, cfg, cfg.seed, index)
        image, label = warp(cut_crop(ds.load(spec.case_id), spec, cfg.patch_size), cfg.patch_size)
        ref_image, ref_label = reference[index]
        assert image.shape == ref_image.shape == (1, 32, 32, 32) and label.shape == ref_label.shape
        # same geometry: trilinear agrees to float32 rounding of the coordinates, nearest on all but rare ties
        torch.testing.assert_close(image, ref_image, atol=1e-3, rtol=0)
        assert (label.long() == ref_label).float().mean() > 0.999
        assert set(np.unique(label.numpy())) <= set(range(cfg.num_classes))


def test_without_augmentation_the_crop_is_the_patch(data):
    cfg, ds = data
    cfg = Config.from_dict({"augment": False}, base=cfg)
    reference = PatchDataset(ds, ds.train, cfg, seed=cfg.seed)
    for index in range(3):
        spec = draw_patch(ds, ds.train, cfg, cfg.seed, index)
        image, label = warp(cut_crop(ds.load(spec.case_id), spec, cfg.patch_size), cfg.patch_size)
        assert torch.equal(image, reference[index][0]) and torch.equal(label.long(), reference[index][1])


def test_batches_identical_for_0_and_2_workers(data):
    cfg, ds = data
    batches = {n: list(TrainingBatches(ds, ds.train, cfg, torch.device("cpu"), iterations=2, workers=n).stream(1, 2))
               for n in (0, 2)}
    assert len(batches[0]) == len(batches[2]) == 4  # 2 epochs x 2 steps
    here = TrainingBatches(ds, ds.train, cfg, torch.device("cpu"), iterations=2)
    for k, ((i0, l0), (i2, l2)) in enumerate(zip(batches[0], batches[2])):
        assert i0.shape == (2, 1, 32, 32, 32) and l0.shape == (2, 32, 32, 32) and l0.dtype == torch.int64
        assert torch.equal(i0, i2) and torch.equal(l0, l2)
        i, l = here.batch(1 + k // 2, k % 2)  # the stream's batch of (epoch, step), built in this process
        assert torch.equal(i, i0) and torch.equal(l, l0)


def test_processes_share_the_global_batch(data):
    cfg, ds = data
    cfg = Config.from_dict({"batch_size": 4}, base=cfg)
    assert batch_indices(2, 1, iterations=3, batch_size=4) == [16, 17, 18, 19]
    assert batch_indices(2, 1, 3, 4, rank=1, world=2) == [18, 19]
    whole = TrainingBatches(ds, ds.train, cfg, torch.device("cpu"), iterations=3).batch(2, 1)
    shares = [TrainingBatches(ds, ds.train, cfg, torch.device("cpu"), 3, rank=r, world=2).batch(2, 1) for r in (0, 1)]
    assert torch.equal(torch.cat([s[0] for s in shares]), whole[0])
    assert torch.equal(torch.cat([s[1] for s in shares]), whole[1])
    with pytest.raises(Exception, match="batch_size=4 cannot be shared by 3 processes"):
        TrainingBatches(ds, ds.train, cfg, torch.device("cpu"), 3, rank=0, world=3)


def test_automatic_workers():
    assert automatic_workers(torch.device("cpu")) == 0  # the CPU step uses every core
    cuda = torch.device("cuda")
    assert 1 <= automatic_workers(cuda, processes_on_node=64) <= automatic_workers(cuda) <= 8
