"""The paper's claims, checked against the run records: measured effect, interval, p value, verdict.

Oktay et al. (MIDL 2018) claim that attention gates

    1. raise pancreas Dice, and
    2. raise pancreas recall (fewer missed pancreas voxels), both over all four experiments;
    3. help more with less training data: the gain at 30/120 exceeds the gain at 120/30;
    4. and that fine-tuning the CT-150 model on TCIA beats training on TCIA from scratch;
    5. at little computational cost.

Each row is computed from the same per-case records as the tables (aunet.records.read_column):

    1, 2  Attention U-Net minus U-Net over every (experiment, case, seed) pair, pooled over the experiments
          (each experiment's own paired row is in the tables): paired bootstrap interval, Wilcoxon p.
    3     the Dice gain per pair at 30/120 minus the gain per pair at 120/30: two independent sets of pairs
          (different test cases), bootstrap interval of the difference of means, Mann-Whitney U p.
    4     fine-tuned minus from-scratch Dice on TCIA, paired by (model, case, seed).
    5     Attention U-Net / U-Net in parameters and in forward FLOPs on one inference window (counted by
          torch.utils.flop_counter; deterministic, unlike seconds, which are in timings.md).

Verdicts: aunet.stats.verdict, by the rule aunet.text.VERDICT_RULE. Claim 5 is supported when both ratios
are at most COST_LIMIT (aunet.paper.cost_ratio: the paper's parameters +9 %, inference time +7 %).
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

import torch

from aunet import paper, text
from aunet.config import Config
from aunet.errors import AunetError
from aunet.experiments import EXPERIMENTS, Experiment
from aunet.records import Column, pairs, read_column
from aunet.stats import Difference, independent_difference, paired_difference, verdict
from aunet.text import Table
from aunet.unet import count_parameters

COST_LIMIT = 1.10  # "little cost": at most 10 % more parameters and FLOPs than U-Net
CLAIMS_TABLE = "claims"
PAPER_EXPERIMENTS = tuple(EXPERIMENTS)  # the pooled claims use the paper's four experiments
HEADER = ["claim", "measured as", "effect [95 % interval]", "p", "n", "paper", "verdict"]
Columns = Mapping[tuple[str, str], Column]


def _column(columns: Columns, name: str, model: str) -> Column:
    """One column, empty when the experiment was not among those read."""
    return columns.get((name, model)) or Column(name, model)


def _pooled(columns: Columns, experiments: list[str], metric: str) -> tuple[list[float], list[float]]:
    """U-Net and Attention U-Net scores over the (case, seed) pairs of each experiment, concatenated."""
    a, b = [], []
    for name in experiments:
        u, att = pairs(_column(columns, name, "unet"), _column(columns, name, "attention_unet"), metric)
        a, b = a + u, b + att
    return a, b


def _gains(columns: Columns, experiment: str, metric: str) -> list[float]:
    a, b = _pooled(columns, [experiment], metric)
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


def _row(claim: str, what: str, diff: Difference, paper_cell: str) -> list[str]:
    return [claim, what, text.interval(diff), text.p_value(diff.p), str(diff.n), paper_cell, verdict(diff)]


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
        diff = paired_difference(*_pooled(columns, names, metric))
        reported = ", ".join(text.signed(paper.gain(n, metric)) for n in names)
        rows.append(_row(claim, f"Att − U-Net {metric}, pairs of {' + '.join(names)}", diff,
                         f"{reported} (per experiment)"))
    diff = independent_difference(_gains(columns, "ct150_120_30", "dice"), _gains(columns, "ct150_30_120", "dice"))
    reported = paper.gain("ct150_30_120", "dice") - paper.gain("ct150_120_30", "dice")
    rows.append(_row("Attention helps more with less training data", "Dice gain at 30/120 − gain at 120/30",
                     diff, text.signed(reported)))
    a, b = [], []
    for model in ("unet", "attention_unet"):
        scratch, tuned = pairs(_column(columns, "tcia_61_21", model), _column(columns, "tcia_finetune", model), "dice")
        a, b = a + scratch, b + tuned
    reported = ", ".join(text.signed(paper.mean("tcia_finetune", m, "dice") - paper.mean("tcia_61_21", m, "dice"))
                         for m in ("unet", "attention_unet"))
    rows.append(_row("Fine-tuning beats training from scratch on TCIA", "fine-tuned − scratch Dice, both models",
                     paired_difference(a, b), f"{reported} (U-Net, Att U-Net)"))
    rows.append(_cost_row(columns))
    notes = ["effect: mean difference [95 % bootstrap interval]; p: two-sided (Wilcoxon signed-rank for pairs, "
             "Mann-Whitney U for claim 3's independent sets); n: pairs (claim 3: the smaller set); "
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
        return [claim, what, text.NOT_RUN, "", "0", reported, text.NOT_RUN]
    u_cfg, a_cfg = (c.first.cfg for c in pair)
    params = count_parameters(a_cfg.build_model()) / count_parameters(u_cfg.build_model())
    flops = forward_flops(a_cfg) / forward_flops(u_cfg)
    ok = params <= COST_LIMIT and flops <= COST_LIMIT
    return [claim, what, f"{text.ratio(params)}; {text.ratio(flops)}", "", "1", reported,
            "supported" if ok else "not supported"]


def claims_summary(table: Table) -> list[str]:
    """One sentence per claim, from the table's own cells (for notebooks and the README)."""
    out = []
    for claim, _, effect, p, n, _, v in table.rows:
        out.append(f"{claim}: {v} ({effect}" + (f", p {p}, n {n}" if p else "") + ").")
    return out


def write_claims(runs_dir: str | Path, out_dir: str | Path,
                 experiments: Mapping[str, Experiment] | None = None) -> Table:
    """Build the claims table and write it as <out_dir>/claims.md and .csv; returns it."""
    table = build_claims(runs_dir, experiments)
    table.write(out_dir)
    return table
