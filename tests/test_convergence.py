"""aunet.convergence: the plateau test on synthetic validation curves."""
import math

import numpy as np
import pytest

from aunet.convergence import convergence, history_convergence, moving_mean


def saturating(epochs: int, rate: float, top: float = 0.8, noise: float = 0.0, seed: int = 0) -> np.ndarray:
    """top * (1 - exp(-rate * epoch)) plus normal noise: a curve that climbs, then levels off."""
    e = np.arange(1, epochs + 1)
    return top * (1 - np.exp(-rate * e)) + np.random.default_rng(seed).normal(0, noise, epochs)


def test_moving_mean_is_a_trailing_window_mean():
    v = np.random.default_rng(0).random(12)
    np.testing.assert_allclose(moving_mean(v, 5), np.convolve(v, np.ones(5) / 5, mode="valid"))
    assert moving_mean(v[:3], 5).size == 0


def test_a_curve_that_levelled_off_has_converged():
    result = convergence(saturating(100, 0.08, noise=0.02))
    assert result.converged and abs(result.rise) < 0.02 and result.window == 25


def test_a_curve_still_climbing_has_not():
    result = convergence(saturating(20, 0.05))  # stopped in the steep phase (issue 22: the 20-epoch runs)
    assert not result.converged and result.rise > 0.05 and result.window == 5
    linear = convergence(np.linspace(0.0, 0.6, 40))  # 0.6 / 39 a point, over the last 10 points
    assert not linear.converged and linear.rise == pytest.approx(10 * 0.6 / 39)


def test_the_rise_is_of_the_smoothed_curve_over_the_last_quarter():
    curve = np.r_[np.zeros(15), np.full(5, 0.3)]  # a jump in the last quarter: smoothed 0 -> 0.3
    result = convergence(curve)
    assert result.rise == pytest.approx(0.3) and result.window == 5
    spike = np.r_[np.full(19, 0.5), 0.55]  # one noisy last epoch moves the 5-point mean by 0.01
    assert convergence(spike).converged and convergence(spike).rise == pytest.approx(0.01)
    falling = convergence(np.linspace(0.6, 0.4, 20))  # a falling curve has finished rising
    assert falling.converged and falling.rise < 0


def test_too_short_a_curve_is_not_called_converged():
    result = convergence([0.5] * 8)  # 4 smoothed points, a quarter of 2: the last against the second
    assert result.converged and result.window == 2 and result.rise == 0
    short = convergence([0.5] * 5)  # one smoothed point: nothing to compare it with
    assert not short.converged and math.isnan(short.rise)


def test_epochs_without_validation_are_left_out():
    curve = saturating(100, 0.08)
    holes = curve.copy()
    holes[::2] = np.nan  # validated every second epoch
    assert convergence(holes) == convergence(curve[1::2])
    rows = [{"epoch": i + 1, "val_pancreas_dice": v} for i, v in enumerate(holes)]
    assert history_convergence(rows) == convergence(curve[1::2])
    assert history_convergence([{"epoch": 1.0}]).converged is False  # no such column: nothing to judge
