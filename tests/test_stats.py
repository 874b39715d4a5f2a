"""aunet.stats: the statistics with the training run as the unit (their calibration is in test_calibration.py;
the tables' cells are checked by hand in test_tables.py), the Holm adjustment of a family of tests and the rank
correlation the study uses for focus against Dice gain."""
import itertools
import math

import numpy as np
import pytest

from aunet.stats import (
    difference_matrix,
    holm,
    independent_seed_difference,
    paired_by_seed,
    per_case_means,
    per_seed_means,
    permutation_p,
    rank_correlation,
    score_matrix,
    seed_case_bootstrap,
    seed_difference,
    seed_means,
    sign_flip_p,
    verdict,
)


def test_holm_adjusts_by_rank_and_never_decreases():
    # sorted: 0.005 x4 = 0.02, 0.01 x3 = 0.03, 0.03 x2 = 0.06, 0.04 x1 = 0.04 -> 0.06 (monotone)
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.9]) == [1.0, 1.0]  # capped at 1
    out = holm([0.01, math.nan, 0.02])  # a condition not run is not a test of the family
    assert out[0] == pytest.approx(0.02) and math.isnan(out[1]) and out[2] == pytest.approx(0.02)
    assert holm([]) == []


def test_rank_correlation_is_pearson_of_the_ranks():
    rng = np.random.default_rng(0)
    x = rng.normal(size=20)
    y = x + rng.normal(scale=0.8, size=20)
    ranks = [np.argsort(np.argsort(v)) for v in (x, y)]
    r = rank_correlation(list(x) + [math.nan], list(y) + [1.0])  # the NaN point is left out
    assert r.n == 20 and r.rho == pytest.approx(np.corrcoef(*ranks)[0, 1]) and 0 < r.p < 0.05
    assert rank_correlation([1, 2, 3, 4], [8, 6, 4, 2]).rho == pytest.approx(-1.0)
    assert math.isnan(rank_correlation([1, 2], [1, 2]).rho)  # too few points
    with pytest.raises(ValueError, match="one length"):
        rank_correlation([1, 2, 3], [1, 2])


def test_difference_matrix_pairs_seed_and_case_and_leaves_gaps_as_nan():
    a = {(0, "x"): 0.5, (0, "y"): 0.4, (1, "x"): 0.6, (1, "y"): 0.2, (2, "x"): 0.1}
    b = {(0, "x"): 0.7, (0, "y"): 0.4, (1, "x"): 0.5, (2, "z"): 0.9}  # (1, y): U-Net only; (2, z): Att only
    seeds, cases, d = difference_matrix(a, b)
    assert seeds == [0, 1] and cases == ["x", "y"]  # seed 2 shares no case
    np.testing.assert_allclose(d, [[0.2, 0.0], [-0.1, np.nan]])
    np.testing.assert_allclose(per_seed_means(d), [0.1, -0.1])
    np.testing.assert_allclose(per_case_means(d), [0.05, 0.0])
    _, _, y = score_matrix(a, b)  # both scores side by side: (seeds, cases, 2)
    np.testing.assert_allclose(y[0], [[0.5, 0.7], [0.4, 0.4]])
    assert np.isnan(y[1, 1]).all()
    assert seed_means(a, b) == pytest.approx({0: 0.1, 1: -0.1})
    pooled = {(s, ("exp", c)): v for (s, c), v in a.items()}  # a case key may name its experiment too
    assert seed_means(pooled, {(s, ("exp", c)): v for (s, c), v in b.items()}) == pytest.approx({0: 0.1, 1: -0.1})


def brute_sign_flip(m):
    stats = [abs(np.mean(np.array(s) * m)) for s in itertools.product([-1, 1], repeat=len(m))]
    return np.mean(np.array(stats) >= abs(np.mean(m)) - 1e-12)


def test_sign_flip_p_is_exact_and_three_seeds_cannot_go_below_a_quarter():
    rng = np.random.default_rng(3)
    for n in (1, 3, 5, 8):
        m = rng.normal(0.3, 1.0, n)
        assert sign_flip_p(m) == pytest.approx(brute_sign_flip(m))
    assert sign_flip_p([0.123, 0.071, 0.055]) == 0.25  # all of one sign: the smallest p of 3 seeds
    assert sign_flip_p([0.123, 0.071, -0.055]) == 0.5  # issue 22: 120/30 Dice per-seed differences
    assert sign_flip_p([0.1, 0.2, 0.3, 0.1, 0.2, 0.3]) == pytest.approx(2 / 64)
    assert sign_flip_p([0.0, 0.0]) == 1.0 and math.isnan(sign_flip_p([]))
    m = rng.normal(0.0, 1.0, 24)  # 2^24 patterns: 10 000 drawn at random (fixed seed), the observed one first
    assert sign_flip_p(m) == sign_flip_p(m) and sign_flip_p(np.full(24, 0.1)) == pytest.approx(1e-4)


def test_permutation_p_is_exact_over_the_splits():
    x, y = [0.1, 0.3, 0.2], [0.5, 0.4, 0.6]
    pooled = np.array(x + y)
    diffs = [pooled[list(g)].mean() - np.delete(pooled, list(g)).mean() for g in itertools.combinations(range(6), 3)]
    assert permutation_p(x, y) == pytest.approx(np.mean(np.abs(diffs) >= abs(np.mean(y) - np.mean(x)) - 1e-12))
    assert permutation_p(x, y) == pytest.approx(0.1)  # 2 of 20 splits: the smallest p of 3 against 3


def test_seed_case_bootstrap_resamples_seeds_and_cases():
    rows = np.array([[0.1] * 4, [0.3] * 4, [-0.2] * 4])  # no spread within a seed: only seeds can move the mean
    boot = seed_case_bootstrap(rows, 2000)
    assert boot.min() >= -0.2 - 1e-12 and boot.max() <= 0.3 + 1e-12 and boot.std() > 0.05
    cols = np.array([[0.1, 0.3, -0.2, 0.0]] * 3)  # no spread between seeds: only cases can move it
    assert seed_case_bootstrap(cols, 2000).std() > 0.05
    np.testing.assert_allclose(seed_case_bootstrap(cols + 0.5, 2000), seed_case_bootstrap(cols, 2000) + 0.5)
    gap = cols.copy()
    gap[0, 0] = np.nan  # a case one seed did not score is skipped, not counted as zero
    assert np.all(np.isfinite(seed_case_bootstrap(gap, 500)))


def test_seed_difference_summarises_runs_not_pairs():
    rng = np.random.default_rng(0)
    d = rng.normal(0.05, 0.1, (3, 24)) + np.array([[0.07], [0.02], [-0.1]])
    diff = seed_difference(d)
    assert diff.n == 3 and diff.cases == 24 and diff.test == "sign-flip"
    assert diff.mean == pytest.approx(np.mean(diff.per_seed)) and diff.low < diff.mean < diff.high
    assert diff.p == max(diff.p_seeds, diff.p_cases) and diff.p_seeds == sign_flip_p(diff.per_seed)
    assert diff == seed_difference(d)  # fixed bootstrap seed: the same scores give the same interval
    big = seed_difference(np.full((3, 24), 0.3) + rng.normal(0, 0.01, (3, 24)))
    assert big.low > 0 and big.p == 0.25 and verdict(big) == "inconclusive"  # 3 seeds never decide
    six = np.full((6, 24), 0.3) + rng.normal(0, 0.01, (6, 24))
    assert verdict(seed_difference(six)) == "supported" and verdict(seed_difference(-six)) == "not supported"
    assert verdict(seed_difference(np.empty((0, 4)))) == "not run"
    with pytest.raises(ValueError, match="seeds, cases"):
        seed_difference(np.zeros(5))


def test_paired_by_seed_reads_score_maps():
    a = {(s, c): 0.5 for s in range(6) for c in "abcdef"}
    b = {(s, c): 0.6 + 0.01 * s for s in range(6) for c in "abcdef"}
    diff = paired_by_seed(a, b)
    np.testing.assert_allclose(diff.per_seed, [0.1 + 0.01 * s for s in range(6)])
    assert verdict(diff) == "supported"


def test_independent_seed_difference_compares_two_groups_of_runs():
    rng = np.random.default_rng(1)
    first, second = rng.normal(0.0, 0.05, (3, 24)), rng.normal(0.2, 0.05, (3, 6))
    diff = independent_seed_difference(first, second)
    assert diff.mean == pytest.approx(per_seed_means(second).mean() - per_seed_means(first).mean())
    assert diff.low < diff.mean < diff.high and diff.p_seeds == pytest.approx(0.1) and diff.n == 3 and diff.cases == 6
    assert verdict(diff) == "inconclusive"  # 3 runs against 3: p >= 0.1
