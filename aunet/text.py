"""Results as text, each kind of number spelled one way, and the generated regions of README and docs.

Every table, claim, study sentence, README section and the benchmark page writes its numbers here:

    signed(0.0081)                  +0.008          a difference
    interval(diff)                  +0.008 [-0.023, +0.039]   a difference and its 95 % interval
    interval(diff, n=True)          +0.008 [-0.023, +0.039] (6 seeds x 24 cases)
    per_seed([0.123, 0.071, -0.055])   +0.123, +0.071, -0.055   each seed's mean difference
    design(6, 24)                   6 x 24          seeds x test cases a difference is computed from
    p_value(0.0004)                 <0.001          (0.43, 0.006, <0.001; n/a when not tested)
    detectable(0.052), detectable(inf)   0.052, none   the smallest difference a design detects
    share(5, 6)                     5/6             e.g. runs that converged
    mean_std(0.379, 0.132)          0.379 ± 0.132
    ratio(1.0884)                   1.088
    millions(5.88e6), seconds(0.167)   5.88 M, 0.167 s

A verdict is one of the words of aunet.stats.verdict, stated by VERDICT_RULE. A Table is written as
GitHub Markdown (and CSV); a hand-written page keeps generated regions between

    <!-- NAME: start -->
    ...
    <!-- NAME: end -->

and `replace_marked` / `fill_marked` rewrite only what lies between them.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Protocol, Sequence

from aunet.errors import AunetError
from aunet.io import atomic_write_csv, atomic_write_text

NA = "n/a"  # a number that cannot be computed (no seed scored by both models, no values)
NOT_RUN = "not run"  # no evaluated run
UNREADABLE = "unreadable"  # runs whose records cannot be read (aunet.records names the file)
DIGITS = 3
NONE_DETECTABLE = "none"  # a design whose seeds or cases cannot reach p < 0.05 (3 seeds: p >= 0.25)
VERDICT_RULE = ("with the training run as the unit (aunet.stats): supported = the interval, a bootstrap over seeds "
                "crossed with test cases, above 0 and p < 0.05, p the larger of exact sign-flip tests over the "
                "per-seed and over the per-case mean differences; not supported = interval below 0 and p < 0.05 "
                "(the runs show the opposite); else inconclusive at this budget (below 6 seeds or 6 test cases no p "
                "reaches 0.05)")


class Estimate(Protocol):
    """What an interval is written from (aunet.stats.SeedDifference)."""

    mean: float
    low: float
    high: float
    n: int  # seeds
    cases: int


def number(x: float, digits: int = DIGITS) -> str:
    """0.379 (n/a for NaN)."""
    return NA if math.isnan(x) else f"{x:.{digits}f}"


def signed(x: float, digits: int = DIGITS) -> str:
    """+0.008, -0.120 (n/a for NaN): a difference."""
    return NA if math.isnan(x) else f"{x:+.{digits}f}"


def interval(d: Estimate, n: bool = False) -> str:
    """'+0.008 [-0.023, +0.039]', with ' (6 seeds x 24 cases)' when n; n/a without a seed."""
    if d.n == 0 or math.isnan(d.mean):
        return NA
    return f"{signed(d.mean)} [{signed(d.low)}, {signed(d.high)}]" + (f" ({d.n} seeds x {d.cases} cases)" if n else "")


def per_seed(values: Sequence[float]) -> str:
    """'+0.123, +0.071, -0.055': one mean difference per seed, in seed order (n/a when none)."""
    return ", ".join(signed(v) for v in values) if len(values) else NA


def design(seeds: int, cases: int) -> str:
    """'6 x 24': the seeds and test cases a difference is computed from (not run without a seed)."""
    return f"{seeds} x {cases}" if seeds else NOT_RUN


def detectable(x: float) -> str:
    """The smallest difference a design detects with 80 % power: 0.052; none (inf) when it cannot reach p < 0.05."""
    return NONE_DETECTABLE if math.isinf(x) else number(x)


def share(k: int, n: int) -> str:
    """'5/6': k of n (runs that converged, ...)."""
    return f"{k}/{n}"


def p_value(p: float) -> str:
    """A p value as people read it: 0.43, 0.006, <0.001 (n/a when not tested)."""
    if math.isnan(p):
        return NA
    return "<0.001" if p < 0.001 else f"{p:.3f}" if p < 0.01 else f"{p:.2f}"


def mean_std(mean: float, std: float, digits: int = DIGITS) -> str:
    """0.379 ± 0.132 (n/a for NaN)."""
    return NA if math.isnan(mean) else f"{mean:.{digits}f} ± {std:.{digits}f}"


def ratio(x: float) -> str:
    """1.088: one quantity over another."""
    return number(x)


def millions(n: float) -> str:
    """5.88 M."""
    return f"{n / 1e6:.2f} M"


def seconds(x: float, digits: int = DIGITS) -> str:
    """0.167 s (n/a for NaN)."""
    return NA if math.isnan(x) else f"{x:.{digits}f} s"


FOCUS_WORDS = ((2.0, "concentrates on the pancreas, as in the paper's figure"),
               (1.2, "prefers the pancreas a little"),
               (1 / 1.2, "shows no preference for the pancreas (about 1)"),
               (0.0, "passes less on the pancreas than elsewhere"))  # (lowest focus, words), highest first


def focus_sentence(level: str, by_epoch: Mapping[int, float]) -> str:
    """'level2: focus 1.00 at epoch 0, 1.08 at epoch 40: shows no preference ...' (aunet.viz.plots.attention_focus)."""
    epochs = sorted(by_epoch)
    first, last = by_epoch[epochs[0]], by_epoch[epochs[-1]]
    words = next((w for low, w in FOCUS_WORDS if last >= low), NA)  # NaN: no pancreas on the slice
    return (f"{level}: focus {number(first, 2)} at epoch {epochs[0]}, {number(last, 2)} at epoch {epochs[-1]}, "
            f"highest {number(max(by_epoch.values()), 2)}: at the end it {words}.")


# --- tables ------------------------------------------------------------------------------------------
def markdown_table(header: Sequence[Any], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub Markdown table (no trailing newline)."""
    lines = ["| " + " | ".join(map(str, header)) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(map(str, row)) + " |" for row in rows])


@dataclass
class Table:
    """One results table: header, rows of formatted cells, notes below it."""

    name: str  # file stem: results/tables/<name>.md and .csv
    title: str
    header: list[str]
    rows: list[list[str]]
    notes: list[str] = field(default_factory=list)

    def to_markdown(self) -> str:
        """The table as GitHub Markdown, title above and notes below."""
        notes = "".join(f"\n- {n}" for n in self.notes)
        return f"### {self.title}\n\n{markdown_table(self.header, self.rows)}\n{notes}\n"

    def write(self, out_dir: str | Path) -> tuple[Path, Path]:
        """Write <out_dir>/<name>.md and .csv atomically; returns both paths."""
        out_dir = Path(out_dir)
        md, table_csv = out_dir / f"{self.name}.md", out_dir / f"{self.name}.csv"
        atomic_write_text(md, self.to_markdown())
        atomic_write_csv(table_csv, [dict(zip(self.header, row)) for row in self.rows])
        return md, table_csv


# --- generated regions of hand-written pages -------------------------------------------------------
def _markers(name: str) -> tuple[str, str]:
    return f"<!-- {name}: start -->", f"<!-- {name}: end -->"


def marked_names(page: str) -> list[str]:
    """The names of the generated regions of a page, in order."""
    return re.findall(r"<!-- ([\w -]+?): start -->", page)


def fill_marked(page: str, sections: Mapping[str, str], source: str | Path = "the page") -> str:
    """`page` with the region of each name replaced by its text (AunetError naming `source` for a missing region)."""
    for name, text in sections.items():
        start, end = _markers(name)
        if page.count(start) != 1 or page.count(end) != 1 or page.index(start) > page.index(end):
            raise AunetError(f"{source}: lacks the markers {start} ... {end} (once each, in that order); "
                             "expected a page with that generated region.")
        head, rest = page.split(start, 1)
        _, tail = rest.split(end, 1)
        page = f"{head}{start}\n{text}\n{end}{tail}"
    return page


def replace_marked(path: str | Path, name: str, text: str) -> None:
    """Replace the region `name` of the page at `path` by `text`, atomically; the prose around it is kept."""
    path = Path(path)
    try:
        page = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise AunetError(f"{path}: cannot be read ({e.__class__.__name__}); expected a page with the generated "
                         f"region {_markers(name)[0]}.") from None
    atomic_write_text(path, fill_marked(page, {name: text}, path))
