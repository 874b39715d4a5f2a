"""Metrics against direct counting, MONAI 1.6.1, hand-computed cases and the empty-mask rules."""
import math
import warnings

import numpy as np
import pytest
import torch
from monai.metrics import compute_average_surface_distance, compute_dice, compute_hausdorff_distance
from scipy import ndimage

from aunet.labels import TARGET, value
from aunet.metrics import dice, evaluate_case, hausdorff95, precision, recall, s2s_distance, summarise, surface

SPACINGS = [(1.0, 1.0, 1.0), (0.8, 0.8, 2.5), (2.0, 1.5, 0.7)]


def blob(seed: int, shape=(24, 20, 16), threshold=0.1) -> np.ndarray:
    """A random smooth blob (may touch the array's border)."""
    noise = np.random.default_rng(seed).normal(size=shape)
    return ndimage.gaussian_filter(noise, 2.0) > threshold


def _monai(fn, pred, true, **kwargs) -> float:
    as_tensor = lambda m: torch.from_numpy(m[None, None].astype(np.float32))  # (1, 1, X, Y, Z)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MONAI warns about empty masks
        return float(fn(as_tensor(pred), as_tensor(true), include_background=True, **kwargs)[0, 0])


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("spacing", SPACINGS)
def test_distances_match_monai(seed, spacing):
    pred, true = blob(seed), blob(seed + 100)
    assert pred.any() and true.any() and not np.array_equal(pred, true)
    expected_s2s = _monai(compute_average_surface_distance, pred, true, symmetric=True, spacing=spacing)
    expected_hd95 = _monai(compute_hausdorff_distance, pred, true, percentile=95, spacing=spacing)
    assert s2s_distance(pred, true, spacing) == pytest.approx(expected_s2s, rel=1e-5)
    assert hausdorff95(pred, true, spacing) == pytest.approx(expected_hd95, rel=1e-5)


@pytest.mark.parametrize("seed", range(4))
def test_overlap_metrics_match_counting_and_monai(seed):
    pred, true = blob(seed), blob(seed + 50)
    tp = np.sum(pred & true)
    fp = np.sum(pred & ~true)
    fn = np.sum(~pred & true)
    assert dice(pred, true) == pytest.approx(2 * tp / (2 * tp + fp + fn))
    assert precision(pred, true) == pytest.approx(tp / (tp + fp))
    assert recall(pred, true) == pytest.approx(tp / (tp + fn))
    assert dice(pred, true) == pytest.approx(_monai(compute_dice, pred, true), rel=1e-6)


def _unbinarised_dice(pred: np.ndarray, true: np.ndarray) -> float:
    """The bug behind reports of Dice > 1: label maps multiplied and summed as they are, not compared with a class."""
    return float(2 * (pred * true).sum() / (pred.sum() + true.sum()))


def test_dice_never_above_one():
    for seed in range(20):  # label maps as stored: the pancreas is its CT-150 value, not 1
        pred = blob(seed, (12, 12, 8), 0.0).astype(np.uint8) * value(TARGET)
        true = blob(seed + 1, (12, 12, 8), 0.0).astype(np.uint8) * value(TARGET)
        assert _unbinarised_dice(pred, pred) > 1  # these inputs expose the bug ...
        for score in (dice(pred, true), dice(pred, pred), precision(pred, true), recall(pred, true)):
            assert 0.0 <= score <= 1.0  # ... which aunet's metrics do not have
        assert dice(pred, pred) == 1.0 and dice(pred, true) == dice(pred > 0, true > 0)


def test_hand_computed_single_voxels_on_thick_slices():
    pred, true = np.zeros((3, 3, 5), bool), np.zeros((3, 3, 5), bool)
    pred[1, 1, 0] = True
    true[1, 1, 2] = True  # two slices further at 2.5 mm
    assert s2s_distance(pred, true, (0.8, 0.8, 2.5)) == pytest.approx(5.0)
    assert hausdorff95(pred, true, (0.8, 0.8, 2.5)) == pytest.approx(5.0)
    assert s2s_distance(pred, pred, (0.8, 0.8, 2.5)) == 0.0


def test_surface_uses_face_connectivity_and_border():
    cube = np.zeros((5, 5, 5), bool)
    cube[1:4, 1:4, 1:4] = True
    assert surface(cube).sum() == 26  # only the centre voxel has all 6 face neighbours inside
    cube[1, 1, 1] = False  # the centre loses a corner neighbour but keeps its 6 face neighbours
    assert surface(cube).sum() == 25  # full (26-)connectivity would make the centre boundary too
    assert surface(np.ones((3, 3, 3), bool)).sum() == 26  # the array's border counts as boundary
    full = np.ones((6, 5, 4), bool)
    other = full.copy()
    other[:, :, -1] = False
    assert s2s_distance(full, other, (0.8, 0.8, 2.5)) == pytest.approx(
        _monai(compute_average_surface_distance, full, other, symmetric=True, spacing=(0.8, 0.8, 2.5)), rel=1e-5)


def test_empty_masks_have_defined_results():
    empty, some = np.zeros((8, 8, 8), bool), blob(3, (8, 8, 8), 0.0)
    assert some.any()
    assert (dice(empty, empty), precision(empty, empty), recall(empty, empty)) == (1.0, 1.0, 1.0)
    for pred, true in ((empty, some), (some, empty)):
        assert (dice(pred, true), precision(pred, true), recall(pred, true)) == (0.0, 0.0, 0.0)
        assert math.isnan(s2s_distance(pred, true, (1, 1, 1)))
        assert math.isnan(hausdorff95(pred, true, (1, 1, 1)))
    assert math.isnan(s2s_distance(empty, empty, (1, 1, 1)))


def test_evaluate_case_and_summarise():
    true = np.zeros((24, 20, 16), np.uint8)
    true[blob(1)] = 1
    true[blob(2) & ~blob(1)] = 2
    pred = true.copy()
    pred[blob(3)] = 2
    classes = {"spleen": 1, "pancreas": 2, "kidney": 3}  # kidney absent from both
    row = evaluate_case(pred, true, (0.8, 0.8, 2.5), classes)
    assert set(row) == {f"{c}_{m}" for c in classes for m in ("dice", "precision", "recall", "s2s_mm", "hd95_mm")}
    assert row["pancreas_dice"] == pytest.approx(dice(pred == 2, true == 2))
    assert row["pancreas_s2s_mm"] == pytest.approx(s2s_distance(pred == 2, true == 2, (0.8, 0.8, 2.5)))
    assert row["spleen_hd95_mm"] == pytest.approx(hausdorff95(pred == 1, true == 1, (0.8, 0.8, 2.5)))
    assert row["kidney_dice"] == 1.0 and math.isnan(row["kidney_s2s_mm"])

    summary = summarise([{"a": 1.0, "b": math.nan}, {"a": 3.0, "b": math.nan}, {"a": math.nan, "b": math.nan}])
    assert summary["a"] == (2.0, 1.0)
    assert all(math.isnan(v) for v in summary["b"])
