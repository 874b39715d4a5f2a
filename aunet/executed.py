"""Executed notebooks a reader opens without running anything: the reproduction's outputs, minus the noise.

    publish(executed_path, "results/notebooks/04_training.ipynb")

A reproduction executes every notebook (aunet.reproduce); the copy kept in the repository keeps every
cell's text, tables and pictures, and drops what only a live kernel can show or what only says "busy":

- progress bars: stderr text redrawn with carriage returns (tqdm, papermill), and tqdm's widget outputs;
- widget views (a slider or a viewer needs a kernel; the picture a headless run drew beside it stays) and
  the notebook's saved widget state.

The result is still a valid notebook (nbformat 4) that JupyterLab and GitHub render.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from aunet.io import atomic_write_text

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
_PROGRESS = re.compile(r"\r|\d+%\|")  # a line redrawn in place, or a bar "37%|███"


def _stream(output: dict[str, Any]) -> dict[str, Any] | None:
    if output.get("name") != "stderr":
        return output
    text = "".join(output.get("text", ""))
    kept = [line for line in text.splitlines(keepends=True) if not _PROGRESS.search(line)]
    return {**output, "text": kept} if "".join(kept).strip() else None


def _display(output: dict[str, Any]) -> dict[str, Any] | None:
    data = {k: v for k, v in output.get("data", {}).items() if k != WIDGET_VIEW}
    if WIDGET_VIEW in output.get("data", {}) and set(data) <= {"text/plain"}:
        return None  # a widget's only other form is its repr ("HBox(children=...)"): nothing to read
    return {**output, "data": data}


def clean_output(output: dict[str, Any]) -> dict[str, Any] | None:
    """The output as the repository keeps it, or None when nothing of it is worth keeping."""
    if output.get("output_type") == "stream":
        return _stream(output)
    if output.get("output_type") in ("display_data", "execute_result"):
        return _display(output)
    return output


def clean(notebook: dict[str, Any]) -> dict[str, Any]:
    """The notebook with progress noise, widget views and widget state removed."""
    cells = []
    for cell in notebook["cells"]:
        if cell.get("cell_type") == "code":
            outputs = [o for o in map(clean_output, cell.get("outputs", [])) if o is not None]
            cell = {**cell, "outputs": outputs}
        cells.append(cell)
    metadata = {k: v for k, v in notebook.get("metadata", {}).items() if k != "widgets"}
    return {**notebook, "cells": cells, "metadata": metadata}


def publish(executed: str | Path, dest: str | Path) -> Path:
    """Write the cleaned copy of an executed notebook to dest (atomically); returns dest."""
    notebook = json.loads(Path(executed).read_text())
    atomic_write_text(Path(dest), json.dumps(clean(notebook), indent=1, ensure_ascii=False) + "\n")
    return Path(dest)
