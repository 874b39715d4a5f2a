"""The study's report: notebook 08's table, forest plot, focus and conclusions, from the run records only.

`aunet.study` says what the study runs (its pre-registered conditions) and runs it; this module reads what the
runs recorded and reports it the same way for every condition: the differences of `aunet.stats` with the
training run as the unit (as in the paper tables: interval over seeds crossed with cases, each seed's difference,
the sign-flip p over seeds and over cases), each model's Dice, the Holm-adjusted p over the registered family,
the level-2 focus, one sentence per condition (every number a cell of the table) and the README's generated
section.

    results = read_results("results/runs/study", conditions)
    table, per_seed, sentences = write_results(results, "results/tables")
    replace_marked("README.md", README_SECTION, readme_section(table, sentences, base, seeds=[0, 1, 2]))
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

from aunet import paper, text
from aunet.config import Config
from aunet.records import read_column, snapshots
from aunet.stats import SeedDifference, holm, paired_by_seed, rank_correlation, seed_means, verdict
from aunet.study import Condition
from aunet.text import Table

FOCUS_LEVEL = "level2"  # the paper's figure and notebook 05 show level 2
FOCUS_TITLE = "focus (level 2)"


@dataclass
class Result:
    """One condition's differences (the run as the unit, and each seed's) and its Attention U-Net runs' focus."""

    condition: Condition
    diffs: dict[str, SeedDifference]  # metric -> Att - U-Net, seeds crossed with test cases
    per_seed: dict[int, dict[str, float]]  # seed -> metric -> mean Att - U-Net over that seed's test cases
    cases: dict[int, int]  # seed -> test cases both models scored
    focus: dict[int, tuple[int, float]]  # seed -> (epoch of the last snapshot, level-2 focus there)
    paper: dict[str, float]  # metric -> the paper's Att - U-Net difference of means
    levels: dict[str, tuple[float, float]]  # model -> its pancreas Dice mean, std over (seed, case) (models run)
    damaged: list[str] = field(default_factory=list)  # runs left out: why their records cannot be read


def _focus(runs_dir: str | Path, condition: str, seeds: Sequence[int]) -> dict[int, tuple[int, float]]:
    from aunet.viz.plots import attention_focus

    out = {}
    for seed in seeds:
        found = snapshots(runs_dir, condition, "attention_unet", seed)
        if found:
            last = found[max(found)]
            out[seed] = (max(found), attention_focus(last[FOCUS_LEVEL], last["label"]))
    return out


def read_results(runs_dir: str | Path, conditions: Mapping[str, Condition]) -> list[Result]:
    """Each condition's differences from the run records under runs_dir (conditions not run have n = 0)."""
    results = []
    for c in conditions.values():
        unet = read_column(runs_dir, c.unet_from or c.name, "unet")
        att = read_column(runs_dir, c.name, "attention_unet")
        means = {m: seed_means(unet.scores(m), att.scores(m)) for m in METRICS}
        per_seed = {s: {m: means[m][s] for m in METRICS if s in means[m]} for s in means["dice"]}
        both = set(unet.cases) & set(att.cases)  # (seed, case) scored by both models
        cases = {s: sum(seed == s for seed, _ in both) for s in per_seed}
        levels = {model: col.mean_std("dice") for model, col in (("unet", unet), ("attention_unet", att)) if col.seeds}
        results.append(Result(c, {m: paired_by_seed(unet.scores(m), att.scores(m)) for m in METRICS}, per_seed,
                              cases, _focus(runs_dir, c.name, att.seeds), {m: paper.gain(c.paper, m) for m in METRICS},
                              levels, [*unet.damaged.values(), *att.damaged.values()]))
    return results


def mean_focus(result: Result) -> float:
    values = [f for _, f in result.focus.values() if not math.isnan(f)]
    return sum(values) / len(values) if values else math.nan


METRICS = ("dice", "recall", "precision")  # pre-registered: Dice and recall; precision is exploratory
DESIGN = "seeds x cases"
HEADER = ["condition", "changes", DESIGN, "U-Net Dice", "Att U-Net Dice", "Δ Dice [95 % interval]", "Δ Dice per seed",
          "Δ Dice p", "Δ recall [95 % interval]", "Δ recall per seed", "Δ recall p", "paper Δ Dice", "paper Δ recall",
          "Dice verdict", "recall verdict", FOCUS_TITLE, "Δ Dice p (Holm)", "Δ recall p (Holm)",
          "Δ precision [95 % interval] (exploratory)", "Δ precision p"]


def _level(result: Result, model: str) -> str:
    mean, std = result.levels.get(model, (math.nan, math.nan))
    return text.NOT_RUN if math.isnan(mean) else text.mean_std(mean, std)


def results_table(results: Sequence[Result]) -> Table:
    """One row per condition: Att - U-Net pancreas Dice and recall with intervals and p, the paper's, the focus."""
    family = [r.diffs[m].p for r in results for m in ("dice", "recall")]  # the pre-registered tests
    adjusted = iter(holm(family))
    rows = []
    for r in results:
        d, rec, pre = r.diffs["dice"], r.diffs["recall"], r.diffs["precision"]
        holm_dice, holm_recall = text.p_value(next(adjusted)), text.p_value(next(adjusted))
        rows.append([r.condition.title, r.condition.changes, text.design(d.n, d.cases), _level(r, "unet"),
                     _level(r, "attention_unet"), text.interval(d), text.per_seed(d.per_seed), text.p_value(d.p),
                     text.interval(rec), text.per_seed(rec.per_seed), text.p_value(rec.p),
                     text.signed(r.paper["dice"]), text.signed(r.paper["recall"]), verdict(d), verdict(rec),
                     text.number(mean_focus(r), 2), holm_dice, holm_recall, text.interval(pre), text.p_value(pre.p)])
    notes = ["Δ: Attention U-Net minus U-Net, pancreas, on the held-out test cases, with the training run as the unit "
             "(aunet.stats, as in the paper tables): the mean of the per-seed mean differences [95 % interval: "
             "bootstrap over seeds crossed with test cases]; per seed: each seed's mean difference, in seed order; "
             "p: the larger of two exact two-sided sign-flip tests, over the per-seed and over the per-case mean "
             "differences (3 seeds cannot go below 0.25); seeds x cases: the replications and the repeated "
             "measures.",
             "U-Net Dice, Att U-Net Dice: each model's pancreas Dice, mean ± std over its (seed, case) scores: how "
             "well the two models segment at all, which a difference alone does not say.",
             "Holm: the p value adjusted (Holm-Bonferroni) over the family of the "
             f"{sum(not math.isnan(p) for p in family)} pre-registered tests (Dice and recall of every condition "
             "run), for reading many rows at once; the verdicts use the unadjusted p, as registered.",
             "Δ precision: not pre-registered (Dice and recall were); shown to read the recall difference by, "
             "with no verdict.",
             f"verdict (does attention raise it?): {text.VERDICT_RULE}.",
             "paper Δ: the paper's Attention U-Net minus U-Net means (Oktay et al., MIDL 2018; 120/30, or 30/120 for "
             "less data); it reports no test. The phantom runs are not comparable with the paper's numbers.",
             f"focus: mean alpha on the pancreas / elsewhere at {FOCUS_LEVEL}, on the snapshot slice of each "
             "Attention U-Net run's last epoch (notebook 05), averaged over seeds; per seed in study_focus.",
             *(f"{r.condition.title}: a run left out ({text.UNREADABLE}): {why}" for r in results for why in r.damaged)]
    return Table("study_differences", "Does attention help? Attention U-Net minus U-Net, per condition", HEADER,
                 rows, notes)


def focus_table(results: Sequence[Result]) -> Table:
    """One row per (condition, seed): the level-2 focus beside that seed's Dice and recall differences."""
    rows = []
    for r in results:
        for seed in sorted(set(r.per_seed) | set(r.focus)):
            epoch, focus = r.focus.get(seed, (0, math.nan))
            diffs = r.per_seed.get(seed, {})
            cells = [text.signed(diffs[m]) if m in diffs else text.NA for m in ("dice", "recall")]
            rows.append([r.condition.title, str(seed), text.number(focus, 2), str(epoch) if epoch else text.NA, *cells,
                         str(r.cases.get(seed, 0))])
    return Table("study_focus", "Attention focus beside the Dice difference, per condition and seed",
                 ["condition", "seed", FOCUS_TITLE, "snapshot epoch", "Δ Dice", "Δ recall", "test cases"],
                 rows, ["focus: mean alpha on the pancreas / mean alpha elsewhere (1 = no preference); Δ: Attention "
                        "U-Net minus U-Net, mean over that seed's test cases."])


def conclusions(table: Table) -> list[str]:
    """One sentence per condition, every number taken from the table's cells."""
    out = []
    for row in table.rows:
        cell = dict(zip(table.header, row))
        if cell[DESIGN] == text.NOT_RUN:
            out.append(f"{cell['condition']}: {text.NOT_RUN}.")
            continue
        out.append(f"{cell['condition']}: Attention U-Net minus U-Net pancreas Dice {cell['Δ Dice [95 % interval]']} "
                   f"(per seed {cell['Δ Dice per seed']}; p {cell['Δ Dice p']}, Holm {cell['Δ Dice p (Holm)']}; "
                   f"{cell['Dice verdict']}) and recall {cell['Δ recall [95 % interval]']} (per seed "
                   f"{cell['Δ recall per seed']}; p {cell['Δ recall p']}, Holm {cell['Δ recall p (Holm)']}; "
                   f"{cell['recall verdict']}) over {cell[DESIGN]} seeds x test cases, at U-Net Dice "
                   f"{cell['U-Net Dice']} and Attention U-Net Dice {cell['Att U-Net Dice']}; the paper: Dice "
                   f"{cell['paper Δ Dice']}, recall {cell['paper Δ recall']}.")
    return out


def focus_sentence(per_seed: Table) -> str:
    """Spearman's rank correlation of focus and Dice gain over the per-seed table's runs (its cells, as printed)."""
    cells = [dict(zip(per_seed.header, row)) for row in per_seed.rows]
    points = [(float(c[FOCUS_TITLE]), float(c["Δ Dice"])) for c in cells
              if text.NA not in (c[FOCUS_TITLE], c["Δ Dice"])]
    r = rank_correlation([f for f, _ in points], [d for _, d in points])
    if math.isnan(r.rho):
        return (f"Focus and gain: {r.n} Attention U-Net run(s) with a focus and a Dice difference: fewer than 3, or "
                "all alike, so no correlation.")
    return (f"Focus and gain: over the {r.n} Attention U-Net runs (every condition and seed), Spearman's rank "
            f"correlation of the level-2 focus with that seed's Dice difference is {text.signed(r.rho, 2)} "
            f"(p {text.p_value(r.p)}).")


def forest_rows(results: Sequence[Result]
                ) -> tuple[list[str], dict[str, list[SeedDifference]], dict[str, list[float]]]:
    """(labels, {"Dice": diffs, "recall": diffs}, {"Dice": paper, "recall": paper}) for aunet.viz.plots.plot_forest."""
    labels = [r.condition.title for r in results]
    names = {"Dice": "dice", "recall": "recall"}
    return (labels, {k: [r.diffs[m] for r in results] for k, m in names.items()},
            {k: [r.paper[m] for r in results] for k, m in names.items()})


def focus_points(results: Sequence[Result]) -> list[tuple[str, float, float]]:
    """(condition, focus, that seed's Dice difference) per Attention U-Net run, for plot_focus_vs_gain."""
    return [(r.condition.title, r.focus[s][1], r.per_seed[s]["dice"]) for r in results
            for s in sorted(set(r.focus) & set(r.per_seed)) if "dice" in r.per_seed[s]]


README_SECTION = "study results"  # the README's generated region (aunet.text.replace_marked)


def readme_section(table: Table, sentences: Sequence[str], base: Config, seeds: Sequence[int]) -> str:
    """The README's "Does attention help?" results: the forest plot and the conclusions (the table's cells)."""
    conditions = ", ".join(row[0] for row in table.rows)
    lines = ["Generated by notebook 08 (`make study`) from the run records in `results/runs/study/`: "
             f"{len(table.rows)} conditions ({conditions}), baseline {base.epochs} epochs x "
             f"{base.iterations_per_epoch} steps, seeds {', '.join(map(str, seeds))}. "
             "Attention U-Net minus U-Net, pancreas, held-out test cases, with the training run as the unit "
             "(interval over seeds crossed with test cases, each seed's difference, sign-flip p over seeds and "
             "over cases); the table with each model's Dice, the focus and the exploratory precision "
             "difference is `results/tables/study_differences.md`, per seed `results/tables/study_focus.md`.", "",
             "![Attention U-Net minus U-Net per condition](figures/study_forest.png)", ""]
    lines += [f"- {s}" for s in sentences]
    return "\n".join(lines)


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
