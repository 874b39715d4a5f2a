"""What the repository shows is what its committed run records produce.

The last reproduction's run records (results/runs/, no checkpoints) are in git; so are the tables, the claims,
the README's generated results section, the manifest and the executed notebooks (results/notebooks/). Each is
rebuilt here from the records alone and compared: a number typed by hand, or left over from an older run,
fails the test.
"""
from __future__ import annotations

import json
from pathlib import Path

from aunet.claims import build_claims
from aunet.records import read_tree
from aunet.reproduce import README_SECTION, results_section
from aunet.run import RunFolder
from aunet.tables import build_tables
from aunet.text import fill_marked, focus_sentence
from aunet.viz.plots import attention_focus

ROOT = Path(__file__).resolve().parents[1]
RUNS = ROOT / "results" / "runs"
TABLES = ROOT / "results" / "tables"
MANIFEST = json.loads((ROOT / "results" / "manifest.json").read_text())


def test_tables_and_claims_are_the_records(monkeypatch):
    monkeypatch.chdir(ROOT / "notebooks")  # notebook 06 wrote them from there; the tables name their run folders
    runs = "../results/runs"
    for table in [*build_tables(runs), build_claims(runs)]:
        assert table.to_markdown() == (TABLES / f"{table.name}.md").read_text(), table.name


def test_readme_results_are_the_records_and_the_manifest():
    readme = (ROOT / "README.md").read_text()
    assert fill_marked(readme, {README_SECTION: results_section(MANIFEST, RUNS)}) == readme


def test_manifest_seeds_and_convergence_are_the_records():
    runs, damaged = read_tree(RUNS)
    paper = [(e, m, r) for e, m, r in runs if e in MANIFEST["seeds"]]
    assert not damaged
    assert {e: sorted({r.seed for x, _, r in paper if x == e}) for e in MANIFEST["seeds"]} == MANIFEST["seeds"]
    assert all(MANIFEST["convergence"][f"results/runs/{e}/{m}/seed_{r.seed}"]["converged"] == r.convergence.converged
               for e, m, r in paper)


def outputs_text(notebook: str) -> str:
    cells = json.loads((ROOT / "results" / "notebooks" / notebook).read_text())["cells"]
    return "\n".join("".join(o.get("text", "")) + "".join(o.get("data", {}).get("text/markdown", ""))
                     for c in cells if c["cell_type"] == "code" for o in c["outputs"])


def test_notebook_05_says_what_its_snapshots_show():
    snapshots = RunFolder(RUNS / "ct150_120_30" / "attention_unet" / "seed_0").read_snapshots()
    shown = outputs_text("05_attention_evolution.ipynb")
    for level in ("level2", "level3", "level4"):
        focus = {e: attention_focus(s[level], s["label"]) for e, s in snapshots.items()}
        assert focus_sentence(level, focus) in shown, level


def test_notebook_06_shows_the_committed_claims():
    shown = outputs_text("06_paper_tables.ipynb")
    for row in build_claims(RUNS).rows:
        assert row[-1] in shown and row[2] in shown, row[0]
