"""A reproduction: every notebook executed in order with papermill, and a manifest of what produced what.

    manifest = reproduce(profile="quick")          # CLI: aunet reproduce --profile quick   (make reproduce)

runs notebooks/01 ... 07 in the project's kernel (notebook 08, the study, is `make study`), each with the
parameters it declares among those given (`profile`, `seed`, ...), writes the executed copies and a log
to one folder per reproduction (`results/reproductions/<UTC time>/`), a readable copy of each executed notebook
to `results/notebooks/` (aunet.executed: kept in git, so a reader sees the outputs without running) and
`results/manifest.json`:

    aunet, git          version; commit and whether the tree had uncommitted changes
    packages            exact versions of the packages that compute or render the results
    device              where it ran (CPU model and flags, or GPU name)
    parameters          the profile and the papermill parameters of every notebook
    seeds               per experiment, the seeds its run folders were trained with (read from them)
    convergence         per run folder: whether its validation pancreas Dice reached a plateau (aunet.convergence:
                        `converged`) and its smoothed rise over the last quarter of the epochs (`rise`, null when
                        the curve is too short to tell)
    outputs             sha256 of every table and figure the reproduction wrote
    times               everything that depends on the clock: start, per-notebook and per-run seconds, the
                        reproduction folder, the timings table's hash

Everything outside "times" is a function of the code, the parameters and the machine's arithmetic: two
reproductions with the same seed give the same manifest but for "times" (tests/test_reproduce.py).
A failing notebook stops the reproduction with one line naming the notebook and the cell; Ctrl-C stops it with
one line too: each kernel's own stderr (not the cells' output, which travels over ZMQ) goes to
`<notebook>.kernel.log` in the reproduction's folder, so a kernel shut down mid-cell prints no traceback
(nor ipykernel's "running over TCP without encryption" warning). The console shows `== <notebook>`, papermill's
cell bar and the epoch lines of the notebook's pool runs (aunet.pool); every cell's output goes to reproduce.log.
"""
from __future__ import annotations

import datetime
import importlib.metadata
import json
import logging
import math
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

from aunet.errors import AunetError
from aunet.executed import publish
from aunet.io import atomic_write_text, file_digest

ROOT = Path(__file__).resolve().parents[1]  # the repository (notebooks/, results/, figures/)
KERNEL = "aunet"
STUDY_PREFIX = "08_"  # the study notebook runs with `make study`, not in the reproduction
PACKAGES = ("torch", "numpy", "scipy", "nibabel", "matplotlib", "papermill", "nbclient", "ipykernel", "ipywidgets",
            "jupyterlab", "tqdm")
TIMINGS = "timings"  # results/tables/timings.* hold wall-clock numbers: listed under "times"


def reproduction_notebooks(folder: str | Path = ROOT / "notebooks") -> list[Path]:
    """The notebooks of a reproduction, in reading order (the study notebook excluded)."""
    found = sorted(p for p in Path(folder).glob("[0-9][0-9]_*.ipynb") if not p.name.startswith(STUDY_PREFIX))
    if not found:
        raise AunetError(f"{folder}: no numbered notebooks (01_*.ipynb ...) found; expected aunet's notebooks/ folder.")
    return found


def git_state(root: Path = ROOT) -> dict[str, Any]:
    """The commit and whether tracked files differ from it (None when not a git checkout)."""
    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


def package_versions(names: Sequence[str] = PACKAGES) -> dict[str, str | None]:
    out = {}
    for name in names:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def machine() -> dict[str, Any]:
    """Where the numbers were computed: the training device and the CPU (model, cores, the flags that matter)."""
    import os

    import torch

    from aunet import speedups
    from aunet.device import cpu_model, describe_device, pick_device

    flags = set()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    except OSError:
        pass
    device = describe_device(pick_device("auto"))
    device.pop("threads", None)
    return {"device": device, "cpu": cpu_model(), "cpu_count": os.cpu_count(),
            "cpu_flags": sorted(f for f in flags if f.startswith(("avx", "amx", "fma")) or f.endswith("bf16")),
            "python": sys.version.split()[0], "cuda": torch.version.cuda,
            "speedups": speedups.describe()}  # this machine's speed-ups; each run records its own


def _declared(path: Path) -> dict[str, Any]:
    import papermill

    return {name: info["default"] for name, info in papermill.inspect_notebook(str(path)).items()}


def run_notebook(path: Path, out: Path, parameters: Mapping[str, Any], log: logging.Logger,
                 progress: bool = True) -> float:
    """Execute one notebook with papermill into `out`; seconds taken. AunetError naming the cell on failure."""
    import papermill

    start = time.perf_counter()
    log.info("== %s %s", path.name, json.dumps(parameters, sort_keys=True))
    if progress:
        print(f"== {path.name}", flush=True)
    try:
        papermill.execute_notebook(str(path), str(out), parameters=dict(parameters), kernel_name=KERNEL,
                                   cwd=str(path.parent), progress_bar=progress, log_output=True,
                                   stdout_file=_EpochEcho() if progress else None,
                                   kernel_manager_class=_kernel_manager(out.resolve().with_suffix(".kernel.log")))
    except papermill.PapermillExecutionError as e:
        first = e.evalue.splitlines()[0] if e.evalue else ""
        raise AunetError(f"{path.name} failed in cell {e.exec_count} ({e.ename}: {first}); "
                         f"the executed copy is {out}.") from None
    seconds = time.perf_counter() - start
    log.info("== %s done in %.1f s", path.name, seconds)
    if progress:
        print(f"== {path.name} done in {seconds:.0f} s", flush=True)
    return seconds


class _EpochEcho:
    """papermill's stdout_file: a notebook's pool runs' epoch lines (aunet.pool) echoed to the console."""

    def write(self, text: str) -> None:
        from tqdm import tqdm

        from aunet.pool import EPOCH_LINE

        for line in text.splitlines():
            if EPOCH_LINE.match(line):
                tqdm.write(f"   {line}")  # above papermill's cell bar; the whole output goes to reproduce.log

    def flush(self) -> None:
        sys.stdout.flush()


def _kernel_manager(stderr: Path) -> type:
    """nbclient's kernel manager, with the kernel's stderr written to the file `stderr` (not the terminal)."""
    from jupyter_client import AsyncKernelManager

    class KernelWithLog(AsyncKernelManager):
        async def start_kernel(self, **kwargs: Any) -> None:
            with open(stderr, "ab") as f:  # the kernel keeps its own copy of the descriptor
                await super().start_kernel(stderr=f, **kwargs)

    return KernelWithLog


def _written(folders: Sequence[Path], since: float) -> list[Path]:
    files = []
    for folder in folders:
        if folder.is_dir():
            files += [p for p in sorted(folder.rglob("*")) if p.is_file() and p.stat().st_mtime >= since]
    return files


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)


def _runs(runs_dir: Path, root: Path) -> tuple[dict[str, list[int]], dict[str, float], dict[str, dict[str, Any]]]:
    """Seeds per experiment, training seconds per run folder and each run folder's convergence, from the run
    records (unreadable ones left out)."""
    from aunet.records import read_tree, run_path

    seeds: dict[str, set[int]] = {}
    seconds, converged = {}, {}
    for experiment, model, run in read_tree(runs_dir)[0]:
        seeds.setdefault(experiment, set()).add(run.seed)
        folder = _relative(run_path(runs_dir, experiment, model, run.seed), root)
        seconds[folder] = round(run.training_seconds, 1)
        rise = run.convergence.rise  # NaN (too short to tell) is written as null: JSON has no NaN
        converged[folder] = {"converged": run.convergence.converged,
                             "rise": None if math.isnan(rise) else round(rise, 4)}
    return {k: sorted(v) for k, v in seeds.items()}, seconds, converged


def reproduce(profile: str = "quick", parameters: Mapping[str, Any] | None = None,
              notebook_parameters: Mapping[str, Mapping[str, Any]] | None = None,
              notebooks: Sequence[str | Path] | None = None, root: str | Path = ROOT,
              runs_dir: str | Path = "results/runs", outputs: Sequence[str | Path] = ("results/tables", "figures"),
              manifest_path: str | Path = "results/manifest.json",
              reproductions_dir: str | Path = "results/reproductions", published_dir: str | Path = "results/notebooks",
              progress: bool = True) -> dict[str, Any]:
    """Execute the notebooks in order and write the manifest; returns it.

    parameters: papermill parameters for every notebook that declares them (profile is one of them);
    notebook_parameters: per notebook file name, more (e.g. tiny sizes and temporary folders in tests).
    published_dir: where the readable copies of the executed notebooks go (aunet.executed; kept in git).
    Relative paths (runs_dir, outputs, ...) are under root.
    """
    root = Path(root)
    paths = [Path(p) for p in notebooks] if notebooks else reproduction_notebooks(root / "notebooks")
    started = datetime.datetime.now(datetime.timezone.utc)
    folder = root / reproductions_dir / started.strftime("%Y%m%dT%H%M%SZ")
    folder.mkdir(parents=True, exist_ok=True)
    log = logging.getLogger("aunet.reproduce")
    handler = logging.FileHandler(folder / "reproduce.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(message)s"))
    for name in ("aunet.reproduce", "papermill"):
        logging.getLogger(name).addHandler(handler)
        logging.getLogger(name).setLevel(logging.INFO)
    git = git_state(root)  # before the notebooks rewrite tracked tables and figures
    common = {"profile": profile, **(parameters or {})}
    since, used, seconds = time.time() - 1, {}, {}
    try:
        for path in paths:
            declared = _declared(path)
            chosen = {k: v for k, v in common.items() if k in declared}
            chosen.update((notebook_parameters or {}).get(path.name, {}))
            used[path.name] = chosen
            seconds[path.name] = round(run_notebook(path, folder / path.name, chosen, log, progress), 1)
            publish(folder / path.name, root / published_dir / path.name)
    finally:
        for name in ("aunet.reproduce", "papermill"):
            logging.getLogger(name).removeHandler(handler)
        handler.close()
    written = _written([root / o for o in outputs], since)
    seeds, run_seconds, convergence = _runs(root / runs_dir, root)
    outputs_sha = {_relative(p, root): file_digest(p) for p in written if not p.stem == TIMINGS}
    finished = datetime.datetime.now(datetime.timezone.utc)
    manifest = {
        "aunet": _version(), "git": git, "packages": package_versions(), "machine": machine(),
        "profile": profile, "parameters": used, "seeds": seeds, "convergence": convergence, "outputs": outputs_sha,
        "times": {"started": started.isoformat(timespec="seconds"), "finished": finished.isoformat(timespec="seconds"),
                  "seconds": round((finished - started).total_seconds(), 1), "notebooks": seconds,
                  "runs_training_seconds": run_seconds, "folder": _relative(folder, root),
                  "timings_outputs": {_relative(p, root): file_digest(p) for p in written if p.stem == TIMINGS}},
    }
    text = json.dumps(manifest, indent=2, sort_keys=False) + "\n"
    atomic_write_text(root / manifest_path, text)
    atomic_write_text(folder / "manifest.json", text)
    return manifest


def _version() -> str:
    from aunet import __version__

    return __version__


# --- the README's results section --------------------------------------------------------------------
README_SECTION = "reproduction results"  # the README's generated region (aunet.text.replace_marked)


def results_section(manifest: Mapping[str, Any], runs_dir: str | Path) -> str:
    """The README's results, generated from the run records and the manifest of one reproduction."""
    from aunet import convergence, text
    from aunet.claims import build_claims
    from aunet.experiments import EXPERIMENTS, MODEL_TITLES
    from aunet.records import read_column
    from aunet.stats import paired_by_seed
    from aunet.tables import TABLES_SHORT

    m, times = manifest["machine"], manifest["times"]
    commit = (manifest["git"].get("commit") or "unknown")[:7] + (" with uncommitted changes"
                                                                 if manifest["git"].get("dirty") else "")
    per_notebook = ", ".join(f"{n[:2]} {s / 60:.1f}" for n, s in times["notebooks"].items())
    rows, damaged, converged, runs = [], [], 0, 0
    for exp in EXPERIMENTS.values():
        u, a = (read_column(runs_dir, exp.name, model) for model in MODEL_TITLES)
        d, r = (paired_by_seed(u.scores(metric), a.scores(metric)) for metric in ("dice", "recall"))
        cells = [text.mean_std(*c.mean_std("dice")) if c.seeds else text.UNREADABLE if c.damaged else text.NOT_RUN
                 for c in (u, a)]
        rows.append([f"{TABLES_SHORT[exp.table]} {exp.setting}", *cells, text.interval(d), text.per_seed(d.per_seed),
                     text.p_value(d.p), text.interval(r), text.per_seed(r.per_seed), text.p_value(r.p),
                     text.share(u.converged + a.converged, len(u.seeds) + len(a.seeds))])
        damaged += [*u.damaged.values(), *a.damaged.values()]
        converged, runs = converged + u.converged + a.converged, runs + len(u.seeds) + len(a.seeds)
    claims = build_claims(runs_dir)
    return "\n".join([
        f"Generated by `make reproduce` (`aunet reproduce --profile {manifest['profile']}`) on "
        f"{times['started'][:10]}, commit {commit}, on {m['device']['type']} ({m['cpu']}, {m['cpu_count']} "
        f"logical CPUs, flags {' '.join(m['cpu_flags']) or 'none listed'}): {times['seconds'] / 60:.1f} min "
        f"in all (minutes per notebook: {per_notebook}). Seeds per experiment: "
        + "; ".join(f"{k} {', '.join(map(str, v))}" for k, v in manifest["seeds"].items()) + ". "
        f"Converged: {text.share(converged, runs)} evaluated runs (validation pancreas Dice rising by less than "
        f"{convergence.TOLERANCE:g} over the last quarter of the epochs, `aunet.convergence`).",
        "", "Pancreas, held-out test cases, mean ± std over cases and seeds; Δ = Attention U-Net minus U-Net with "
        "the training run as the unit: mean of the per-seed differences [95 % interval, bootstrap over seeds "
        "crossed with cases], each seed's difference, and p (sign-flip tests over seeds and over cases):", "",
        text.markdown_table(["experiment", "U-Net Dice", "Att U-Net Dice", "Δ Dice", "per seed", "p", "Δ recall",
                             "per seed", "p", "converged"], rows),
        *(f"\nLeft out ({text.UNREADABLE}): {why}" for why in damaged),
        "", "The paper's claims, checked on these runs (`results/tables/claims.md`; detectable: the smallest "
        "difference each claim's design detects with 80 % power, none below 6 seeds):", "",
        text.markdown_table([h for h in claims.header if h != "measured as"],
                            [[*row[:1], *row[2:-1], f"**{row[-1]}**"] for row in claims.rows])])
