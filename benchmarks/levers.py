"""The training recipe's levers, each measured on its own: how many steps to a plateau, to Dice, to focus.

    python -m benchmarks.levers [--epochs 40] [--workers 2] [--levers baseline,adam_poly,...] [--models attention_unet]

Each lever is the quick profile as it was before them (BEFORE) with one change (LEVERS), trained for the
same number of epochs on the CT-150 phantom stand-in (120/30 split, seed 0) in aunet's pool of one-thread
processes; the records go to results/runs/levers/<lever>/<model>/seed_<k>/ (aunet.records' layout) and are
what the report reads:

    python -m benchmarks.levers --report       # the table of docs/reproduction.md, from the records

A run already complete is not trained again (aunet.experiments), so the report can be rebuilt at once.
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

from aunet.config import Config
from aunet.convergence import COLUMN, history_convergence, moving_mean
from aunet.data.splits import PAPER_SPLITS
from aunet.experiments import DEFAULT_DATASETS, Experiment, run_experiments, write_missing_phantoms
from aunet.records import run_path
from aunet.run import RunFolder
from aunet.text import Table, number, replace_marked, signed

ROOT = Path(__file__).resolve().parents[1]
RUNS = ROOT / "results" / "runs" / "levers"
DOC = ROOT / "docs" / "reproduction.md"
FIGURE = ROOT / "docs" / "levers.png"

# the quick profile as it was when the levers were measured (20 epochs then); each lever changes one thing
BEFORE = dict(lr=2e-3, lr_schedule="step", lr_step=15, val_every=1)
# "what" is the table's text
LEVERS: dict[str, tuple[str, dict]] = {
    "baseline": ("the quick profile before: Adam 2e-3, halved every 15 epochs", {}),
    "adam_constant": ("Adam 2e-3, never lowered", {"lr_step": 10_000}),
    "adam_poly": ("Adam 2e-3, poly schedule to 0", {"lr_schedule": "poly"}),
    "adam_poly_4e-3": ("Adam 4e-3, poly schedule to 0", {"lr_schedule": "poly", "lr": 4e-3}),
    "sgd_poly": ("SGD, Nesterov 0.99, 1e-2, poly (nnU-Net)",
                 {"optimizer": "sgd", "lr": 1e-2, "lr_schedule": "poly", "weight_decay": 3e-5}),
    "base_16_poly": ("Adam 2e-3, poly; 16 base filters (the paper's widths)",
                     {"lr_schedule": "poly", "base_filters": 16}),
    "batch_4_poly": ("Adam 2e-3, poly; batch 4", {"lr_schedule": "poly", "batch_size": 4}),
}


def experiments(levers: list[str]) -> dict[str, Experiment]:
    split = PAPER_SPLITS["120_30"]
    return {name: Experiment(name, "ct150", "ct150", LEVERS[name][0], split.test_fraction, split.val_fraction,
                             overrides=LEVERS[name][1]) for name in levers}


def base_config(epochs: int) -> Config:
    snapshots = tuple(sorted({1, 2, 5, 10, *range(20, epochs + 1, 10), epochs}))
    return Config.from_profile("quick", **BEFORE, epochs=epochs, snapshot_epochs=snapshots, data_dir="data/phantom")


def focus_by_epoch(run: RunFolder) -> dict[int, float]:
    """The level-2 focus (aunet.viz.plots.attention_focus) of every snapshot of the run."""
    from aunet.viz.plots import attention_focus

    return {e: attention_focus(s["level2"], s["label"]) for e, s in sorted(run.read_snapshots().items())}


def focus_at_end(run: RunFolder) -> float:
    found = focus_by_epoch(run)
    return found[max(found)] if found else math.nan


def figure(levers: list[str], model: str = "attention_unet"):
    """Steps to Dice and steps to focus: each lever's validation pancreas Dice (5-epoch mean) and level-2 focus."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (dice_ax, focus_ax) = plt.subplots(1, 2, figsize=(11, 3.8))
    for name in levers:
        run = RunFolder(run_path(RUNS, name, model, 0))
        if not run.has_config():
            continue
        history = run.read_history()
        steps = run.read_config().iterations_per_epoch
        curve = moving_mean([r[COLUMN] for r in history])
        line, = dice_ax.plot(steps * np.arange(5, len(history) + 1), curve, label=name)
        focus = focus_by_epoch(run)
        focus_ax.plot([steps * e for e in focus], list(focus.values()), marker="o", color=line.get_color(), label=name)
    dice_ax.set(xlabel="optimiser steps", ylabel="validation pancreas Dice (5-epoch mean)", ylim=(0, None))
    focus_ax.set(xlabel="optimiser steps", ylabel="level-2 focus (pancreas / elsewhere)")
    focus_ax.axhline(1.0, color="grey", lw=0.8, ls="--")
    for ax in (dice_ax, focus_ax):
        ax.grid(alpha=0.3)
    dice_ax.legend(fontsize=8)
    fig.suptitle(f"The recipe's levers ({model}, CT-150 stand-in 120/30, seed 0)")
    fig.tight_layout()
    return fig


def first_epoch_at(curve: np.ndarray, level: float) -> float:
    hit = np.flatnonzero(curve >= level)
    return float(hit[0] + 1) if hit.size else math.nan


def report(levers: list[str], models: list[str]) -> Table:
    rows = []
    for name in levers:
        for model in models:
            run = RunFolder(run_path(RUNS, name, model, 0))
            if not run.has_config():
                continue
            history = run.read_history()
            curve = np.array([r[COLUMN] for r in history], dtype=float)
            smooth = moving_mean(curve[~np.isnan(curve)])  # aunet.convergence's trailing 5-epoch mean
            test = run.read_evaluation_cases() if run.is_complete(len(history)) else []
            dice = float(np.mean([r["pancreas_dice"] for r in test])) if test else math.nan
            c = history_convergence(history)
            reached = first_epoch_at(smooth, 0.5) + 4  # the mean's last epoch
            rows.append([name, model, LEVERS[name][0], str(len(history)),
                         "never" if math.isnan(reached) else str(int(reached)),
                         number(smooth[-1] if smooth.size else math.nan), signed(c.rise),
                         "yes" if c.converged else "no", number(dice),
                         number(focus_at_end(run), 2) if model == "attention_unet" else ""])
    return Table("levers", "The recipe's levers, one at a time (CT-150 stand-in 120/30, seed 0)",
                 ["lever", "model", "recipe", "epochs", "epoch the 5-epoch mean reaches 0.5",
                  "val Dice at end (5-epoch mean)", "rise over last quarter", "converged", "test pancreas Dice",
                  "level-2 focus at end"], rows,
                 ["Validation pancreas Dice on whole validation volumes after every epoch (25 steps); "
                  "`python -m benchmarks.levers --report` rebuilds this table from results/runs/levers/ "
                  "(times: docs/benchmarks.md; these runs shared the CPU)."])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--levers", default=",".join(LEVERS))
    parser.add_argument("--models", default="attention_unet")
    parser.add_argument("--report", action="store_true", help="only rebuild the table from the records")
    args = parser.parse_args(argv)
    levers, models = args.levers.split(","), args.models.split(",")
    if not args.report:
        write_missing_phantoms({"ct150": DEFAULT_DATASETS["ct150"]}, seed=0)
        run_experiments(base_config(args.epochs), RUNS, names=levers, models=models, datasets=DEFAULT_DATASETS,
                        seeds=[0], experiments=experiments(levers), workers=args.workers)
    table = report(list(LEVERS), ["unet", "attention_unet"])
    print(table.to_markdown())
    if DOC.exists():
        replace_marked(DOC, "LEVERS", table.to_markdown())
        from aunet.viz.plots import save_figure

        save_figure(figure(list(LEVERS)), FIGURE)
    return 0


if __name__ == "__main__":
    sys.exit(main())
