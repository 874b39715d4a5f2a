"""The paper's two results tables, rebuilt from raw run records, each measured column beside the paper's.

Only what the runs wrote is read, from the run folders `<runs_dir>/<experiment>/<model>/seed_<k>/`
(aunet.experiments; read through aunet.run.RunFolder): each run's Config (the model is rebuilt from it to
count its parameters), its history (epochs), its device record and its per-case test evaluation. A
measured cell is the mean ± std over every (test case, seed) of that column, and below the paper's rows
each table has **paired rows**: Attention U-Net minus U-Net, pancreas Dice and recall, over the
(case, seed) pairs both models were scored on, with a 95 % bootstrap interval and a Wilcoxon signed-rank
p value (aunet.stats). The paper's own difference stands in its Attention U-Net column.

The tables hold no wall-clock numbers, so the same runs always give byte-identical files; the measured
inference and training times go to their own table (`build_timings`, results/tables/timings.md).
A column without an evaluated run says "not run" in every cell: nothing is filled in. The paper's numbers
live in PAPER only, and appear only in the columns labelled "paper".

    write_tables("results/runs", "results/tables")    # CLI: aunet tables --runs results/runs --out results/tables
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from aunet.config import Config
from aunet.errors import AunetError
from aunet.experiments import EXPERIMENTS, MODEL_TITLES, MODELS, Experiment
from aunet.io import atomic_write_csv, atomic_write_text
from aunet.labels import TARGET
from aunet.run import RunFolder
from aunet.stats import Difference, format_p, paired_difference

# Oktay et al., "Attention U-Net: Learning Where to Look for the Pancreas", MIDL 2018, results on the
# poster (pancreas), as transcribed in shared/REFERENCE.md section 4: (mean, std) over the test scans.
# The paper's TCIA table gives no parameter counts or inference times; those cells stay empty.
PAPER: dict[tuple[str, str], dict[str, Any]] = {
    ("ct150_120_30", "unet"): {"dice": (0.814, 0.116), "precision": (0.848, 0.110), "recall": (0.806, 0.126),
                               "s2s_mm": (2.358, 1.464), "params": 5.88e6, "seconds": 0.167, "test_cases": 30},
    ("ct150_120_30", "attention_unet"): {"dice": (0.840, 0.087), "precision": (0.849, 0.098),
                                         "recall": (0.841, 0.092), "s2s_mm": (1.920, 1.284), "params": 6.40e6,
                                         "seconds": 0.179, "test_cases": 30},
    ("ct150_30_120", "unet"): {"dice": (0.741, 0.137), "precision": (0.789, 0.176), "recall": (0.743, 0.179),
                               "s2s_mm": (3.765, 3.452), "params": 5.88e6, "seconds": 0.167, "test_cases": 120},
    ("ct150_30_120", "attention_unet"): {"dice": (0.767, 0.132), "precision": (0.794, 0.150),
                                         "recall": (0.762, 0.145), "s2s_mm": (3.507, 3.814), "params": 6.40e6,
                                         "seconds": 0.179, "test_cases": 120},
    ("tcia_61_21", "unet"): {"dice": (0.815, 0.068), "precision": (0.815, 0.105), "recall": (0.826, 0.062),
                             "s2s_mm": (2.576, 1.180), "test_cases": 21},
    ("tcia_61_21", "attention_unet"): {"dice": (0.821, 0.057), "precision": (0.815, 0.093),
                                       "recall": (0.835, 0.057), "s2s_mm": (2.333, 0.856), "test_cases": 21},
    ("tcia_finetune", "unet"): {"dice": (0.820, 0.043), "precision": (0.824, 0.070), "recall": (0.828, 0.064),
                                "s2s_mm": (2.464, 0.529), "test_cases": 21},
    ("tcia_finetune", "attention_unet"): {"dice": (0.831, 0.038), "precision": (0.825, 0.073),
                                          "recall": (0.840, 0.053), "s2s_mm": (2.305, 0.568), "test_cases": 21},
}

METRICS = ("dice", "precision", "recall", "s2s_mm")
ROWS = (("Dice", "dice"), ("Precision", "precision"), ("Recall", "recall"), ("S2S dist (mm)", "s2s_mm"),
        ("Params", "params"), ("Inference time", "seconds"), ("Test cases x seeds", "pairs"), ("Seeds", "seeds"),
        ("Epochs", "epochs"))
PAIRED_ROWS = (("Δ Dice, Att − U-Net [95 % CI]", "dice", "ci"), ("Δ Dice, Wilcoxon p", "dice", "p"),
               ("Δ Recall, Att − U-Net [95 % CI]", "recall", "ci"), ("Δ Recall, Wilcoxon p", "recall", "p"))
TABLES = {"table1_ct150": ("ct150", "Table 1 · CT-150 (pancreas)"),
          "table2_tcia": ("tcia", "Table 2 · TCIA Pancreas-CT (pancreas)")}
TABLES_SHORT = {"ct150": "CT-150", "tcia": "TCIA"}
NOT_RUN, NOT_GIVEN, IN_TIMINGS = "not run", "—", "timings.md"


@dataclass
class Column:
    """Every evaluated seed of one (experiment, model): the per-case scores and what the runs were."""

    experiment: str
    model: str
    cases: dict[tuple[int, str], dict[str, float]]  # (seed, case) -> {"dice": ..., "recall": ..., ...}
    cfgs: dict[int, Config]  # seed -> Config
    epochs: dict[int, int]
    devices: dict[int, str]
    seconds: dict[int, tuple[float, float]]  # seed -> (mean inference seconds per volume, training seconds)

    @property
    def seeds(self) -> list[int]:
        return sorted(self.cfgs)

    def values(self, metric: str) -> np.ndarray:
        return np.array([row[metric] for row in self.cases.values()], dtype=float)

    def mean_std(self, metric: str) -> tuple[float, float]:
        """Mean and (population) std over every (case, seed), NaN skipped."""
        v = self.values(metric)
        v = v[~np.isnan(v)]
        return (float(v.mean()), float(v.std())) if v.size else (math.nan, math.nan)


@dataclass
class Table:
    """One results table: header, rows of formatted cells, notes below it."""

    name: str  # file stem: results/tables/<name>.md and .csv
    title: str
    header: list[str]
    rows: list[list[str]]
    notes: list[str] = field(default_factory=list)

    def to_markdown(self) -> str:
        """The table as GitHub markdown, title above and notes below."""
        lines = [f"### {self.title}", "", "| " + " | ".join(self.header) + " |",
                 "|" + "---|" * len(self.header)]
        lines += ["| " + " | ".join(row) + " |" for row in self.rows]
        return "\n".join(lines + [""] + [f"- {n}" for n in self.notes]) + "\n"

    def write(self, out_dir: str | Path) -> tuple[Path, Path]:
        """Write <out_dir>/<name>.md and .csv atomically; returns both paths."""
        out_dir = Path(out_dir)
        md, table_csv = out_dir / f"{self.name}.md", out_dir / f"{self.name}.csv"
        atomic_write_text(md, self.to_markdown())
        atomic_write_csv(table_csv, [dict(zip(self.header, row)) for row in self.rows])
        return md, table_csv


def _target(columns: list[str], path: Path) -> str:
    """The class the tables show: the pancreas, or the only foreground class of a 2-class model."""
    classes = sorted(k[: -len("_dice")] for k in columns if k.endswith("_dice"))
    if TARGET in classes:
        return TARGET
    if len(classes) == 1:
        return classes[0]
    raise AunetError(f"{path}: has no {TARGET} metrics (classes: {', '.join(classes) or 'none'}); "
                     f"expected an evaluation of a model with a pancreas class.")


def seed_folders(runs_dir: str | Path, experiment: str, model: str) -> list[RunFolder]:
    """The run folders of every seed of one (experiment, model), in seed order."""
    folder = Path(runs_dir) / experiment / model
    found = [p for p in folder.glob("seed_*") if p.is_dir() and p.name[5:].isdigit()]
    return [RunFolder(p) for p in sorted(found, key=lambda p: int(p.name[5:]))]


def read_column(runs_dir: str | Path, experiment: str, model: str) -> Column | None:
    """Every evaluated seed of one (experiment, model), or None when none has been evaluated."""
    column = Column(experiment, model, {}, {}, {}, {}, {})
    for run in seed_folders(runs_dir, experiment, model):
        cases_path, summary_path = run.evaluation_paths("test")
        if not (run.has_config() and cases_path.is_file() and summary_path.is_file()):
            continue
        cfg = run.read_config()
        rows = run.read_evaluation_cases("test")
        summary = run.read_evaluation_summary("test")
        organ = _target(list(summary), summary_path)
        for row in rows:
            try:
                column.cases[cfg.seed, str(row["case"])] = {m: float(row[f"{organ}_{m}"]) for m in METRICS}
            except KeyError as e:
                raise AunetError(f"{cases_path}: lacks the column {e.args[0]}; expected the per-case rows written "
                                 f"by `aunet evaluate`.") from None
        device = run.read_device()
        column.cfgs[cfg.seed], column.epochs[cfg.seed] = cfg, run.epochs_done()
        column.devices[cfg.seed] = device["type"] if device else "device not recorded"
        training = sum(r.get("seconds", 0.0) for r in run.read_history())
        column.seconds[cfg.seed] = (float(summary.get("inference_seconds", {}).get("mean", math.nan)), training)
    return column if column.cfgs else None


def paired(a: Column | None, b: Column | None, metric: str) -> Difference:
    """b minus a over the (seed, case) pairs both columns scored (aunet.stats.paired_difference)."""
    keys = sorted(set(a.cases) & set(b.cases)) if a and b else []
    return paired_difference([a.cases[k][metric] for k in keys], [b.cases[k][metric] for k in keys])


def count_parameters(cfg: Config) -> int:
    """Parameters of the model a Config builds."""
    return sum(p.numel() for p in cfg.build_model().parameters())


def format_value(key: str, value: Any) -> str:
    """A cell formatted as in the paper: 0.814±0.116, 5.88 M, 0.167 s."""
    if value is None:
        return NOT_GIVEN
    if key == "params":
        return f"{value / 1e6:.2f} M"
    if key == "seconds":
        return value if isinstance(value, str) else f"{value:.3f} s"
    if isinstance(value, tuple):
        mean, std = value
        return "n/a" if math.isnan(mean) else f"{mean:.3f}±{std:.3f}"
    return str(value)


def _measured(column: Column) -> list[str]:
    values: dict[str, Any] = {m: column.mean_std(m) for m in METRICS}
    values["params"] = count_parameters(column.cfgs[column.seeds[0]])
    values["seconds"] = IN_TIMINGS  # wall-clock times live in timings.md (see the module docstring)
    cases = {case for _, case in column.cases}
    values["pairs"] = f"{len(column.cases)} ({len(cases)} cases)"
    values["seeds"] = ", ".join(map(str, column.seeds))
    epochs = sorted(set(column.epochs.values()))
    values["epochs"] = "/".join(map(str, epochs))
    return [format_value(k, values[k]) for _, k in ROWS]


def _paper_difference(experiment: str, metric: str) -> str:
    a, b = PAPER[experiment, "unet"][metric][0], PAPER[experiment, "attention_unet"][metric][0]
    return f"{b - a:+.3f}"


def build_table(name: str, runs_dir: str | Path, experiments: Mapping[str, Experiment] | None = None) -> Table:
    """One of TABLES from the records under runs_dir: a column per (experiment, model), each beside its paper column."""
    if name not in TABLES:
        raise AunetError(f"Unknown table {name!r}; expected one of: {', '.join(TABLES)}.")
    which, title = TABLES[name]
    experiments = EXPERIMENTS if experiments is None else experiments
    header, columns, notes = [f"{TARGET} (test)"], [], []
    for exp in (e for e in experiments.values() if e.table == which):
        read = {model: read_column(runs_dir, exp.name, model) for model in MODELS}
        diffs = {metric: paired(read["unet"], read["attention_unet"], metric) for metric in ("dice", "recall")}
        for model in MODELS:
            label, column = f"{MODEL_TITLES[model]} {exp.setting}", read[model]
            paper = PAPER[exp.name, model]
            header += [f"{label} measured", f"{label} paper"]
            cells = [NOT_RUN] * len(ROWS) if column is None else _measured(column)
            paper_cells = [format_value(k, paper.get(k)) for _, k in ROWS[:6]] + [str(paper["test_cases"]), NOT_GIVEN,
                                                                                  NOT_GIVEN]
            if model == "attention_unet":
                cells += [diffs[m].format_interval() if r == "ci" else format_p(diffs[m].p) for _, m, r in PAIRED_ROWS]
                paper_cells += [_paper_difference(exp.name, m) if r == "ci" else NOT_GIVEN for _, m, r in PAIRED_ROWS]
            else:
                cells += [""] * len(PAIRED_ROWS)
                paper_cells += [""] * len(PAIRED_ROWS)
            columns += [cells, paper_cells]
            notes.append(_note(label, column, runs_dir, exp.name, model))
    titles = [t for t, _ in ROWS] + [t for t, _, _ in PAIRED_ROWS]
    rows = [[row_title, *(col[i] for col in columns)] for i, row_title in enumerate(titles)]
    notes = ["measured: mean±std over every (test case, seed) of each column, from the per-case evaluations; Params "
             "counted on the model rebuilt from its config; wall-clock inference times are in timings.md, so that "
             "the same runs always give the same table.",
             "Δ rows: Attention U-Net minus U-Net over the (case, seed) pairs both were scored on: mean difference "
             "[95 % bootstrap interval] (n pairs), and the two-sided Wilcoxon signed-rank p (aunet.stats); the "
             "paper column gives the difference of the paper's means (the paper reports no test).",
             "paper: Oktay et al., MIDL 2018 poster; its inference time is one 160x160x96 forward pass on a GPU; "
             f"{NOT_GIVEN} = not reported there.", *notes]
    return Table(name, title, header, rows, notes)


def _note(label: str, column: Column | None, runs_dir: str | Path, experiment: str, model: str) -> str:
    if column is None:
        return f"{label}: not run (no evaluated seed in {Path(runs_dir) / experiment / model})."
    c = column.cfgs[column.seeds[0]]
    steps = f"{c.iterations_per_epoch} steps" if c.iterations_per_epoch else "one pass over the cases"
    devices = ", ".join(sorted(set(column.devices.values())))
    return (f"{label}: {Path(runs_dir) / experiment / model}/seed_{{{','.join(map(str, column.seeds))}}}, data "
            f"{c.data_dir}, {column.epochs[column.seeds[0]]} epochs x {steps}, {c.spacing:g} mm, {c.base_filters} "
            f"base filters, {devices}.")


def build_tables(runs_dir: str | Path, experiments: Mapping[str, Experiment] | None = None) -> list[Table]:
    """Both tables from the run records under runs_dir (AunetError when that folder does not exist)."""
    if not Path(runs_dir).is_dir():
        raise AunetError(f"{runs_dir}: folder not found; expected the runs folder of aunet.experiments "
                         f"(<runs>/<experiment>/<model>/seed_<k>/).")
    return [build_table(name, runs_dir, experiments) for name in TABLES]


def build_timings(runs_dir: str | Path, experiments: Mapping[str, Experiment] | None = None) -> Table:
    """Measured wall-clock times per column: inference seconds per test volume and training seconds per run."""
    experiments = EXPERIMENTS if experiments is None else experiments
    rows = []
    for exp in experiments.values():
        for model in MODELS:
            column = read_column(runs_dir, exp.name, model)
            paper = PAPER.get((exp.name, model), {}).get("seconds")
            if column is None:
                rows.append([f"{TABLES_SHORT[exp.table]} {MODEL_TITLES[model]} {exp.setting}", NOT_RUN, NOT_RUN,
                             format_value("seconds", paper)])
                continue
            inference = np.nanmean([s[0] for s in column.seconds.values()])
            training = np.mean([s[1] for s in column.seconds.values()])
            rows.append([f"{TABLES_SHORT[exp.table]} {MODEL_TITLES[model]} {exp.setting}", f"{inference:.3f} s",
                         f"{training:.0f} s", format_value("seconds", paper)])
    return Table("timings", "Measured times (wall clock; vary from run to run and machine to machine)",
                 ["column", "inference per test volume (mean over seeds)", "training per run (mean over seeds)",
                  "paper: one 160x160x96 forward pass on a GPU"], rows,
                 ["inference: mean of each seed's mean seconds per whole test volume (sliding window) on the run's "
                  "device; training: the sum of the epochs' seconds in each run's history, averaged over seeds."])


def write_tables(runs_dir: str | Path, out_dir: str | Path,
                 experiments: Mapping[str, Experiment] | None = None) -> list[Table]:
    """Build both tables and the timings and write them as <out_dir>/<name>.md and .csv; returns the two tables."""
    tables = build_tables(runs_dir, experiments)
    for table in [*tables, build_timings(runs_dir, experiments)]:
        table.write(out_dir)
    return tables


def dice_columns(runs_dir: str | Path) -> list[tuple[str, tuple[float, float] | None, tuple[float, float]]]:
    """(column label, measured Dice (mean, std) or None when not run, paper Dice) of every column (the bar chart)."""
    columns = []
    for exp in EXPERIMENTS.values():
        for model in MODELS:
            column = read_column(runs_dir, exp.name, model)
            columns.append((f"{TABLES_SHORT[exp.table]} {MODEL_TITLES[model]} {exp.setting}",
                            column.mean_std("dice") if column else None, PAPER[exp.name, model]["dice"]))
    return columns
