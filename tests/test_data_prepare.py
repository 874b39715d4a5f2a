"""prepare_dataset (cache, splits, label_map), PatchDataset determinism, a Decathlon Task07 stand-in."""
import gzip
import json
import os
import struct

import nibabel as nib
import numpy as np
import pytest
import torch

from aunet.cli import main
from aunet.config import Config
from aunet.data import PatchDataset, center_crop, prepare_dataset, write_phantom_dataset


@pytest.fixture(scope="module")
def phantom_dir(tmp_path_factory):
    return write_phantom_dataset(tmp_path_factory.mktemp("data") / "ph", cases=5, seed=1, size=(48, 40, 24),
                                 progress=False)


def _cfg(root, cache, **kw):
    return Config.from_profile("quick", data_dir=str(root), cache_dir=str(cache), patch_size=(32, 32, 16), **kw)


def test_cache_reused_then_invalidated(phantom_dir, tmp_path, monkeypatch):
    import aunet.data.prepared as prepared

    calls = []
    real = prepared.build_volume
    monkeypatch.setattr(prepared, "build_volume", lambda *a: calls.append(a[0].case_id) or real(*a))
    cfg = _cfg(phantom_dir, tmp_path / "cache")
    ds = prepare_dataset(cfg, progress=False)
    assert len(calls) == 5
    first = ds.load("phantom_002")
    ds2 = prepare_dataset(cfg, progress=False)  # second run: nothing rebuilt, same arrays
    assert len(calls) == 5
    np.testing.assert_array_equal(ds2.load("phantom_002").image, first.image)
    src = phantom_dir / "imagesTr" / "phantom_002.nii.gz"  # touch one source file
    os.utime(src, ns=(src.stat().st_atime_ns, src.stat().st_mtime_ns + 10 ** 9))
    prepare_dataset(cfg, progress=False)
    assert calls[5:] == ["phantom_002"]
    prepare_dataset(_cfg(phantom_dir, tmp_path / "cache", spacing=5.0), progress=False)  # new settings
    assert len(calls) == 11
    vol = prepare_dataset(_cfg(phantom_dir, tmp_path / "cache", spacing=5.0), progress=False).load("phantom_000")
    assert vol.spacing == pytest.approx((5.0, 5.0, 5.0), rel=0.05)


def test_splits_seeded_and_saved(phantom_dir, tmp_path):
    ds = prepare_dataset(_cfg(phantom_dir, tmp_path / "c", val_fraction=0.2, test_fraction=0.2), progress=False)
    assert sorted(ds.train + ds.val + ds.test) == [f"phantom_{i:03d}" for i in range(5)]
    assert (len(ds.train), len(ds.val), len(ds.test)) == (3, 1, 1)
    saved = json.loads(ds.splits_path.read_text())
    assert saved["train"] == ds.train and saved["seed"] == 0
    again = prepare_dataset(_cfg(phantom_dir, tmp_path / "c2", val_fraction=0.2, test_fraction=0.2), progress=False)
    assert again.test == ds.test
    other = [prepare_dataset(_cfg(phantom_dir, tmp_path / f"s{s}", seed=s), progress=False).test for s in range(1, 6)]
    assert any(t != ds.test for t in other)


def test_volume_contents_and_label_map(phantom_dir, tmp_path):
    vol = prepare_dataset(_cfg(phantom_dir, tmp_path / "c"), progress=False).load("phantom_000")
    assert vol.image.dtype == np.float32 and vol.label.dtype == np.uint8 and vol.image.shape == vol.label.shape
    assert all(n % 16 == 0 for n in vol.image.shape) and set(np.unique(vol.label)) == {0, 1, 2, 3}
    merged = prepare_dataset(_cfg(phantom_dir, tmp_path / "m", label_map={"1": 3}), progress=False).load("phantom_000")
    assert set(np.unique(merged.label)) == {0, 2, 3}
    np.testing.assert_array_equal(merged.label == 3, (vol.label == 3) | (vol.label == 1))


def test_patch_dataset_is_a_pure_function_of_seed_and_index(phantom_dir, tmp_path):
    cfg = _cfg(phantom_dir, tmp_path / "c", foreground_fraction=1.0)
    ds = prepare_dataset(cfg, progress=False)
    a, b = PatchDataset(ds, ds.train, cfg, seed=7), PatchDataset(ds, ds.train, cfg, seed=7)
    x1, y1 = a[123]
    _ = a[5], a[999]  # other items in between change nothing
    x2, y2 = b[123]
    assert x1.shape == (1, 32, 32, 16) and x1.dtype == torch.float32
    assert y1.shape == (32, 32, 16) and y1.dtype == torch.int64
    assert torch.equal(x1, x2) and torch.equal(y1, y2)
    assert not torch.equal(a[124][0], x1) and not torch.equal(PatchDataset(ds, ds.train, cfg, seed=8)[123][0], x1)
    assert all((a[i][1] > 0).any() for i in range(6))  # foreground_fraction 1: every patch sees an organ
    plain = PatchDataset(ds, ds.train, _cfg(phantom_dir, tmp_path / "c", augment=False), seed=7)[3]
    assert plain[0].shape == (1, 32, 32, 16)
    loader = torch.utils.data.DataLoader(a, batch_size=2, sampler=range(4))
    xb, yb = next(iter(loader))
    assert xb.shape == (2, 1, 32, 32, 16) and torch.equal(xb[0], a[0][0])


def test_validation_centre_crop(phantom_dir, tmp_path):
    cfg = _cfg(phantom_dir, tmp_path / "c")
    ds = prepare_dataset(cfg, progress=False)
    vol = ds.load(ds.val[0])
    image, label = center_crop(vol, (32, 32, 16))
    sx, sy, sz = ((n - p) // 2 for n, p in zip(vol.image.shape, (32, 32, 16)))
    np.testing.assert_array_equal(image, vol.image[sx:sx + 32, sy:sy + 32, sz:sz + 16])
    big = center_crop(vol, (128, 128, 16))[1]  # larger than the volume: padded with background
    assert big.shape == (128, 128, 16) and (big == label[0, 0, 0]).any()


def _task07_like(root, n_cases=2, slices=10):
    """A synthetic stand-in for MSD Task07 files: 512x512xN int16 with scl_inter -1024, LPS, 0.78 mm x 2.5 mm."""
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    training = []
    for i in range(n_cases):
        rng = np.random.default_rng(i)
        affine = np.array([[-0.78125, 0, 0, 199.6], [0, -0.78125, 0, 185.3], [0, 0, 2.5, -420.0 + 10 * i],
                           [0, 0, 0, 1]])
        x, y = np.mgrid[:512, :512]
        hu = np.where((x - 256) ** 2 / 200 ** 2 + (y - 270) ** 2 / 150 ** 2 < 1, 40.0, -1000.0)[..., None]
        hu = np.repeat(hu, slices, axis=2) + rng.normal(0, 10, (512, 512, slices))
        label = np.zeros((512, 512, slices), np.uint8)
        label[300:340, 200:230, 2:8] = 1  # pancreas (in LPS storage: patient left, posterior)
        label[310:320, 210:220, 4:6] = 2  # tumour
        raw = np.rint(hu + 1024).astype(np.int16)  # stored values; HU = raw * 1 - 1024
        header = bytearray(nib.Nifti1Image(raw, affine).to_bytes())
        struct.pack_into("<ff", header, 112, 1.0, -1024.0)  # scl_slope, scl_inter as on disk in Task07
        name = f"pancreas_{i:03d}.nii.gz"
        (root / "imagesTr" / name).write_bytes(gzip.compress(bytes(header), compresslevel=1))
        nib.save(nib.Nifti1Image(label, affine), root / "labelsTr" / name)
        (root / "imagesTr" / f"._{name}").write_bytes(b"\x00\x05\x16\x07Mac OS X")  # junk from the tar
        training.append({"image": f"./imagesTr/{name}", "label": f"./labelsTr/{name}"})
    meta = {"name": "Pancreas", "modality": {"0": "CT"}, "labels": {"0": "background", "1": "pancreas", "2": "cancer"},
            "numTraining": n_cases, "training": training, "test": []}
    (root / "dataset.json").write_text(json.dumps(meta))
    return root


def test_check_reports_a_task07_like_folder(tmp_path, capsys):
    root = _task07_like(tmp_path / "Task07_Pancreas")
    assert main(["data", "check", str(root), "--quiet"]) == 0
    text = capsys.readouterr().out
    print(text)
    assert "decathlon layout, 2 labelled case(s), 0 problem(s)" in text
    assert "512x512x10 (2)" in text and "spacing mm: 0.781 x 0.781 x 2.5" in text and "LPS (2)" in text
    assert "int16 (2)" in text and "1 pancreas 14000" in text and "2 cancer 400" in text  # 2 x (7200 - 200), 2 x 200
    lo, hi = map(float, text.split("intensity range: ")[1].split()[0:3:2])
    assert -1070 < lo < -1030 and 70 < hi < 110  # scl_inter applied: HU, not stored values
    cfg = Config(data_dir=str(root), cache_dir=str(tmp_path / "c"), label_map={"1": 2, "2": 2},
                 val_fraction=0, test_fraction=0.5)
    ds = prepare_dataset(cfg, progress=False)
    vol = ds.load("pancreas_000")
    assert set(np.unique(vol.label)) == {0, 2}  # pancreas + tumour -> model label 2
    g = vol.geometry
    centre = np.argwhere(vol.label == 2).mean(0) - g.pad_before + 0.5
    fraction = centre / np.array(g.resampled_shape)  # position along each RAS axis, 0..1
    # stored LPS block centre at i 320/512, j 215/512: x and y run the other way in RAS
    np.testing.assert_allclose(fraction[:2], [1 - 320 / 512, 1 - 215 / 512], atol=0.02)
    np.testing.assert_allclose(fraction[2], 5 / 10, atol=0.05)


def test_a_damaged_cache_entry_is_rebuilt_with_a_note(phantom_dir, tmp_path, capsys):
    cfg = _cfg(phantom_dir, tmp_path / "cache")
    ds = prepare_dataset(cfg, progress=False)
    original = {c: ds.load(c).image.copy() for c in ("phantom_000", "phantom_001", "phantom_002")}
    truncated, empty, flipped = (ds.path(c) for c in original)
    truncated.write_bytes(truncated.read_bytes()[: truncated.stat().st_size // 2])  # today: zipfile.BadZipFile
    empty.write_bytes(b"")  # today: EOFError
    data = bytearray(flipped.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, one voxel changed: only the checksum sees it
    flipped.write_bytes(bytes(data))
    capsys.readouterr()
    ds = prepare_dataset(cfg, progress=False)  # the size check before training: two notes, two rebuilt
    notes = capsys.readouterr().err.strip().splitlines()
    assert len(notes) == 2 and all(n.startswith("note: cache entry") and n.endswith("rebuilding it.") for n in notes)
    assert str(truncated) in notes[0] + notes[1] and str(empty) in notes[0] + notes[1]
    for case_id, image in original.items():  # reading checks the checksum: the flipped one is rebuilt too
        np.testing.assert_array_equal(ds.load(case_id).image, image)
    assert capsys.readouterr().err.strip().splitlines() == [
        f"note: cache entry {flipped} does not match its manifest's checksum (damaged or replaced); rebuilding it."]
