"""What a design of S seeds x C test cases can decide: simulate aunet.stats's score model and count verdicts.

The scores of one simulated reproduction follow the model in aunet.stats' docstring,

    y[s, c, m] = level + delta * [m = att] + seed_s + case_c + (seed x model)[s, m] + (case x model)[c, m] + e[s, c, m]

each random part normal with its own standard deviation (`Components`, in score units, not clipped to
[0, 1]: the rules see only differences). Every repetition draws new seeds and new cases. From these:

    variance_components             the five sizes estimated from one reproduction's scores (method of moments)
    seed_rule                       the verdict with the run as the unit (aunet.stats)
    pair_rule                       the rule it replaced, every case x seed pair counted as a replication
                                    (a bootstrap over pairs, a Wilcoxon signed-rank p): kept only to show
                                    how often it is wrong (tests/test_calibration.py, benchmarks.calibration)
    verdict_rates                   how often a rule says "supported", "not supported", "inconclusive"
                                    (with delta = 0 the first two are false verdicts: at most 5 % if calibrated)
    minimum_detectable_difference   the smallest delta that seed_rule calls "supported" in 80 % of repetitions;
                                    infinite where no sign pattern of S seeds (or C cases) can reach p < 0.05
    detectable_difference           the same for a claim's own scores (their sizes, their seeds and cases)
    independent_detectable_difference   the same for a difference of two groups' gains
                                    (aunet.stats.independent_seed_difference, claim 3)

Everything is drawn from fixed RNG seeds, so the same call gives the same numbers.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy import stats as scipy_stats

from aunet.stats import (
    ALPHA,
    BOOTSTRAP,
    BOOTSTRAP_SEED,
    SeedDifference,
    group_splits,
    independent_seed_difference,
    per_seed_means,
    seed_difference,
    share_at_least,
    sign_flip_p,
    sign_patterns,
    verdict,
)

SIM_RESAMPLES = 1000  # bootstrap resamples per simulated interval (the tables use aunet.stats.BOOTSTRAP)
POWER = 0.8
LEVEL = 0.5  # the simulated mean score (cancels in every difference)
VERDICTS = ("supported", "not supported", "inconclusive")


@dataclass(frozen=True)
class Components:
    """Standard deviations of the random parts of y[s, c, m], in score units (e.g. Dice)."""

    seed: float  # a training seed's shift, shared by both models of that seed
    case: float  # a case's difficulty, shared by every model and seed
    seed_model: float  # seed x model: where one model's training run with that seed lands (the replication noise)
    case_model: float  # case x model: a case one architecture suits better, the same in every seed
    residual: float  # seed x case x model

    def of_difference(self) -> tuple[float, float, float]:
        """Variances of d = y_att - y_unet's parts: between seeds, between cases, within (seed, case)."""
        return 2 * self.seed_model ** 2, 2 * self.case_model ** 2, 2 * self.residual ** 2


def _mean_squares(x: np.ndarray) -> tuple[float, float, float]:
    """Two-way ANOVA of x (rows, columns), one value a cell: mean squares of rows, columns and the residual."""
    rows, cols = x.shape
    grand, r, c = x.mean(), x.mean(axis=1), x.mean(axis=0)
    residual = x - r[:, None] - c[None, :] + grand
    return (cols * float(np.sum((r - grand) ** 2)) / (rows - 1), rows * float(np.sum((c - grand) ** 2)) / (cols - 1),
            float(np.sum(residual ** 2)) / ((rows - 1) * (cols - 1)))


def variance_components(y: np.ndarray) -> Components:
    """Method-of-moments sizes of the model's parts from scores y (seeds, cases, 2: U-Net, Att); negatives -> 0."""
    y = np.asarray(y, float)
    if y.ndim != 3 or y.shape[2] != 2 or min(y.shape[:2]) < 2 or np.isnan(y).any():
        raise ValueError(f"variance_components needs scores of shape (seeds >= 2, cases >= 2, 2) without NaN, "
                         f"got shape {y.shape}")
    seeds, cases = y.shape[:2]
    d_seed, d_case, d_res = _mean_squares(y[..., 1] - y[..., 0])  # E: 2 res^2 + C 2 sm^2, 2 res^2 + S 2 cm^2, 2 res^2
    t_seed, t_case, t_res = _mean_squares(y.mean(axis=2))  # E: res^2/2 + C (seed^2 + sm^2/2), ... (case), res^2/2
    seed_model2, case_model2 = max(0.0, (d_seed - d_res) / cases / 2), max(0.0, (d_case - d_res) / seeds / 2)
    seed2 = max(0.0, (t_seed - t_res) / cases - seed_model2 / 2)
    case2 = max(0.0, (t_case - t_res) / seeds - case_model2 / 2)
    return Components(*(math.sqrt(v) for v in (seed2, case2, seed_model2, case_model2, d_res / 2)))


def simulate_scores(components: Components, seeds: int, cases: int, difference: float = 0.0,
                    repetitions: int = 1, seed: int = 0) -> np.ndarray:
    """Scores of `repetitions` reproductions: (repetitions, seeds, cases, 2: U-Net, Att), true gain `difference`."""
    rng, k = np.random.default_rng(seed), components
    shape = (repetitions, seeds, cases, 2)
    return (LEVEL + np.array([0.0, difference])
            + rng.normal(0, k.seed, (repetitions, seeds, 1, 1)) + rng.normal(0, k.case, (repetitions, 1, cases, 1))
            + rng.normal(0, k.seed_model, (repetitions, seeds, 1, 2))
            + rng.normal(0, k.case_model, (repetitions, 1, cases, 2)) + rng.normal(0, k.residual, shape))


def seed_rule(y: np.ndarray) -> str:
    """The calibrated rule on one reproduction's scores (seeds, cases, 2): verdict(seed_difference(Att - U-Net))."""
    d = y[..., 1] - y[..., 0]
    if sign_flip_p(per_seed_means(d)) >= ALPHA:
        return "inconclusive"  # what verdict says whatever the rest: the case test and bootstrap are skipped
    return verdict(seed_difference(d, resamples=SIM_RESAMPLES))


def pair_rule(y: np.ndarray) -> str:
    """The replaced rule: every (seed, case) pair a replication; bootstrap over pairs, Wilcoxon p, verdict's words."""
    d = (y[..., 1] - y[..., 0]).ravel()
    d = d[~np.isnan(d)]
    boot = d[np.random.default_rng(BOOTSTRAP_SEED).integers(d.size, size=(BOOTSTRAP, d.size))].mean(axis=1)
    low, high = np.percentile(boot, [2.5, 97.5])
    p = 1.0 if np.all(d == 0) else float(scipy_stats.wilcoxon(d).pvalue)
    return verdict(SeedDifference(float(d.mean()), float(low), float(high), p, d.size, d.size, (), p, p, "wilcoxon"))


def verdict_rates(rule: Callable[[np.ndarray], str], components: Components, seeds: int, cases: int,
                  difference: float = 0.0, repetitions: int = 400, seed: int = 0) -> dict[str, float]:
    """Share of simulated reproductions for which `rule` gives each verdict."""
    words = [rule(y) for y in simulate_scores(components, seeds, cases, difference, repetitions, seed)]
    return {w: words.count(w) / len(words) for w in VERDICTS}


def shifted_sign_flip_p(means: np.ndarray) -> Callable[[float], np.ndarray]:
    """p(delta): sign_flip_p of every row of means (rows, n) plus delta, the pattern products computed once."""
    signs = sign_patterns(means.shape[1])  # (P, n), row 0 all +1: the observed mean
    base, shift = means @ signs.T / means.shape[1], signs.mean(axis=1)  # (rows, P), (P,)

    def p(delta: float) -> np.ndarray:
        stats = base + delta * shift
        return share_at_least(stats, stats[:, :1], axis=1)
    return p


def reachable(seeds: int, cases: int) -> bool:
    """Whether p < 0.05 is possible: the all-positive sign pattern and its mirror give p >= 2 / 2^S (or 2 / 2^C)."""
    return max(2 / 2 ** seeds, 2 / 2 ** cases) < ALPHA


def minimum_detectable_difference(components: Components, seeds: int, cases: int, power: float = POWER,
                                  repetitions: int = 400, seed: int = 0) -> float:
    """Smallest true gain that seed_rule calls "supported" in `power` of the repetitions (inf: none can be)."""
    if not reachable(seeds, cases):
        return math.inf
    d = np.diff(simulate_scores(components, seeds, cases, 0.0, repetitions, seed), axis=3)[..., 0]  # (R, S, C)
    # a gain delta shifts every d, so every bootstrap mean and the interval, by delta: those at 0 serve for all
    lows = np.array([seed_difference(x, resamples=SIM_RESAMPLES).low for x in d])
    p_seeds, p_cases = shifted_sign_flip_p(d.mean(axis=2)), shifted_sign_flip_p(d.mean(axis=1))

    def detected(delta: float) -> float:
        return float(np.mean((lows + delta > 0) & (np.maximum(p_seeds(delta), p_cases(delta)) < ALPHA)))

    return _search(detected, power, _standard_error(components, seeds, cases))


def _standard_error(components: Components, seeds: int, cases: int) -> float:
    """The standard error of the mean difference in a design of seeds x cases (a scale to start the search at)."""
    between, case, within = components.of_difference()
    return math.sqrt(between / seeds + case / cases + within / (seeds * cases))


def _search(detected: Callable[[float], float], power: float, start: float) -> float:
    """The smallest delta with detected(delta) >= power: doubling from `start`, then bisection (inf past 1000)."""
    high = start or 1e-6
    while detected(high) < power:
        high *= 2
        if high > 1e3:
            return math.inf
    low = 0.0
    for _ in range(24):  # bisection: the rate rises with delta (the same draws for every delta)
        mid = (low + high) / 2
        low, high = (low, mid) if detected(mid) >= power else (mid, high)
    return high


# --- a claim's own design ---------------------------------------------------------------------------
def complete_block(y: np.ndarray) -> np.ndarray:
    """The larger of two blocks of y (seeds, cases, 2) without NaN: the cases every seed scored, or the seeds that
    scored every case (empty when neither has 2 seeds and 2 cases): where variance_components can measure."""
    y = np.asarray(y, float)
    ok = ~np.isnan(y).any(axis=2)  # (S, C)
    blocks = [y[:, ok.all(axis=0)], y[ok.all(axis=1)]]
    blocks = [b for b in blocks if min(b.shape[:2]) >= 2]
    return max(blocks, key=lambda b: b.shape[0] * b.shape[1]) if blocks else np.empty((0, 0, 2))


def _design(y: np.ndarray) -> tuple[int, int]:
    """(seeds, cases) with at least one score of both models: the units the seed rule counts."""
    scored = ~np.isnan(np.asarray(y, float)).any(axis=2)
    return int(scored.any(axis=1).sum()), int(scored.any(axis=0).sum())


def detectable_difference(y: np.ndarray, power: float = POWER, repetitions: int = 400, seed: int = 0) -> float:
    """The smallest gain seed_rule detects with `power` in a design of y's seeds and cases (y: seeds, cases, 2 of
    model a then b, NaN where not scored), the model's sizes measured on y's complete_block.
    inf: the design cannot reach p < 0.05; NaN: its sizes cannot be measured (fewer than 2 x 2 complete scores)."""
    seeds, cases = _design(y)
    if not reachable(seeds, cases):
        return math.inf
    block = complete_block(y)
    if block.size == 0:
        return math.nan
    return minimum_detectable_difference(variance_components(block), seeds, cases, power, repetitions, seed)


def smallest_permutation_p(first: int, second: int) -> float:
    """The smallest two-sided p of a permutation test of two groups of these sizes (one split, or it and its mirror)."""
    splits = math.comb(first + second, second)
    return min(1.0, (2 if first == second else 1) / splits)


def shifted_permutation_p(x: np.ndarray, y: np.ndarray) -> Callable[[float], np.ndarray]:
    """p(delta): aunet.stats.permutation_p of every row pair (x[r], y[r] + delta), the split sums computed once."""
    first, second = x.shape[1], y.shape[1]
    member = group_splits(first + second, second).astype(float)  # (P, n), row 0 the observed split
    pooled = np.concatenate([x, y], axis=1)  # (rows, n)
    base = pooled @ member.T / second - pooled @ (1 - member).T / first  # (rows, P)
    shift = member[:, first:].sum(axis=1) / second - (1 - member)[:, first:].sum(axis=1) / first  # (P,)

    def p(delta: float) -> np.ndarray:
        stats = base + delta * shift
        return share_at_least(stats, stats[:, :1], axis=1)
    return p


def independent_detectable_difference(first: np.ndarray, second: np.ndarray, power: float = POWER,
                                      repetitions: int = 400, seed: int = 0) -> float:
    """The smallest difference of gains (second's minus first's) that verdict(independent_seed_difference) calls
    "supported" with `power`; first, second: scores (seeds, cases, 2) of two groups of runs. inf and NaN as in
    detectable_difference."""
    (s1, c1), (s2, c2) = _design(first), _design(second)
    if max(smallest_permutation_p(s1, s2), smallest_permutation_p(c1, c2)) >= ALPHA:
        return math.inf
    blocks = complete_block(first), complete_block(second)
    if min(b.size for b in blocks) == 0:
        return math.nan
    k1, k2 = (variance_components(b) for b in blocks)
    d1, d2 = (np.diff(simulate_scores(k, s, c, 0.0, repetitions, seed + i), axis=3)[..., 0]  # (R, S, C)
              for i, (k, s, c) in enumerate(((k1, s1, c1), (k2, s2, c2))))
    # a gain delta shifts every bootstrap difference, so the interval, by delta: those at 0 serve for all
    lows = np.array([independent_seed_difference(a, b, resamples=SIM_RESAMPLES).low for a, b in zip(d1, d2)])
    p_seeds = shifted_permutation_p(d1.mean(axis=2), d2.mean(axis=2))
    p_cases = shifted_permutation_p(d1.mean(axis=1), d2.mean(axis=1))

    def detected(delta: float) -> float:
        return float(np.mean((lows + delta > 0) & (np.maximum(p_seeds(delta), p_cases(delta)) < ALPHA)))
    return _search(detected, power, math.hypot(_standard_error(k1, s1, c1), _standard_error(k2, s2, c2)))
