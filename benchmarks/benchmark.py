"""Speed and memory of aunet's U-Net / Attention U-Net next to MONAI's AttentionUnet, in one run.

    python benchmarks/benchmark.py [--quick] [--device auto|cpu|cuda] [--out benchmarks/out/results.json]
                                   [--write-docs] [--compile] [--render results.json]

Measures, on the device it runs on: parameters; forward and forward+backward time (median of
interleaved repeats after warm-up) at a CPU-friendly size and at the paper's 160x160x96; peak memory;
the gate overhead AttentionUNet / UNet (and MONAI AttentionUnet / BasicUNet); training throughput
(voxels/s with an Adam step); whole-volume sliding-window inference of a 512x512x200 CT; achieved
GFLOP/s against the machine's own matmul GFLOP/s; and the speed-up of the optional channels-last
memory format (and torch.compile with --compile); forward+backward with aunet.fastconv on and off,
for aunet's model and for MONAI's with its convolutions swapped for aunet's; aunet's model with its
other CPU speed-ups (x2 upsampling, eval-mode gate folding) switched off in turn; and forward+backward with
`aunet.device.reuse_cpu_memory` on and off (one fresh process each). The in-process timings run inside
`reuse_cpu_memory`, as aunet's trainer does, for every model alike. Writes the raw results
as JSON and prints a Markdown table; --write-docs renders docs/benchmarks.md from that JSON.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the bench_* modules beside this script

import bench_measure as M  # noqa: E402
import bench_models  # noqa: E402
import bench_report  # noqa: E402
from aunet.device import pick_device, reuse_cpu_memory  # noqa: E402
from aunet.io import atomic_write_text  # noqa: E402
from aunet.unet import optimise  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PROFILES = {
    "full": dict(sizes={"small": (64, 64, 64), "paper": (160, 160, 96)}, warmup=2,
                 repeats={"small": 5, "paper": 7}, backward_repeats={"small": 3, "paper": 3},
                 memory_sizes=("paper",), memory_models=tuple(bench_models.BUILDERS), train=((2, (48, 48, 32)), (1, (96, 96, 96))), train_repeats=2,
                 sliding=dict(volume=(512, 512, 200), patch=(160, 160, 96), overlap=0.0), matmul_n=2048,
                 allocator=dict(size="paper", warmup=2, repeats=3)),
    "quick": dict(sizes={"small": (32, 32, 32), "paper": (48, 48, 32)}, warmup=1,
                  repeats={"small": 2, "paper": 2}, backward_repeats={"small": 1, "paper": 1},
                  memory_sizes=("small",), memory_models=("aunet.AttentionUNet", "monai.AttentionUnet"), train=((2, (32, 32, 32)),), train_repeats=1,
                  sliding=dict(volume=(64, 64, 40), patch=(32, 32, 32), overlap=0.0), matmul_n=512,
                  allocator=dict(size="small", warmup=1, repeats=1)),
}
ATTENTION_MODEL = "aunet.AttentionUNet"
ALLOCATOR_MODELS = ("aunet.AttentionUNet", "monai.AttentionUnet")


def machine(device: torch.device) -> dict:
    """What the numbers were measured on."""
    cpu = "unknown"
    if Path("/proc/cpuinfo").exists():
        names = [l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines()
                 if l.startswith("model name")]
        cpu = names[0] if names else cpu
    info = dict(cpu=cpu, logical_cpus=os.cpu_count(), torch_threads=torch.get_num_threads(),
                torch=torch.__version__, python=platform.python_version(), device=str(device))
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    try:
        import monai
        info["monai"] = monai.__version__
    except ImportError:
        info["monai"] = None
    return info


def build_all(device: torch.device) -> dict[str, torch.nn.Module]:
    return {name: bench_models.build(name, device) for name in bench_models.BUILDERS}


def measure_times(models: dict, step_factory, sizes: dict, repeats: dict, warmup: int, device, amp) -> dict:
    """{size_key: {"size", "batch", "times": {model: [s, ...]}}}, models interleaved at each size."""
    out = {}
    for key, size in sizes.items():
        x = M.make_input(size, 1, device)
        steps = {name: step_factory(model, x, device, amp) for name, model in models.items()}
        out[key] = dict(size=list(size), batch=1, times=M.interleaved(steps, device, warmup, repeats[key]))
        print(f"  {step_factory.__name__} {size}: " + ", ".join(
            f"{n} {M.median(t):.3f}s" for n, t in out[key]["times"].items()), flush=True)
    return out


def measure_variants(device, amp, size, warmup, repeats, use_compile: bool) -> dict:
    """aunet AttentionUNet as built vs with the optional speed-ups, interleaved, same weights."""
    variants = {"default": {}, "channels_last": dict(channels_last=True)}
    if use_compile:
        variants["compile"] = dict(compile=True)
        variants["channels_last+compile"] = dict(channels_last=True, compile=True)
    out = {}
    for kind, factory in (("forward", M.forward_step), ("forward_backward", M.backward_step)):
        steps = {}
        for name, options in variants.items():
            model = optimise(bench_models.build(ATTENTION_MODEL, device), **options)
            x = M.make_input(size, 1, device, channels_last=options.get("channels_last", False))
            steps[name] = factory(model, x, device, amp)
        out[kind] = dict(size=list(size), batch=1, times=M.interleaved(steps, device, warmup + 1, repeats))
        print(f"  variants {kind} {size}: " + ", ".join(
            f"{n} {M.median(t):.3f}s" for n, t in out[kind]["times"].items()), flush=True)
    return out


def inside(context, step):
    """`step`, run inside a fresh `context()` each call (e.g. a speed-up switched off)."""
    def run():
        with context():
            return step()
    return run


def measure_fastconv(device, amp, sizes: dict, warmup: int, repeats: dict) -> dict:
    """Forward+backward with and without aunet.fastconv, for aunet's and MONAI's attention models, interleaved."""
    from aunet import fastconv

    out = {}
    for key, size in sizes.items():
        x = M.make_input(size, 1, device)
        aunet_model = bench_models.build(ATTENTION_MODEL, device)
        monai_fast = bench_models.with_fastconv(bench_models.build("monai.AttentionUnet", device))
        steps = {"aunet.AttentionUNet (fastconv, default)": M.backward_step(aunet_model, x, device, amp),
                 "aunet.AttentionUNet (fastconv off)": inside(fastconv.disabled, M.backward_step(aunet_model, x, device, amp)),
                 "monai.AttentionUnet (as shipped)": M.backward_step(bench_models.build("monai.AttentionUnet", device), x, device, amp),
                 "monai.AttentionUnet (with aunet.fastconv)": M.backward_step(monai_fast, x, device, amp)}
        out[key] = dict(size=list(size), batch=1, times=M.interleaved(steps, device, warmup, repeats[key]))
        print(f"  fastconv fwd+bwd {size}: " + ", ".join(
            f"{n} {M.median(t):.3f}s" for n, t in out[key]["times"].items()), flush=True)
    return out


def probe(spec: dict) -> dict:
    """Inside a fresh subprocess: time and peak memory of one forward, forward+backward or sliding window."""
    device = torch.device(spec["device"])
    if spec["kind"] == "sliding":
        return _probe_sliding(spec, device)
    if spec["kind"] == "allocator":
        return _probe_allocator(spec, device)
    model = bench_models.build(spec["model"], device)
    x = M.make_input(tuple(spec["size"]), spec["batch"], device)
    factory = M.forward_step if spec["kind"] == "forward" else M.backward_step
    step = factory(model, x, device, spec["amp"])
    return _peak(step, device)


def _peak(step, device: torch.device) -> dict:
    if device.type == "cuda":
        start = time.perf_counter()
        peak = M.cuda_peak_bytes(step, device)
        return dict(peak_bytes=peak, time_s=time.perf_counter() - start, peak_rss_bytes=M.peak_rss_bytes())
    reset = M.reset_peak_rss()  # without it the peak may be the import's, not the call's
    before = M.rss_bytes()
    seconds = M.timed(step, device)
    peak = M.peak_rss_bytes()
    return dict(peak_bytes=peak - before, time_s=seconds, peak_rss_bytes=peak, peak_reset=reset)


def _probe_sliding(spec: dict, device: torch.device) -> dict:
    try:
        from aunet.inference import sliding_window_predict
    except ImportError as e:
        return dict(not_measured=f"aunet.inference is not available ({e})")

    model = bench_models.build(ATTENTION_MODEL, device)
    image = np.random.default_rng(0).standard_normal(spec["volume"], dtype=np.float32)  # (X, Y, Z)
    result = {}

    def step() -> None:
        pred = sliding_window_predict(model, image, spec["patch"], overlap=spec["overlap"],
                                      num_classes=bench_models.NUM_CLASSES, device=device,
                                      progress=False, amp=spec["amp"])
        result["labels_shape"] = list(pred.labels.shape)

    with reuse_cpu_memory(spec.get("reuse", False)) as in_effect:
        out = _peak(step, device)
    out["labels_shape"] = result["labels_shape"]
    out["reuse_cpu_memory"] = in_effect
    return out


def _probe_allocator(spec: dict, device: torch.device) -> dict:
    """Forward+backward times, page faults and peak RSS of one model with reuse_cpu_memory on or off."""
    model = bench_models.build(spec["model"], device)
    x = M.make_input(tuple(spec["size"]), 1, device)
    step = M.backward_step(model, x, device, spec["amp"])
    times, faults = [], []
    with reuse_cpu_memory(spec["reuse"]) as in_effect:
        for i in range(spec["warmup"] + spec["repeats"]):
            before = M.minor_faults()
            t = M.timed(step, device)
            if i >= spec["warmup"]:
                times.append(t)
                faults.append(M.minor_faults() - before)
        peak = M.peak_rss_bytes()
    return dict(times=times, minor_faults=faults, peak_rss_bytes=peak, in_effect=in_effect)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small sizes and few repeats: a smoke check (~2 min)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--out", default="benchmarks/out/results.json", help="where to write the raw results")
    p.add_argument("--write-docs", action="store_true", help="render docs/benchmarks.md from the results")
    p.add_argument("--compile", action="store_true", help="also time torch.compile variants (slow to compile)")
    p.add_argument("--no-amp", action="store_true", help="float32 on CUDA too (AMP is on by default there)")
    p.add_argument("--render", metavar="JSON", help="only render the Markdown (and docs) from a results file")
    p.add_argument("--probe", help=argparse.SUPPRESS)  # internal: one memory measurement in a fresh process
    args = p.parse_args(argv)

    if args.probe:
        print(json.dumps(probe(json.loads(args.probe))))
        return 0
    if args.render:
        results = json.loads(Path(args.render).read_text())
    else:
        results = run(args)
        print(f"wrote {args.out}")
    print(bench_report.render(results))
    if args.write_docs:
        docs = ROOT / "docs" / "benchmarks.md"
        docs.parent.mkdir(exist_ok=True)
        docs.write_text(bench_report.render_docs(results))
        print(f"wrote {docs}")
    return 0


def measure_switches(device, amp, sizes: dict, warmup: int, repeats: dict, backward_repeats: dict) -> dict:
    """aunet AttentionUNet with each of its CPU speed-ups switched off in turn, interleaved, same weights.

    Forward (eval): the x2 upsampling of aunet.upsample and the folded eval-mode gates of aunet.gate;
    forward+backward (training): the x2 upsampling (folding acts in eval mode only).
    """
    from contextlib import nullcontext

    from aunet import gate, upsample

    switches = {"default": nullcontext, "x2 upsampling off": upsample.disabled, "gate folding off": gate.unfolded}
    out = {}
    for kind, factory, names, reps in (("forward", M.forward_step, tuple(switches), repeats),
                                       ("forward_backward", M.backward_step, tuple(switches)[:2], backward_repeats)):
        out[kind] = {}
        for key, size in sizes.items():
            model, x = bench_models.build(ATTENTION_MODEL, device), M.make_input(size, 1, device)
            steps = {name: inside(switches[name], factory(model, x, device, amp)) for name in names}
            out[kind][key] = dict(size=list(size), batch=1, times=M.interleaved(steps, device, warmup, reps[key]))
            print(f"  switches {kind} {size}: " + ", ".join(
                f"{n} {M.median(t):.3f}s" for n, t in out[kind][key]["times"].items()), flush=True)
    return out


def run(args: argparse.Namespace) -> dict:
    """Every measurement of one benchmark run, as raw JSON-able data."""
    profile_name = "quick" if args.quick else "full"
    prof = PROFILES[profile_name]
    device = pick_device(args.device)
    amp = device.type == "cuda" and not args.no_amp
    started = time.time()
    command = "python benchmarks/benchmark.py " + " ".join(sys.argv[1:])
    results = dict(profile=profile_name, command=command.strip(), amp=amp, machine=machine(device),
                   date=datetime.datetime.now().isoformat(timespec="seconds"), pairs=bench_models.PAIRS)
    results["params"] = {name: bench_models.parameters(name) for name in bench_models.BUILDERS}
    results["flops"] = {key: {name: dict(forward=bench_models.count_flops(name, size),
                                         forward_backward=bench_models.count_flops(name, size, backward=True))
                              for name in bench_models.BUILDERS} for key, size in prof["sizes"].items()}
    print("matmul ...", flush=True)
    results["matmul"] = dict(n=prof["matmul_n"], gflops=M.matmul_gflops(device, prof["matmul_n"], repeats=5))
    save(results, args.out)
    with reuse_cpu_memory(device.type == "cpu") as reuse:  # as aunet's trainer runs, for every model
        results["reuse_cpu_memory"] = reuse
        _time_models(results, prof, device, amp, args)
    print("memory (one fresh process per measurement) ...", flush=True)
    script = Path(__file__).resolve()
    results["memory"] = {}
    for kind in ("forward", "forward_backward"):
        for key in prof["memory_sizes"]:
            size = prof["sizes"][key]
            for name in prof["memory_models"]:
                spec = dict(kind=kind, model=name, size=list(size), batch=1, device=str(device), amp=amp)
                results["memory"].setdefault(kind, {}).setdefault(key, {"size": list(size)})[name] = M.in_subprocess(script, spec)
    save(results, args.out)
    print("sliding-window inference ...", flush=True)
    sliding = prof["sliding"]
    spec = dict(kind="sliding", device=str(device), amp=amp, **{k: list(v) if isinstance(v, tuple) else v
                                                                  for k, v in sliding.items()})
    results["sliding"] = dict(spec, model=ATTENTION_MODEL, **M.in_subprocess(script, spec))
    save(results, args.out)
    if device.type == "cpu":  # the allocator matters on the CPU only
        spec["reuse"] = True  # the same sliding window inside reuse_cpu_memory: faster, more memory
        results["sliding_reuse"] = dict(spec, model=ATTENTION_MODEL, **M.in_subprocess(script, spec))
        save(results, args.out)
        print("CPU memory reuse on / off (one fresh process each) ...", flush=True)
        alloc = prof["allocator"]
        size = list(prof["sizes"][alloc["size"]])
        results["allocator"] = dict(size=size, warmup=alloc["warmup"], runs={})
        for name in ALLOCATOR_MODELS:
            for reuse in (True, False):
                spec = dict(kind="allocator", model=name, size=size, device=str(device), amp=amp, reuse=reuse,
                            warmup=alloc["warmup"], repeats=alloc["repeats"])
                results["allocator"]["runs"][f"{name}, reuse {'on' if reuse else 'off'}"] = M.in_subprocess(script, spec)
    results["wall_s"] = time.time() - started
    save(results, args.out)
    return results


def _time_models(results: dict, prof: dict, device: torch.device, amp: bool, args: argparse.Namespace) -> None:
    """The in-process timings: forward, forward+backward, training steps, variants, fastconv, switches."""
    models = build_all(device)
    print("timing ...", flush=True)
    results["forward"] = measure_times(models, M.forward_step, prof["sizes"], prof["repeats"], prof["warmup"], device, amp)
    results["forward_backward"] = measure_times(models, M.backward_step, prof["sizes"], prof["backward_repeats"],
                                                prof["warmup"], device, amp)
    save(results, args.out)
    print("training throughput ...", flush=True)
    results["training"] = []
    for batch, size in prof["train"]:
        x = M.make_input(size, batch, device)
        steps = {name: M.train_step(model, x, device, amp) for name, model in models.items()}
        times = M.interleaved(steps, device, prof["warmup"], prof["train_repeats"])
        results["training"].append(dict(size=list(size), batch=batch, times=times))
    save(results, args.out)
    del models
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


def save(results: dict, path: str) -> None:
    """Write the results so far (after every stage, so a long run that fails keeps what it measured)."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, json.dumps(results, indent=1))


if __name__ == "__main__":
    sys.exit(main())
