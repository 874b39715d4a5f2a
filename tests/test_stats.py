"""aunet.stats beyond the paired rows (those are checked against scipy in test_tables): the Holm adjustment of
a family of tests and the rank correlation the study uses for focus against Dice gain."""
import math

import numpy as np
import pytest

from aunet.stats import holm, rank_correlation


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
