"""The paper's claims, checked against the run records: measured effect, interval, p value, verdict.

Oktay et al. (MIDL 2018) claim that attention gates

    1. raise pancreas Dice, and
    2. raise pancreas recall (fewer missed pancreas voxels), both over all four experiments;
    3. help more with less training data: the gain at 30/120 exceeds the gain at 120/30;
    4. and that fine-tuning the CT-150 model on TCIA beats training on TCIA from scratch;
    5. at little computational cost.

Each row is computed from the same per-case records as the tables (aunet.tables.read_column):

    1, 2  Attention U-Net minus U-Net over every (experiment, case, seed) pair, pooled over the experiments
          (each experiment's own paired row is in the tables): paired bootstrap interval, Wilcoxon p.
    3     the Dice gain per pair at 30/120 minus the gain per pair at 120/30: two independent sets of pairs
          (different test cases), bootstrap interval of the difference of means, Mann-Whitney U p.
    4     fine-tuned minus from-scratch Dice on TCIA, paired by (model, case, seed).
    5     Attention U-Net / U-Net in parameters and in forward FLOPs on one inference window (counted by
          torch.utils.flop_counter; deterministic, unlike seconds, which are in timings.md).

Verdicts (aunet.stats.verdict): "supported" when the interval lies above zero and p < 0.05, "not supported"
when it lies below zero and p < 0.05 (the runs show the opposite), else "inconclusive at this budget".
Claim 5 is supported when both ratios are at most COST_LIMIT (the paper: 6.40 M / 5.88 M parameters, +9 %,
and 0.179 s / 0.167 s inference, +7 %).
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

import torch

from aunet.config import Config
from aunet.errors import AunetError
from aunet.experiments import EXPERIMENTS, Experiment
from aunet.stats import Difference, format_p, independent_difference, paired_difference, verdict
from aunet.tables import PAPER, Column, Table, count_parameters, read_column

COST_LIMIT = 1.10  # "little cost": at most 10 % more parameters and FLOPs than U-Net
CLAIMS_TABLE = "claims"
PAPER_EXPERIMENTS = tuple(EXPERIMENTS)  # the pooled claims use the paper's four experiments


def _pairs(columns: Mapping[tuple[str, str], Column | None], experiments: list[str], metric: str
           ) -> tuple[list[float], list[float]]:
    """U-Net and Attention U-Net scores over the (case, seed) pairs of each experiment, concatenated."""
    a, b = [], []
    for name in experiments:
        u, att = columns.get((name, "unet")), columns.get((name, "attention_unet"))
        if u is None or att is None:
            continue
        for key in sorted(set(u.cases) & set(att.cases)):
            a.append(u.cases[key][metric])
            b.append(att.cases[key][metric])
    return a, b


def _gains(columns: Mapping[tuple[str, str], Column | None], experiment: str, metric: str) -> list[float]:
    a, b = _pairs(columns, [experiment], metric)
    return [y - x for x, y in zip(a, b)]


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


def _paper_gain(experiment: str, metric: str) -> float:
    return PAPER[experiment, "attention_unet"][metric][0] - PAPER[experiment, "unet"][metric][0]


def _row(claim: str, what: str, diff: Difference, paper: str) -> list[str]:
    ci = "n/a" if diff.n == 0 else f"[{diff.low:+.3f}, {diff.high:+.3f}]"
    effect = "not run" if diff.n == 0 else f"{diff.mean:+.3f}"
    v = verdict(diff)
    return [claim, what, effect, ci, format_p(diff.p) + (f" ({diff.test})" if diff.n else ""), str(diff.n), paper,
            "inconclusive at this budget" if v == "inconclusive" else v]


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
        diff = paired_difference(*_pairs(columns, names, metric))
        paper = ", ".join(f"{_paper_gain(n, metric):+.3f}" for n in names)
        rows.append(_row(claim, f"Att − U-Net {metric}, pairs of {' + '.join(names)}", diff,
                         f"{paper} (per experiment)"))
    diff = independent_difference(_gains(columns, "ct150_120_30", "dice"), _gains(columns, "ct150_30_120", "dice"))
    paper = _paper_gain("ct150_30_120", "dice") - _paper_gain("ct150_120_30", "dice")
    rows.append(_row("Attention helps more with less training data", "Dice gain at 30/120 − gain at 120/30",
                     diff, f"{paper:+.3f}"))
    a, b = [], []
    for model in ("unet", "attention_unet"):
        scratch, tuned = columns.get(("tcia_61_21", model)), columns.get(("tcia_finetune", model))
        if scratch and tuned:
            for key in sorted(set(scratch.cases) & set(tuned.cases)):
                a.append(scratch.cases[key]["dice"])
                b.append(tuned.cases[key]["dice"])
    paper = ", ".join(f"{PAPER['tcia_finetune', m]['dice'][0] - PAPER['tcia_61_21', m]['dice'][0]:+.3f}"
                      for m in ("unet", "attention_unet"))
    rows.append(_row("Fine-tuning beats training from scratch on TCIA", "fine-tuned − scratch Dice, both models",
                     paired_difference(a, b), f"{paper} (U-Net, Att U-Net)"))
    rows.append(_cost_row(columns))
    notes = ["effect: mean difference; interval: 95 % bootstrap; p: two-sided (Wilcoxon signed-rank for pairs, "
             "Mann-Whitney U for claim 3's independent sets); n: pairs (claim 3: the smaller set); "
             "verdict: supported = interval above 0 and p < 0.05, not supported = interval below 0 and p < 0.05 "
             "(the runs show the opposite), else inconclusive at this budget.",
             f"cost: supported when Attention U-Net has at most {COST_LIMIT:.2f}x the parameters and forward FLOPs "
             "of U-Net (FLOPs counted on one inference window; measured seconds are in timings.md).",
             "paper: differences of the paper's means (Oktay et al., MIDL 2018 poster); it reports no test."]
    header = ["claim", "measured as", "effect", "95 % interval", "p", "n", "paper", "verdict"]
    return Table(CLAIMS_TABLE, "The paper's claims, checked on these runs", header, rows, notes)



def _cost_row(columns: Mapping[tuple[str, str], Column | None]) -> list[str]:
    pair = next(((u, att) for (n, m), u in columns.items() if m == "unet" and u is not None
                 for att in [columns.get((n, "attention_unet"))] if att is not None), None)
    claim, what = "The gates cost little computation", "Att / U-Net parameters; forward FLOPs (one window)"
    paper = "1.088 params; 1.07 time"
    if pair is None:
        return [claim, what, "not run", "", "", "0", paper, "not run"]
    u_cfg, a_cfg = (c.cfgs[c.seeds[0]] for c in pair)
    params = count_parameters(a_cfg) / count_parameters(u_cfg)
    flops = forward_flops(a_cfg) / forward_flops(u_cfg)
    ok = params <= COST_LIMIT and flops <= COST_LIMIT
    return [claim, what, f"{params:.3f}; {flops:.3f}", "", "", "1", paper, "supported" if ok else "not supported"]


def claims_summary(table: Table) -> list[str]:
    """One sentence per claim, from the table's own cells (for notebooks and the README)."""
    out = []
    for claim, _, effect, ci, p, n, _, v in table.rows:
        numbers = f"effect {effect}" + (f", 95 % interval {ci}, p {p}, n {n}" if ci else "")
        out.append(f"{claim}: {v} ({numbers}).")
    return out



def write_claims(runs_dir: str | Path, out_dir: str | Path,
                 experiments: Mapping[str, Experiment] | None = None) -> Table:
    """Build the claims table and write it as <out_dir>/claims.md and .csv; returns it."""
    table = build_claims(runs_dir, experiments)
    table.write(out_dir)
    return table
