"""docs/architecture.md is true: every module in its layer, imports pointing down, one owner per concept."""
from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "aunet"


def modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def layers() -> dict[str, int]:
    """Module -> layer number, from the lines of docs/architecture.md that start with '- layer N'."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    out = {}
    for block in re.findall(r"^- layer (\d+) (.*?)(?=^- layer |^## |\Z)", text, flags=re.M | re.S):
        number, body = block
        for name in re.findall(r"`(aunet[\w.]*)`", body.split("—")[0]):
            out[name] = int(number)
    return out


def imports(path: Path) -> set[str]:
    """Every aunet module a file imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "aunet":
            for alias in node.names:  # `from aunet import fastconv` imports the module aunet.fastconv
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in modules() else node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "aunet"}
    return found


def test_every_module_has_one_layer_and_every_listed_module_exists():
    listed, present = layers(), modules()
    assert sorted(set(present) - set(listed)) == [], "modules missing from docs/architecture.md"
    assert sorted(set(listed) - set(present)) == [], "docs/architecture.md lists modules that do not exist"


def test_imports_point_down():
    layer = layers()
    wrong = [f"{name} (layer {layer[name]}) imports {other} (layer {layer[other]})"
             for name, path in modules().items() for other in imports(path)
             if other in layer and layer[other] > layer[name]]
    assert wrong == []


def test_only_the_command_line_parses_arguments():
    offenders = []
    for name, path in modules().items():
        tree = ast.parse(path.read_text())
        names = {a.name for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))
                 for a in n.names} | {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        if name not in ("aunet.cli", "aunet.__main__") and ("argparse" in names or "aunet.cli" in imports(path)):
            offenders.append(name)
    assert offenders == []


def test_run_folder_file_names_live_in_one_module():
    for literal in ("history.csv", "device.json", "evaluation_{split}", "epoch_{epoch:03d}"):
        holders = [name for name, path in modules().items() if literal in path.read_text()]
        assert holders == ["aunet.run"], f"{literal!r} appears in {holders}"


def _call_name(node: ast.Call) -> str:
    return node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")


def test_one_writer_of_a_decathlon_dataset_json():
    """Only aunet.data.datasets writes a dataset.json or builds its fields (write_dataset_json)."""
    writes = {"write_text", "write_bytes", "atomic_write_text", "atomic_write", "dump", "open"}
    writers = set()
    for name, path in modules().items():
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and _call_name(node) in writes and "dataset.json" in ast.unparse(node):
                writers.add(name)
            if isinstance(node, ast.Constant) and node.value in ("numTraining", "tensorImageSize"):
                writers.add(name)
    assert writers == {"aunet.data.datasets"}


def _code_cells(path: Path) -> list[tuple[str, str]]:
    """(place, source) of a module, or of every code cell of a notebook (IPython magics left out)."""
    if path.suffix == ".py":
        return [(str(path.relative_to(ROOT)), path.read_text())]
    cells = json.loads(path.read_text())["cells"]
    return [(f"{path.relative_to(ROOT)} cell {i}", "\n".join(line for line in "".join(c["source"]).splitlines()
                                                              if not line.lstrip().startswith(("%", "!"))))
            for i, c in enumerate(cells) if c["cell_type"] == "code"]


def _label_literals(source: str) -> list[str]:
    """Label values written as numbers: `label == 2`, `target_label: int = 2`, `add_argument("--label", default=2)`."""
    def positive_int(node: ast.AST | None) -> bool:
        return isinstance(node, ast.Constant) and type(node.value) is int and node.value > 0

    found = []
    for node in ast.walk(ast.parse(source)):
        sides = [node.left, *node.comparators] if isinstance(node, ast.Compare) else []
        if any("label" in ast.unparse(side) for side in sides) and any(positive_int(side) for side in sides):
            found.append(ast.unparse(node))
        elif isinstance(node, (ast.FunctionDef, ast.Lambda)):
            args = node.args.posonlyargs + node.args.args
            pairs = list(zip(args[len(args) - len(node.args.defaults):], node.args.defaults))
            pairs += [(a, d) for a, d in zip(node.args.kwonlyargs, node.args.kw_defaults)]
            found += [f"{a.arg}={ast.unparse(d)}" for a, d in pairs
                      if positive_int(d) and ("label" in a.arg or a.arg in ("value", "target"))]
        elif isinstance(node, ast.Call) and node.args and "label" in ast.unparse(node.args[0]):
            found += [f"{ast.unparse(node.args[0])} default={ast.unparse(k.value)}" for k in node.keywords
                      if k.arg == "default" and positive_int(k.value)]
    return found


def test_label_values_come_from_aunet_labels():
    """No organ's label value as a bare number outside aunet.labels (it owns them: value("pancreas"))."""
    places = [p for n, p in modules().items() if n != "aunet.labels"] + sorted((ROOT / "notebooks").glob("*.ipynb"))
    found = [f"{place}: {hit}" for path in places for place, source in _code_cells(path)
             for hit in _label_literals(source)]
    assert found == []
    assert sorted(_label_literals("mask = label == 2\ndef f(image, value: int = 2): pass")) == ["label == 2", "value=2"]


def test_the_foundation_and_the_data_commands_import_no_torch():
    """`import aunet.errors`, `aunet data check` and `aunet data prepare`'s workers start without torch."""
    light = ["aunet.errors", "aunet.io", "aunet.labels", "aunet.config", "aunet.cli", "aunet.data.check",
             "aunet.data.prepared", "aunet.data.phantom_folder", "aunet.data.splits", "aunet.data.example_ct",
             "aunet.data.msd", "aunet.data.nih", "aunet.data.separability"]
    code = f"import sys\nimport {', '.join(light)}\nprint(sorted(m for m in sys.modules if m.split('.')[0] == 'torch'))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
    code = "import sys, aunet\naunet.AttentionUNet\nprint('torch' in sys.modules)"
    heavy = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert heavy.stdout.strip() == "True", heavy.stderr  # the models still come with `aunet.AttentionUNet`
def strings(path: Path) -> list[str]:
    """Every string literal of a module (f-strings' literal parts too) but its docstrings."""
    tree = ast.parse(path.read_text())
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    return [node.value for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings]


def test_config_file_name_lives_in_the_run_folder_module():
    holders = [name for name, path in modules().items() if "config.json" in path.read_text()]
    assert holders == ["aunet.run"], f"'config.json' appears in {holders}"


def test_only_aunet_records_builds_or_parses_the_runs_layout():
    """<runs>/<experiment>/<model>/seed_<k>: no other module spells a seed folder (docstrings may describe it)."""
    holders = [name for name, path in modules().items() if any("seed_" in s for s in strings(path))]
    assert holders == ["aunet.records"], f"a 'seed_' string appears in {holders}"


def _signed(value: ast.FormattedValue) -> bool:
    """An f-string field with a sign in its format spec ({x:+.3f})."""
    spec = value.format_spec
    return spec is not None and any(isinstance(p, ast.Constant) and "+" in str(p.value) for p in ast.walk(spec))


def _plus_minus(fstring: ast.JoinedStr) -> bool:
    """'±' right after or right before a formatted field ({m:.3f} ± {s:.3f})."""
    parts = fstring.values
    for i, part in enumerate(parts):
        if not (isinstance(part, ast.Constant) and "±" in part.value):
            continue
        after = i > 0 and isinstance(parts[i - 1], ast.FormattedValue) and part.value.lstrip().startswith("±")
        before = (i + 1 < len(parts) and isinstance(parts[i + 1], ast.FormattedValue)
                  and part.value.rstrip().endswith("±"))
        if after or before:
            return True
    return False


def signed_or_plus_minus(path: Path) -> bool:
    """Whether a module formats a signed number or writes '±' next to a formatted value."""
    nodes = list(ast.walk(ast.parse(path.read_text())))
    return (any(isinstance(n, ast.FormattedValue) and _signed(n) for n in nodes)
            or any(isinstance(n, ast.JoinedStr) and _plus_minus(n) for n in nodes))


def test_only_aunet_text_spells_intervals_differences_and_mean_std():
    """Differences, intervals and mean ± std are written by aunet.text, so one number has one spelling."""
    holders = [name for name, path in modules().items() if signed_or_plus_minus(path)]
    assert holders == ["aunet.text"], f"signed numbers or '±' formatted in {holders}"
    for name in ("format_p", "format_interval", "replace_marked", "PAPER"):  # the formatters and numbers that moved
        defined = [m for m, path in modules().items() for node in ast.walk(ast.parse(path.read_text()))
                   if isinstance(node, (ast.FunctionDef, ast.Assign)) and name in
                   ([node.name] if isinstance(node, ast.FunctionDef) else [getattr(t, "id", "") for t in node.targets])]
        assert defined in ([], ["aunet.text"]), f"{name} defined in {defined}"


def _calls(path: Path) -> set[str]:
    """The names a module calls (f(...) or x.f(...))."""
    return {_call_name(n) for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.Call)}


def test_every_difference_takes_the_training_run_as_the_unit():
    """No module tests a difference over case x seed pairs: only aunet.power keeps that rule, as the counterexample
    its calibration measures; the pair statistics are gone from aunet.stats."""
    pair_tests = {"wilcoxon", "mannwhitneyu", "paired_difference", "independent_difference"}
    holders = sorted(name for name, path in modules().items() if _calls(path) & pair_tests)
    assert holders == ["aunet.power"], f"a test over case x seed pairs is called in {holders}"
    import aunet.stats

    assert not {"Difference", "paired_difference", "independent_difference"} & set(vars(aunet.stats))


def test_convergence_is_judged_once_and_read_from_the_records():
    """aunet.convergence decides; aunet.records applies it to each run; the tables and the manifest read the records."""
    judges = sorted(name for name, path in modules().items()
                    if _calls(path) & {"history_convergence", "convergence"} and name != "aunet.convergence")
    assert judges == ["aunet.records"], f"convergence judged in {judges}"
