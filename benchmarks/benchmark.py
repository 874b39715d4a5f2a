"""Speed and memory of aunet's U-Net / Attention U-Net next to MONAI's AttentionUnet, in one run.

    python -m benchmarks.benchmark [--quick] [--device auto|cpu|cuda] [--out benchmarks/out/results.json]
                                   [--write-docs] [--compile] [--no-amp]
    python -m benchmarks.benchmark --render benchmarks/out/results.json [--write-docs]

Run from the repository root. Measures, on the device it runs on: parameters; forward and
forward+backward time (median of interleaved repeats after warm-up) at a CPU-friendly size and at the
paper's 160x160x96; peak memory; the gate overhead AttentionUNet / UNet (and MONAI AttentionUnet /
BasicUNet); training throughput; whole-volume sliding-window inference of a 512x512x200 CT; achieved
GFLOP/s against the machine's own matmul GFLOP/s; channels-last (and torch.compile with --compile);
aunet.fastconv on and off, for aunet's model and for MONAI's with its convolutions swapped for aunet's;
aunet's model built with each other speed-up of aunet.speedups off; and reuse_cpu_memory on and off.
The in-process timings run inside `reuse_cpu_memory`, as aunet's trainer does, for every model alike;
memory, sliding-window and allocator measurements run in fresh processes (benchmarks/probes.py).
Writes the raw results as JSON and prints Markdown tables; --write-docs fills the generated regions of
docs/benchmarks.md from that JSON (or from the file given to --render, without measuring).
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch

from aunet import speedups
from aunet.device import pick_device, reuse_cpu_memory
from aunet.io import atomic_write_text
from benchmarks import fresh, models, probes, report, step_stages
from benchmarks import measure as M

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "benchmarks.md"
PROFILES = {
    "full": dict(sizes={"small": (64, 64, 64), "paper": (160, 160, 96)}, warmup=2,
                 repeats={"small": 5, "paper": 7}, backward_repeats={"small": 3, "paper": 3},
                 memory_sizes=("paper",), memory_models=tuple(models.BUILDERS),
                 train=((2, (48, 48, 32)), (1, (96, 96, 96))), train_repeats=2,
                 sliding=dict(volume=(512, 512, 200), patch=(160, 160, 96), overlap=0.0), matmul_n=2048,
                 allocator=dict(size="paper", warmup=2, repeats=3)),
    "quick": dict(sizes={"small": (32, 32, 32), "paper": (48, 48, 32)}, warmup=1,
                  repeats={"small": 2, "paper": 2}, backward_repeats={"small": 1, "paper": 1},
                  memory_sizes=("small",), memory_models=("aunet.AttentionUNet", "monai.AttentionUnet"),
                  train=((2, (32, 32, 32)),), train_repeats=1,
                  sliding=dict(volume=(64, 64, 40), patch=(32, 32, 32), overlap=0.0), matmul_n=512,
                  allocator=dict(size="small", warmup=1, repeats=1)),
}
ATTENTION_MODEL = "aunet.AttentionUNet"
ALLOCATOR_MODELS = ("aunet.AttentionUNet", "monai.AttentionUnet")
MODEL_SPEEDUPS = ("fastconv", "upsample", "fold_gates", "fused_head")  # those a model is built with
# aunet's model built with speed-ups off: (label, speed-ups off, also timed with forward+backward)
SWITCHES = (("default", (), True), ("exact upsampling off", ("upsample",), True),
            ("gate folding off", ("fold_gates",), False),  # folding acts in eval mode only
            ("fused head off", ("fused_head",), True), ("all four off", MODEL_SPEEDUPS, True))


def machine(device: torch.device) -> dict:
    """What the numbers were measured on."""
    cpu, flags, family = "unknown", [], ""
    if Path("/proc/cpuinfo").exists():
        first = Path("/proc/cpuinfo").read_text().split("\n\n")[0]
        fields = dict(line.split(":", 1) for line in first.splitlines() if ":" in line)
        fields = {k.strip(): v.strip() for k, v in fields.items()}
        cpu, family = fields.get("model name", cpu), f"family {fields.get('cpu family')} model {fields.get('model')}"
        flags = sorted(f for f in fields.get("flags", "").split() if f.startswith(("avx", "amx", "fma")))
    info = dict(cpu=cpu, cpu_family=family, cpu_flags=flags, logical_cpus=os.cpu_count(),
                torch_threads=torch.get_num_threads(), torch=torch.__version__, python=platform.python_version(),
                device=str(device), load_average=os.getloadavg())
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    try:
        import monai
        info["monai"] = monai.__version__
    except ImportError:
        info["monai"] = None
    return info


def git_commit() -> str | None:
    """The commit being measured ('+ uncommitted changes' when tracked files differ from it); None outside git."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()

    try:
        head, dirty = git("rev-parse", "--short", "HEAD"), git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.CalledProcessError):
        return None
    return head + (" + uncommitted changes" if dirty else "")


def entry(size: tuple[int, ...], times: dict[str, list[float]], batch: int = 1) -> dict:
    """One timed comparison as stored in the results: {"size", "batch", "times": {name: [s, ...]}}."""
    return dict(size=list(size), batch=batch, times=times)


def measure_times(built: dict, factory, sizes: dict, repeats: dict, warmup: int, device, amp) -> dict:
    """{size_key: entry}: every model at each size, interleaved."""
    out = {}
    for key, size in sizes.items():
        x = M.make_input(size, 1, device)
        steps = {name: factory(model, x, device, amp) for name, model in built.items()}
        out[key] = entry(size, M.interleaved(steps, device, warmup, repeats[key], f"{factory.__name__} {size}"))
    return out


def measure_variants(device, amp, size, warmup, repeats, use_compile: bool) -> dict:
    """aunet AttentionUNet as built vs with the optional speed-ups of models.optimise, interleaved."""
    variants = {"default": {}, "channels_last": dict(channels_last=True)}
    if use_compile:
        variants["compile"] = dict(compile=True)
        variants["channels_last+compile"] = dict(channels_last=True, compile=True)
    out = {}
    for kind, factory in (("forward", M.forward_step), ("forward_backward", M.backward_step)):
        steps = {}
        for name, options in variants.items():
            model = models.optimise(models.build(ATTENTION_MODEL, device), **options)
            x = M.make_input(size, 1, device, channels_last=options.get("channels_last", False))
            steps[name] = factory(model, x, device, amp)
        out[kind] = entry(size, M.interleaved(steps, device, warmup + 1, repeats, f"variants {kind} {size}"))
    return out


def measure_fastconv(device, amp, sizes: dict, warmup: int, repeats: dict) -> dict:
    """Forward+backward with and without aunet.fastconv, for aunet's and MONAI's attention models, interleaved."""
    out = {}
    for key, size in sizes.items():
        x = M.make_input(size, 1, device)
        built = {"aunet.AttentionUNet (fastconv, default)": models.build(ATTENTION_MODEL, device),
                 "aunet.AttentionUNet (fastconv off)": models.build(ATTENTION_MODEL, device, off=("fastconv",)),
                 "monai.AttentionUnet (as shipped)": models.build("monai.AttentionUnet", device),
                 "monai.AttentionUnet (with aunet.fastconv)":
                     models.with_fastconv(models.build("monai.AttentionUnet", device))}
        steps = {name: M.backward_step(model, x, device, amp) for name, model in built.items()}
        out[key] = entry(size, M.interleaved(steps, device, warmup, repeats[key], f"fastconv fwd+bwd {size}"))
    return out


def measure_switches(device, amp, sizes: dict, warmup: int, repeats: dict, backward_repeats: dict) -> dict:
    """aunet AttentionUNet built with its speed-ups off in turn (SWITCHES), interleaved, same weights."""
    out = {}
    for kind, factory, reps in (("forward", M.forward_step, repeats), ("forward_backward", M.backward_step,
                                                                        backward_repeats)):
        out[kind] = {}
        for key, size in sizes.items():
            x = M.make_input(size, 1, device)
            steps = {label: factory(models.build(ATTENTION_MODEL, device, off=off), x, device, amp)
                     for label, off, with_backward in SWITCHES if kind == "forward" or with_backward}
            out[kind][key] = entry(size, M.interleaved(steps, device, warmup, reps[key], f"switches {kind} {size}"))
    return out


def run(args: argparse.Namespace) -> dict:
    """Every measurement of one benchmark run, as raw JSON-able data (saved after every stage)."""
    profile_name = "quick" if args.quick else "full"
    prof = PROFILES[profile_name]
    device = pick_device(args.device)
    amp = device.type == "cuda" and not args.no_amp
    started = time.time()
    results = dict(profile=profile_name, command=" ".join(["python -m benchmarks.benchmark", *sys.argv[1:]]),
                   commit=git_commit(), amp=amp, machine=machine(device), speedups=speedups.describe(),
                   date=datetime.datetime.now().isoformat(timespec="seconds"), pairs=models.PAIRS)
    results["params"] = {name: models.parameters(name) for name in models.BUILDERS}
    results["flops"] = {key: {name: dict(forward=models.count_flops(name, size),
                                         forward_backward=models.count_flops(name, size, backward=True))
                              for name in models.BUILDERS} for key, size in prof["sizes"].items()}
    print("matmul ...", flush=True)
    results["matmul"] = dict(n=prof["matmul_n"], gflops=M.matmul_gflops(device, prof["matmul_n"], repeats=5))
    save(results, args.out)
    if device.type == "cpu" and not args.skip_steps:  # the training step, old and new (step_stages.py)
        def keep(steps: dict) -> None:
            save({**results, "steps": steps}, args.out)

        results["steps"] = step_stages.measure_all(profile_name, keep)
        save(results, args.out)
    if args.steps_only:
        results["wall_s"] = time.time() - started
        save(results, args.out)
        return results
    with reuse_cpu_memory(device.type == "cpu") as reuse:  # as aunet's trainer runs, for every model
        results["reuse_cpu_memory"] = reuse
        _time_models(results, prof, device, amp, args)
    _fresh_process_measurements(results, prof, device, amp, args.out)
    results["wall_s"] = time.time() - started
    save(results, args.out)
    return results


def _time_models(results: dict, prof: dict, device: torch.device, amp: bool, args: argparse.Namespace) -> None:
    """The in-process timings: forward, forward+backward, training steps, variants, fastconv, switches."""
    built = {name: models.build(name, device) for name in models.BUILDERS}
    print("timing ...", flush=True)
    results["forward"] = measure_times(built, M.forward_step, prof["sizes"], prof["repeats"], prof["warmup"], device,
                                       amp)
    results["forward_backward"] = measure_times(built, M.backward_step, prof["sizes"], prof["backward_repeats"],
                                                prof["warmup"], device, amp)
    save(results, args.out)
    print("training throughput ...", flush=True)
    results["training"] = []
    for batch, size in prof["train"]:
        x = M.make_input(size, batch, device)
        steps = {name: M.train_step(model, x, device, amp) for name, model in built.items()}
        times = M.interleaved(steps, device, prof["warmup"], prof["train_repeats"], f"training {batch} x {size}")
        results["training"].append(entry(size, times, batch))
    save(results, args.out)
    del built
    print("variants ...", flush=True)
    results["variants"] = measure_variants(device, amp, prof["sizes"]["small"], prof["warmup"],
                                           prof["repeats"]["small"], args.compile)
    save(results, args.out)
    print("fastconv ...", flush=True)
    results["fastconv"] = measure_fastconv(device, amp, prof["sizes"], prof["warmup"], prof["backward_repeats"])
    save(results, args.out)
    print("speed-ups switched off in turn ...", flush=True)
    results["switches"] = measure_switches(device, amp, prof["sizes"], prof["warmup"], prof["repeats"],
                                           prof["backward_repeats"])
    save(results, args.out)


def _fresh_process_measurements(results: dict, prof: dict, device: torch.device, amp: bool, out: str) -> None:
    """Peak memory, sliding-window inference and CPU memory reuse, one fresh process each (benchmarks/probes.py)."""
    print("memory (one fresh process per measurement) ...", flush=True)
    results["memory"] = {}
    for kind in ("forward", "forward_backward"):
        for key in prof["memory_sizes"]:
            size = list(prof["sizes"][key])
            for name in prof["memory_models"]:
                measured = fresh.run(probes.peak_memory, kind=kind, model=name, size=size, batch=1,
                                     device=str(device), amp=amp)
                results["memory"].setdefault(kind, {}).setdefault(key, {"size": size})[name] = measured
    save(results, out)
    print("sliding-window inference ...", flush=True)
    spec = dict(device=str(device), amp=amp, **{k: list(v) if isinstance(v, tuple) else v
                                                 for k, v in prof["sliding"].items()})
    results["sliding"] = dict(spec, model=ATTENTION_MODEL, **fresh.run(probes.sliding_window, **spec))
    save(results, out)
    if device.type != "cpu":  # the allocator matters on the CPU only
        return
    spec["reuse"] = True  # the same sliding window inside reuse_cpu_memory: faster, more memory
    results["sliding_reuse"] = dict(spec, model=ATTENTION_MODEL, **fresh.run(probes.sliding_window, **spec))
    save(results, out)
    print("CPU memory reuse on / off (one fresh process each) ...", flush=True)
    alloc = prof["allocator"]
    size = list(prof["sizes"][alloc["size"]])
    results["allocator"] = dict(size=size, warmup=alloc["warmup"], runs={})
    for name in ALLOCATOR_MODELS:
        for reuse in (True, False):
            results["allocator"]["runs"][f"{name}, reuse {'on' if reuse else 'off'}"] = fresh.run(
                probes.allocator, model=name, size=size, device=str(device), amp=amp, reuse=reuse,
                warmup=alloc["warmup"], repeats=alloc["repeats"])
    save(results, out)


def save(results: dict, path: str) -> None:
    """Write the results so far (after every stage, so a long run that fails keeps what it measured)."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, json.dumps(results, indent=1))


def main(argv: list[str] | None = None) -> int:
    """The command line: measure (or --render a results file), print the tables, optionally fill the docs."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.benchmark", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small sizes and few repeats: a smoke check (~2 min)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--out", default="benchmarks/out/results.json", help="where to write the raw results")
    p.add_argument("--write-docs", action="store_true",
                   help="fill docs/benchmarks.md's generated regions from the results")
    p.add_argument("--compile", action="store_true", help="also time torch.compile variants (slow to compile)")
    p.add_argument("--no-amp", action="store_true", help="float32 on CUDA too (AMP is on by default there)")
    p.add_argument("--render", metavar="JSON", help="measure nothing: render the tables from this results file")
    p.add_argument("--threads", type=int, default=0, help="torch threads of the model timings (0: torch's default); "
                   "the training-step stages time 2 and 1 threads whatever this says")
    p.add_argument("--steps-only", action="store_true", help="only the training-step measurements (train_step.py)")
    p.add_argument("--skip-steps", action="store_true", help="everything but the training-step measurements")
    args = p.parse_args(argv)

    if args.threads:  # this process and the fresh ones it starts (benchmarks/fresh.py)
        os.environ["OMP_NUM_THREADS"] = str(args.threads)
        torch.set_num_threads(args.threads)
    if args.render:
        results = json.loads(Path(args.render).read_text())
    else:
        results = run(args)
        print(f"wrote {args.out}")
    print(report.render(results))
    if args.write_docs:
        atomic_write_text(DOCS, report.fill_docs(DOCS.read_text(), results))
        print(f"wrote {DOCS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
