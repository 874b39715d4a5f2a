"""Does attention help here, and when? Notebook 08's pre-registered study: its conditions, and running them.

Question: does Attention U-Net segment the pancreas better than U-Net, and under which conditions?
Metric: pancreas Dice and recall on each run's held-out test cases, Attention U-Net minus U-Net, paired by
seed (the same seed gives both models the same split and batches). Analysis, for every condition alike
(aunet.stats, the statistics of the paper tables, with the training run as the unit): the mean of the
per-seed mean differences, its 95 % interval (a bootstrap over seeds crossed with test cases), each seed's
difference, the larger of the sign-flip p values over seeds and over cases, verdict "attention helps"
(interval above 0 and p < 0.05), "attention hurts" (below 0 and p < 0.05) or "inconclusive" (always, with
fewer than 6 seeds). Beside it, the level-2 focus of notebook 05 (mean alpha on the pancreas / mean alpha
elsewhere, on the snapshot slice of the run's last epoch) per condition and seed.

The baseline is the quick profile (`Config.from_profile("quick")`) on the CT-150 phantom stand-in with the
120/30 split (aunet.experiments "ct150_120_30"); `baseline_config` may shorten it by `epochs_scale` (its
epochs and its lr step together, so the schedule keeps its shape) to fit a time budget. Each condition
changes one thing (`study_conditions`; the Config fields it sets are its Experiment's overrides):

    baseline      the quick profile, 120/30
    steps_2x      twice the epochs: under a step schedule the baseline's schedule continued (each run continues
                  the baseline run of its model and seed, copied, then resumed: a resumed run ends where an
                  uninterrupted one does); under the quick profile's poly schedule, which ends at lr 0, a run
                  of twice the epochs with the schedule stretched over them
    paper_recipe  the paper's training where the quick profile departs from it (soft Dice alone, Adam lr 1e-4,
                  halved every quarter of the epochs as 250 of 1000), at the quick sizes
    less_data     the 30/120 proportion (the fractions of "ct150_30_120"), the paper's main claim
    distractors   a phantom with pancreas-like decoys elsewhere in the abdomen (aunet.data.phantom.PhantomOptions)
    wide_fov      a phantom with a larger field of view around a smaller pancreas (and an inference window that
                  holds the whole volume, as the quick profile's holds the default one)
    one_gate      Attention U-Net with one gate per level (the quick profile: two), against the baseline's U-Net
    bottleneck    Attention U-Net gated at every level by the bottleneck signal, against the baseline's U-Net

    base = baseline_config("quick")  # epochs_scale < 1 shortens every run
    conditions = study_conditions(base)
    write_study_phantoms(DEFAULT_DATASETS, cases=30)
    run_study(base, "results/runs/study", conditions, DEFAULT_DATASETS, seeds=[0, 1, 2], workers=2)

What the runs recorded is reported by `aunet.study_report` (table, forest plot, focus, conclusions, README).
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from aunet.config import Config
from aunet.data.phantom import PhantomOptions, field_of_view
from aunet.errors import AunetError
from aunet.experiments import (
    EXPERIMENTS,
    MODELS,
    PHANTOMS,
    Experiment,
    differences,
    experiment_config,
    run_experiment,
    run_state,
)
from aunet.records import run_path
from aunet.run import RunFolder

BASELINE = "ct150_120_30"  # the paper experiment whose dataset and split the baseline uses
LESS_DATA = "ct150_30_120"
PHANTOM_OPTIONS = {"distractors": PhantomOptions(distractors=3),
                   "wide_fov": PhantomOptions(fov_scale=1.25, pancreas_scale=0.7)}
DEFAULT_DATASETS: dict[str, dict[str, Any]] = {"ct150": {"data_dir": "data/phantom"},
                                               "distractors": {"data_dir": "data/phantom_distractors"},
                                               "wide_fov": {"data_dir": "data/phantom_wide_fov"}}


@dataclass(frozen=True)
class Condition:
    """One row of the study: the runs it makes (an Experiment) and what its Attention U-Net is compared with."""

    name: str  # run folder under runs_dir, = experiment.name
    title: str  # row label in the table and the forest plot
    changes: str  # what differs from the baseline, in words (the pre-registration)
    experiment: Experiment
    models: tuple[str, ...] = MODELS  # models trained for this condition
    unet_from: str = ""  # condition whose U-Net runs are the comparison ("" = this condition's own)
    continues: str = ""  # condition whose runs this one continues to more epochs ("" = trained from scratch)
    paper: str = BASELINE  # the paper's experiment whose Att - U-Net difference is marked beside this row


def baseline_config(profile: str = "quick", epochs_scale: float = 1.0, **overrides: Any) -> Config:
    """The profile with `overrides`, its epochs and lr_step times epochs_scale, snapshots up to the last epoch."""
    from aunet.snapshots import snapshot_schedule

    if not 0 < epochs_scale <= 1:
        raise AunetError(f"epochs_scale={epochs_scale} is not valid; expected a fraction of the profile's epochs "
                         f"in (0, 1].")
    cfg = Config.from_profile(profile, **overrides)
    epochs = max(1, round(cfg.epochs * epochs_scale))
    lr_step = max(1, round(cfg.lr_step * epochs_scale))  # (the poly schedule scales with epochs by itself)
    snapshots = tuple(sorted(set(snapshot_schedule(epochs, cfg.snapshot_epochs)) | {epochs}))
    return Config.from_dict({"epochs": epochs, "lr_step": lr_step, "snapshot_epochs": snapshots}, base=cfg)


def _window(base: Config, options: PhantomOptions) -> tuple[int, int, int]:
    """An inference window holding a whole phantom of these options at base.spacing (at least base's window)."""
    sides = (math.ceil(math.ceil(f / base.spacing) / 16) * 16 for f in field_of_view("scanner_a", options))
    return tuple(max(s, w) for s, w in zip(sides, base.inference_patch_size))


def _paper_recipe(base: Config) -> dict[str, Any]:
    """The paper's loss, optimiser settings and schedule (Config's defaults) where `base` departs from them."""
    paper = Config()
    recipe = {f: getattr(paper, f) for f in ("loss", "optimizer", "lr", "weight_decay", "lr_schedule", "lr_gamma")}
    recipe["lr_step"] = max(1, round(base.epochs * paper.lr_step / paper.epochs))  # 250 of 1000: every quarter
    return {f: v for f, v in recipe.items() if getattr(base, f) != v}


def study_conditions(base: Config) -> dict[str, Condition]:
    """The study's conditions, each an Experiment over `base` (the baseline Config), in the order they are reported."""
    from aunet.snapshots import snapshot_schedule

    ref, less = EXPERIMENTS[BASELINE], EXPERIMENTS[LESS_DATA]

    def spec(name: str, dataset: str = ref.dataset, source: Experiment = ref, **overrides: Any) -> Experiment:
        return dataclasses.replace(source, name=name, dataset=dataset, overrides=overrides, init_from="")

    longer = 2 * base.epochs
    continued = base.lr_schedule == "step"  # a step schedule continues the baseline run; poly starts afresh
    snapshots = tuple(sorted(set(snapshot_schedule(base.epochs, base.snapshot_epochs)) | {longer}))
    recipe = _paper_recipe(base)
    wide = _window(base, PHANTOM_OPTIONS["wide_fov"])
    rows = [
        Condition("baseline", "baseline (120/30)", "nothing: the baseline Config on the CT-150 stand-in, 120/30",
                  spec("baseline")),
        Condition("steps_2x", "2x the steps", f"{longer} epochs instead of {base.epochs}, " + (
                  "the same schedule continued" if continued else f"the {base.lr_schedule} schedule over all of them"),
                  spec("steps_2x", epochs=longer, snapshot_epochs=snapshots),
                  continues="baseline" if continued else ""),
        Condition("paper_recipe", "the paper's recipe", "the paper's training where the baseline departs from it: "
                  + ", ".join(f"{k} {v}" for k, v in recipe.items()), spec("paper_recipe", **recipe)),
        Condition("less_data", "less data (30/120)", f"the paper's 30/120 proportion: test fraction "
                  f"{less.test_fraction:g}, validation {less.val_fraction:g}", spec("less_data", source=less),
                  paper=LESS_DATA),
        Condition("distractors", "pancreas-like decoys", f"a phantom with {PHANTOM_OPTIONS['distractors'].distractors} "
                  "pancreas-like decoys (the pancreas's intensity and texture, labelled background) elsewhere",
                  spec("distractors", dataset="distractors")),
        Condition("wide_fov", "wider view, smaller pancreas",
                  f"a phantom with a {PHANTOM_OPTIONS['wide_fov'].fov_scale:g}x in-plane field of view around a "
                  f"pancreas {PHANTOM_OPTIONS['wide_fov'].pancreas_scale:g}x as thick"
                  + (f"; inference window {'x'.join(map(str, wide))} to hold it" if wide != base.inference_patch_size
                     else ""),
                  spec("wide_fov", dataset="wide_fov",
                       **({"inference_patch_size": wide} if wide != base.inference_patch_size else {}))),
        Condition("one_gate", "one gate per level", "Attention U-Net with 1 gate per level (baseline: "
                  f"{base.gates_per_level}); compared with the baseline's U-Net", spec("one_gate", gates_per_level=1),
                  models=("attention_unet",), unet_from="baseline"),
        Condition("bottleneck", "bottleneck gating", "every level gated by the bottleneck signal (baseline: "
                  f"{base.gating}); compared with the baseline's U-Net", spec("bottleneck", gating="bottleneck"),
                  models=("attention_unet",), unet_from="baseline"),
    ]
    return {c.name: c for c in rows}


def experiments_of(conditions: Mapping[str, Condition]) -> dict[str, Experiment]:
    """The conditions' Experiment specs, as aunet.experiments takes them."""
    return {name: c.experiment for name, c in conditions.items()}


def config_changes(conditions: Mapping[str, Condition], base: Config, runs_dir: str | Path,
                   datasets: Mapping[str, Mapping[str, Any]], model: str = "attention_unet") -> dict[str, dict]:
    """Per condition, the Config fields in which its run differs from the baseline run of the same model and seed."""
    experiments = experiments_of(conditions)
    reference = experiment_config("baseline", model, base, runs_dir, datasets, experiments=experiments)
    return {name: differences(reference, experiment_config(name, model, base, runs_dir, datasets,
                                                           experiments=experiments)) for name in conditions}


# --- data and runs -------------------------------------------------------------------------------------
def write_study_phantoms(datasets: Mapping[str, Mapping[str, Any]], cases: int = 30, seed: int = 0,
                         size: Sequence[int] | None = None, progress: bool = True) -> list[Path]:
    """Write each missing phantom folder: the CT-150 stand-in and, drawn from the same bodies, the harder ones.

    An existing folder is used as it is, unless its dataset.json records other phantom options (AunetError).
    """
    from aunet.data.phantom_folder import write_phantom_dataset

    stand_in, written = PHANTOMS["ct150"], []
    for key in ("ct150", *PHANTOM_OPTIONS):
        folder = Path(datasets[key]["data_dir"])
        options = PHANTOM_OPTIONS.get(key, PhantomOptions())
        meta = folder / "dataset.json"
        if meta.is_file():
            found = json.loads(meta.read_text()).get("aunet", {}).get("options", PhantomOptions().to_dict())
            if key in PHANTOM_OPTIONS and found != options.to_dict():
                raise AunetError(f"{folder}: holds phantoms drawn with {found}; the study's {key!r} condition needs "
                                 f"{options.to_dict()}; delete it or give another folder.")
            continue
        shape = None if size is None else (round(size[0] * options.fov_scale), round(size[1] * options.fov_scale),
                                           size[2])  # the same spacing over the wider view
        written.append(write_phantom_dataset(folder, cases, seed + stand_in.seed_offset, stand_in.domain, shape,
                                             progress=progress, options=options))
    return written


def run_condition(name: str, model: str, base: Config, runs_dir: str, datasets: Mapping[str, Mapping[str, Any]],
                  seed: int, experiments: Mapping[str, Experiment], continues: str = "", progress: bool = True) -> str:
    """run_experiment, after copying the run it continues (if any, complete, and this one not begun)."""
    if continues:
        cfg = experiment_config(name, model, base, runs_dir, datasets, seed, experiments)
        source = experiment_config(continues, model, base, runs_dir, datasets, seed, experiments)
        if run_state(cfg.out_dir, cfg) == "empty" and run_state(source.out_dir, source) == "complete":
            RunFolder(source.out_dir).copy_to(cfg.out_dir, cfg)
    return run_experiment(name, model, base, runs_dir, datasets, seed, experiments, progress)


def run_study(base: Config, runs_dir: str | Path, conditions: Mapping[str, Condition],
              datasets: Mapping[str, Mapping[str, Any]], seeds: Sequence[int], workers: int = 2,
              progress: bool = True) -> dict[tuple[str, str, int], str]:
    """Every (condition, model, seed) in a pool of one-thread processes (aunet.pool); complete runs are skipped."""
    from aunet.pool import Task, run_tasks

    experiments = experiments_of(conditions)
    tasks = [Task((c.name, model, seed), run_condition,
                  dict(name=c.name, model=model, base=base, runs_dir=str(runs_dir), datasets=datasets, seed=seed,
                       experiments=experiments, continues=c.continues),
                  [(c.continues, model, seed)] if c.continues else [],
                  run_dir=str(run_path(runs_dir, c.name, model, seed)))
             for c in conditions.values() for model in c.models for seed in seeds]
    return run_tasks(tasks, workers, progress)
