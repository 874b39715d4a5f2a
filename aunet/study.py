"""Does attention help here, and when? Notebook 08's pre-registered study: its conditions, table and conclusions.

Question: does Attention U-Net segment the pancreas better than U-Net, and under which conditions?
Metric: pancreas Dice and recall on each run's held-out test cases, Attention U-Net minus U-Net, paired by
(seed, case) (the same seed gives both models the same split and batches). Analysis, for every condition
alike (aunet.stats, the statistics of the paper tables): mean difference, 95 % bootstrap interval,
two-sided Wilcoxon signed-rank p, verdict "attention helps" (interval above 0 and p < 0.05), "attention
hurts" (below 0 and p < 0.05) or "inconclusive". Beside it, the level-2 focus of notebook 05 (mean alpha on
the pancreas / mean alpha elsewhere, on the snapshot slice of the run's last epoch) per condition and seed.

The baseline is the quick profile (`Config.from_profile("quick")`) on the CT-150 phantom stand-in with the
120/30 split (aunet.experiments "ct150_120_30"); `baseline_config` may shorten it by `epochs_scale` (its
epochs and its lr step together, so the schedule keeps its shape) to fit a time budget. Each condition
changes one thing (`study_conditions`; the Config fields it sets are its Experiment's overrides):

    baseline      the quick profile, 120/30
    steps_2x      twice the epochs, the quick schedule continued (lr halved every lr_step epochs); each run
                  continues the baseline run of its model and seed (copied, then resumed: a resumed run ends
                  where an uninterrupted one does), so only the second half is trained
    paper_recipe  the paper's training where the quick profile departs from it (soft Dice alone, lr 1e-4, lr
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
    table = results_table(read_results("results/runs/study", conditions)); conclusions(table)
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
from aunet.experiments import (EXPERIMENTS, MODELS, PHANTOMS, Experiment, differences, experiment_config,
                               run_dir_of, run_experiment, run_state)
from aunet.run import RunFolder
from aunet.stats import Difference, format_p, holm, rank_correlation, verdict
from aunet.tables import PAPER, Column, Table, read_column

BASELINE = "ct150_120_30"  # the paper experiment whose dataset and split the baseline uses
LESS_DATA = "ct150_30_120"
FOCUS_LEVEL = "level2"  # the paper's figure and notebook 05 show level 2
FOCUS_TITLE = "focus (level 2)"
PHANTOM_OPTIONS = {"distractors": PhantomOptions(distractors=3),
                   "wide_fov": PhantomOptions(fov_scale=1.25, pancreas_scale=0.7)}
DEFAULT_DATASETS: dict[str, dict[str, Any]] = {"ct150": {"data_dir": "data/phantom"},
                                               "distractors": {"data_dir": "data/phantom_distractors"},
                                               "wide_fov": {"data_dir": "data/phantom_wide_fov"}}
VERDICTS = {"supported": "attention helps", "not supported": "attention hurts", "inconclusive": "inconclusive",
            "not run": "not run"}


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
    lr_step = max(1, round(cfg.lr_step * epochs_scale))
    snapshots = tuple(sorted(set(snapshot_schedule(epochs, cfg.snapshot_epochs)) | {epochs}))
    return Config.from_dict({"epochs": epochs, "lr_step": lr_step, "snapshot_epochs": snapshots}, base=cfg)


def _window(base: Config, options: PhantomOptions) -> tuple[int, int, int]:
    """An inference window holding a whole phantom of these options at base.spacing (at least base's window)."""
    sides = (math.ceil(math.ceil(f / base.spacing) / 16) * 16 for f in field_of_view("scanner_a", options))
    return tuple(max(s, w) for s, w in zip(sides, base.inference_patch_size))


def _paper_recipe(base: Config) -> dict[str, Any]:
    """The paper's loss, optimiser settings and schedule (Config's defaults) where `base` departs from them."""
    paper = Config()
    recipe = {f: getattr(paper, f) for f in ("loss", "lr", "weight_decay", "lr_gamma")}
    recipe["lr_step"] = max(1, round(base.epochs * paper.lr_step / paper.epochs))  # 250 of 1000: every quarter
    return {f: v for f, v in recipe.items() if getattr(base, f) != v}


def study_conditions(base: Config) -> dict[str, Condition]:
    """The study's conditions, each an Experiment over `base` (the baseline Config), in the order they are reported."""
    from aunet.snapshots import snapshot_schedule

    ref, less = EXPERIMENTS[BASELINE], EXPERIMENTS[LESS_DATA]

    def spec(name: str, dataset: str = ref.dataset, source: Experiment = ref, **overrides: Any) -> Experiment:
        return dataclasses.replace(source, name=name, dataset=dataset, overrides=overrides, init_from="")

    longer = 2 * base.epochs
    snapshots = tuple(sorted(set(snapshot_schedule(base.epochs, base.snapshot_epochs)) | {longer}))
    recipe = _paper_recipe(base)
    wide = _window(base, PHANTOM_OPTIONS["wide_fov"])
    rows = [
        Condition("baseline", "baseline (120/30)", "nothing: the baseline Config on the CT-150 stand-in, 120/30",
                  spec("baseline")),
        Condition("steps_2x", "2x the steps", f"{longer} epochs instead of {base.epochs}, the same schedule continued",
                  spec("steps_2x", epochs=longer, snapshot_epochs=snapshots), continues="baseline"),
        Condition("paper_recipe", "the paper's recipe", "the paper's training where the baseline departs from it: "
                  + ", ".join(f"{k} {v}" for k, v in recipe.items()), spec("paper_recipe", **recipe)),
        Condition("less_data", "less data (30/120)", f"the paper's 30/120 proportion: test fraction "
                  f"{less.test_fraction:g}, validation {less.val_fraction:g}", spec("less_data", source=less),
                  paper=LESS_DATA),
        Condition("distractors", "pancreas-like decoys", f"a phantom with {PHANTOM_OPTIONS['distractors'].distractors} "
                  "pancreas-like decoys (the pancreas's intensity and texture, labelled background) elsewhere",
                  spec("distractors", dataset="distractors")),
        Condition("wide_fov", "wider view, smaller pancreas", f"a phantom with a {PHANTOM_OPTIONS['wide_fov'].fov_scale:g}x "
                  f"in-plane field of view around a pancreas {PHANTOM_OPTIONS['wide_fov'].pancreas_scale:g}x as thick"
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
                  [(c.continues, model, seed)] if c.continues else [])
             for c in conditions.values() for model in c.models for seed in seeds]
    return run_tasks(tasks, workers, progress)


# --- results ---------------------------------------------------------------------------------------------
@dataclass
class Result:
    """One condition's paired differences (all seeds, and per seed) and its Attention U-Net runs' focus."""

    condition: Condition
    diffs: dict[str, Difference]  # metric -> Att - U-Net over every (seed, case) pair
    per_seed: dict[int, dict[str, Difference]]  # seed -> metric -> over that seed's cases
    focus: dict[int, tuple[int, float]]  # seed -> (epoch of the last snapshot, level-2 focus there)
    paper: dict[str, float]  # metric -> the paper's Att - U-Net difference of means
    levels: dict[str, tuple[float, float]] = dataclasses.field(default_factory=dict)  # model -> Dice mean, std


def _focus(runs_dir: str | Path, condition: str, seeds: Sequence[int]) -> dict[int, tuple[int, float]]:
    from aunet.viz.plots import attention_focus

    out = {}
    for seed in seeds:
        snapshots = RunFolder(run_dir_of(runs_dir, condition, "attention_unet", seed)).read_snapshots()
        if snapshots:
            last = snapshots[max(snapshots)]
            out[seed] = (max(snapshots), attention_focus(last[FOCUS_LEVEL], last["label"]))
    return out


def _restricted(column: Column | None, seed: int) -> Column | None:
    if column is None:
        return None
    return dataclasses.replace(column, cases={k: v for k, v in column.cases.items() if k[0] == seed})


def read_results(runs_dir: str | Path, conditions: Mapping[str, Condition]) -> list[Result]:
    """Each condition's differences from the run records under runs_dir (conditions not run have n = 0)."""
    from aunet.tables import paired

    results = []
    for c in conditions.values():
        unet = read_column(runs_dir, c.unet_from or c.name, "unet")
        att = read_column(runs_dir, c.name, "attention_unet")
        metrics = METRICS
        seeds = sorted(set(unet.seeds) & set(att.seeds)) if unet and att else []
        per_seed = {s: {m: paired(_restricted(unet, s), _restricted(att, s), m) for m in metrics} for s in seeds}
        paper = {m: PAPER[c.paper, "attention_unet"][m][0] - PAPER[c.paper, "unet"][m][0] for m in metrics}
        levels = {model: col.mean_std("dice") for model, col in (("unet", unet), ("attention_unet", att)) if col}
        results.append(Result(c, {m: paired(unet, att, m) for m in metrics}, per_seed,
                              _focus(runs_dir, c.name, att.seeds if att else []), paper, levels))
    return results


def _signed(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{x:+.3f}"


def _interval(d: Difference) -> str:
    return "n/a" if d.n == 0 else f"{_signed(d.low)} to {_signed(d.high)}"


def mean_focus(result: Result) -> float:
    values = [f for _, f in result.focus.values() if not math.isnan(f)]
    return sum(values) / len(values) if values else math.nan


METRICS = ("dice", "recall", "precision")  # pre-registered: Dice and recall; precision is exploratory
HEADER = ["condition", "changes", "pairs", "U-Net Dice", "Att U-Net Dice", "Δ Dice", "Δ Dice 95 % interval", "Δ Dice p", "Δ recall",
          "Δ recall 95 % interval", "Δ recall p", "paper Δ Dice", "paper Δ recall", "Dice verdict", "recall verdict",
          FOCUS_TITLE, "Δ Dice p (Holm)", "Δ recall p (Holm)", "Δ precision (exploratory)",
          "Δ precision 95 % interval", "Δ precision p"]


def _level(result: Result, model: str) -> str:
    mean, std = result.levels.get(model, (math.nan, math.nan))
    return "not run" if math.isnan(mean) else f"{mean:.3f} ± {std:.3f}"


def results_table(results: Sequence[Result]) -> Table:
    """One row per condition: Att - U-Net pancreas Dice and recall with intervals and p, the paper's, the focus."""
    family = [r.diffs[m].p for r in results for m in ("dice", "recall")]  # the pre-registered tests
    adjusted = iter(holm(family))
    rows = []
    for r in results:
        d, rec, pre = r.diffs["dice"], r.diffs["recall"], r.diffs["precision"]
        holm_dice, holm_recall = format_p(next(adjusted)), format_p(next(adjusted))
        rows.append([r.condition.title, r.condition.changes, str(d.n), _level(r, "unet"), _level(r, "attention_unet"),
                     _signed(d.mean), _interval(d), format_p(d.p),
                     _signed(rec.mean), _interval(rec), format_p(rec.p), _signed(r.paper["dice"]),
                     _signed(r.paper["recall"]), VERDICTS[verdict(d)], VERDICTS[verdict(rec)],
                     "n/a" if math.isnan(mean_focus(r)) else f"{mean_focus(r):.2f}", holm_dice, holm_recall,
                     _signed(pre.mean), _interval(pre), format_p(pre.p)])
    notes = ["Δ: Attention U-Net minus U-Net, pancreas, on the held-out test cases, over the (seed, case) pairs both "
             "were scored on (pairs); interval: 95 % bootstrap; p: two-sided Wilcoxon signed-rank (aunet.stats).",
             "U-Net Dice, Att U-Net Dice: each model's pancreas Dice, mean ± std over its (seed, case) scores: how well "
             "the two models segment at all, which a difference alone does not say.",
             f"Holm: the p value adjusted (Holm-Bonferroni) over the family of the {sum(not math.isnan(p) for p in family)}"
             " pre-registered tests (Dice and recall of every condition run), for reading many rows at once; the "
             "verdicts use the unadjusted p, as registered.",
             "Δ precision: not pre-registered (Dice and recall were); shown to read the recall difference by, "
             "with no verdict.",
             "verdict: attention helps = interval above 0 and p < 0.05; attention hurts = interval below 0 and "
             "p < 0.05; else inconclusive at this budget.",
             "paper Δ: the paper's Attention U-Net minus U-Net means (Oktay et al., MIDL 2018; 120/30, or 30/120 for "
             "less data); it reports no test. The phantom runs are not comparable with the paper's numbers.",
             f"focus: mean alpha on the pancreas / elsewhere at {FOCUS_LEVEL}, on the snapshot slice of each "
             "Attention U-Net run's last epoch (notebook 05), averaged over seeds; per seed in study_focus."]
    return Table("study_differences", "Does attention help? Attention U-Net minus U-Net, per condition", HEADER,
                 rows, notes)


def focus_table(results: Sequence[Result]) -> Table:
    """One row per (condition, seed): the level-2 focus beside that seed's Dice and recall differences."""
    rows = []
    for r in results:
        for seed in sorted(set(r.per_seed) | set(r.focus)):
            epoch, focus = r.focus.get(seed, (0, math.nan))
            diffs = r.per_seed.get(seed, {})
            cells = [_signed(diffs[m].mean) if m in diffs else "n/a" for m in ("dice", "recall")]
            rows.append([r.condition.title, str(seed), "n/a" if math.isnan(focus) else f"{focus:.2f}",
                         str(epoch) if epoch else "n/a", *cells,
                         str(diffs["dice"].n) if "dice" in diffs else "0"])
    return Table("study_focus", "Attention focus beside the Dice difference, per condition and seed",
                 ["condition", "seed", FOCUS_TITLE, "snapshot epoch", "Δ Dice", "Δ recall", "test cases"],
                 rows, ["focus: mean alpha on the pancreas / mean alpha elsewhere (1 = no preference); Δ: Attention "
                        "U-Net minus U-Net, mean over that seed's test cases."])


def conclusions(table: Table) -> list[str]:
    """One sentence per condition, every number taken from the table's cells."""
    out = []
    for row in table.rows:
        cell = dict(zip(table.header, row))
        if cell["pairs"] == "0":
            out.append(f"{cell['condition']}: not run.")
            continue
        out.append(f"{cell['condition']}: Attention U-Net minus U-Net pancreas Dice {cell['Δ Dice']} (95 % interval "
                   f"{cell['Δ Dice 95 % interval']}, p {cell['Δ Dice p']}, Holm {cell['Δ Dice p (Holm)']}; "
                   f"{cell['Dice verdict']}) and recall {cell['Δ recall']} ({cell['Δ recall 95 % interval']}, p "
                   f"{cell['Δ recall p']}, Holm {cell['Δ recall p (Holm)']}; "
                   f"{cell['recall verdict']}) over {cell['pairs']} case x seed pairs, at U-Net Dice "
                   f"{cell['U-Net Dice']} and Attention U-Net Dice {cell['Att U-Net Dice']}; the paper: Dice "
                   f"{cell['paper Δ Dice']}, recall {cell['paper Δ recall']}.")
    return out


def focus_sentence(per_seed: Table) -> str:
    """Spearman's rank correlation of focus and Dice gain over the per-seed table's runs (its cells, as printed)."""
    cells = [dict(zip(per_seed.header, row)) for row in per_seed.rows]
    points = [(float(c[FOCUS_TITLE]), float(c["Δ Dice"])) for c in cells if "n/a" not in (c[FOCUS_TITLE], c["Δ Dice"])]
    r = rank_correlation([f for f, _ in points], [d for _, d in points])
    if math.isnan(r.rho):
        return f"Focus and gain: {r.n} Attention U-Net run(s) with a focus and a Dice difference: fewer than 3, or all alike, so no correlation."
    return (f"Focus and gain: over the {r.n} Attention U-Net runs (every condition and seed), Spearman's rank "
            f"correlation of the level-2 focus with that seed's Dice difference is {r.rho:+.2f} (p {format_p(r.p)}).")


def forest_rows(results: Sequence[Result]) -> tuple[list[str], dict[str, list[Difference]], dict[str, list[float]]]:
    """(labels, {"Dice": diffs, "recall": diffs}, {"Dice": paper, "recall": paper}) for aunet.viz.plots.plot_forest."""
    labels = [r.condition.title for r in results]
    names = {"Dice": "dice", "recall": "recall"}
    return (labels, {k: [r.diffs[m] for r in results] for k, m in names.items()},
            {k: [r.paper[m] for r in results] for k, m in names.items()})


def focus_points(results: Sequence[Result]) -> list[tuple[str, float, float]]:
    """(condition, focus, that seed's Dice difference) per Attention U-Net run, for plot_focus_vs_gain."""
    return [(r.condition.title, r.focus[s][1], r.per_seed[s]["dice"].mean) for r in results
            for s in sorted(set(r.focus) & set(r.per_seed))]


README_MARKERS = "study results"  # <!-- study results: start --> ... end --> in the README


def readme_section(table: Table, sentences: Sequence[str], base: Config, seeds: Sequence[int]) -> str:
    """The README's "Does attention help?" results: the forest plot and the conclusions (the table's cells)."""
    conditions = ", ".join(row[0] for row in table.rows)
    lines = [f"Generated by notebook 08 (`make study`) from the run records in `results/runs/study/`: {len(table.rows)} "
             f"conditions ({conditions}), baseline {base.epochs} epochs x {base.iterations_per_epoch} steps, seeds "
             f"{', '.join(map(str, seeds))}. Attention U-Net minus U-Net, pancreas, held-out test cases, over the "
             "(seed, case) pairs; the table with each model's Dice, the focus and the exploratory precision "
             "difference is `results/tables/study_differences.md`, per seed `results/tables/study_focus.md`.", "",
             "![Attention U-Net minus U-Net per condition](figures/study_forest.png)", ""]
    lines += [f"- {s}" for s in sentences]
    return "\n".join(lines)


def update_readme(readme: str | Path, section: str) -> None:
    """Replace the text between the README's study markers by `section` (atomically)."""
    from aunet.io import replace_marked

    replace_marked(readme, README_MARKERS, section)


def write_results(results: Sequence[Result], out_dir: str | Path) -> tuple[Table, Table, list[str]]:
    """Write study_differences.md/.csv, study_focus.md/.csv and study_conclusions.md; returns the tables and the
    sentences (one per condition, then the focus-and-gain correlation)."""
    from aunet.io import atomic_write_text

    table, per_seed = results_table(results), focus_table(results)
    for t in (table, per_seed):
        t.write(out_dir)
    sentences = conclusions(table) + [focus_sentence(per_seed)]
    atomic_write_text(Path(out_dir) / "study_conclusions.md", "".join(f"- {s}\n" for s in sentences))
    return table, per_seed, sentences
