"""The training step timed side by side: worker processes (benchmarks/step_worker.py) called in turns.

    python -m benchmarks.train_step --variants '{"old": {"code": "7487c8c"}, "new": {}}' --rounds 10 --steps 3
    python -m benchmarks.train_step --variants '{"default": {}, "bf16 off": {"off": ["bf16"]}}' --isa AVX2

Each variant is one long-lived process (its own aunet: the working tree, or a commit's `aunet/` taken
out with `git archive`; its own environment, e.g. ONEDNN_MAX_CPU_ISA, which oneDNN reads once per
process). Every round asks each process in turn for `steps` steps (A, B, A, B, ...), so that load from
other work on a shared machine falls on all of them alike; the first `warmup` rounds are not counted.
Reported: each variant's median seconds per step, and the median over rounds of each variant's time
divided by the first variant's in the same round.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORKER = Path(__file__).with_name("step_worker.py")


def extract_package(commit: str, into: Path) -> Path:
    """`aunet/` as it was at `commit`, extracted into `into` (a PYTHONPATH entry)."""
    archive = subprocess.run(["git", "archive", "--format=tar", commit, "aunet"], cwd=ROOT, capture_output=True,
                             check=True).stdout
    into.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=__import__("io").BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into


class Worker:
    """One step_worker.py process for one variant."""

    def __init__(self, spec: dict, pythonpath: str, env: dict[str, str]) -> None:
        cmd = [sys.executable, str(WORKER), "--profile", spec.get("profile", "quick"),
               "--config", json.dumps(spec.get("config", {})), "--model", spec.get("model", "aunet"),
               "--off", ",".join(spec.get("off", [])), "--threads", str(spec.get("threads", 0))]
        cmd += ["--force"] if spec.get("force") else []
        environ = {**os.environ, **env, **spec.get("env", {}), "PYTHONPATH": pythonpath}
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=environ,
                                     cwd=ROOT)
        line = self.proc.stdout.readline()
        if not line.startswith("ready "):
            self.close()
            raise RuntimeError(f"step worker {spec} did not start (exit {self.proc.returncode})")
        self.info = json.loads(line[len("ready "):])

    def run(self, steps: int) -> tuple[float, float]:
        """(seconds per step, last loss) of `steps` steps."""
        self.proc.stdin.write(f"{steps}\n")
        self.proc.stdin.flush()
        seconds, loss = self.proc.stdout.readline().split()
        return float(seconds) / steps, float(loss)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.write("\n")
            self.proc.stdin.close()
            self.proc.wait(timeout=60)


def interleave(variants: dict[str, dict], rounds: int, steps: int, warmup: int = 1,
               env: dict[str, str] | None = None, label: str | None = None) -> dict:
    """Time each variant's step in turns; {"variants": {name: {"info", "times", "losses"}}, "ratios": ...}.

    A variant: {"code": commit or "working tree" (default), "config": {...}, "model": "aunet"|"monai",
    "off": [speed-ups], "threads": n, "env": {...}, "force": true (bf16 + channels_last on any CPU)}.
    """
    env = env or {}
    out: dict = {"rounds": rounds, "steps": steps, "warmup": warmup, "env": env, "variants": {}}
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        workers = {}
        for name, spec in variants.items():
            code = spec.get("code")
            path = str(ROOT) if code is None else str(extract_package(code, Path(tmp) / code))
            workers[name] = Worker(spec, path, env)
            stack.callback(workers[name].close)
            out["variants"][name] = {"spec": spec, "info": workers[name].info, "times": [], "losses": []}
        for r in range(warmup + rounds):
            for name, worker in workers.items():
                seconds, loss = worker.run(steps)
                if r >= warmup:
                    out["variants"][name]["times"].append(seconds)
                    out["variants"][name]["losses"].append(loss)
    first = next(iter(variants))
    base = out["variants"][first]["times"]
    out["ratios"] = {name: statistics.median(t / b for t, b in zip(v["times"], base))
                     for name, v in out["variants"].items()}
    if label is not None:
        print(f"  {label} " + ", ".join(f"{n}: {statistics.median(v['times']):.3f} s/step ({out['ratios'][n]:.2f}x "
                                        f"of {first})" for n, v in out["variants"].items()), flush=True)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--variants", required=True, help="JSON {name: spec}; the first is the reference")
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--steps", type=int, default=3, help="steps per variant per round")
    p.add_argument("--warmup", type=int, default=1, help="rounds not counted")
    p.add_argument("--isa", default="", help="ONEDNN_MAX_CPU_ISA for every variant (e.g. AVX2)")
    p.add_argument("--out", default="", help="write the raw result as JSON here")
    args = p.parse_args()
    env = {"ONEDNN_MAX_CPU_ISA": args.isa} if args.isa else {}
    load = os.getloadavg()
    result = interleave(json.loads(args.variants), args.rounds, args.steps, args.warmup, env)
    result["load_before"], result["load_after"] = load, os.getloadavg()
    print(f"load average before {load[0]:.2f}, after {result['load_after'][0]:.2f}")
    for name, v in result["variants"].items():
        t = v["times"]
        print(f"{name:30s} median {statistics.median(t):.4f} s  min {min(t):.4f} s  ratio to first "
              f"{result['ratios'][name]:.3f}  ({v['info'].get('forward_dtype', 'float32')}, "
              f"channels_last {v['info'].get('channels_last', False)}, threads {v['info']['threads']})")
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
