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

from conftest import NOTEBOOKS, SMOKE_PARAMETERS

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


@pytest.mark.notebook
def test_ctrl_c_prints_one_line_and_no_kernel_traceback(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    notebook = tmp_path / "notebooks" / "01_wait.ipynb"
    notebook.parent.mkdir()
    cell = "import pathlib, time\npathlib.Path('started').touch()\ntime.sleep(300)"
    notebook.write_text(json.dumps({"cells": [{"cell_type": "code", "metadata": {}, "execution_count": None,
                                               "outputs": [], "id": "wait", "source": cell}],
                                    "metadata": {"kernelspec": {"name": "aunet", "display_name": "aunet"}},
                                    "nbformat": 4, "nbformat_minor": 5}))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen([sys.executable, "-m", "aunet", "reproduce", "--readme", ""], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # as in a terminal
    deadline = time.time() + 120
    while not (notebook.parent / "started").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.1)
    assert (notebook.parent / "started").exists(), "the notebook's cell did not start"
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C: the terminal's process group (the kernel has its own session)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130
    assert "Traceback" not in err and "ZMQError" not in err  # today: ipykernel's 16-line ZMQError traceback
    assert err.strip().splitlines()[-1] == "aunet reproduce: interrupted"


@pytest.mark.notebook
def test_console_shows_the_notebook_and_its_runs_epochs_only(tmp_path, capfd):
    notebook = tmp_path / "notebooks" / "01_runs.ipynb"
    notebook.parent.mkdir()
    cell = ("from aunet.pool import epoch_line\n"
            "print('a table nobody needs on the console')\n"
            "print(epoch_line('exp/unet/0', {'epoch': 1, 'train_loss': 0.5, 'val_mean_dice': 0.25, 'seconds': 3}, 2))")
    notebook.write_text(json.dumps({"cells": [{"cell_type": "code", "metadata": {}, "execution_count": None,
                                               "outputs": [], "id": "runs", "source": cell}],
                                    "metadata": {"kernelspec": {"name": "aunet", "display_name": "aunet"}},
                                    "nbformat": 4, "nbformat_minor": 5}))
    reproduce("quick", root=tmp_path)
    out, err = capfd.readouterr()
    assert "== 01_runs.ipynb" in out and "   exp/unet/0: epoch 1/2, loss 0.500, val Dice 0.25 (3 s)" in out
    assert "nobody needs" not in out + err and "without encryption" not in out + err
    folder, = (tmp_path / "results" / "reproductions").iterdir()
    assert "nobody needs" in (folder / "reproduce.log").read_text()  # every output is in the log


def test_another_runs_folder_goes_to_every_notebook(tmp_path, monkeypatch):
    import aunet.reproduce

    seen = {}

    def fake(profile, parameters, root, runs_dir):
        seen.update(parameters=parameters, runs_dir=runs_dir)
        raise AunetError("stop here")

    monkeypatch.setattr(aunet.reproduce, "reproduce", fake)
    assert main(["reproduce", "--readme", ""]) == 2
    assert seen == {"parameters": {}, "runs_dir": Path("results/runs")}  # the notebooks' own default: no parameter
    assert main(["reproduce", "--readme", "", "--runs-dir", str(tmp_path / "fresh")]) == 2
    run = str(tmp_path / "fresh" / "ct150_120_30" / "attention_unet" / "seed_0")
    assert seen["parameters"] == {"runs_dir": str(tmp_path / "fresh"), "out_dir": run, "run_dir": run}
