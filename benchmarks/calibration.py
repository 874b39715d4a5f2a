"""Is the verdict rule calibrated, and what can S seeds decide? (docs/reproduction.md, "Statistics: the run is the unit")

    python -m benchmarks.calibration --runs results/runs [--repetitions 2000] [--seeds 3,6,10]

Reads the per-case test scores of both models of the CT-150 experiments from a runs tree (aunet.tables),
estimates the score model's variance components per experiment and metric (aunet.power.variance_components),
then simulates reproductions of that size with S seeds and prints, per S: the share of false verdicts
("supported" or "not supported" with no true difference) of the seed rule and of the old pair rule, the
seed rule's power at the paper's gain, and the smallest gain it detects with 80 % power.
"""
from __future__ import annotations

import argparse

import numpy as np

from aunet.power import (Components, minimum_detectable_difference, pair_rule, seed_rule, variance_components,
                         verdict_rates)
from aunet.tables import PAPER, read_column

EXPERIMENTS = ("ct150_120_30", "ct150_30_120")
METRICS = ("dice", "recall")


def paper_gain(experiment: str, metric: str) -> float:
    """The paper's Att - U-Net difference of means (aunet.tables.PAPER)."""
    return PAPER[experiment, "attention_unet"][metric][0] - PAPER[experiment, "unet"][metric][0]


def scores(runs: str, experiment: str, metric: str) -> np.ndarray:
    """y (seeds, cases, 2: U-Net, Att) over the seeds and cases both models scored."""
    unet, att = (read_column(runs, experiment, m) for m in ("unet", "attention_unet"))
    if unet is None or att is None:
        raise SystemExit(f"{runs}/{experiment}: both models need evaluated seeds")
    keys = set(unet.cases) & set(att.cases)
    seeds, cases = sorted({s for s, _ in keys}), sorted({c for _, c in keys})
    return np.array([[[unet.cases[s, c][metric], att.cases[s, c][metric]] for c in cases] for s in seeds])


def report(k: Components, cases: int, gain: float, seeds: list[int], repetitions: int) -> None:
    """One line per S: false verdicts of both rules, power at `gain`, minimum detectable difference."""
    for s in seeds:
        false = 1 - verdict_rates(seed_rule, k, s, cases, 0.0, repetitions)["inconclusive"]
        old = 1 - verdict_rates(pair_rule, k, s, cases, 0.0, repetitions // 4)["inconclusive"]
        power = verdict_rates(seed_rule, k, s, cases, gain, repetitions)["supported"]
        mdd = minimum_detectable_difference(k, s, cases, repetitions=repetitions // 2)
        print(f"  S={s:2d} C={cases}: false verdicts seed rule {false:.3f} (n {repetitions}), "
              f"old pair rule {old:.3f} (n {repetitions // 4}); power at {gain:+.3f} {power:.3f}; "
              f"80 % detectable {mdd:.3f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", default="results/runs")
    p.add_argument("--repetitions", type=int, default=2000)
    p.add_argument("--seeds", default="3,6,10")
    args = p.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    for experiment in EXPERIMENTS:
        for metric in METRICS:
            gain = paper_gain(experiment, metric)
            y = scores(args.runs, experiment, metric)
            d = y[..., 1] - y[..., 0]
            k = variance_components(y)
            print(f"{experiment} {metric}: {y.shape[0]} seeds x {y.shape[1]} cases; per-seed Att - U-Net "
                  f"{', '.join(f'{m:+.3f}' for m in d.mean(axis=1))}; components (SD) seed {k.seed:.3f} "
                  f"case {k.case:.3f} seed x model {k.seed_model:.3f} case x model {k.case_model:.3f} "
                  f"residual {k.residual:.3f}")
            report(k, y.shape[1], gain, seeds, args.repetitions)


if __name__ == "__main__":
    main()
