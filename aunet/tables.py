"""The paper's two results tables, rebuilt from raw run records, each measured column beside the paper's.

Only what the runs wrote is read (aunet.records): each evaluated run's Config (the model is rebuilt from it to
count its parameters), its history (epochs, and whether its validation Dice reached a plateau: the
"Converged runs" row, aunet.convergence), its device record and its per-case test evaluation. A measured
cell is the mean ± std over every (test case, seed) of that column, and below the paper's rows each table has
**Δ rows**: Attention U-Net minus U-Net, pancreas Dice and recall, with the training run as the unit
(aunet.stats.paired_by_seed): the mean of the per-seed mean differences with its 95 % interval (a bootstrap
over seeds crossed with test cases), each seed's difference, and the p of the sign-flip tests over seeds and
over cases. The paper's own difference stands in its Attention U-Net column.

The tables hold no wall-clock numbers, so the same runs always give byte-identical files; the measured
inference and training times go to their own table (`build_timings`, results/tables/timings.md).
A column without an evaluated run says "not run" in every cell: nothing is filled in. A run whose records
cannot be read is left out, its column's seeds cell and notes say so (a column of only such runs says
"unreadable"). The paper's numbers come from aunet.paper, and appear only in the columns labelled "paper".

    write_tables("results/runs", "results/tables")    # CLI: aunet tables --runs results/runs --out results/tables
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np

from aunet import convergence, paper, text
from aunet.errors import AunetError
from aunet.experiments import EXPERIMENTS, MODEL_TITLES, MODELS, Experiment
from aunet.labels import TARGET
from aunet.records import LAYOUT, METRICS, Column, model_path, read_column, seeds_path
from aunet.stats import SeedDifference, paired_by_seed
from aunet.text import Table
from aunet.unet import count_parameters

ROWS = (("Dice", "dice"), ("Precision", "precision"), ("Recall", "recall"), ("S2S dist (mm)", "s2s_mm"),
        ("Params", "params"), ("Inference time", "seconds"), ("Test cases x seeds", "pairs"), ("Seeds", "seeds"),
        ("Epochs", "epochs"), ("Converged runs", "converged"))
DIFFERENCE_ROWS = (("Δ Dice, Att − U-Net [95 % CI]", "dice", "ci"), ("Δ Dice per seed", "dice", "seeds"),
                   ("Δ Dice p (seeds and cases)", "dice", "p"), ("Δ Recall, Att − U-Net [95 % CI]", "recall", "ci"),
                   ("Δ Recall per seed", "recall", "seeds"), ("Δ Recall p (seeds and cases)", "recall", "p"))
TABLES = {"table1_ct150": ("ct150", "Table 1 · CT-150 (pancreas)"),
          "table2_tcia": ("tcia", "Table 2 · TCIA Pancreas-CT (pancreas)")}
TABLES_SHORT = {"ct150": "CT-150", "tcia": "TCIA"}
NOT_GIVEN, IN_TIMINGS = "—", "timings.md"


def paper_cell(key: str, value: Any) -> str:
    """One of the paper's cells: 0.814 ± 0.116, 5.88 M, 0.167 s; — when the paper does not report it."""
    if value is None:
        return NOT_GIVEN
    if key == "params":
        return text.millions(value)
    if key == "seconds":
        return text.seconds(value)
    return text.mean_std(*value) if isinstance(value, tuple) else str(value)


def _measured(column: Column) -> list[str]:
    if not column.seeds:
        return [text.UNREADABLE if column.damaged else text.NOT_RUN] * len(ROWS)
    cells = [text.mean_std(*column.mean_std(m)) for m in METRICS]
    cells += [text.millions(count_parameters(column.first.cfg.build_model())), IN_TIMINGS]
    cases = {case for _, case in column.cases}
    left_out = f" ({', '.join(map(str, column.damaged))} {text.UNREADABLE})" if column.damaged else ""
    epochs = sorted({run.epochs for run in column.runs.values()})
    return cells + [f"{len(column.cases)} ({len(cases)} cases)", ", ".join(map(str, column.seeds)) + left_out,
                    "/".join(map(str, epochs)), text.share(column.converged, len(column.seeds))]


def _difference_cells(diffs: Mapping[str, SeedDifference]) -> list[str]:
    """The Δ rows of the Attention U-Net column: interval (seeds x cases), per-seed differences, p."""
    spell = {"ci": lambda d: text.interval(d, n=True), "seeds": lambda d: text.per_seed(d.per_seed),
             "p": lambda d: text.p_value(d.p)}
    return [spell[kind](diffs[metric]) for _, metric, kind in DIFFERENCE_ROWS]


def build_table(name: str, runs_dir: str | Path, experiments: Mapping[str, Experiment] | None = None) -> Table:
    """One of TABLES from the records under runs_dir: a column per (experiment, model), each beside its paper column."""
    if name not in TABLES:
        raise AunetError(f"Unknown table {name!r}; expected one of: {', '.join(TABLES)}.")
    which, title = TABLES[name]
    experiments = EXPERIMENTS if experiments is None else experiments
    header, columns, notes = [f"{TARGET} (test)"], [], []
    for exp in (e for e in experiments.values() if e.table == which):
        read = {model: read_column(runs_dir, exp.name, model) for model in MODELS}
        unet, att = read["unet"], read["attention_unet"]
        diffs = {m: paired_by_seed(unet.scores(m), att.scores(m)) for m in ("dice", "recall")}
        for model in MODELS:
            label, column = f"{MODEL_TITLES[model]} {exp.setting}", read[model]
            reported = paper.RESULTS[exp.name, model]
            header += [f"{label} measured", f"{label} paper"]
            cells = _measured(column)
            paper_cells = [paper_cell(k, reported.get(k)) for _, k in ROWS[:6]] + [str(reported["test_cases"]),
                                                                                  NOT_GIVEN, NOT_GIVEN, NOT_GIVEN]
            if model == "attention_unet":
                cells += _difference_cells(diffs)
                paper_cells += [text.signed(paper.gain(exp.name, m)) if r == "ci" else NOT_GIVEN
                                for _, m, r in DIFFERENCE_ROWS]
            else:
                cells += [""] * len(DIFFERENCE_ROWS)
                paper_cells += [""] * len(DIFFERENCE_ROWS)
            columns += [cells, paper_cells]
            notes += _notes(label, column, runs_dir)
    titles = [t for t, _ in ROWS] + [t for t, _, _ in DIFFERENCE_ROWS]
    rows = [[row_title, *(col[i] for col in columns)] for i, row_title in enumerate(titles)]
    notes = ["measured: mean ± std over every (test case, seed) of each column, from the per-case evaluations; "
             "Params counted on the model rebuilt from its config; wall-clock inference times are in timings.md, so "
             "that the same runs always give the same table.",
             "Converged runs: runs whose validation pancreas Dice rose by less than "
             f"{convergence.TOLERANCE:g} over the last quarter of their epochs ({convergence.SMOOTH}-point moving "
             "mean, aunet.convergence), of the column's runs.",
             "Δ rows: Attention U-Net minus U-Net with the training run as the unit (aunet.stats): the mean of the "
             "per-seed mean differences [95 % interval: bootstrap over seeds crossed with test cases] (seeds x "
             "cases); per seed: each seed's mean difference over its test cases, in seed order; p: the larger of two "
             "exact two-sided sign-flip tests, over the per-seed and over the per-case mean differences (3 seeds "
             "cannot go below 0.25); the paper column gives the difference of the paper's means (the paper reports "
             "no test).",
             "paper: Oktay et al., MIDL 2018 poster; its inference time is one 160x160x96 forward pass on a GPU; "
             f"{NOT_GIVEN} = not reported there.", *notes]
    return Table(name, title, header, rows, notes)


def _notes(label: str, column: Column, runs_dir: str | Path) -> list[str]:
    """Where a column's runs are and how they were trained; one more line per run left out as unreadable."""
    left_out = [f"{label}, seed {seed} left out ({text.UNREADABLE}): {why}" for seed, why in column.damaged.items()]
    if not column.seeds:
        return [f"{label}: {text.NOT_RUN} (no evaluated seed in "
                f"{model_path(runs_dir, column.experiment, column.model)}).", *left_out]
    c = column.first.cfg
    steps = f"{c.iterations_per_epoch} steps" if c.iterations_per_epoch else "one pass over the cases"
    devices = ", ".join(sorted({run.device for run in column.runs.values()}))
    return [f"{label}: {seeds_path(runs_dir, column.experiment, column.model, column.seeds)}, data {c.data_dir}, "
            f"{column.first.epochs} epochs x {steps}, {c.spacing:g} mm, {c.base_filters} base filters, {devices}.",
            *left_out]


def build_tables(runs_dir: str | Path, experiments: Mapping[str, Experiment] | None = None) -> list[Table]:
    """Both tables from the run records under runs_dir (AunetError when that folder does not exist)."""
    if not Path(runs_dir).is_dir():
        raise AunetError(f"{runs_dir}: folder not found; expected the runs folder of aunet.experiments ({LAYOUT}).")
    return [build_table(name, runs_dir, experiments) for name in TABLES]


def column_label(exp: Experiment, model: str) -> str:
    """'CT-150 Att U-Net (120/30)': one column of either table."""
    return f"{TABLES_SHORT[exp.table]} {MODEL_TITLES[model]} {exp.setting}"


def build_timings(runs_dir: str | Path, experiments: Mapping[str, Experiment] | None = None) -> Table:
    """Measured wall-clock times per column: inference seconds per test volume and training seconds per run."""
    experiments = EXPERIMENTS if experiments is None else experiments
    rows = []
    for exp in experiments.values():
        for model in MODELS:
            column = read_column(runs_dir, exp.name, model)
            reported = paper_cell("seconds", paper.RESULTS.get((exp.name, model), {}).get("seconds"))
            if not column.seeds:
                missing = text.UNREADABLE if column.damaged else text.NOT_RUN
                rows.append([column_label(exp, model), missing, missing, reported])
                continue
            inference = np.nanmean([run.inference_seconds for run in column.runs.values()])
            training = np.mean([run.training_seconds for run in column.runs.values()])
            rows.append([column_label(exp, model), text.seconds(inference), text.seconds(training, 0), reported])
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
            columns.append((column_label(exp, model), column.mean_std("dice") if column.seeds else None,
                            paper.RESULTS[exp.name, model]["dice"]))
    return columns
