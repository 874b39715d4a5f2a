"""The notebooks run in the project's kernel, keep their parameters honest, and show the stored lessons.

Three kinds of check:
- structure (fast, no kernel): every notebook has exactly one `parameters` cell of literal
  assignments, is listed in SMOKE_PARAMETERS, and every smoke parameter exists in that cell;
- smoke runs: papermill executes each notebook with the small SMOKE_PARAMETERS, failing on any error;
- nbval (lax mode): the notebooks in NBVAL_NOTEBOOKS are re-run with their stored parameters and the
  outputs of cells marked `# NBVAL_CHECK_OUTPUT` must match the stored ones.

Adding a notebook: add one entry to SMOKE_PARAMETERS (values must be JSON types: papermill passes
tuples as strings, so use lists) and, if it stores lesson outputs, its name to NBVAL_NOTEBOOKS.
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import nbformat
import papermill
import pytest

from conftest import NOTEBOOKS, SMOKE_PARAMETERS

KERNEL = "aunet"

# Notebooks whose stored outputs (cells marked NBVAL_CHECK_OUTPUT) are lessons checked by nbval.
NBVAL_NOTEBOOKS: list[str] = ["01_attention_gate.ipynb", "02_attention_unet.ipynb"]

STORED_NOTEBOOK_MAX_BYTES = 100_000  # outputs in git are small and deliberate: no images


def notebook_files() -> list[Path]:
    return sorted(NOTEBOOKS.glob("*.ipynb"))


def parameters_cells(nb: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    return [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]


def literal_assignments(source: str) -> dict[str, object]:
    """Names and values of a parameters cell; fails unless every statement is `name = <literal>`."""
    values = {}
    for stmt in ast.parse(source).body:
        assert isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name), (
            f"parameters cell may hold only `name = literal` assignments, not: {ast.unparse(stmt)}")
        values[stmt.targets[0].id] = ast.literal_eval(stmt.value)  # raises unless a literal
    return values


def widget_errors(nb: nbformat.NotebookNode) -> list[str]:
    """Errors caught inside ipywidgets Output widgets (e.g. an `interact` callback), from the saved widget state."""
    state = nb.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {}).get("state", {})
    return [f"{out.get('ename')}: {out.get('evalue')}" for model in state.values()
            for out in model.get("state", {}).get("outputs", []) if out.get("output_type") == "error"]


def test_notebooks_exist():
    assert notebook_files(), f"no notebooks found in {NOTEBOOKS}"


@pytest.mark.parametrize("path", notebook_files(), ids=lambda p: p.name)
def test_parameters_cell(path: Path):
    nb = nbformat.read(path, as_version=4)
    cells = parameters_cells(nb)
    assert len(cells) == 1, f"{path.name} has {len(cells)} cells tagged 'parameters'; expected exactly 1"
    defaults = literal_assignments(cells[0].source)
    assert path.name in SMOKE_PARAMETERS, f"{path.name} is missing from SMOKE_PARAMETERS in tests/conftest.py"
    unknown = sorted(set(SMOKE_PARAMETERS[path.name]) - set(defaults))
    assert not unknown, f"smoke parameters {unknown} are not in {path.name}'s parameters cell {sorted(defaults)}"
    for name, value in SMOKE_PARAMETERS[path.name].items():
        assert isinstance(value, (str, bool, int, float, list, dict, type(None))), (
            f"smoke parameter {name}={value!r}: papermill passes only JSON types faithfully")


@pytest.mark.parametrize("path", notebook_files(), ids=lambda p: p.name)
def test_stored_notebook_is_small_and_uses_project_kernel(path: Path):
    nb = nbformat.read(path, as_version=4)
    assert nb.metadata.get("kernelspec", {}).get("name") == KERNEL, f"{path.name} must use the '{KERNEL}' kernel"
    assert path.stat().st_size < STORED_NOTEBOOK_MAX_BYTES, f"{path.name} is {path.stat().st_size} bytes"
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            images = [k for k in out.get("data", {}) if k.startswith("image/")]
            assert not images, f"{path.name} stores an image output; strip it (cell: {cell.source[:60]!r})"


def test_smoke_parameters_name_existing_notebooks():
    missing = sorted(set(SMOKE_PARAMETERS) - {p.name for p in notebook_files()})
    assert not missing, f"SMOKE_PARAMETERS lists notebooks that do not exist: {missing}"


@pytest.mark.notebook
@pytest.mark.parametrize("name", sorted(SMOKE_PARAMETERS))
def test_notebook_runs(name: str, tmp_path: Path):
    # "{tmp}" in a string parameter becomes this test's temporary folder (data and run folders go there)
    parameters = {k: v.format(tmp=tmp_path) if isinstance(v, str) else v for k, v in SMOKE_PARAMETERS[name].items()}
    papermill.execute_notebook(  # raises PapermillExecutionError on any cell error
        str(NOTEBOOKS / name), str(tmp_path / name), parameters=parameters,
        kernel_name=KERNEL, cwd=str(NOTEBOOKS), progress_bar=False,
        execution_timeout=600,  # seconds per cell: a kernel that stops answering fails the test instead of CI
    )
    errors = widget_errors(nbformat.read(tmp_path / name, as_version=4))
    assert not errors, f"{name}: a widget callback raised (ipywidgets shows it only in the widget): {errors}"


@pytest.mark.notebook
@pytest.mark.parametrize("name", NBVAL_NOTEBOOKS)
def test_notebook_lesson_outputs(name: str):
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--nbval-lax", "--nbval-kernel-name", KERNEL,
         "-p", "no:cacheprovider", "-q", str(NOTEBOOKS / name)],
        cwd=NOTEBOOKS.parent, capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, f"nbval failed for {name}:\n{result.stdout[-6000:]}\n{result.stderr[-2000:]}"
