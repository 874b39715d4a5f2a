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
