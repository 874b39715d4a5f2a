"""A reproduction: the manifest says what produced the results, and the same seed gives the same results."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from aunet.cli import main
from aunet.errors import AunetError
from aunet.reproduce import README_SECTION, reproduce, reproduction_notebooks
from aunet.text import replace_marked

from test_notebooks import NOTEBOOKS, SMOKE_PARAMETERS

TINY = ("06_paper_tables.ipynb",)  # writes the tables, a figure and the runs the manifest lists


def tiny_reproduction(root: Path) -> dict:
    parameters = {name: {k: v.format(tmp=root) if isinstance(v, str) else v for k, v in SMOKE_PARAMETERS[name].items()}
                  for name in TINY}
    for name in TINY:  # every table and figure under root, as `make reproduce` writes them under the repository
        parameters[name] |= {"figures_dir": str(root / "figures")}
    parameters["06_paper_tables.ipynb"] |= {"runs_dir": str(root / "results" / "runs"),
                                            "tables_dir": str(root / "results" / "tables"), "ct150_seeds": [0, 1]}
    return reproduce("quick", notebook_parameters=parameters, notebooks=[NOTEBOOKS / n for n in TINY], root=root,
                     progress=False)


@pytest.mark.notebook
def test_same_seed_same_tables_and_manifest_but_for_times(tmp_path):
    root, first = tmp_path / "repro", tmp_path / "first"
    a = tiny_reproduction(root)
    shutil.copytree(root, first)
    shutil.rmtree(root)
    b = tiny_reproduction(root)
    tables = sorted((root / "results" / "tables").glob("*"))
    assert {p.name for p in tables} >= {"table1_ct150.md", "table1_ct150.csv", "table2_tcia.md", "claims.md",
                                        "timings.md"}
    for path in tables:
        if path.stem != "timings":  # wall-clock seconds differ from run to run; every other table is the same
            assert path.read_bytes() == (first / "results" / "tables" / path.name).read_bytes(), path.name
    assert a["times"] != b["times"]
    assert {k: v for k, v in a.items() if k != "times"} == {k: v for k, v in b.items() if k != "times"}
    assert json.loads((root / "results" / "manifest.json").read_text()) == b
    # what the manifest records
    assert b["seeds"]["ct150_120_30"] == [0, 1] and b["seeds"]["tcia_finetune"] == [0]
    assert set(b["times"]["notebooks"]) == set(TINY)
    assert any(k.startswith("figures/") for k in b["outputs"]) and "results/tables/claims.md" in b["outputs"]
    assert all(len(h) == 64 for h in b["outputs"].values())
    assert b["packages"]["torch"] and b["machine"]["cpu"] and "commit" in b["git"]
    folder = root / b["times"]["folder"]
    assert {p.name for p in folder.iterdir()} >= {*TINY, "reproduce.log", "manifest.json"}


def test_a_failing_notebook_is_named_with_its_cell(tmp_path, capsys):
    bad = tmp_path / "notebooks" / "01_bad.ipynb"
    bad.parent.mkdir()
    source = json.loads((NOTEBOOKS / "01_attention_gate.ipynb").read_text())
    source["cells"] = [c for c in source["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])] + [
        {"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [], "id": "boom",
         "source": "raise ValueError('broken on purpose')"}]
    bad.write_text(json.dumps(source))
    with pytest.raises(AunetError, match=r"01_bad.ipynb failed in cell 2 \(ValueError: broken on purpose\)"):
        reproduce("quick", root=tmp_path, progress=False)
    assert reproduction_notebooks(tmp_path / "notebooks") == [bad]
    with pytest.raises(AunetError, match="no numbered notebooks"):
        reproduction_notebooks(tmp_path)


README_START, README_END = "<!-- reproduction results: start -->", "<!-- reproduction results: end -->"


def test_readme_section_between_markers(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"# title\n\n{README_START}\nold\n{README_END}\n\nrest\n")
    replace_marked(readme, README_SECTION, "new numbers")
    assert readme.read_text() == f"# title\n\n{README_START}\nnew numbers\n{README_END}\n\nrest\n"
    (tmp_path / "other.md").write_text("no markers")
    with pytest.raises(AunetError, match="lacks the markers"):
        replace_marked(tmp_path / "other.md", README_SECTION, "x")
    with pytest.raises(AunetError, match="missing.md: cannot be read"):
        replace_marked(tmp_path / "missing.md", README_SECTION, "x")


def test_cli_refuses_a_folder_without_notebooks(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["reproduce", "--readme", ""]) == 2
    err = capsys.readouterr().err
    assert "no numbered notebooks" in err and len(err.strip().splitlines()) == 1
