"""The benchmark's training-step measurements, built on benchmarks/train_step.py's interleaved workers.

    steps = measure_all("full")  # results["steps"] of `python -m benchmarks.benchmark` (step_report.py renders it)

What is measured (each in one interleaved run, the load average before and after recorded): the quick
step of 7487c8c against this tree's, with MONAI's AttentionUnet at the same size, at 2 and 1 threads,
under the CPU's own ISA and ONEDNN_MAX_CPU_ISA=AVX2; each speed-up of the step switched off in turn (and
what the automatic choice turns down forced on) under three ISAs; torch.profiler's breakdown of one step;
seconds per voxel for the shapes a run could choose; a step at the paper's size against MONAI;
torch.compile; one 2-thread process against two 1-thread ones; and what a quick epoch spends validating.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.train_step import ROOT, WORKER, Worker, extract_package, interleave

OLD = "7487c8c"  # the commit the step is compared with (issue 21)
STEP_SPEEDUPS = ("bf16", "channels_last", "fused_adam")  # the step's own; the model's are in aunet.speedups too
ALL_OFF = list(STEP_SPEEDUPS) + ["fastconv", "upsample", "fold_gates", "fused_head", "reuse_cpu_memory"]
# (label, worker spec changes, ONEDNN_MAX_CPU_ISA): each candidate alone, against the default of its ISA
CANDIDATES = (("bfloat16 forward off", {"off": ["bf16"]}), ("channels-last off", {"off": ["channels_last"]}),
              ("fused Adam off", {"off": ["fused_adam"]}), ("exact upsampling off", {"off": ["upsample"]}),
              ("fused head off", {"off": ["fused_head"]}), ("fastconv off", {"off": ["fastconv"]}),
              ("every speed-up off (AUNET_FAST=0)", {"off": ALL_OFF}))
# per ONEDNN_MAX_CPU_ISA: the CPU as it is; avx512_bf16 without AMX; an AVX2 CPU. What each setting turns
# down automatically is also timed forced on, to show the choice does not leave speed behind.
ISAS = {
    None: CANDIDATES,
    "AVX512_CORE_BF16": CANDIDATES[1:] + (("bfloat16 forced on", {"force": True}),),
    "AVX2": CANDIDATES[2:] + (("channels-last forced on (float32)", {"force": True, "off": ["bf16"]}),),
}


def isa_label(isa: str | None) -> str:
    return f"ONEDNN_MAX_CPU_ISA={isa}" if isa else "default ISA"


def measure_old_new(threads: tuple[int, ...], rounds: int, steps: int) -> dict:
    """The quick step, OLD against this tree, under the CPU's own ISA and ONEDNN_MAX_CPU_ISA=AVX2, then MONAI's
    AttentionUnet at the same size against this tree: one interleaved run per pair and thread count."""
    out = {}
    for t in threads:
        for isa in (None, "AVX2"):
            env = {"ONEDNN_MAX_CPU_ISA": isa} if isa else {}
            variants = {OLD: {"code": OLD, "threads": t}, "this tree": {"threads": t}}
            out[f"{t} thread(s), {isa_label(isa)}"] = timed(
                variants, rounds, steps, env, f"old/new {t}T {isa_label(isa)}"
            )
        variants = {
            "this tree": {"threads": t},
            "monai.AttentionUnet, plain float32 step": {"model": "monai", "off": ALL_OFF, "threads": t},
            "monai.AttentionUnet, aunet's step": {"model": "monai", "threads": t},
        }
        out[f"{t} thread(s), MONAI"] = timed(variants, rounds, steps, {}, f"MONAI {t}T")
    return out


def measure_candidates(threads: tuple[int, ...], rounds: int) -> dict:
    """This tree's step against itself with one speed-up off (or a turned-down one forced on): one interleaved
    pair per candidate, ISA and thread count, one step per turn (pairs close in time: the load drifts)."""
    out = {}
    for isa, candidates in ISAS.items():
        env = {"ONEDNN_MAX_CPU_ISA": isa} if isa else {}
        for t in threads:
            for label, spec in candidates:
                variants = {"this tree": {"threads": t}, label: {**spec, "threads": t}}
                out[f"{t} thread(s), {isa_label(isa)}: {label}"] = timed(
                    variants, rounds, 1, env, f"{t}T {isa_label(isa)}"
                )
    return out


def measure_shapes(
    filters: tuple[int, ...], patches: tuple, batches: tuple[int, ...], threads: int, rounds: int
) -> dict:
    """Seconds per step of this tree's step for each (base filters, patch, batch); one interleaved run per width."""
    out = {}
    for f in filters:
        variants = {
            f"{f} {'x'.join(map(str, p))} {b}": {
                "threads": threads,
                "config": {"base_filters": f, "patch_size": list(p), "batch_size": b},
            }
            for p in patches
            for b in batches
        }
        out[str(f)] = timed(variants, rounds, 1, {}, f"shapes, base filters {f}")
    return out


def measure_paper_size(threads: int, rounds: int) -> dict:
    """A training step at the paper's input (batch 1, 160x160x96, 16 base filters): aunet against MONAI."""
    paper = {"base_filters": 16, "patch_size": [160, 160, 96], "batch_size": 1}
    variants = {
        "this tree": {"threads": threads, "config": paper},
        "monai.AttentionUnet, plain float32 step": {
            "model": "monai",
            "off": ALL_OFF,
            "threads": threads,
            "config": paper,
        },
        "monai.AttentionUnet, aunet's step": {"model": "monai", "threads": threads, "config": paper},
        OLD: {"code": OLD, "threads": threads, "config": paper},
    }
    return timed(variants, rounds, 1, {}, "paper size")


def measure_compile(threads: int, rounds: int) -> dict:
    """This tree's step eager and under torch.compile (cfg.compile): the first step holds the compilation."""
    variants = {"this tree": {"threads": threads}, "torch.compile": {"threads": threads, "config": {"compile": True}}}
    return timed(variants, rounds, 2, {}, "torch.compile")


def measure_processes(rounds: int, steps: int) -> dict:
    """Steps per second of the machine: one process of 2 threads (libgomp's default wait policy, and passive),
    or 2 processes of 1 thread each, side by side (aunet.pool's way)."""
    layouts = {
        "one process, 2 threads": [Worker({"threads": 2}, str(ROOT), {})],
        "one process, 2 threads, OMP_WAIT_POLICY=PASSIVE": [
            Worker({"threads": 2}, str(ROOT), {"OMP_WAIT_POLICY": "PASSIVE"})
        ],
        "2 processes, 1 thread each": [Worker({"threads": 1}, str(ROOT), {}) for _ in range(2)],
    }
    out: dict = {
        "rounds": rounds,
        "steps": steps,
        "load_before": os.getloadavg(),
        "rates": {name: [] for name in layouts},
    }
    try:
        for r in range(rounds + 1):
            for name, workers in layouts.items():
                start = time.perf_counter()
                for w in workers:  # all start, then all are awaited: they run side by side
                    w.proc.stdin.write(f"{steps}\n")
                    w.proc.stdin.flush()
                for w in workers:
                    w.proc.stdout.readline()
                if r:
                    out["rates"][name].append(len(workers) * steps / (time.perf_counter() - start))
    finally:
        for workers in layouts.values():
            for w in workers:
                w.close()
    out["load_after"] = os.getloadavg()
    return out


def measure_epochs(epochs: int = 2, cases: int = 30) -> dict:
    """`aunet train --profile quick` for a few epochs on a fresh phantom, OLD then this tree: each epoch's
    seconds in training steps, waiting for batches and validation (the run's history.csv)."""
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        data, env = Path(tmp) / "phantom", {**os.environ, "PYTHONPATH": str(ROOT)}
        subprocess.run(
            [sys.executable, "-m", "aunet", "data", "phantom", "--out", str(data), "--cases", str(cases), "--seed",
             "0"],
            env=env,
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        for name, code in ((OLD, OLD), ("this tree", None)):
            path = str(ROOT) if code is None else str(extract_package(code, Path(tmp) / code))
            run = Path(tmp) / name.replace(" ", "_")
            subprocess.run(
                [sys.executable, "-m", "aunet", "train", "--profile", "quick", "--epochs", str(epochs), "--data-dir",
                 str(data), "--out-dir", str(run)],
                env={**env, "PYTHONPATH": path},
                cwd=ROOT,
                check=True,
                capture_output=True,
            )
            rows = list(csv.DictReader((run / "history.csv").open()))
            out[name] = [
                {k: float(r[k]) for k in ("seconds", "train_seconds", "data_seconds", "val_seconds")} for r in rows
            ]
            print(f"  epochs {name}: " + ", ".join(f"{r['seconds']:.1f} s" for r in out[name]), flush=True)
    return out


def step_flops(config: dict, model: str = "aunet") -> int:
    """FLOPs of one forward+backward of the quick profile's model with `config` changes (plain, meta device)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from aunet import speedups
    from aunet.config import Config

    cfg = Config.from_profile("quick", **config)
    sys.path.insert(0, str(WORKER.parent))
    from step_worker import monai_attention_unet

    with speedups.off():
        net = (monai_attention_unet(cfg) if model == "monai" else cfg.build_model()).to("meta")
    x = torch.empty(cfg.batch_size, cfg.in_channels, *cfg.patch_size, device="meta")
    with FlopCounterMode(display=False) as counter:
        net(x).float().mean().backward()
    return counter.get_total_flops()


def profiles(threads: tuple[int, ...], steps: int) -> dict:
    """Where a step's time goes (step_worker --profile-steps), OLD and this tree."""
    out = {}
    for t in threads:
        for name, spec in ((OLD, {"code": OLD}), ("this tree", {})):
            out[f"{name}, {t} thread(s)"] = profile_worker({**spec, "threads": t}, steps)
    return out


def profile_worker(spec: dict, steps: int) -> dict:
    """One worker's `profile <json>` answer."""
    with tempfile.TemporaryDirectory() as tmp:
        code = spec.get("code")
        path = str(ROOT) if code is None else str(extract_package(code, Path(tmp) / code))
        cmd = [sys.executable, str(WORKER), "--threads", str(spec.get("threads", 0)), "--profile-steps", str(steps)]
        done = subprocess.run(
            cmd, capture_output=True, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": path}, check=True
        )
    line = next(l for l in done.stdout.splitlines() if l.startswith("profile "))
    return json.loads(line[len("profile ") :])


def timed(variants: dict, rounds: int, steps: int, env: dict, label: str) -> dict:
    """`interleave` with the load average before and after (the machine is shared)."""
    before = os.getloadavg()
    result = interleave(variants, rounds, steps, 1, env, label)
    return {**result, "load_before": before, "load_after": os.getloadavg()}


# how much of each measurement a benchmark profile takes (benchmarks/benchmark.py's "full" and "quick")
STEP_PROFILES = {
    "full": dict(
        threads=(2, 1),
        rounds=15,
        steps=2,
        candidate_rounds=12,
        profile_steps=5,
        paper_rounds=3,
        compile_rounds=3,
        processes_rounds=4,
        epochs=2,
        shapes=dict(
            filters=(8, 12, 16), patches=((48, 48, 32), (64, 64, 48), (96, 96, 64)), batches=(1, 2), threads=1, rounds=3
        ),
    ),
    "quick": dict(threads=(1,), rounds=1, steps=1, candidate_rounds=1, profile_steps=1, paper_rounds=0,
                  compile_rounds=0, processes_rounds=1, epochs=0,
                  shapes=dict(filters=(4,), patches=((32, 32, 32),), batches=(1,), threads=1, rounds=1)),
}


def measure_all(profile: str, save=lambda steps: None) -> dict:
    """Every training-step measurement of one benchmark run (results["steps"]); `save` is called after each stage."""
    import torch

    from benchmarks.measure import matmul_gflops

    prof = STEP_PROFILES[profile]
    shapes = prof["shapes"]
    steps: dict = {
        "old": OLD,
        "flops": {"quick": step_flops({}), "quick, monai": step_flops({}, "monai")},
        "matmul": {},
    }
    for f in shapes["filters"]:
        for p in shapes["patches"]:
            for b in shapes["batches"]:
                steps["flops"][f"shape {f} {'x'.join(map(str, p))} {b}"] = step_flops(
                    {"base_filters": f, "patch_size": list(p), "batch_size": b}
                )
    threads = torch.get_num_threads()
    for t in sorted({*prof["threads"], shapes["threads"]}):
        torch.set_num_threads(t)
        steps["matmul"][f"{t} thread(s)"] = {
            name: matmul_gflops(torch.device("cpu"), 2048, repeats=5, dtype=dtype)
            for name, dtype in (("float32", torch.float32), ("bfloat16", torch.bfloat16))
        }
    torch.set_num_threads(threads)
    stages = [
        ("old_new", lambda: measure_old_new(prof["threads"], prof["rounds"], prof["steps"])),
        ("candidates", lambda: measure_candidates(prof["threads"], prof["candidate_rounds"])),
        ("profiles", lambda: profiles(prof["threads"], prof["profile_steps"])),
        (
            "shapes",
            lambda: measure_shapes(
                shapes["filters"], shapes["patches"], shapes["batches"], shapes["threads"], shapes["rounds"]
            ),
        ),
        ("processes", lambda: measure_processes(prof["processes_rounds"], prof["steps"])),
    ]
    if prof["paper_rounds"]:
        paper = {"base_filters": 16, "patch_size": [160, 160, 96], "batch_size": 1}
        steps["flops"].update({"paper": step_flops(paper), "paper, monai": step_flops(paper, "monai")})
        stages.append(
            ("paper", lambda: {f"{t} thread(s)": measure_paper_size(t, prof["paper_rounds"]) for t in prof["threads"]})
        )
    if prof["compile_rounds"]:
        stages.append(("compile", lambda: measure_compile(1, prof["compile_rounds"])))
    if prof["epochs"]:
        stages.append(("epochs", lambda: measure_epochs(prof["epochs"])))
    for key, measure in stages:
        print(f"training step: {key} ...", flush=True)
        steps[key] = measure()
        save(steps)
    return steps
