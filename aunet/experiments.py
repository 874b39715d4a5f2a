"""The paper's experiments as named specs, and a runner that trains and evaluates each into its own folder.

Oktay et al. (MIDL 2018) report two pancreas tables (shared/REFERENCE.md section 4), each for U-Net and
Attention U-Net:

    ct150_120_30    CT-150, 120 training / 30 test scans
    ct150_30_120    CT-150, 30 training / 120 test scans (the "little training data" setting)
    tcia_61_21      TCIA Pancreas-CT (82 scans) trained from scratch, 61 training / 21 test scans
    tcia_finetune   the ct150_120_30 model of the same kind trained further on the same TCIA training scans

A spec holds only what differs between experiments (the dataset, the split fractions, an initial
checkpoint); everything else comes from one base Config (a profile plus the notebook's or caller's
overrides), so the same specs run the quick profile on a CPU and the paper profile on a GPU.

Datasets. CT-150 is not public, and neither dataset ships with aunet. On the built-in phantom:

    ct150 -> a phantom folder of domain "scanner_a" (portal-venous contrast, 2.5 x 2.5 x 4 mm, RAS)
    tcia  -> a phantom folder of domain "scanner_b" (the second scanner: late-arterial contrast, more
             noise, another spacing, LPS storage), drawn with another seed so that its anatomies differ
             from ct150's (the generator draws the anatomy first, so one seed would give the same bodies)

with the paper's train/test proportions (test fractions 30/150, 120/150 and 21/82). With real data,
`datasets` points ct150 at e.g. MSD Task07_Pancreas and tcia at NIH Pancreas-CT, with their label maps.
The paper names no validation split; aunet holds `val_fraction` of the cases out of the training scans
to choose best.pt (10 % of all cases; 4 % in the 30/120 setting, one in five of its 30 training scans).

Run folders: one per (experiment, model, seed) under runs_dir (aunet.records.run_path; each an
aunet.run.RunFolder) hold the training run (config, history, checkpoints) and its evaluation on the test
cases. A run whose records
are complete for the same config is skipped, an interrupted one is resumed, a finished but unevaluated
one is evaluated; a folder holding a run of other settings is refused.

    base = Config.from_profile("quick", epochs=12, iterations_per_epoch=20)
    write_missing_phantoms(DEFAULT_DATASETS, seed=0)
    run_experiments(base, "results/runs")          # {("ct150_120_30", "unet"): "trained", ...}
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from aunet.config import Config
from aunet.data.splits import PAPER_SPLITS, find_split_file
from aunet.errors import AunetError
from aunet.records import run_path
from aunet.run import RunFolder
from aunet.train import check_resumable


@dataclass(frozen=True)
class Experiment:
    """One of the paper's experiments: which data, how it is split, where training starts."""

    name: str  # run folder name under runs_dir
    table: str  # "ct150" (the paper's first table) or "tcia" (the second)
    dataset: str  # key into `datasets`: "ct150" or "tcia"
    setting: str  # the paper's column title after the model name, e.g. "(120/30)" or "fine-tune"
    test_fraction: float  # the paper's test scans / all scans
    val_fraction: float  # held out of the training scans to choose best.pt
    init_from: str = ""  # experiment whose model of the same kind (and seed) initialises this one (fine-tuning)
    overrides: Mapping[str, Any] = field(default_factory=dict)  # Config fields this experiment sets (studies)


def _fractions(split: str) -> dict[str, float]:
    """The test and validation fractions of one of the paper's splits (aunet.data.splits owns them)."""
    spec = PAPER_SPLITS[split]
    return {"test_fraction": spec.test_fraction, "val_fraction": spec.val_fraction}


EXPERIMENTS: dict[str, Experiment] = {e.name: e for e in (
    Experiment("ct150_120_30", "ct150", "ct150", "(120/30)", **_fractions("120_30")),
    Experiment("ct150_30_120", "ct150", "ct150", "(30/120)", **_fractions("30_120")),
    Experiment("tcia_61_21", "tcia", "tcia", "(61/21)", **_fractions("61_21")),
    Experiment("tcia_finetune", "tcia", "tcia", "fine-tune", **_fractions("61_21"), init_from="ct150_120_30"),
)}
MODELS = ("unet", "attention_unet")
MODEL_TITLES = {"unet": "U-Net", "attention_unet": "Att U-Net"}  # as in the paper's tables


@dataclass(frozen=True)
class PhantomStandIn:
    """The phantom folder that stands in for one of the paper's datasets."""

    domain: str  # aunet.data.phantom.DOMAINS key
    seed_offset: int  # added to the seed, so the two datasets hold different bodies
    cases: int  # default number of cases (CT-150 : TCIA = 150 : 82)


PHANTOMS = {"ct150": PhantomStandIn("scanner_a", 0, 30), "tcia": PhantomStandIn("scanner_b", 1000, 16)}
DEFAULT_DATASETS: dict[str, dict[str, Any]] = {"ct150": {"data_dir": "data/phantom"},
                                               "tcia": {"data_dir": "data/phantom_scanner_b"}}


def experiment_config(name: str, model: str, base: Config, runs_dir: str | Path,
                      datasets: Mapping[str, Mapping[str, Any]] | None = None, seed: int | None = None,
                      experiments: Mapping[str, Experiment] | None = None) -> Config:
    """The Config of one run: `base` with the experiment's dataset, split, overrides, seed, out_dir and init checkpoint.

    seed: the run's Config.seed (None: base.seed); it seeds the initial weights and the batches, and the split
    too when the dataset folder holds no split file for the experiment's fractions (aunet.data.splits: the
    phantom writes its own, `aunet data split DIR` writes them for any folder), so that every run of a table
    uses the same cases.
    """
    experiments = EXPERIMENTS if experiments is None else experiments
    if name not in experiments:
        raise AunetError(f"Unknown experiment {name!r}; expected one of: {', '.join(experiments)}.")
    if model not in MODELS:
        raise AunetError(f"Unknown model {model!r}; expected one of: {', '.join(MODELS)}.")
    exp, datasets = experiments[name], datasets or DEFAULT_DATASETS
    if exp.dataset not in datasets:
        raise AunetError(f"No settings for dataset {exp.dataset!r} (needed by {name}); give datasets[{exp.dataset!r}] "
                         f"= {{'data_dir': ...}}.")
    seed = base.seed if seed is None else seed
    init = str(RunFolder(run_path(runs_dir, exp.init_from, model, seed)).checkpoint_path("best")) \
        if exp.init_from else ""
    data_dir = datasets[exp.dataset].get("data_dir", base.data_dir)
    split_file = find_split_file(data_dir, exp.test_fraction, exp.val_fraction)  # the dataset's own, if saved
    return Config.from_dict({"split_file": split_file, **datasets[exp.dataset], **exp.overrides, "model": model,
                             "seed": seed,
                             "test_fraction": exp.test_fraction, "val_fraction": exp.val_fraction,
                             "out_dir": str(run_path(runs_dir, name, model, seed)), "init_checkpoint": init},
                            base=base)


def differences(saved: Config, cfg: Config) -> dict[str, tuple[Any, Any]]:
    """Fields whose values differ between two configs, out_dir aside (a run folder may be moved or copied)."""
    a, b = saved.to_dict(), cfg.to_dict()
    return {k: (a[k], b[k]) for k in a if a[k] != b[k] and k != "out_dir"}


def run_state(run_dir: str | Path, cfg: Config) -> str:
    """'empty', 'complete' (trained to cfg.epochs and evaluated), 'partial' (resumable) or 'other' (other settings)."""
    run = RunFolder(run_dir)
    if not run.has_config():
        return "partial" if run.has_checkpoint("last") else "empty"
    saved = run.read_config()
    try:
        check_resumable(saved, cfg, run_dir)  # the trainer's rule for what a continued run may change
    except AunetError:
        return "other"
    if saved.epochs > cfg.epochs:
        return "other"
    if differences(saved, cfg):
        return "partial"
    return "complete" if run.is_complete(cfg.epochs) else "partial"


def run_experiment(name: str, model: str, base: Config, runs_dir: str | Path,
                   datasets: Mapping[str, Mapping[str, Any]] | None = None, seed: int | None = None,
                   experiments: Mapping[str, Experiment] | None = None, progress: bool = True) -> str:
    """Train then evaluate one run unless its records are complete; returns what was done.

    'skipped' (complete already), 'trained', 'resumed' or 'evaluated' (training was complete, the evaluation
    was not).
    """
    from aunet.evaluate import evaluate_run
    from aunet.train import train

    experiments = EXPERIMENTS if experiments is None else experiments
    cfg = experiment_config(name, model, base, runs_dir, datasets, seed, experiments)
    run = RunFolder(cfg.out_dir)
    state = run_state(run.path, cfg)
    if state == "complete":
        return "skipped"
    if state == "other":
        diff = differences(run.read_config(), cfg)
        changed = "; ".join(f"{k} {old!r} -> {new!r}" for k, (old, new) in diff.items())
        raise AunetError(f"{run.path} holds a run with other settings ({changed}); delete it or choose another "
                         f"runs folder.")
    if cfg.init_checkpoint and not Path(cfg.init_checkpoint).is_file() and not run.has_checkpoint("last"):
        raise AunetError(f"{name} starts from {cfg.init_checkpoint}, which does not exist; run "
                         f"{experiments[name].init_from} for {model} first.")
    done = run.epochs_done() if run.has_checkpoint("last") else 0
    trainer = train(cfg, resume="auto", progress=progress)
    evaluate_run(run.path, data=trainer.data, progress=progress)
    return "trained" if done == 0 else "resumed" if done < cfg.epochs else "evaluated"


def run_experiments(base: Config, runs_dir: str | Path, names: Sequence[str] | None = None,
                    models: Sequence[str] = MODELS, datasets: Mapping[str, Mapping[str, Any]] | None = None,
                    seeds: Sequence[int] | Mapping[str, Sequence[int]] | None = None,
                    experiments: Mapping[str, Experiment] | None = None, workers: int = 1,
                    progress: bool = True, threads: int = 1) -> dict[tuple[str, str, int], str]:
    """Run every (experiment, model, seed), each fine-tune after the run it starts from; a line per run.

    seeds: one list for every experiment, or a list per experiment name (None: base.seed only).
    workers: processes that train runs side by side (aunet.pool); 1 trains here. threads: per run (aunet.pool: 1,
    so that a run's records do not depend on where it trained).
    """
    from aunet.pool import Task, run_tasks

    experiments = EXPERIMENTS if experiments is None else experiments
    names = list(experiments) if names is None else list(names)
    unknown = [n for n in names if n not in experiments]
    if unknown:
        raise AunetError(f"Unknown experiment(s) {', '.join(unknown)}; expected some of: {', '.join(experiments)}.")
    seeds_of = {n: list(seeds.get(n, [base.seed]) if isinstance(seeds, Mapping) else seeds or [base.seed])
                for n in names}
    tasks = []
    for name in names:
        source = experiments[name].init_from
        for model in models:
            for seed in seeds_of[name]:
                after = [(source, model, seed)] if source in names else []
                tasks.append(Task((name, model, seed), run_experiment,
                                  dict(name=name, model=model, base=base, runs_dir=str(runs_dir), datasets=datasets,
                                       seed=seed, experiments=experiments), after,
                                  run_dir=str(run_path(runs_dir, name, model, seed))))
    return run_tasks(tasks, workers, progress, threads)


def write_missing_phantoms(datasets: Mapping[str, Mapping[str, Any]], seed: int = 0,
                           cases: Mapping[str, int] | None = None, size: tuple[int, int, int] | None = None,
                           progress: bool = True) -> list[Path]:
    """Write the phantom stand-in of each dataset whose data_dir holds no dataset.json yet; returns those written."""
    from aunet.data.phantom_folder import write_phantom_dataset

    written = []
    for key, settings in datasets.items():
        if key not in PHANTOMS or not settings.get("data_dir"):
            continue
        folder = Path(settings["data_dir"])
        if (folder / "dataset.json").exists():
            continue
        stand_in = PHANTOMS[key]
        n = (cases or {}).get(key, stand_in.cases)
        written.append(write_phantom_dataset(folder, n, seed + stand_in.seed_offset, stand_in.domain, size,
                                             progress=progress))
    return written
