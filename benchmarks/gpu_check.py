"""The GPU checks of issue 11 in one call, sized for under 8 minutes on one H200 (benchmarks/gpu_check.sh).

At the paper profile (2 mm phantom, 160x160x96 patches, the paper's widths): step time, the share of the
training loop spent waiting for batches, epoch time and peak GPU memory, on one GPU (as configured and with
channels_last_3d) and, where the machine has several GPUs, with torchrun on all of them; then the batch
pipeline and the validation measured on the GPU (python -m benchmarks.bench_pipeline --device cuda). Each stage is
one command with a time limit; the numbers are read from the runs' own history (aunet.run.RunFolder).

    bash benchmarks/gpu_check.sh                 # on the GPU machine; results in $OUT (default gpu_out/)
    bash benchmarks/gpu_check.sh --dry-run       # print the stages' commands, run nothing
    bash benchmarks/gpu_check.sh --cpu-tiny      # the same stages on the CPU at a tiny size (tests/)
    bash benchmarks/gpu_check.sh --extra         # also python -m benchmarks.benchmark on CUDA (needs monai there)

Written to $OUT: gpu_check.json (every number), gpu_check.md (the table), pipeline.json, gpu_check.log.
Data and run folders go to --work (default /tmp/aunet_gpu_check), not $OUT (checkpoints are large).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]  # gpu_check.sh runs this from ROOT with ROOT on PYTHONPATH

SIZES = {  # what a run trains on: the paper profile on the GPU, something tiny on the CPU (tests)
    "gpu": dict(cases=18, phantom=[], iterations=30, limit=None, train=["--device", "cuda"]),
    "cpu-tiny": dict(cases=6, phantom=["--size", "80,64,32"], iterations=2, limit=300,
                     train=["--device", "cpu", "--spacing", "8", "--patch-size", "32,32,32",
                            "--inference-patch-size", "32,32,32", "--base-filters", "2"]),
}
# 3 epochs: the first warms up (cuDNN's benchmark), the second is a typical one, the last adds whole volumes
# seconds per stage on the GPU machine: 460 in all, so that one call ends within 8 minutes whatever happens
LIMITS = {"phantom": 60, "one_gpu": 110, "one_gpu_channels_last": 90, "torchrun": 110, "pipeline": 90,
          "benchmark_cuda": 300}  # --extra only
COMMON = ["--profile", "paper", "--epochs", "3", "--val-fraction", "0.25", "--test-fraction", "0",
          "--val-every", "1000", "--snapshot-epochs", "3"]


def gpu_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def stages(args: argparse.Namespace, gpus: int) -> list[tuple[str, list[str], int]]:
    """(name, command, time limit in s) of every stage, in order."""
    size = SIZES["cpu-tiny" if args.cpu_tiny else "gpu"]
    py, work = sys.executable, Path(args.work)
    data = work / f"phantom_{size['cases']}"
    train = [py, "-m", "aunet", "train", "--data-dir", str(data), *COMMON, *size["train"],
             "--iterations-per-epoch", str(size["iterations"])]
    limit = lambda name: size["limit"] or LIMITS[name]  # noqa: E731
    out = [("phantom", [py, "-m", "aunet", "data", "phantom", "--out", str(data), "--cases", str(size["cases"]),
                        "--seed", "0", "--overwrite", *size["phantom"]], limit("phantom")),
           ("one_gpu", [*train, "--out-dir", str(work / "runs" / "one_gpu")], limit("one_gpu")),
           ("one_gpu_channels_last", [*train, "--channels-last", "true", "--out-dir",
                                      str(work / "runs" / "one_gpu_channels_last")], limit("one_gpu_channels_last"))]
    processes = args.processes or (gpus if gpus > 1 else 0)
    if processes > 1:  # torchrun on every GPU, two paper-size patches per GPU
        out.append((f"torchrun_{processes}", [py, "-m", "torch.distributed.run", "--standalone",
                                              f"--nproc-per-node={processes}", *train[1:],
                                              "--batch-size", str(2 * processes),
                                              "--out-dir", str(work / "runs" / f"torchrun_{processes}")],
                    limit("torchrun")))
    bench = [py, "-m", "benchmarks.bench_pipeline", "--out", str(Path(args.out) / "pipeline.json"),
             "--data-dir", str(work)]
    bench += ["--quick", "--device", "cpu", "--val-cases", "2", "--step-ms", "50"] if args.cpu_tiny else \
        ["--device", "cuda", "--step-ms", "200"]
    out.append(("pipeline", bench, limit("pipeline")))
    if args.extra:
        out.append(("benchmark_cuda", [py, "-m", "benchmarks.benchmark", "--device", "cuda", "--out",
                                       str(Path(args.out) / "benchmark_cuda.json")], limit("benchmark_cuda")))
    return out


def run_stage(command: list[str], log, env: dict, limit: float) -> int | str:
    """Run one stage in its own process group; past its limit the whole group is killed ("timeout")."""
    proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        return proc.wait(timeout=limit)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # torchrun's workers and DataLoader workers too
        proc.wait()
        return "timeout"


def summarise_run(run_dir: Path, iterations: int) -> dict:
    """Steady-state numbers of a run: its second epoch (the first warms up cuDNN), the last's validation."""
    from aunet.run import RunFolder

    run = RunFolder(run_dir)
    rows = run.read_history()
    steady = rows[1] if len(rows) > 1 else rows[0]
    return dict(epochs=len(rows), step_s=steady["train_seconds"] / iterations,
                data_wait_share=steady["data_seconds"] / steady["train_seconds"],
                epoch_s=steady["seconds"], patch_val_s=steady["val_seconds"],
                whole_val_s=rows[-1]["val_seconds"], peak_gib=max(r.get("gpu_peak_gib", float("nan")) for r in rows),
                train_loss=[r["train_loss"] for r in rows], device=run.read_device())


def markdown(results: dict) -> str:
    rows = ["| run | processes | step s | waiting for data | epoch s (patch validation) | whole-volume validation s "
            "| peak GPU GiB |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for name, r in results["runs"].items():
        if "error" in r:
            rows.append(f"| {name} | | {r['error']} | | | | |")
            continue
        processes = (r["device"] or {}).get("processes", 1)
        rows.append(f"| {name} | {processes} | {r['step_s']:.3f} | {100 * r['data_wait_share']:.1f} % "
                    f"| {r['epoch_s']:.1f} ({r['patch_val_s']:.1f}) | {r['whole_val_s']:.1f} | {r['peak_gib']:.2f} |")
    rows.append("")
    rows.append(f"{results['machine']}; {results['iterations']} steps per epoch, epoch 2 of 3 shown (epoch 1 warms "
                f"up cuDNN); whole-volume validation from epoch 3. Stage times: " +
                ", ".join(f"{k} {v['seconds']:.0f} s" for k, v in results["stages"].items()) + ".")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=os.environ.get("OUT", "gpu_out"), help="results folder (default $OUT or gpu_out)")
    p.add_argument("--work", default="/tmp/aunet_gpu_check", help="data and run folders")
    p.add_argument("--dry-run", action="store_true", help="print the commands only")
    p.add_argument("--cpu-tiny", action="store_true", help="the same stages on the CPU at a tiny size")
    p.add_argument("--processes", type=int, default=0, help="torchrun processes (default: every GPU, if several)")
    p.add_argument("--extra", action="store_true", help="also python -m benchmarks.benchmark on CUDA (needs monai)")
    p.add_argument("--only", default="", help="comma-separated stage names to run (default: all)")
    args = p.parse_args(argv)
    gpus = 0 if args.cpu_tiny else gpu_count()
    if not (args.cpu_tiny or args.dry_run) and gpus == 0:
        print("gpu_check: PyTorch sees no CUDA GPU here; use --cpu-tiny or --dry-run on a CPU machine.",
              file=sys.stderr)
        return 2
    plan = stages(args, gpus if not args.dry_run else max(gpus, 2))
    if args.only:
        plan = [stage for stage in plan if stage[0] in args.only.split(",")]
    if args.dry_run:
        for name, command, limit in plan:
            print(f"{name} (limit {limit} s): {' '.join(command)}")
        return 0
    out, work = Path(args.out), Path(args.work)
    out.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(work / "runs", ignore_errors=True)  # a fresh run each call (the phantom is kept)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    if args.cpu_tiny:
        env["OMP_NUM_THREADS"] = "1"  # small CPU runs side by side with other work
    import torch

    machine = (f"{torch.cuda.get_device_name(0)} x {gpus}" if gpus else "CPU") + f", torch {torch.__version__}"
    iterations = SIZES["cpu-tiny" if args.cpu_tiny else "gpu"]["iterations"]
    results: dict = dict(machine=machine, gpus=gpus, iterations=iterations, stages={}, runs={})
    with open(out / "gpu_check.log", "w") as log:
        for name, command, limit in plan:
            print(f"== {name}: {' '.join(command)}", flush=True)
            log.write(f"== {name}: {' '.join(command)}\n")
            log.flush()
            start = time.perf_counter()
            rc = run_stage(command, log, env, limit)
            results["stages"][name] = dict(returncode=rc, seconds=time.perf_counter() - start)
            print(f"   {name}: {rc} after {results['stages'][name]['seconds']:.0f} s", flush=True)
            run_dir = work / "runs" / name
            if name.startswith(("one_gpu", "torchrun")):
                try:
                    results["runs"][name] = summarise_run(run_dir, results["iterations"])
                except Exception as e:  # a failed stage leaves no history: say so in the table
                    results["runs"][name] = dict(error=f"no history ({rc}: {type(e).__name__})")
    if (out / "pipeline.json").exists():
        results["pipeline"] = json.loads((out / "pipeline.json").read_text())
    (out / "gpu_check.json").write_text(json.dumps(results, indent=1, default=str) + "\n")
    table = markdown(results)
    if "pipeline" in results:
        from benchmarks import bench_pipeline

        table += "\n\n" + bench_pipeline.table(results["pipeline"])
    (out / "gpu_check.md").write_text(table + "\n")
    print(table)
    return 0 if all(s["returncode"] == 0 for s in results["stages"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
