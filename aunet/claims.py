"""The paper's claims, checked against the run records: measured effect, interval, p value, verdict, and what
the design could have detected.

Oktay et al. (MIDL 2018) claim that attention gates

    1. raise pancreas Dice, and
    2. raise pancreas recall (fewer missed pancreas voxels), both over all four experiments;
    3. help more with less training data: the gain at 30/120 exceeds the gain at 120/30;
    4. and that fine-tuning the CT-150 model on TCIA beats training on TCIA from scratch;
    5. at little computational cost.

Each row is computed from the same per-case records as the tables (aunet.records.read_column), with the
training run as the unit (aunet.stats):

    1, 2  Attention U-Net minus U-Net, pooled over the experiments and paired by seed: a seed's runs of every
          experiment are one replication, each experiment's test cases are cases of their own
          (aunet.stats.paired_by_seed over (seed, (experiment, case)); each experiment's own Δ rows are in
          the tables).
    3     the Dice gain at 30/120 minus the gain at 120/30: two groups of runs trained on different data
          (aunet.stats.independent_seed_difference: permutation tests of the groups' per-seed and per-case
          mean gains); the per-seed cell lists each group's per-seed gains.
    4     fine-tuned minus from-scratch Dice on TCIA, both models, paired by seed (over (seed, (model, case))).
    5     Attention U-Net / U-Net in parameters and in forward FLOPs on one inference window (counted by
          torch.utils.flop_counter; deterministic, unlike seconds, which are in timings.md).

Each of rows 1-4 also states the smallest difference its design (its seeds and test cases, the sizes of the
score model's parts measured on its own scores) detects with 80 % power: aunet.power.detectable_difference
(claim 3: independent_detectable_difference), from fixed random draws, so the same records give the same
table; "none" where the design cannot reach p < 0.05 at all (fewer than 6 seeds).

Verdicts: aunet.stats.verdict, by the rule aunet.text.VERDICT_RULE. Claim 5 is supported when both ratios
are at most COST_LIMIT (aunet.paper.cost_ratio: the paper's parameters +9 %, inference time +7 %).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Mapping

import numpy as np
import torch

from aunet import paper, text
from aunet.config import Config
from aunet.errors import AunetError
from aunet.experiments import EXPERIMENTS, Experiment
from aunet.power import detectable_difference, independent_detectable_difference
from aunet.records import Column, read_column
from aunet.stats import (
    Scores,
    independent_seed_difference,
    paired_by_seed,
    per_case_means,
    per_seed_means,
    score_matrix,
    verdict,
)
from aunet.text import Table
from aunet.unet import count_parameters

COST_LIMIT = 1.10  # "little cost": at most 10 % more parameters and FLOPs than U-Net
CLAIMS_TABLE = "claims"
PAPER_EXPERIMENTS = tuple(EXPERIMENTS)  # the pooled claims use the paper's four experiments
HEADER = ["claim", "measured as", "effect [95 % interval]", "per seed", "p", "seeds x cases", "detectable (80 % power)",
          "paper", "verdict"]
Columns = Mapping[tuple[str, str], Column]


def _column(columns: Columns, name: str, model: str) -> Column:
    """One column, empty when the experiment was not among those read."""
    return columns.get((name, model)) or Column(name, model)


def _pooled(columns: Columns, groups: Mapping[str, tuple[str, str]], metric: str) -> Scores:
    """{(seed, (group, case)): score} of several columns, each named by its group: the seed stays the unit."""
    return {(seed, (group, case)): score for group, (name, model) in groups.items()
            for (seed, case), score in _column(columns, name, model).scores(metric).items()}


def _scores(columns: Columns, experiment: str, metric: str) -> np.ndarray:
    """y (seeds, cases, 2: U-Net, Att U-Net) of one experiment, NaN where a model did not score a (seed, case)."""
    unet, att = (_column(columns, experiment, m) for m in ("unet", "attention_unet"))
    return score_matrix(unet.scores(metric), att.scores(metric))[2]


def forward_flops(cfg: Config) -> int:
    """FLOPs of one eval-mode forward pass on one inference window (torch.utils.flop_counter).

    Counted on the plain PyTorch path (aunet.speedups off): the counter sees aten convolutions, and the CPU
    fast paths compute the same function through other operators it would not count.
    """
    from torch.utils.flop_counter import FlopCounterMode

    from aunet import speedups

    with speedups.off():
        model = cfg.build_model().eval()
    x = torch.zeros(1, cfg.in_channels, *cfg.inference_patch_size)
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model(x)
    return int(counter.get_total_flops())


def _paired_row(claim: str, what: str, a: Scores, b: Scores, paper_cell: str) -> list[str]:
    """One claim row of b - a paired by seed, with the smallest difference its design detects."""
    diff = paired_by_seed(a, b)
    detectable = detectable_difference(score_matrix(a, b)[2]) if diff.n else math.nan
    return [claim, what, text.interval(diff), text.per_seed(diff.per_seed), text.p_value(diff.p),
            text.design(diff.n, diff.cases), text.detectable(detectable), paper_cell, verdict(diff)]


def _less_data_row(columns: Columns) -> list[str]:
    """Claim 3: the Dice gain at 30/120 minus the gain at 120/30, two independent groups of runs."""
    settings = {"120/30": "ct150_120_30", "30/120": "ct150_30_120"}
    y = {s: _scores(columns, name, "dice") for s, name in settings.items()}
    d = {s: v[..., 1] - v[..., 0] for s, v in y.items()}
    diff = independent_seed_difference(d["120/30"], d["30/120"])
    detectable = independent_detectable_difference(y["120/30"], y["30/120"]) if diff.n else math.nan
    per_seed = "; ".join(f"{s}: {text.per_seed(per_seed_means(d[s]))}" for s in ("30/120", "120/30"))
    design = ", ".join(f"{text.design(per_seed_means(d[s]).size, per_case_means(d[s]).size)} ({s})"
                       for s in ("30/120", "120/30"))
    reported = paper.gain("ct150_30_120", "dice") - paper.gain("ct150_120_30", "dice")
    return ["Attention helps more with less training data", "Dice gain at 30/120 − gain at 120/30",
            text.interval(diff), per_seed, text.p_value(diff.p), design, text.detectable(detectable),
            text.signed(reported), verdict(diff)]


def build_claims(runs_dir: str | Path, experiments: Mapping[str, Experiment] | None = None) -> Table:
    """The claims table from the run records under runs_dir."""
    experiments = EXPERIMENTS if experiments is None else experiments
    if not Path(runs_dir).is_dir():
        raise AunetError(f"{runs_dir}: folder not found; expected the runs folder of aunet.experiments.")
    columns = {(name, model): read_column(runs_dir, name, model)
               for name in experiments for model in ("unet", "attention_unet")}
    names = [n for n in experiments if n in PAPER_EXPERIMENTS]
    rows = []
    for claim, metric in (("Attention gates raise pancreas Dice", "dice"),
                          ("Attention gates raise pancreas recall", "recall")):
        a, b = (_pooled(columns, {n: (n, model) for n in names}, metric) for model in ("unet", "attention_unet"))
        reported = ", ".join(text.signed(paper.gain(n, metric)) for n in names)
        rows.append(_paired_row(claim, f"Att − U-Net {metric}, paired by seed over {' + '.join(names)}", a, b,
                                f"{reported} (per experiment)"))
    rows.append(_less_data_row(columns))
    scratch, tuned = (_pooled(columns, {m: (name, m) for m in ("unet", "attention_unet")}, "dice")
                      for name in ("tcia_61_21", "tcia_finetune"))
    reported = ", ".join(text.signed(paper.mean("tcia_finetune", m, "dice") - paper.mean("tcia_61_21", m, "dice"))
                         for m in ("unet", "attention_unet"))
    rows.append(_paired_row("Fine-tuning beats training from scratch on TCIA",
                            "fine-tuned − scratch Dice, both models, paired by seed", scratch, tuned,
                            f"{reported} (U-Net, Att U-Net)"))
    rows.append(_cost_row(columns))
    notes = ["effect: the mean of the per-seed mean differences [95 % interval: bootstrap over seeds crossed with "
             "test cases]; per seed: each seed's mean difference, in seed order (claim 3: each setting's per-seed "
             "gains); p: two-sided, the larger of the exact tests over seeds and over cases (sign flips; claim 3: "
             "permutations of the two groups); seeds x cases: the replications and the repeated measures (claims "
             "1, 2 and 4 count each experiment's, or each model's, test cases as cases of their own).",
             "detectable: the smallest true difference this design (its seeds and cases, the run-to-run and "
             "case-to-case spread measured on its scores, aunet.power) would call supported in 80 % of "
             f"reproductions; {text.NONE_DETECTABLE}: with these seeds or cases no p can go below 0.05.",
             f"verdict: {text.VERDICT_RULE}.",
             f"cost: supported when Attention U-Net has at most {COST_LIMIT:.2f}x the parameters and forward FLOPs "
             "of U-Net (FLOPs counted on one inference window; measured seconds are in timings.md).",
             "paper: differences of the paper's means (Oktay et al., MIDL 2018 poster); it reports no test.",
             *(f"left out ({text.UNREADABLE}): {why}" for c in columns.values() for why in c.damaged.values())]
    return Table(CLAIMS_TABLE, "The paper's claims, checked on these runs", HEADER, rows, notes)


def _cost_row(columns: Columns) -> list[str]:
    pair = next(((u, _column(columns, n, "attention_unet")) for (n, m), u in columns.items()
                 if m == "unet" and u.seeds and _column(columns, n, "attention_unet").seeds), None)
    claim, what = "The gates cost little computation", "Att / U-Net parameters; forward FLOPs (one window)"
    reported = f"{text.ratio(paper.cost_ratio('params'))} params; {text.ratio(paper.cost_ratio('seconds'))} time"
    if pair is None:
        return [claim, what, text.NOT_RUN, "", "", "", "", reported, text.NOT_RUN]
    u_cfg, a_cfg = (c.first.cfg for c in pair)
    params = count_parameters(a_cfg.build_model()) / count_parameters(u_cfg.build_model())
    flops = forward_flops(a_cfg) / forward_flops(u_cfg)
    ok = params <= COST_LIMIT and flops <= COST_LIMIT
    return [claim, what, f"{text.ratio(params)}; {text.ratio(flops)}", "", "", "", "", reported,
            "supported" if ok else "not supported"]


def claims_summary(table: Table) -> list[str]:
    """One sentence per claim, from the table's own cells (for notebooks and the README)."""
    out = []
    for row in table.rows:
        cell = dict(zip(table.header, row))
        tested = (f", per seed {cell['per seed']}, p {cell['p']}, {cell['seeds x cases']} seeds x test cases; "
                  f"detectable with 80 % power: {cell['detectable (80 % power)']}" if cell["p"] else "")
        out.append(f"{cell['claim']}: {cell['verdict']} ({cell['effect [95 % interval]']}{tested}).")
    return out


def write_claims(runs_dir: str | Path, out_dir: str | Path,
                 experiments: Mapping[str, Experiment] | None = None) -> Table:
    """Build the claims table and write it as <out_dir>/claims.md and .csv; returns it."""
    table = build_claims(runs_dir, experiments)
    table.write(out_dir)
    return table
