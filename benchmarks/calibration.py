"""Is the verdict rule calibrated, and what can S seeds decide? (docs/reproduction.md, statistics section)

    python -m benchmarks.calibration [--runs results/runs] [--repetitions 2000] [--seeds 3,6,10]

Without --runs: the score model's sizes from issue 22's numbers (`issue_components`), for the stand-in's two
CT-150 test sets (6 and 24 cases). With --runs: the sizes measured from the per-case test scores of both
models of each CT-150 experiment (aunet.records reads them; aunet.power.variance_components estimates them),
per metric. Then, per number of seeds S, simulated reproductions give: the share of false verdicts
("supported" or "not supported" with no true difference) of the seed rule and of the old pair rule, the seed
rule's power at the paper's gain, and the smallest gain it detects with 80 % power.
"""
from __future__ import annotations

import argparse
import math

import numpy as np

from aunet.paper import gain
from aunet.power import (
    Components,
    minimum_detectable_difference,
    pair_rule,
    seed_rule,
    variance_components,
    verdict_rates,
)
from aunet.records import read_column
from aunet.stats import score_matrix

EXPERIMENTS = {"ct150_120_30": 6, "ct150_30_120": 24}  # the stand-in's test cases per experiment
METRICS = ("dice", "recall")
ISSUE_SEED_MEANS = (0.123, 0.071, -0.055)  # issue 22: per-seed Att - U-Net Dice, CT-150 120/30, another CPU
PAIR_SD = 0.15  # one (case, seed) Dice difference: the pair intervals of results/tables/table1_ct150.md at 7487c8c
#                 (n 18 [-0.076, +0.065] and n 72 [-0.028, +0.047], half-width 1.96 SD / sqrt(n): 0.153, 0.162)


def issue_components(case_share: float = 0.0) -> Components:
    """Sizes from issue 22's numbers: the seed x model variance from the per-seed means (ddof 1), the rest of a
    pair's variance within seeds, case_share of it as case x model. Seed and case main effects cancel in
    every difference; they are set to plausible Dice spreads only so that the scores look like scores."""
    between = float(np.var(ISSUE_SEED_MEANS, ddof=1))
    within = PAIR_SD ** 2 - between
    return Components(seed=0.03, case=0.12, seed_model=math.sqrt(between / 2),
                      case_model=math.sqrt(case_share * within / 2), residual=math.sqrt((1 - case_share) * within / 2))


def scores(runs: str, experiment: str, metric: str) -> np.ndarray:
    """y (seeds, cases, 2: U-Net, Att) over the seeds and cases both models scored."""
    unet, att = (read_column(runs, experiment, m) for m in ("unet", "attention_unet"))
    if not (unet.seeds and att.seeds):
        raise SystemExit(f"{runs}/{experiment}: both models need evaluated seeds")
    return score_matrix(unet.scores(metric), att.scores(metric))[2]


def describe(k: Components) -> str:
    return (f"SD seed {k.seed:.3f}, case {k.case:.3f}, seed x model {k.seed_model:.3f}, "
            f"case x model {k.case_model:.3f}, residual {k.residual:.3f}")


def report(k: Components, cases: int, gain: float, seeds: list[int], repetitions: int) -> None:
    """One line per S: false verdicts of both rules, power at `gain`, minimum detectable difference."""
    for s in seeds:
        false = 1 - verdict_rates(seed_rule, k, s, cases, 0.0, repetitions)["inconclusive"]
        old = 1 - verdict_rates(pair_rule, k, s, cases, 0.0, repetitions // 4)["inconclusive"]
        power = verdict_rates(seed_rule, k, s, cases, gain, repetitions)["supported"]
        mdd = minimum_detectable_difference(k, s, cases, repetitions=repetitions // 2)
        print(f"  S={s:2d} C={cases:2d}: false verdicts: seed rule {false:.3f} (of {repetitions}), old pair rule "
              f"{old:.3f} (of {repetitions // 4}); power at {gain:+.3f}: {power:.3f}; 80 % detectable: {mdd:.3f}",
              flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", default=None, help="a runs tree; without it, issue 22's sizes")
    p.add_argument("--repetitions", type=int, default=2000)
    p.add_argument("--seeds", default="3,6,10")
    args = p.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    for experiment, cases in EXPERIMENTS.items():
        if args.runs is None:
            for share in (0.0, 0.5):
                k = issue_components(share)
                print(f"{experiment} dice, issue 22's sizes, case x model share {share}: {describe(k)}")
                report(k, cases, gain(experiment, "dice"), seeds, args.repetitions)
            continue
        for metric in METRICS:
            y = scores(args.runs, experiment, metric)
            k = variance_components(y)
            per_seed = ", ".join(f"{m:+.3f}" for m in (y[..., 1] - y[..., 0]).mean(axis=1))
            print(f"{experiment} {metric}: {y.shape[0]} seeds x {y.shape[1]} cases; per-seed Att - U-Net {per_seed}; "
                  f"{describe(k)}")
            report(k, y.shape[1], gain(experiment, metric), seeds, args.repetitions)


if __name__ == "__main__":
    main()
