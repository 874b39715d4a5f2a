"""Comparisons of two models, with the training run as the unit that replicates.

The model. A score y[s, c, m] (Dice, recall, ...) of model m on test case c, trained with seed s, is

    y[s, c, m] = mu_m + seed_s + case_c + (seed x model)[s, m] + (case x model)[c, m] + e[s, c, m]

Both models of a seed are trained with that seed and every seed scores the same test cases (crossed),
so the Attention U-Net - U-Net difference of one case in one seed is

    d[s, c] = y[s, c, att] - y[s, c, unet] = delta + a_s + b_c + e'[s, c]

(seed_s and case_c cancel). delta is the architecture's effect; a_s, the seed x model part, is how
differently the two models' training runs landed with seed s; b_c is a case one model suits better.
Each seed is one replication of the comparison (train both again: another a_s); the cases of one seed
are repeated measures of that pair of runs, not replications. So `seed_difference` works on the
per-seed mean differences m_s = mean_c d[s, c]:

    mean            mean of the m_s (each training run weighs the same)
    95 % interval   percentile bootstrap that resamples seeds and, crossed with them, test cases
                    (two-way: the spread between runs and the spread between cases both count), the
                    bootstrap means' spread widened by sqrt(n / (n - 1)), n the fewer of seeds and cases
                    (a bootstrap of n draws underestimates a mean's variance by that factor)
    p_seeds         exact two-sided sign-flip test: under "no effect" each m_s is as likely to be
                    -m_s, so p is the share of the 2^S sign patterns whose |mean| reaches the observed one.
                    With S seeds the smallest p is 2 / 2^S: 0.25 for 3 seeds, 0.031 for 6.
    p_cases         the same test on the per-case means (over seeds): it guards against b_c, a few cases
                    that favour one model in every seed, which p_seeds cannot see (they shift every m_s alike)
    p               max(p_seeds, p_cases): the claim must hold across training runs and across cases

Scores come in as maps {(seed, case): score} (aunet.records.Column.scores) through `paired_by_seed`;
a case key may be anything hashable, e.g. (experiment, case) when a claim pools experiments: the seed
stays the unit (each seed's runs of every experiment are one replication), cases not scored by a seed
are NaN and skipped. `independent_seed_difference` compares two groups of runs that share no training
(claim 3: the gain at 30/120 against the gain at 120/30), with permutation tests of the groups' per-seed
and per-case means in place of the sign flips.

`verdict` then says "supported" or "not supported" only when both the interval and p agree, so with
fewer than 6 seeds (or 6 cases) it always says "inconclusive". tests/test_calibration.py simulates the
model with no effect and checks that this rule says otherwise in at most 5 % of repetitions (aunet.power).

Many tests at once (a study's conditions x metrics) make some small p values by chance: `holm` adjusts a
family of p values (Holm-Bonferroni, which controls the chance of any false "helps" or "hurts" in the
family). `rank_correlation` (Spearman) says whether two per-run numbers rise together, e.g. a gate's focus
on the pancreas and its Dice gain.
"""
from __future__ import annotations

import functools
import itertools
import math
from dataclasses import asdict, dataclass
from typing import Hashable, Mapping, Sequence

import numpy as np
from scipy import stats as scipy_stats

BOOTSTRAP = 10_000  # resamples
CONFIDENCE = 0.95
BOOTSTRAP_SEED = 0  # fixed: the same scores always give the same interval
ALPHA = 0.05


def _interval(samples: np.ndarray) -> tuple[float, float]:
    tail = (1 - CONFIDENCE) / 2 * 100
    low, high = np.percentile(samples, [tail, 100 - tail])
    return float(low), float(high)


def verdict(diff: SeedDifference) -> str:
    """'supported' (interval above zero and p < 0.05), 'not supported' (interval below zero and p < 0.05),
    else 'inconclusive' (the data cannot tell at this budget); 'not run' without a seed."""
    if diff.n == 0 or math.isnan(diff.mean):
        return "not run"
    if diff.p < ALPHA and diff.low > 0:
        return "supported"
    if diff.p < ALPHA and diff.high < 0:
        return "not supported"
    return "inconclusive"


def holm(ps: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p values of one family of tests, in the given order (NaN: not tested, left out)."""
    order = sorted((p, i) for i, p in enumerate(ps) if not math.isnan(p))
    m, out, running = len(order), [math.nan] * len(ps), 0.0
    for rank, (p, i) in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p))  # adjusted p values never decrease with rank
        out[i] = running
    return out


@dataclass(frozen=True)
class Correlation:
    """Spearman's rank correlation of n (x, y) points and its two-sided p."""

    rho: float
    p: float
    n: int


def rank_correlation(x: Sequence[float], y: Sequence[float]) -> Correlation:
    """Spearman's rho of the points where both x and y are numbers (scipy.stats.spearmanr); NaN below 3 points."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"rank_correlation needs two lists of one length, got {x.shape} and {y.shape}")
    keep = ~(np.isnan(x) | np.isnan(y))
    x, y = x[keep], y[keep]
    if len(x) < 3 or np.all(x == x[0]) or np.all(y == y[0]):
        return Correlation(math.nan, math.nan, int(len(x)))
    r = scipy_stats.spearmanr(x, y)
    return Correlation(float(r.statistic), float(r.pvalue), int(len(x)))


# --- the training run as the unit ---------------------------------------------------------------------
EXACT_LIMIT = 2 ** 14  # permutation tests enumerate up to this many patterns; beyond, RANDOM_PATTERNS drawn
RANDOM_PATTERNS = 10_000


@dataclass(frozen=True)
class SeedDifference:
    """Att - U-Net with the training run as the unit: per-seed means, seed x case bootstrap, permutation p."""

    mean: float  # mean of the per-seed mean differences
    low: float  # two-way (seed x case) percentile bootstrap interval
    high: float
    p: float  # max(p_seeds, p_cases): the verdict's p
    n: int  # seeds: the replications
    cases: int  # test cases scored (the repeated measures of each seed)
    per_seed: tuple[float, ...]  # mean difference of each seed, in seed order (empty for independent groups)
    p_seeds: float  # exact two-sided sign-flip test on the per-seed means (independent: permutation of groups)
    p_cases: float  # the same on the per-case means (over seeds): guards against a few cases that favour one model
    test: str  # "sign-flip" or "permutation"

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


Scores = Mapping[tuple[Hashable, Hashable], float]  # {(seed, case): score}; a case may be (experiment, case)


def score_matrix(a: Scores, b: Scores) -> tuple[list[Hashable], list[Hashable], np.ndarray]:
    """(seeds, cases, y) with y[s, c] = (a, b) for the (seed, case) keys both score; NaN where either lacks it."""
    keys = [k for k in a if k in b]
    seeds, cases = sorted({k[0] for k in keys}), sorted({k[1] for k in keys})
    row, col = {s: i for i, s in enumerate(seeds)}, {c: j for j, c in enumerate(cases)}
    y = np.full((len(seeds), len(cases), 2), math.nan)  # (S, C, 2: a, b)
    for s, c in keys:
        y[row[s], col[c]] = float(a[s, c]), float(b[s, c])
    return seeds, cases, y


def difference_matrix(a: Scores, b: Scores) -> tuple[list[Hashable], list[Hashable], np.ndarray]:
    """(seeds, cases, d) with d[s, c] = b - a for the (seed, case) keys both score; NaN where either lacks it."""
    seeds, cases, y = score_matrix(a, b)
    return seeds, cases, y[..., 1] - y[..., 0]


def seed_means(a: Scores, b: Scores) -> dict[Hashable, float]:
    """{seed: mean of b - a over the cases that seed scored}, seeds without a score left out."""
    seeds, _, d = difference_matrix(a, b)
    scored = [s for s, row in zip(seeds, d) if not np.isnan(row).all()]
    return dict(zip(scored, (float(m) for m in per_seed_means(d))))


def _scored_means(d: np.ndarray, axis: int) -> np.ndarray:
    d = np.asarray(d, float)
    scored = ~np.isnan(d)
    sums, counts = np.where(scored, d, 0.0).sum(axis=axis), scored.sum(axis=axis)
    return sums[counts > 0] / counts[counts > 0]


def per_seed_means(d: np.ndarray) -> np.ndarray:
    """Mean over the scored cases of each seed's row of d (seeds, cases); seeds with none left out."""
    return _scored_means(d, axis=1)


def per_case_means(d: np.ndarray) -> np.ndarray:
    """Mean over the seeds that scored it of each case's column of d (seeds, cases); cases with none left out."""
    return _scored_means(d, axis=0)


@functools.lru_cache(maxsize=64)
def sign_patterns(n: int) -> np.ndarray:
    """(patterns, n) of +-1: all 2^n when few enough, else RANDOM_PATTERNS drawn (fixed seed); row 0 all +1."""
    if 2 ** n <= EXACT_LIMIT:
        return 1.0 - 2 * ((np.arange(2 ** n)[:, None] >> np.arange(n)) & 1)
    signs = np.random.default_rng(BOOTSTRAP_SEED).choice([-1.0, 1.0], size=(RANDOM_PATTERNS, n))
    signs[0] = 1.0  # the observed pattern counts once (a valid Monte-Carlo p)
    return signs


def share_at_least(stats: np.ndarray, observed: float | np.ndarray, axis: int | None = None) -> float | np.ndarray:
    """Share of |stats| >= |observed| (along `axis`), ties counted: a permutation test's p."""
    return np.mean(np.abs(stats) >= np.abs(observed) * (1 - 1e-9) - 1e-12, axis=axis)  # tolerance: float rounding


def sign_flip_p(means: Sequence[float]) -> float:
    """Two-sided sign-flip p of per-unit means: share of the 2^S sign patterns with |mean| >= observed.
    Exact up to 2^14 patterns; the smallest p is 2 / 2^S (0.25 for 3 seeds, 0.031 for 6)."""
    m = np.asarray(means, float)
    if m.size == 0:
        return math.nan
    return float(share_at_least(sign_patterns(m.size) @ m / m.size, m.mean()))


@functools.lru_cache(maxsize=64)
def group_splits(n: int, k: int) -> np.ndarray:
    """(patterns, n) booleans: which of n pooled values form the second group of k; row 0 the observed split."""
    if math.comb(n, k) <= EXACT_LIMIT:
        picks = np.array(list(itertools.combinations(range(n), k)), dtype=int).reshape(-1, k)[::-1]
    else:
        rng = np.random.default_rng(BOOTSTRAP_SEED)
        picks = rng.permuted(np.tile(np.arange(n), (RANDOM_PATTERNS, 1)), axis=1)[:, :k]
        picks[0] = np.arange(n - k, n)
    member = np.zeros((len(picks), n), bool)
    np.put_along_axis(member, picks, True, axis=1)
    return member


def permutation_p(x: Sequence[float], y: Sequence[float]) -> float:
    """Two-sided permutation p of mean(y) - mean(x) over the splits of the pooled values (exact when few)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if x.size == 0 or y.size == 0:
        return math.nan
    pooled, member = np.concatenate([x, y]), group_splits(x.size + y.size, y.size)
    diffs = (member @ pooled) / y.size - (~member @ pooled) / x.size
    return float(share_at_least(diffs, y.mean() - x.mean()))


def _draw_counts(rng: np.random.Generator, resamples: int, n: int) -> np.ndarray:
    """(resamples, n): how often each of n items is drawn in each resample of n draws with replacement."""
    picks = rng.integers(n, size=(resamples, n)) + n * np.arange(resamples)[:, None]
    return np.bincount(picks.ravel(), minlength=resamples * n).reshape(resamples, n)


def seed_case_bootstrap(d: np.ndarray, resamples: int = BOOTSTRAP, seed: int = BOOTSTRAP_SEED) -> np.ndarray:
    """Bootstrap means of d (seeds, cases): seeds and cases resampled with replacement, crossed; NaN cells skipped.
    Each resample's mean is the mean over its drawn seeds of each seed's mean over the drawn cases it scored."""
    d = np.asarray(d, float)
    rng = np.random.default_rng(seed)
    w, v = _draw_counts(rng, resamples, d.shape[0]), _draw_counts(rng, resamples, d.shape[1])  # (B, S), (B, C)
    scored = ~np.isnan(d)
    with np.errstate(invalid="ignore", divide="ignore"):
        seed_means = (v @ np.where(scored, d, 0.0).T) / (v @ scored.T)  # (B, S): NaN where no drawn case is scored
        drawn = w * ~np.isnan(seed_means)
        return (drawn * np.nan_to_num(seed_means)).sum(axis=1) / drawn.sum(axis=1)  # (B,) NaN: nothing drawn


def _bootstrap_interval(boot: np.ndarray, centre: float, n: int) -> tuple[float, float]:
    """Percentile interval of bootstrap means, their spread about `centre` widened by sqrt(n / (n - 1)): the
    bootstrap variance of a mean of n draws is (n - 1) / n of the unbiased one (n: the fewer of seeds, cases)."""
    boot = boot[~np.isnan(boot)]
    if boot.size == 0:
        return math.nan, math.nan
    return _interval(centre + (boot - centre) * (math.sqrt(n / (n - 1)) if n > 1 else 1.0))


def seed_difference(d: np.ndarray, resamples: int = BOOTSTRAP, seed: int = BOOTSTRAP_SEED) -> SeedDifference:
    """Mean of the per-seed mean differences of d (seeds, cases), its seed x case bootstrap interval, sign-flip p."""
    d = np.asarray(d, float)
    if d.ndim != 2:
        raise ValueError(f"A seed-aware difference needs a (seeds, cases) array of differences, got shape {d.shape}")
    scored = ~np.isnan(d)
    d = d[scored.any(axis=1)][:, scored.any(axis=0)]  # seeds and cases with at least one score
    means = per_seed_means(d)
    if means.size == 0:
        return SeedDifference(math.nan, math.nan, math.nan, math.nan, 0, 0, (), math.nan, math.nan, "sign-flip")
    cases = per_case_means(d)
    boot = seed_case_bootstrap(d, resamples, seed)
    low, high = _bootstrap_interval(boot, means.mean(), min(means.size, cases.size))
    p_seeds, p_cases = sign_flip_p(means), sign_flip_p(cases)
    return SeedDifference(float(means.mean()), low, high, max(p_seeds, p_cases), int(means.size), int(cases.size),
                          tuple(float(x) for x in means), p_seeds, p_cases, "sign-flip")


def paired_by_seed(a: Scores, b: Scores) -> SeedDifference:
    """b - a from two {(seed, case): score} maps, the seed as the unit (seed_difference of difference_matrix)."""
    return seed_difference(difference_matrix(a, b)[2])


def independent_seed_difference(first: np.ndarray, second: np.ndarray, resamples: int = BOOTSTRAP,
                                seed: int = BOOTSTRAP_SEED) -> SeedDifference:
    """Mean gain of `second` minus that of `first`, two (seeds, cases) arrays of differences from independent runs:
    the difference of their two-way bootstraps, and permutation p values over the groups' per-seed means and
    per-case means."""
    first, second = np.asarray(first, float), np.asarray(second, float)
    x, y = per_seed_means(first), per_seed_means(second)
    if x.size == 0 or y.size == 0:
        return SeedDifference(math.nan, math.nan, math.nan, math.nan, 0, 0, (), math.nan, math.nan, "permutation")
    cx, cy = per_case_means(first), per_case_means(second)
    boot = seed_case_bootstrap(second, resamples, seed) - seed_case_bootstrap(first, resamples, seed + 1)
    low, high = _bootstrap_interval(boot, y.mean() - x.mean(), min(x.size, y.size, cx.size, cy.size))
    p_seeds, p_cases = permutation_p(x, y), permutation_p(cx, cy)
    return SeedDifference(float(y.mean() - x.mean()), low, high, max(p_seeds, p_cases), int(min(x.size, y.size)),
                          int(min(cx.size, cy.size)), (), p_seeds, p_cases, "permutation")
