"""The paper's two results tables, rebuilt from raw run records, each measured column beside the paper's.

Only what the runs wrote is read, from the run folders `<runs_dir>/<experiment>/<model>/`
(aunet.experiments, read through aunet.run.RunFolder): the run's Config (the model is rebuilt from it to
count its parameters), its history (epochs trained), its device record, the per-case test evaluation
(the number of test cases) and its mean and std over the test cases (pancreas Dice, precision, recall,
S2S, inference seconds per volume).

A run without an evaluation summary shows "not run" in every cell of its column: nothing is filled in.
The paper's numbers live in PAPER only, and appear only in the columns labelled "paper".

    aunet tables --runs results/runs --out results/tables    # prints the tables, writes .md and .csv
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aunet.config import Config
from aunet.errors import AunetError
from aunet.experiments import EXPERIMENTS, MODEL_TITLES, MODELS
from aunet.io import atomic_write_csv, atomic_write_text
from aunet.labels import TARGET
from aunet.run import RunFolder

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

ROWS = (("Dice", "dice"), ("Precision", "precision"), ("Recall", "recall"), ("S2S dist (mm)", "s2s_mm"),
        ("Params", "params"), ("Inference time", "seconds"), ("Test cases", "test_cases"), ("Epochs", "epochs"))
TABLES = {"table1_ct150": ("ct150", "Table 1 · CT-150 (pancreas)"),
          "table2_tcia": ("tcia", "Table 2 · TCIA Pancreas-CT (pancreas)")}
TABLES_SHORT = {"ct150": "CT-150", "tcia": "TCIA"}
NOT_RUN, NOT_GIVEN = "not run", "—"


@dataclass
class RunRecord:
    """What one run's records say, in the tables' terms."""

    run_dir: Path
    values: dict[str, Any]  # ROWS keys -> (mean, std), a count or seconds
    cfg: Config
    device: str


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


def _target(summary: dict[str, Any], path: Path) -> str:
    """The class whose metrics the tables show: the pancreas, or the only foreground class of a 2-class model."""
    classes = sorted(k[: -len("_dice")] for k in summary if k.endswith("_dice"))
    if TARGET in classes:
        return TARGET
    if len(classes) == 1:
        return classes[0]
    raise AunetError(f"{path}: has no {TARGET} metrics (classes: {', '.join(classes) or 'none'}); "
                     f"expected an evaluation of a model with a pancreas class.")


def read_run(run_dir: str | Path) -> RunRecord | None:
    """The record of one run folder, or None when it has not been trained and evaluated."""
    run = RunFolder(run_dir)
    summary_path = run.evaluation_paths("test")[1]
    if not (run.has_config() and all(p.is_file() for p in run.evaluation_paths("test"))):
        return None
    cfg = run.read_config()
    summary = run.read_evaluation_summary("test")
    organ = _target(summary, summary_path)
    values: dict[str, Any] = {k: (float(summary[f"{organ}_{k}"]["mean"]), float(summary[f"{organ}_{k}"]["std"]))
                              for k in ("dice", "precision", "recall", "s2s_mm")}
    if "inference_seconds" not in summary:
        raise AunetError(f"{summary_path}: lacks inference_seconds; expected the summary written by `aunet evaluate`.")
    values["seconds"] = float(summary["inference_seconds"]["mean"])
    values["test_cases"] = len(run.read_evaluation_cases("test"))
    values["epochs"] = run.epochs_done()
    values["params"] = sum(p.numel() for p in cfg.build_model().parameters())
    device = run.read_device()
    return RunRecord(run.path, values, cfg, device["type"] if device else "device not recorded")


def format_value(key: str, value: Any) -> str:
    """A cell formatted as in the paper: 0.814±0.116, 5.88 M, 0.167 s."""
    if value is None:
        return NOT_GIVEN
    if key == "params":
        return f"{value / 1e6:.2f} M"
    if key == "seconds":
        return f"{value:.3f} s"
    if isinstance(value, tuple):
        mean, std = value
        return "n/a" if math.isnan(mean) else f"{mean:.3f}±{std:.3f}"
    return str(value)


def build_table(name: str, runs_dir: str | Path) -> Table:
    """One of TABLES from the records under runs_dir: a column per (experiment, model), each beside its paper column."""
    if name not in TABLES:
        raise AunetError(f"Unknown table {name!r}; expected one of: {', '.join(TABLES)}.")
    which, title = TABLES[name]
    runs_dir = Path(runs_dir)
    header, columns, notes = [f"{TARGET} (test)"], [], []
    for exp in (e for e in EXPERIMENTS.values() if e.table == which):
        for model in MODELS:
            label = f"{MODEL_TITLES[model]} {exp.setting}"
            record = read_run(runs_dir / exp.name / model)
            paper = PAPER[exp.name, model]
            header += [f"{label} measured", f"{label} paper"]
            columns.append([NOT_RUN] * len(ROWS) if record is None else
                           [format_value(k, record.values[k]) for _, k in ROWS])
            columns.append([format_value(k, paper.get(k)) for _, k in ROWS])
            if record is None:
                notes.append(f"{label}: not run (no evaluation in {runs_dir / exp.name / model}).")
            else:
                c = record.cfg
                steps = f"{c.iterations_per_epoch} steps" if c.iterations_per_epoch else "one pass over the cases"
                notes.append(f"{label}: {record.run_dir}, data {c.data_dir}, {record.values['epochs']} epochs x "
                             f"{steps}, {c.spacing:g} mm, {c.base_filters} base filters, {record.device}.")
    rows = [[row_title, *(col[i] for col in columns)] for i, (row_title, _) in enumerate(ROWS)]
    notes = ["measured: mean±std over the test cases of each run (its evaluation summary); Params counted "
             "on the model rebuilt from its config; Inference time: mean seconds per whole test volume "
             "(sliding window) on the run's device.",
             "paper: Oktay et al., MIDL 2018 poster; its inference time is one 160x160x96 forward pass on a GPU; "
             f"{NOT_GIVEN} = not reported there.", *notes]
    return Table(name, title, header, rows, notes)


def build_tables(runs_dir: str | Path) -> list[Table]:
    """Both tables from the run records under runs_dir (AunetError when that folder does not exist)."""
    if not Path(runs_dir).is_dir():
        raise AunetError(f"{runs_dir}: folder not found; expected the runs folder of aunet.experiments "
                         f"(<runs>/<experiment>/<model>/).")
    return [build_table(name, runs_dir) for name in TABLES]


def write_tables(runs_dir: str | Path, out_dir: str | Path) -> list[Table]:
    """Build both tables and write them as <out_dir>/<name>.md and .csv; returns them."""
    tables = build_tables(runs_dir)
    for table in tables:
        table.write(out_dir)
    return tables


def dice_columns(runs_dir: str | Path) -> list[tuple[str, tuple[float, float] | None, tuple[float, float]]]:
    """(column label, measured Dice (mean, std) or None when not run, paper Dice) for every run, for the bar chart."""
    columns = []
    for exp in EXPERIMENTS.values():
        for model in MODELS:
            record = read_run(Path(runs_dir) / exp.name / model)
            columns.append((f"{TABLES_SHORT[exp.table]} {MODEL_TITLES[model]} {exp.setting}",
                            record.values["dice"] if record else None, PAPER[exp.name, model]["dice"]))
    return columns
