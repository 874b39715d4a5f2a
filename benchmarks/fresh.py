"""Run one benchmark function in a fresh Python process and get its JSON result back.

    python -m benchmarks.fresh benchmarks.probes:peak_memory '{"kind": "forward", ...}'

Why a fresh process: the peak memory of a call is only honest in a process that has not yet grown
its heap (allocators keep freed pages), and glibc's allocator settings (aunet.device.reuse_cpu_memory)
are process-wide. `run` starts `python -m benchmarks.fresh MODULE:FUNCTION KWARGS` from the repository
root, in the same environment (AUNET_FAST included); the function's dict comes back as JSON on the
last line of its output.
"""
from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]


def run(function: Callable[..., dict], timeout: float = 3600, **kwargs) -> dict:
    """Call `function(**kwargs)` (a module-level function) in a fresh Python process; return its dict."""
    if function.__module__ == "__main__" or "." in function.__qualname__:
        raise ValueError(f"{function.__qualname__} must be a module-level function of an importable module.")
    cmd = [sys.executable, "-m", "benchmarks.fresh", f"{function.__module__}:{function.__name__}", json.dumps(kwargs)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[2:])} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str]) -> int:
    """python -m benchmarks.fresh MODULE:FUNCTION KWARGS_JSON: print the function's result as JSON."""
    target, kwargs = argv
    module, name = target.split(":")
    result = getattr(importlib.import_module(module), name)(**json.loads(kwargs))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
