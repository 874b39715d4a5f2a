"""What the training loop waits for: building one augmented paper-size batch, and validation per epoch.

    python -m benchmarks.bench_pipeline --out benchmarks/out/pipeline.json [--device auto|cpu|cuda] [--quick]

Measures, on the phantom at the paper profile (2 mm, 160x160x96 patches, batch 2):

1. "loop thread, ms per batch (2 x 160x160x96)": the training loop's own time to obtain one augmented
   batch on the training device (median over batches after warm-up),
   - today's path: `PatchDataset` (scipy `affine_transform` in the loop's thread), as the trainer did;
   - the new path (aunet.data.loader) with 0 workers (crops and warp in the loop's thread) and with 2 worker
     processes, while the loop sleeps for --step-ms between batches the way it waits for a GPU step (long
     enough for the workers to have the next batch ready: what is left is the loop's own cost of taking it;
     on CUDA the warp runs on the GPU, and its copy and launch are in the loop's time);
   and the pipeline's throughput flat out (no step) in batches per second per CPU core it occupies, with the
   CPU share of a GPU run alone (cutting the crops: what each worker does when the warp runs on the GPU).
2. Validation seconds per epoch on --val-cases whole phantom volumes at 2 mm: today's (sliding windows over
   every whole volume after every epoch) and the new one (aunet.validation: centre crops of val_patches
   cases every epoch, whole volumes every val_every epochs, so (patch + whole / val_every) per epoch).
   The model is the paper's Attention U-Net with fresh weights (the time does not depend on them), warmed
   up by one untimed centre crop, as it is after an epoch's training steps.

Writes the raw numbers as JSON and prints a Markdown table (`table`) with the machine it ran on.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from aunet import validation
from aunet.config import Config
from aunet.data import PatchDataset, prepare_dataset, write_phantom_dataset
from aunet.data.loader import TrainingBatches, TrainingCrops
from aunet.device import pick_device, reuse_cpu_memory
from aunet.io import atomic_write_text

PROFILES = {  # "full" is the paper-size measurement; "quick" only checks that everything runs
    "full": dict(patch=(160, 160, 96), spacing=2.0, phantom_size=None, train_cases=3, batches=6, warmup=2),
    "quick": dict(patch=(32, 32, 32), spacing=8.0, phantom_size=(80, 64, 32), train_cases=2, batches=3, warmup=1),
}


def machine(device: torch.device) -> dict:
    """CPU model (as lscpu names it), whether it has avx512_bf16, cores, torch, device."""
    model, flags = platform.processor() or "unknown", set()
    if Path("/proc/cpuinfo").exists():
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    info = dict(cpu=model, avx512_bf16="avx512_bf16" in flags, cores=cores, torch_threads=torch.get_num_threads(),
                torch=torch.__version__, device=str(device))
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def make_data(folder: Path, prof: dict, val_cases: int, device: torch.device) -> tuple[Config, object]:
    """A phantom of train_cases + val_cases cases, prepared at the profile's spacing, and its Config."""
    cases = prof["train_cases"] + val_cases
    data_dir = folder / f"phantom_{cases}"
    if not (data_dir / "dataset.json").exists():
        write_phantom_dataset(data_dir, cases=cases, seed=0, size=prof["phantom_size"], progress=False)
    cfg = Config.from_profile("paper", data_dir=str(data_dir), spacing=prof["spacing"], patch_size=prof["patch"],
                              inference_patch_size=prof["patch"], val_fraction=val_cases / cases,
                              test_fraction=0.0, device=str(device), epochs=1000)
    data = prepare_dataset(cfg, progress=False)
    assert len(data.val) == val_cases, (len(data.val), val_cases)
    return cfg, data


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def loop_times(next_batch, n: int, warmup: int, step_s: float, device: torch.device) -> list[float]:
    """Seconds the loop spends in next_batch() for n batches after `warmup`, sleeping step_s after each."""
    times = []
    for i in range(warmup + n):
        start = time.perf_counter()
        next_batch()
        elapsed = time.perf_counter() - start
        if i >= warmup:
            times.append(elapsed)
        time.sleep(step_s)  # the loop waits for its step; the GPU finishes the warp meanwhile
        sync(device)
    return times


def measure_batches(cfg: Config, data, device: torch.device, prof: dict, step_ms: float) -> dict:
    """Loop-thread seconds per batch: today's path and the new one with 0 and 2 workers; throughput."""
    out: dict = {}
    reference = PatchDataset(data, data.train, cfg, seed=cfg.seed)
    index = iter(range(10 ** 9))

    def today():
        items = [reference[next(index)] for _ in range(cfg.batch_size)]
        images, labels = (torch.stack(t) for t in zip(*items))
        images.to(device), labels.to(device)

    n, warmup, step_s = prof["batches"], prof["warmup"], step_ms / 1000
    out["today"] = dict(workers=0, times=loop_times(today, n, warmup, 0.0, device))
    print(f"  today's path: {1e3 * statistics.median(out['today']['times']):.0f} ms per batch", flush=True)
    for workers in (0, 2):
        batches = TrainingBatches(data, data.train, cfg, device, iterations=10 ** 6, workers=workers)
        stream = batches.stream(1, 1)
        times = loop_times(stream.__next__, n, warmup + (2 if workers else 0), step_s if workers else 0.0, device)
        stream.close()
        # flat out: no step, the pipeline alone, batches per second
        stream = batches.stream(1, 1)
        for _ in range(warmup + (2 if workers else 0)):
            next(stream)
        sync(device)
        start = time.perf_counter()
        for _ in range(n):
            next(stream)
        sync(device)
        rate = n / (time.perf_counter() - start)
        stream.close()
        cores = workers or (torch.get_num_threads() if device.type == "cpu" else 1)
        out[f"new_{workers}"] = dict(workers=workers, times=times, step_ms=step_ms if workers else 0.0,
                                     batches_per_s=rate, cores=cores, batches_per_s_per_core=rate / cores)
        print(f"  new path, {workers} workers: {1e3 * statistics.median(times):.1f} ms per batch in the loop; "
              f"{rate:.2f} batches/s flat out on {cores} core(s)", flush=True)
    crops = TrainingCrops(data, data.train, cfg, warp_here=False)  # a GPU run's workers: crops, no warp
    for i in range(warmup * cfg.batch_size):
        crops[i]
    start = time.perf_counter()
    for i in range(n * cfg.batch_size):
        crops[10 ** 6 + i]
    rate = n / (time.perf_counter() - start)
    out["crops_only"] = dict(batches_per_s=rate, cores=1, batches_per_s_per_core=rate)
    print(f"  crops only (a GPU run's worker): {rate:.2f} batches/s on one core", flush=True)
    return out


def measure_validation(cfg: Config, data, device: torch.device) -> dict:
    """Seconds of today's validation (whole volumes, every epoch) and the new one's parts."""
    torch.manual_seed(0)
    model = cfg.build_model().to(device)
    common = dict(model=model, data=data, cfg=cfg, device=device)
    for case_id in data.val:
        data.load(case_id)  # from the cache into memory, as during training
    patch_cases = validation.patch_cases(data.val, cfg)
    validation.patch_dice(cases=patch_cases[:1], **common)  # warm-up: both timings below run warm, as in training
    sync(device)
    start = time.perf_counter()
    validation.patch_dice(cases=patch_cases, **common)
    sync(device)
    patch_s = time.perf_counter() - start
    print(f"  patch validation ({len(patch_cases)} centre crops): {patch_s:.1f} s", flush=True)
    start = time.perf_counter()
    validation.volume_dice(cases=data.val, **common)
    sync(device)
    whole_s = time.perf_counter() - start
    print(f"  whole-volume validation ({len(data.val)} volumes): {whole_s:.1f} s", flush=True)
    per_epoch = patch_s + whole_s / cfg.val_every
    shape = data.load(data.val[0]).image.shape
    return dict(val_cases=len(data.val), volume_shape=list(shape), val_patches=len(patch_cases),
                val_every=cfg.val_every, today_s=whole_s, patch_s=patch_s, whole_s=whole_s,
                new_typical_epoch_s=patch_s, new_per_epoch_s=per_epoch,
                ratio_typical=whole_s / patch_s, ratio_per_epoch=whole_s / per_epoch)


def table(results: dict) -> str:
    """The Markdown table of a results dict (and the machine line)."""
    m, b, v = results["machine"], results["batches"], results["validation"]
    size = "x".join(map(str, results["patch"]))
    ms = lambda key: f"{1e3 * statistics.median(b[key]['times']):.1f}"  # noqa: E731
    rows = [
        "| measurement | today | new, 0 workers | new, 2 workers |",
        "| --- | --- | --- | --- |",
        f"| loop thread, ms per batch ({results['batch_size']} x {size}) | {ms('today')} | {ms('new_0')} | "
        f"{ms('new_2')} (loop sleeping {b['new_2']['step_ms']:.0f} ms per step) |",
        f"| pipeline flat out, batches/s per CPU core | {1 / statistics.median(b['today']['times']):.2f} | "
        f"{b['new_0']['batches_per_s_per_core']:.2f} ({b['new_0']['cores']} threads) | "
        f"{b['new_2']['batches_per_s_per_core']:.2f} (2 workers); a GPU run's workers (crops only): "
        f"{b['crops_only']['batches_per_s_per_core']:.2f} |",
        "",
        "| validation, seconds per epoch | today (whole volumes every epoch) | new: an epoch without whole volumes | "
        "new: per epoch, whole volumes every val_every epochs included |",
        "| --- | --- | --- | --- |",
        f"| {v['val_cases']} phantom volumes at {results['spacing']:g} mm ({'x'.join(map(str, v['volume_shape']))}), "
        f"val_patches {v['val_patches']}, val_every {v['val_every']} | {v['today_s']:.1f} | "
        f"{v['new_typical_epoch_s']:.1f} ({v['ratio_typical']:.0f}x cheaper) | "
        f"{v['new_per_epoch_s']:.1f} ({v['ratio_per_epoch']:.0f}x cheaper) |",
        "",
        f"Measured {results['date']} on {m['cpu']} ({m['cores']} cores, avx512_bf16 "
        f"{'present' if m['avx512_bf16'] else 'absent'}, {m['torch_threads']} torch threads), device "
        f"{m['device']}{', ' + m['gpu'] if 'gpu' in m else ''}, torch {m['torch']}: `{results['command']}`.",
    ]
    return "\n".join(rows)


def run(args: argparse.Namespace) -> dict:
    prof = PROFILES["quick" if args.quick else "full"]
    device = pick_device(args.device)
    folder = Path(args.data_dir or tempfile.mkdtemp(prefix="aunet_bench_pipeline_"))
    print(f"data in {folder}", flush=True)
    cfg, data = make_data(folder, prof, args.val_cases, device)
    results = dict(command=" ".join(["python", "-m", "benchmarks.bench_pipeline", *sys.argv[1:]]),
                   date=datetime.date.today().isoformat(), machine=machine(device), patch=list(cfg.patch_size),
                   spacing=cfg.spacing, batch_size=cfg.batch_size)
    with reuse_cpu_memory(device.type == "cpu"):  # as the trainer runs on the CPU
        results["batches"] = measure_batches(cfg, data, device, prof, args.step_ms)
        results["validation"] = measure_validation(cfg, data, device)
    return results


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="benchmarks/out/pipeline.json", help="where to write the raw results (JSON)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--quick", action="store_true", help="tiny sizes: checks that it runs (seconds)")
    p.add_argument("--val-cases", type=int, default=15, help="validation volumes (default 15)")
    p.add_argument("--step-ms", type=float, default=1000.0, help="the step the loop waits for with workers (ms)")
    p.add_argument("--data-dir", default=None, help="where to write the phantom (default: a temporary folder)")
    args = p.parse_args(argv)
    results = run(args)
    atomic_write_text(Path(args.out), json.dumps(results, indent=1) + "\n")
    print(table(results))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
