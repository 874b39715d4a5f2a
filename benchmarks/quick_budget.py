"""Does the quick profile's budget let the small-data U-Net find the pancreas? (docs/reproduction.md)

    python -m benchmarks.quick_budget --foreground-fractions 0.5,0.8,1.0 --epochs 20 [--seed 0]

Trains the U-Net of the CT-150 stand-in's 30/120 setting (the run that collapsed first) once per
foreground fraction, one thread each, then scores it on its test cases; prints the epoch at which the
validation case first showed pancreas and the test pancreas Dice and recall.
"""
from __future__ import annotations

import argparse
import tempfile

import torch

from aunet.config import Config
from aunet.evaluate import evaluate_run
from aunet.experiments import experiment_config
from aunet.train import train


def one(fraction: float, epochs: int, seed: int, data_dir: str, runs: str) -> tuple[int | None, tuple, tuple]:
    """(first epoch with validation pancreas Dice > 0, test Dice (mean, std), test recall (mean, std))."""
    base = Config.from_profile("quick", epochs=epochs, foreground_fraction=fraction)
    cfg = experiment_config("ct150_30_120", "unet", base, f"{runs}/fg{fraction}", {"ct150": {"data_dir": data_dir}},
                            seed=seed)
    history = train(cfg, resume="auto", progress=False).history
    first = next((int(r["epoch"]) for r in history if r["val_pancreas_dice"] > 0), None)
    _, summary = evaluate_run(cfg.out_dir, progress=False)
    return first, summary["pancreas_dice"], summary["pancreas_recall"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--foreground-fractions", default="0.5,0.8,1.0")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-dir", default="data/phantom")
    args = p.parse_args()
    torch.set_num_threads(1)
    print("| foreground_fraction | epochs | first epoch with pancreas (validation) | test Dice | test recall |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as runs:
        for fraction in (float(f) for f in args.foreground_fractions.split(",")):
            first, dice, recall = one(fraction, args.epochs, args.seed, args.data_dir, runs)
            print(f"| {fraction:g} | {args.epochs} | {first} | {dice[0]:.3f} ± {dice[1]:.3f} | {recall[0]:.3f} |",
                  flush=True)


if __name__ == "__main__":
    main()
