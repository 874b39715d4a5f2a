"""docs/architecture.md is true: every module in its layer, imports pointing down, one owner per concept."""
from __future__ import annotations

import ast
import re
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
