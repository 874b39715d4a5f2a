"""The verdict rule is calibrated: with no true difference, simulated reproductions get "supported" or "not
supported" in at most 5 % of repetitions (plus two Monte-Carlo standard errors); the old pair rule does not.

The sizes of the score model's parts come from issue 22's measurements (benchmarks.calibration.issue_components:
the per-seed Att - U-Net Dice differences of a fresh reproduction and the committed pair intervals);
`python -m benchmarks.calibration` prints the same rates with more repetitions (docs/reproduction.md).
"""
import math

import numpy as np
import pytest

from aunet.power import (
    Components,
    complete_block,
    detectable_difference,
    independent_detectable_difference,
    minimum_detectable_difference,
    pair_rule,
    seed_rule,
    simulate_scores,
    smallest_permutation_p,
    variance_components,
    verdict_rates,
)
from aunet.stats import ALPHA, independent_seed_difference, seed_difference, verdict
from benchmarks.calibration import issue_components

REPETITIONS = 400


def bound(repetitions: int) -> float:
    """5 % plus two Monte-Carlo standard errors of a rate of 5 % over `repetitions`."""
    return ALPHA + 2 * math.sqrt(ALPHA * (1 - ALPHA) / repetitions)


def false_verdicts(rule, components: Components, seeds: int, cases: int, repetitions: int = REPETITIONS) -> float:
    rates = verdict_rates(rule, components, seeds, cases, 0.0, repetitions, seed=1000 * seeds + cases)
    return rates["supported"] + rates["not supported"]


@pytest.mark.parametrize("cases", [6, 24])  # the stand-in's CT-150 test sets: 120/30 and 30/120
@pytest.mark.parametrize("seeds", [3, 6, 10])
def test_the_seed_rule_gives_at_most_5_percent_false_verdicts(seeds, cases):
    for share in (0.0, 0.5):
        assert false_verdicts(seed_rule, issue_components(share), seeds, cases) <= bound(REPETITIONS)


@pytest.mark.parametrize("components", [
    Components(0.02, 0.1, 0.1, 0.0, 0.0),  # all of the difference's spread between training runs
    Components(0.02, 0.1, 0.0, 0.0, 0.1),  # all within a run: cases x seeds noise
    Components(0.02, 0.1, 0.0, 0.15, 0.02),  # a few cases favour one model in every seed (p_seeds alone: ~15 %)
    Components(0.02, 0.1, 0.05, 0.05 * math.sqrt(6), 0.02),  # both parts alike (the interval alone: ~6.5 % unwidened)
], ids=["between runs", "residual", "case x model", "both"])
def test_the_seed_rule_stays_calibrated_when_one_part_dominates(components):
    for seeds, cases in ((6, 6), (10, 24)):
        assert false_verdicts(seed_rule, components, seeds, cases) <= bound(REPETITIONS)


def test_the_old_pair_rule_was_not_calibrated():
    # verdict(paired_difference) over 3 seeds x 24 cases: issue 22 measured 20-55 % false verdicts
    rate = false_verdicts(pair_rule, issue_components(), 3, 24, repetitions=100)
    assert rate > bound(100) and rate > 0.15


def test_power_at_the_papers_gain_grows_with_seeds_and_three_seeds_have_none():
    k = issue_components()
    power = {s: verdict_rates(seed_rule, k, s, 24, 0.026, REPETITIONS, seed=s)["supported"] for s in (3, 6, 10)}
    assert power[3] == 0 and power[6] <= power[10] and power[10] > bound(REPETITIONS)


def test_minimum_detectable_difference_is_where_the_rule_reaches_80_percent():
    k = issue_components()
    assert minimum_detectable_difference(k, 3, 24) == math.inf  # p >= 0.25
    assert minimum_detectable_difference(k, 5, 24) == math.inf  # p >= 0.0625
    six, ten = minimum_detectable_difference(k, 6, 24, repetitions=200), minimum_detectable_difference(k, 10, 24,
                                                                                                       repetitions=200)
    assert 0 < ten < six < math.inf
    power = verdict_rates(seed_rule, k, 10, 24, ten, 200, seed=99)["supported"]  # other draws than the search's
    assert abs(power - 0.8) < 0.1


def test_seed_rule_is_verdict_of_seed_difference():
    k = issue_components()
    ys = simulate_scores(k, 6, 6, 0.1, 40, seed=5)
    words = [seed_rule(y) for y in ys]
    assert words == [verdict(seed_difference(y[..., 1] - y[..., 0], resamples=1000)) for y in ys]
    assert {"supported", "inconclusive"} <= set(words)


def test_variance_components_recover_the_simulated_sizes():
    k = Components(seed=0.05, case=0.1, seed_model=0.06, case_model=0.04, residual=0.08)
    estimates = [variance_components(y) for y in simulate_scores(k, 12, 24, 0.02, 200, seed=2)]
    for name in ("seed", "case", "seed_model", "case_model", "residual"):
        mean_variance = np.mean([getattr(e, name) ** 2 for e in estimates])
        assert mean_variance == pytest.approx(getattr(k, name) ** 2, rel=0.2), name
    with pytest.raises(ValueError, match="seeds >= 2"):
        variance_components(np.zeros((1, 5, 2)))


def test_a_claims_design_is_measured_on_its_own_scores():
    k = issue_components()
    y = simulate_scores(k, 6, 8, 0.0, 1, seed=7)[0]
    assert detectable_difference(y, repetitions=100) == pytest.approx(
        minimum_detectable_difference(variance_components(y), 6, 8, repetitions=100))
    assert detectable_difference(y[:3]) == math.inf and detectable_difference(y[:, :4]) == math.inf  # p >= 0.125
    gaps = np.concatenate([y, np.full((6, 4, 2), np.nan)], axis=1)
    gaps[:3, 8:] = 0.5  # four more cases scored by seeds 0-2 only: 6 x 8 complete beats 3 x 12
    assert complete_block(gaps).shape == (6, 8, 2)
    assert math.isnan(detectable_difference(np.where(np.eye(6, 8, dtype=bool)[..., None], y, np.nan)))  # no block


def test_the_independent_design_detects_its_difference_80_percent_of_the_time():
    k = issue_components()
    first, second = simulate_scores(k, 6, 6, 0.0, 1, seed=4)[0], simulate_scores(k, 6, 24, 0.0, 1, seed=5)[0]
    assert smallest_permutation_p(3, 3) == pytest.approx(0.1) and smallest_permutation_p(6, 24) < ALPHA
    assert independent_detectable_difference(first[:3], second[:3]) == math.inf  # 3 runs against 3: p >= 0.1
    gain = independent_detectable_difference(first, second, repetitions=200)
    assert 0 < gain < math.inf
    k1, k2 = variance_components(first), variance_components(second)
    a, b = simulate_scores(k1, 6, 6, 0.0, 200, seed=77), simulate_scores(k2, 6, 24, gain, 200, seed=78)  # new draws
    words = [verdict(independent_seed_difference(x[..., 1] - x[..., 0], z[..., 1] - z[..., 0], resamples=1000))
             for x, z in zip(a, b)]
    assert abs(words.count("supported") / len(words) - 0.8) < 0.1
