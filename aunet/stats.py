"""Paired comparisons of two models: the difference, a bootstrap interval, and a signed-rank test.

Both models of an experiment are scored on the same held-out cases with the same seeds, so the
question "does attention help" is asked pair by pair: for each (case, seed), Attention U-Net's
score minus U-Net's. Three numbers summarise the pairs:

    mean difference     the average gain (negative: attention did worse)
    95 % interval       percentile bootstrap over the pairs (resampled with replacement, fixed RNG seed,
                        so the same pairs always give the same interval)
    Wilcoxon p          two-sided paired signed-rank test (scipy.stats.wilcoxon): are the differences
                        centred on zero? Small p: they are not.

A claim needs both: an interval that excludes zero on the claimed side. One seed and a handful of
cases give wide intervals, and the verdict then says "inconclusive", not "supported".

Comparing two *independent* sets of pairs (the gain with 30 training scans against the gain with 120,
scored on different test cases) uses `independent_difference`: a bootstrap of the difference of means
and a two-sided Mann-Whitney U test.

Many tests at once (a study's conditions x metrics) make some small p values by chance: `holm` adjusts a
family of p values (Holm-Bonferroni, which controls the chance of any false "helps" or "hurts" in the
family). `rank_correlation` (Spearman) says whether two per-run numbers rise together, e.g. a gate's focus
on the pancreas and its Dice gain.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np
from scipy import stats as scipy_stats

BOOTSTRAP = 10_000  # resamples
CONFIDENCE = 0.95
BOOTSTRAP_SEED = 0  # fixed: the same pairs always give the same interval
ALPHA = 0.05


@dataclass(frozen=True)
class Difference:
    """A difference between two sets of scores, with its uncertainty."""

    mean: float  # mean difference (b - a for paired_difference)
    low: float  # bootstrap interval
    high: float
    p: float  # Wilcoxon signed-rank (paired) or Mann-Whitney U (independent), two-sided
    n: int  # pairs (or the smaller sample)
    test: str  # "wilcoxon" or "mann-whitney"

    def to_dict(self) -> dict[str, float | int | str]:
        return asdict(self)


def _bootstrap_means(values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    picks = rng.integers(len(values), size=(BOOTSTRAP, len(values)))
    return values[picks].mean(axis=1)


def _interval(samples: np.ndarray) -> tuple[float, float]:
    tail = (1 - CONFIDENCE) / 2 * 100
    low, high = np.percentile(samples, [tail, 100 - tail])
    return float(low), float(high)


def paired_difference(a: Sequence[float], b: Sequence[float]) -> Difference:
    """b - a over matched pairs: mean, 95 % bootstrap interval, Wilcoxon signed-rank p."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired_difference needs two score lists of one length, got {a.shape} and {b.shape}")
    keep = ~(np.isnan(a) | np.isnan(b))
    d = b[keep] - a[keep]
    if len(d) == 0:
        return Difference(math.nan, math.nan, math.nan, math.nan, 0, "wilcoxon")
    low, high = _interval(_bootstrap_means(d, np.random.default_rng(BOOTSTRAP_SEED)))
    if np.all(d == 0):
        p = 1.0  # no pair differs: no evidence of a difference
    else:
        p = float(scipy_stats.wilcoxon(d, alternative="two-sided").pvalue)
    return Difference(float(d.mean()), low, high, p, int(len(d)), "wilcoxon")


def independent_difference(x: Sequence[float], y: Sequence[float]) -> Difference:
    """mean(y) - mean(x) for two independent samples: bootstrap interval, Mann-Whitney U p."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    x, y = x[~np.isnan(x)], y[~np.isnan(y)]
    if len(x) == 0 or len(y) == 0:
        return Difference(math.nan, math.nan, math.nan, math.nan, 0, "mann-whitney")
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    low, high = _interval(_bootstrap_means(y, rng) - _bootstrap_means(x, rng))
    p = float(scipy_stats.mannwhitneyu(y, x, alternative="two-sided").pvalue)
    return Difference(float(y.mean() - x.mean()), low, high, p, int(min(len(x), len(y))), "mann-whitney")


def verdict(diff: Difference) -> str:
    """'supported' (interval above zero and p < 0.05), 'not supported' (interval below zero and p < 0.05),
    else 'inconclusive' (the data cannot tell at this budget)."""
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
