"""The runs tree: one run folder per (experiment, model, seed), at `<runs>/<experiment>/<model>/seed_<k>/`.

The only module that builds or parses those paths, and the one reader of what the runs recorded, as the
tables, claims, study and reproduction use it. Each folder is an aunet.run.RunFolder, which alone names and
reads a run's files; from them a Run here is the config, the history's epochs and seconds, whether its
validation curve of the target class reached a plateau (aunet.convergence), the device, the test
evaluation's per-case scores of the target class and its inference seconds. A Column is every evaluated
seed of one (experiment, model).

A run whose records cannot be read (text where a number belongs, binary bytes, a config with unknown keys,
an evaluation without a config) is damaged: it is left out of its column, which keeps the line that says
why (naming the file), and `read_tree(runs)` lists every such line of a tree; the rest still reads.

    column = read_column("results/runs", "ct150_120_30", "attention_unet")
    column.seeds, column.mean_std("dice"), column.scores("dice"), column.converged, column.damaged
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from aunet.config import Config
from aunet.convergence import Convergence, history_convergence
from aunet.errors import AunetError
from aunet.labels import TARGET
from aunet.run import RunFolder

SEED = "seed_"  # a seed's folder: seed_<k>
LAYOUT = f"<runs>/<experiment>/<model>/{SEED}<k>/"
SPLIT = "test"  # the tables read each run's evaluation on its held-out test cases
METRICS = ("dice", "precision", "recall", "s2s_mm")  # per case, of the target class


# --- the layout --------------------------------------------------------------------------------------
def run_path(runs_dir: str | Path, experiment: str, model: str, seed: int) -> Path:
    """Where one run lives: <runs_dir>/<experiment>/<model>/seed_<seed>."""
    return model_path(runs_dir, experiment, model) / f"{SEED}{seed}"


def model_path(runs_dir: str | Path, experiment: str, model: str) -> Path:
    """The folder of every seed of one (experiment, model)."""
    return Path(runs_dir) / experiment / model


def seeds_path(runs_dir: str | Path, experiment: str, model: str, seeds: list[int]) -> str:
    """The seeds' folders in one word: <runs_dir>/<experiment>/<model>/seed_{0,1,2}."""
    return f"{model_path(runs_dir, experiment, model)}/{SEED}{{{','.join(map(str, seeds))}}}"


def _seed(folder: Path) -> int | None:
    digits = folder.name[len(SEED):]
    return int(digits) if folder.name.startswith(SEED) and digits.isdigit() and folder.is_dir() else None


def seeds(runs_dir: str | Path, experiment: str, model: str) -> list[int]:
    """The seeds that have a folder under one (experiment, model), in order."""
    folder = model_path(runs_dir, experiment, model)
    found = (_seed(p) for p in folder.iterdir()) if folder.is_dir() else ()
    return sorted(s for s in found if s is not None)


def runs(runs_dir: str | Path) -> list[tuple[str, str, int]]:
    """Every (experiment, model, seed) that has a folder in the tree, sorted."""
    found = []
    for model in sorted(Path(runs_dir).glob("*/*")):
        if model.is_dir():
            found += [(model.parent.name, model.name, s) for s in seeds(runs_dir, model.parent.name, model.name)]
    return sorted(found)


# --- one run -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Run:
    """What one run recorded, as the results read it."""

    seed: int
    cfg: Config
    epochs: int  # rows of its history
    training_seconds: float  # the epochs' seconds summed
    device: str  # "cpu", "cuda", ... or "device not recorded"
    evaluated: bool
    cases: dict[str, dict[str, float]]  # test case -> {metric: score of the target class}
    inference_seconds: float  # mean per test volume (NaN when not evaluated)
    convergence: Convergence  # the plateau test of its validation Dice of the target class


def _target(columns: list[str], path: Path) -> str:
    """The class the tables show: the pancreas, or the only foreground class of a 2-class model."""
    classes = sorted(k[: -len("_dice")] for k in columns if k.endswith("_dice"))
    if TARGET in classes:
        return TARGET
    if len(classes) == 1:
        return classes[0]
    raise AunetError(f"{path}: has no {TARGET} metrics (classes: {', '.join(classes) or 'none'}); "
                     f"expected an evaluation of a model with a pancreas class.")


def _convergence(history: list[dict[str, float]]) -> Convergence:
    """The plateau test of the validation Dice of the target class (val_<class>_dice; no such column: not converged)."""
    prefix, suffix = "val_", "_dice"
    classes = sorted(k[len(prefix): -len(suffix)] for k in (history[0] if history else {})
                     if k.startswith(prefix) and k.endswith(suffix) and k != f"{prefix}mean{suffix}")
    organ = classes[0] if len(classes) == 1 else TARGET
    return history_convergence(history, f"{prefix}{organ}{suffix}")


def _evaluation(run: RunFolder) -> tuple[dict[str, dict[str, float]], float]:
    cases_path, summary_path = run.evaluation_paths(SPLIT)
    summary = run.read_evaluation_summary(SPLIT)
    if not cases_path.is_file():
        raise AunetError(f"{cases_path}: not found; expected the per-case rows `aunet evaluate` writes beside "
                         f"{summary_path.name}.")
    organ, cases = _target(list(summary), summary_path), {}
    for row in run.read_evaluation_cases(SPLIT):
        try:
            cases[str(row["case"])] = {m: row[f"{organ}_{m}"] for m in METRICS}
        except KeyError as e:
            raise AunetError(f"{cases_path}: lacks the column {e.args[0]}; expected the per-case rows written "
                             f"by `aunet evaluate`.") from None
    return cases, float(summary.get("inference_seconds", {}).get("mean", math.nan))


def read_run(runs_dir: str | Path, experiment: str, model: str, seed: int) -> Run | None:
    """One run's records; None when its folder holds neither a config nor an evaluation.

    AunetError, in one line naming the file, when a record cannot be read (an evaluation without a
    config among them).
    """
    run = RunFolder(run_path(runs_dir, experiment, model, seed))
    evaluated = any(p.is_file() for p in run.evaluation_paths(SPLIT))
    if not (evaluated or run.has_config()):
        return None
    cfg = run.read_config()
    if cfg.seed != seed:
        raise AunetError(f"{run.path}: its config says seed {cfg.seed}; expected {seed}, as its folder's name says.")
    history, device = run.read_history(), run.read_device()
    cases, inference = _evaluation(run) if evaluated else ({}, math.nan)
    return Run(seed, cfg, len(history), sum(r.get("seconds", 0.0) for r in history),
               str(device["type"]) if isinstance(device, dict) and "type" in device else "device not recorded",
               evaluated, cases, inference, _convergence(history))


def read_tree(runs_dir: str | Path) -> tuple[list[tuple[str, str, Run]], list[str]]:
    """(experiment, model, run) of every readable run of the tree, and one line per damaged run naming the file."""
    found, damaged = [], []
    for experiment, model, seed in runs(runs_dir):
        try:
            run = read_run(runs_dir, experiment, model, seed)
        except AunetError as e:
            damaged.append(str(e))
            continue
        if run is not None:
            found.append((experiment, model, run))
    return found, damaged


# --- a column: every seed of one (experiment, model) -------------------------------------------------
@dataclass
class Column:
    """Every evaluated seed of one (experiment, model), and the seeds left out as damaged."""

    experiment: str
    model: str
    runs: dict[int, Run] = field(default_factory=dict)  # seed -> evaluated run, in seed order
    damaged: dict[int, str] = field(default_factory=dict)  # seed -> why its records cannot be read

    @property
    def seeds(self) -> list[int]:
        return sorted(self.runs)

    @property
    def first(self) -> Run:
        """The run of the smallest seed."""
        return self.runs[self.seeds[0]]

    @cached_property
    def cases(self) -> dict[tuple[int, str], dict[str, float]]:
        """(seed, case) -> {metric: score}, seed by seed in each run's row order."""
        return {(s, case): scores for s in self.seeds for case, scores in self.runs[s].cases.items()}

    def scores(self, metric: str) -> dict[tuple[int, str], float]:
        """(seed, case) -> score of one metric: the maps aunet.stats.paired_by_seed compares."""
        return {key: row[metric] for key, row in self.cases.items()}

    @property
    def converged(self) -> int:
        """How many of its runs reached a plateau of validation Dice (aunet.convergence)."""
        return sum(run.convergence.converged for run in self.runs.values())

    def values(self, metric: str) -> np.ndarray:
        return np.array([row[metric] for row in self.cases.values()], dtype=float)

    def mean_std(self, metric: str) -> tuple[float, float]:
        """Mean and (population) std over every (case, seed), NaN skipped."""
        v = self.values(metric)
        v = v[~np.isnan(v)]
        return (float(v.mean()), float(v.std())) if v.size else (math.nan, math.nan)

    def only(self, seed: int) -> Column:
        """This column restricted to one seed."""
        return Column(self.experiment, self.model, {seed: self.runs[seed]} if seed in self.runs else {})


def read_column(runs_dir: str | Path, experiment: str, model: str) -> Column:
    """Every evaluated seed of one (experiment, model) under runs_dir; damaged seeds are left out and named."""
    column = Column(experiment, model)
    for seed in seeds(runs_dir, experiment, model):
        try:
            run = read_run(runs_dir, experiment, model, seed)
        except AunetError as e:
            column.damaged[seed] = str(e)
            continue
        if run is not None and run.evaluated:
            column.runs[seed] = run
    return column


def snapshots(runs_dir: str | Path, experiment: str, model: str, seed: int) -> dict:
    """The attention snapshots of one run, keyed by epoch (aunet.run.RunFolder.read_snapshots)."""
    return RunFolder(run_path(runs_dir, experiment, model, seed)).read_snapshots()
