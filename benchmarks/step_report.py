"""Markdown tables of the training-step measurements (benchmarks/train_step.py) in one benchmark run's results.

Each function renders one generated region of docs/benchmarks.md from `results["steps"]`; benchmarks/report.py
lists them in its REGIONS. A time is a median over rounds; a ratio is the median over rounds of the two
variants' times in the same round (interleaved, so load from other work falls on both).
"""

from __future__ import annotations

import statistics

from aunet.text import markdown_table

OLD = "7487c8c"


def _med(values: list[float]) -> float:
    return statistics.median(values)


def _load(run: dict) -> str:
    return f"{run['load_before'][0]:.1f} / {run['load_after'][0]:.1f}"


def _missing(results: dict, key: str) -> dict | None:
    return results.get("steps", {}).get(key)


def _rates(seconds: float, flops: float, matmul: dict) -> str:
    gflops = flops / seconds / 1e9
    return (f"{gflops:.1f}", f"{100 * gflops / matmul['float32']:.0f} %", f"{100 * gflops / matmul['bfloat16']:.0f} %")


def time_ratio(run: dict, name: str, reference: str) -> float:
    """`name`'s time / `reference`'s in the same round, median over rounds."""
    v = run["variants"]
    return _med([t / r for t, r in zip(v[name]["times"], v[reference]["times"])])


def speed_vs(run: dict, name: str, reference: str) -> float:
    """How many times faster `name` ran than `reference`: the median over rounds of their time ratio."""
    v = run["variants"]
    return _med([r / t for t, r in zip(v[name]["times"], v[reference]["times"])])


def _rows(runs: dict, flops: dict | None, matmul: dict | None) -> list[list[str]]:
    """One row per variant of every run: its time, and its speed against the run's first variant."""
    rows = []
    for setting, run in runs.items():
        first = next(iter(run["variants"]))
        for name, v in run["variants"].items():
            t = _med(v["times"])
            row = [setting, name, v["info"].get("forward_dtype", "float32"),
                   "yes" if v["info"].get("channels_last") else "no", f"{t:.3f}", f"{min(v['times']):.3f}",
                   f"{speed_vs(run, name, first):.2f}x",
                   f"{min(run['variants'][first]['times']) / min(v['times']):.2f}x"]
            if flops is not None:
                threads = setting.split(",")[0]
                row += _rates(t, flops["quick, monai" if name.startswith("monai") else "quick"], matmul[threads])
            rows.append(row + [_load(run)])
    return rows


def old_new_table(results: dict) -> str:
    """The quick step of 7487c8c and of this tree, per thread count and ISA; MONAI's AttentionUnet beside it."""
    runs = _missing(results, "old_new")
    if not runs:
        return "Not measured in this run."
    steps = results["steps"]
    n = next(iter(runs.values()))
    return (
        f"Batch 2 x 48x48x32, 8 base filters (the quick profile): forward, loss, backward and Adam as `aunet "
        f"train` runs them, each variant in its own process; each setting is one interleaved run of "
        f"{n['rounds']} rounds of {n['steps']} steps after {n['warmup']} warm-up round. Speed: the first row's "
        f"time / the row's in the same round, median over rounds. GFLOP: {steps['flops']['quick'] / 1e9:.1f} "
        f"(aunet) and {steps['flops']['quick, monai'] / 1e9:.1f} (MONAI) per step, convolutions forward and "
        f"backward; matmul: 2048x2048 at the same thread count.\n\n"
        + markdown_table(
            ["setting", "step", "forward", "channels-last", "s / step (median)", "min", "speed vs first row",
             "speed, minima", "GFLOP/s", "% of fp32 matmul", "% of bf16 matmul", "load before / after"],
            _rows(runs, steps["flops"], steps["matmul"]),
        )
    )


def candidates_table(results: dict) -> str:
    """This tree's step with one speed-up off (or a turned-down one forced on), per ISA and thread count."""
    runs = _missing(results, "candidates")
    if not runs:
        return "Not measured in this run."
    rows = []
    for setting, run in runs.items():
        (_, ref), (name, v) = run["variants"].items()
        rows.append(
            [setting.split(": ")[0], name, v["info"].get("forward_dtype", "float32"),
             "yes" if v["info"].get("channels_last") else "no", f"{_med(ref['times']):.3f}",
             f"{_med(v['times']):.3f}", f"{time_ratio(run, name, 'this tree'):.2f}", _load(run)]
        )
    n = next(iter(runs.values()))
    return (
        f"Each row: one interleaved run of this tree's step and the row's variant, {n['rounds']} rounds of one "
        f"step each. Time ratio above 1: the speed-up that row switches off pays (or the one it forces on would "
        f"cost) in that setting.\n\n"
        + markdown_table(
            ["setting", "variant", "forward", "channels-last", "this tree s / step", "variant s / step",
             "variant / this tree (median of rounds)", "load before / after"],
            rows,
        )
    )


def profile_table(results: dict) -> str:
    """Where one quick step's time goes, by category (torch.profiler self times), 7487c8c and this tree."""
    prof = _missing(results, "profiles")
    if not prof:
        return "Not measured in this run."
    names = list(prof)
    totals = {n: sum(prof[n]["seconds"].values()) for n in names}
    order = sorted({c for p in prof.values() for c in p["seconds"]}, key=lambda c: -prof[names[0]]["seconds"].get(c, 0))
    rows = [
        [c]
        + [
            f"{1e3 * prof[n]['seconds'].get(c, 0):.1f} ms ({100 * prof[n]['seconds'].get(c, 0) / totals[n]:.0f} %)"
            for n in names
        ]
        for c in order
    ]
    rows.append(["total (profiled)"] + [f"{1e3 * totals[n]:.1f} ms" for n in names])
    return markdown_table(["category"] + names, rows)


def shapes_table(results: dict) -> str:
    """Seconds per step and per voxel of training for the shapes a run could choose."""
    shapes = _missing(results, "shapes")
    if not shapes:
        return "Not measured in this run."
    steps = results["steps"]
    rows = []
    for run in shapes.values():
        for name, v in run["variants"].items():
            info, t = v["info"], _med(v["times"])
            voxels = info["batch"] * info["patch_size"][0] * info["patch_size"][1] * info["patch_size"][2]
            flops = steps["flops"][f"shape {name}"]
            rows.append(
                [info["base_filters"], "x".join(map(str, info["patch_size"])), info["batch"], f"{t:.3f}",
                 f"{1e9 * t / voxels:.0f}", f"{voxels / t / 1e6:.2f}", f"{flops / t / 1e9:.1f}", _load(run)]
            )
    n = next(iter(shapes.values()))
    threads = next(iter(n["variants"].values()))["info"]["threads"]
    return (
        f"This tree's step ({threads} thread(s), as aunet.pool runs each training process), median of "
        f"{n['rounds']} rounds; the shapes of one width interleaved.\n\n"
        + markdown_table(
            ["base filters", "patch", "batch", "s / step", "ns / voxel", "M voxels / s", "GFLOP/s",
             "load before / after"],
            rows,
        )
    )


def paper_table(results: dict) -> str:
    """A training step at the paper's size: aunet against MONAI's AttentionUnet, per thread count."""
    runs = _missing(results, "paper")
    if not runs:
        return "Not measured in this run."
    steps = results["steps"]
    ref = "monai.AttentionUnet, plain float32 step"
    rows = []
    for threads, run in runs.items():
        for name, v in run["variants"].items():
            flops = steps["flops"]["paper, monai" if name.startswith("monai") else "paper"]
            t = _med(v["times"])
            rows.append(
                [threads, name, v["info"].get("forward_dtype", "float32"), f"{t:.2f}", f"{min(v['times']):.2f}",
                 f"{time_ratio(run, name, ref):.2f}", f"{flops / t / 1e9:.1f}", _load(run)]
            )
    n = next(iter(runs.values()))
    return (
        f"Batch 1 x 160x160x96, 16 base filters: one training step (forward, loss, backward, Adam), each "
        f"variant in its own process, {n['rounds']} rounds of one step after a warm-up round.\n\n"
        + markdown_table(
            ["threads", "step", "forward", "s / step", "min", f"time / {ref} (median of rounds)", "GFLOP/s",
             "load before / after"],
            rows,
        )
    )


def extras_table(results: dict) -> str:
    """torch.compile, processes against threads, and what an epoch spends in validation."""
    steps = results.get("steps", {})
    parts = []
    if "compile" in steps:
        run = steps["compile"]
        v = run["variants"]
        parts.append(
            markdown_table(
                ["step", "first step s (compiling)", "s / step", "time / eager"],
                [
                    [n, f"{x['info']['first_step_s']:.1f}", f"{_med(x['times']):.3f}", f"{run['ratios'][n]:.2f}"]
                    for n, x in v.items()
                ],
            )
        )
    if "processes" in steps:
        p = steps["processes"]
        parts.append(
            markdown_table(["how the 2 cores train", "steps / s (median)", "load before / after"],
                           [[n, f"{_med(rates):.2f}", _load(p)] for n, rates in p["rates"].items()])
        )
    if "epochs" in steps:
        rows = []
        for name, epochs in steps["epochs"].items():
            for i, e in enumerate(epochs, 1):
                rows.append(
                    [name, i, f"{e['seconds']:.1f}", f"{e['train_seconds']:.1f}", f"{e['data_seconds']:.1f}",
                     f"{e['val_seconds']:.1f}", f"{100 * e['val_seconds'] / e['seconds']:.0f} %"]
                )
        parts.append(
            markdown_table(
                ["code", "epoch", "epoch s", "training steps s", "of which waiting for batches s", "validation s",
                 "validation share"],
                rows,
            )
        )
    return "\n\n".join(parts) if parts else "Not measured in this run."
