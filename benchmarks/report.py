"""Markdown tables rendered from the raw results JSON of one benchmark run, and docs/benchmarks.md filled with them.

docs/benchmarks.md is prose written by hand around generated regions (aunet.text's markers)

    <!-- NAME: start -->
    ...
    <!-- NAME: end -->

whose content `fill_docs` replaces with `REGIONS[NAME](results)`; nothing between the markers is kept.
Tables and ratios are written by aunet.text, the paper's numbers read from aunet.paper.
"""
from __future__ import annotations

import statistics
from typing import Callable

from aunet import paper
from aunet.text import fill_marked, markdown_table, marked_names, ratio
from benchmarks import step_report  # the training-step tables (they use _table below, at call time)

# The paper's inference times: one forward pass of a 160x160x96 volume, batch 1, on a GPU (poster table).
PAPER_GPU_S = {f"aunet.{name}": paper.RESULTS[paper.COST_EXPERIMENT, model]["seconds"]
               for name, model in (("UNet", "unet"), ("AttentionUNet", "attention_unet"))}
PAPER_SIZE = list(paper.INPUT_SIZE)
GIB = 2**30


def med(times: list[float]) -> float:
    """The median of a list of times."""
    return statistics.median(times)


def _size(size: list[int], batch: int = 1) -> str:
    return ("" if batch == 1 else f"{batch} x ") + "x".join(map(str, size))


def _gib(n: float | None) -> str:
    return "-" if n is None else f"{n / GIB:.2f} GiB"


def ratios(results: dict, kind: str, key: str, stat=med) -> dict[str, float]:
    """Time ratio gated / baseline for each library pair, plus aunet / MONAI for the gated models."""
    t = {n: stat(v) for n, v in results[kind][key]["times"].items()}
    out = {f"{gated} / {base}": t[gated] / t[base] for _, base, gated in results["pairs"]}
    (_, _, a), (_, _, b) = results["pairs"]
    out[f"{a} / {b}"] = t[a] / t[b]
    return out


def summary(results: dict) -> str:
    """The headline numbers: gate overhead, aunet vs MONAI, whole-volume inference memory."""
    rows = []
    for key in results["forward"]:
        size = _size(results["forward"][key]["size"])
        fwd, bwd = ratios(results, "forward", key), ratios(results, "forward_backward", key)
        fwd_min = ratios(results, "forward", key, stat=min)
        at_paper_size = results["forward"][key]["size"] == PAPER_SIZE
        for name in fwd:
            paper_cell = (f"{ratio(paper.cost_ratio('seconds'))} ({PAPER_GPU_S['aunet.AttentionUNet']:.3f} / "
                          f"{PAPER_GPU_S['aunet.UNet']:.3f} s)"
                          if at_paper_size and name == "aunet.AttentionUNet / aunet.UNet" else "-")
            rows.append([name, size, ratio(fwd[name]), ratio(fwd_min[name]), ratio(bwd[name]), paper_cell])
    return markdown_table(["time ratio (same run)", "input", "forward (medians)", "forward (minima)",
                   "forward+backward (medians)", "paper (GPU), forward"], rows)


def timing_table(results: dict, key: str) -> str:
    fwd, bwd = results["forward"][key], results["forward_backward"][key]
    flops, peak = results["flops"][key], results["matmul"]["gflops"]
    mem = {kind: results.get("memory", {}).get(kind, {}).get(key, {}) for kind in ("forward", "forward_backward")}
    rows = []
    for name in fwd["times"]:
        tf, tb = med(fwd["times"][name]), med(bwd["times"][name])
        gf = flops[name]["forward"] / tf / 1e9
        gb = flops[name]["forward_backward"] / tb / 1e9
        paper = PAPER_GPU_S.get(name) if fwd["size"] == PAPER_SIZE else None
        rows.append([name, f"{results['params'][name]:,}", f"{flops[name]['forward'] / 1e9:.1f}",
                     f"{tf:.3f}", "-" if paper is None else f"{paper:.3f}", f"{tb:.3f}",
                     f"{gf:.1f} ({100 * gf / peak:.0f} %)", f"{gb:.1f} ({100 * gb / peak:.0f} %)",
                     _gib(mem["forward"].get(name, {}).get("peak_bytes")),
                     _gib(mem["forward_backward"].get(name, {}).get("peak_bytes"))])
    header = ["model", "parameters", "GFLOP fwd", "forward s", "paper (GPU) s", "fwd+bwd s",
              "GFLOP/s fwd (% of matmul)", "GFLOP/s fwd+bwd (% of matmul)", "peak mem fwd", "peak mem fwd+bwd"]
    n = (len(fwd["times"][next(iter(fwd["times"]))]), len(bwd["times"][next(iter(bwd["times"]))]))
    return (f"Input 1x1x{_size(fwd['size'])}; median of {n[0]} (forward) / {n[1]} (forward+backward) "
            f"interleaved repeats.\n\n" + markdown_table(header, rows))


def training_table(results: dict) -> str:
    rows = []
    for entry in results["training"]:
        voxels = entry["batch"] * entry["size"][0] * entry["size"][1] * entry["size"][2]
        for name, times in entry["times"].items():
            rows.append([name, _size(entry["size"], entry["batch"]), f"{med(times):.3f}",
                         f"{voxels / med(times) / 1e6:.3f}"])
    return markdown_table(["model", "batch x patch", "s / step", "M voxels / s"], rows)


def variants_table(results: dict) -> str:
    rows = []
    v = results["variants"]
    base = {k: med(v[k]["times"]["default"]) for k in v}
    for name in v["forward"]["times"]:
        tf, tb = med(v["forward"]["times"][name]), med(v["forward_backward"]["times"][name])
        rows.append([name, f"{tf:.3f}", f"{base['forward'] / tf:.2f}x", f"{tb:.3f}",
                     f"{base['forward_backward'] / tb:.2f}x"])
    return (f"aunet.AttentionUNet, input 1x1x{_size(v['forward']['size'])}, variants interleaved.\n\n"
            + markdown_table(["variant", "forward s", "speed-up", "fwd+bwd s", "speed-up"], rows))


def fastconv_table(results: dict) -> str:
    f = results.get("fastconv")
    if not f:
        return "Not measured in this run."
    parts = []
    for entry in f.values():
        t = {n: med(v) for n, v in entry["times"].items()}
        shipped = t["monai.AttentionUnet (as shipped)"]
        rows = [[n, f"{v:.3f}", ratio(v / shipped)] for n, v in t.items()]
        repeats = len(next(iter(entry["times"].values())))
        parts.append(f"Input 1x1x{_size(entry['size'])}, forward+backward, median of {repeats} "
                     f"interleaved repeats.\n\n" + markdown_table(["model (convolution path)", "fwd+bwd s",
                                                            "/ monai.AttentionUnet as shipped"], rows))
    return "\n\n".join(parts)


def switches_table(results: dict) -> str:
    """aunet's model with each CPU speed-up switched off in turn: time and how much the speed-up saves."""
    sw = results.get("switches")
    if not sw:
        return "Not measured in this run."
    rows = []
    for kind, label in (("forward", "forward (eval)"), ("forward_backward", "forward+backward")):
        for entry in sw.get(kind, {}).values():
            t = {n: med(v) for n, v in entry["times"].items()}
            n_rep = len(next(iter(entry["times"].values())))
            for name, v in t.items():
                rows.append([label, _size(entry["size"]), n_rep, name, f"{v:.3f}", ratio(v / t['default'])])
    return ("aunet.AttentionUNet, batch 1, with the named speed-ups off (the same weights), interleaved with "
            "the default in one process (medians).\n\n"
            + markdown_table(["step", "input", "repeats", "setting", "time s", "/ default"], rows))


def allocator_table(results: dict) -> str:
    """Forward+backward with aunet.device.reuse_cpu_memory on and off, one fresh process per row."""
    a = results.get("allocator")
    if not a:
        return "Not measured in this run (the CPU allocator only matters on the CPU)."
    runs = a["runs"]
    t = {name: med(r["times"]) for name, r in runs.items()}
    rows = []
    for name, r in runs.items():
        model, setting = name.rsplit(", reuse ", 1)
        speedup = t[f"{model}, reuse off"] / t[name]
        in_effect = r.get("in_effect", True) or setting == "off"
        rows.append([model, setting if in_effect else f"{setting} (not in effect: no glibc)",
                     f"{t[name]:.3f}", f"{speedup:.2f}x", f"{med(r['minor_faults']):,.0f}", _gib(r["peak_rss_bytes"])])
    (_, _, a_name), (_, _, m_name) = results["pairs"]
    reuse = {s: t[f"{a_name}, reuse {s}"] / t[f"{m_name}, reuse {s}"] for s in ("on", "off")
             if f"{a_name}, reuse {s}" in t and f"{m_name}, reuse {s}" in t}
    n = len(next(iter(runs.values()))["times"])
    return (f"Input 1x1x{_size(a['size'])}, forward+backward, median of {n} repeats after {a['warmup']} warm-up "
            f"steps, one fresh process per row.\n\n"
            + markdown_table(["model", "reuse_cpu_memory", "fwd+bwd s", "speed-up", "page faults / step",
                      "process peak RSS"], rows)
            + "\n\n" + "; ".join(f"{a_name} / {m_name} with reuse {s}: {ratio(r)}" for s, r in reuse.items()) + ".")


def sliding_table(results: dict) -> str:
    rows = []
    for key in ("sliding", "sliding_reuse"):
        s = results.get(key)
        if not s:
            continue
        if "not_measured" in s:
            return f"Not measured: {s['not_measured']}."
        reuse = "on" if s.get("reuse_cpu_memory") else "off (default)"
        rows.append([s["model"], _size(s["volume"]), _size(s["patch"]), s["overlap"], reuse, f"{s['time_s']:.1f}",
                     _gib(s["peak_bytes"]), _gib(s["peak_rss_bytes"])])
    if not rows:
        return "Not measured: no result."
    return markdown_table(["model", "volume", "patch", "overlap", "reuse_cpu_memory", "time s",
                   "peak memory (above the loaded image)", "process peak RSS"], rows)


def run_info(results: dict) -> str:
    """When, on which commit and machine, with which command and settings the numbers were measured."""
    m, mm = results["machine"], results["matmul"]
    commit = results.get("commit") or "not recorded in the results file"
    on = results.get("speedups")
    if on is None:
        speedups = "not recorded (all on: the default)"
    elif "on" in on:  # aunet.speedups.describe()
        speedups = f"on: {', '.join(on['on'])}; off: {', '.join(on['off']) or 'none'}"
    else:  # status() of older runs
        speedups = ", ".join(f"{name} {'on' if v else 'off'}" for name, v in on.items())
    device = f"`{m['device']}`" + (f" ({m['gpu']})" if "gpu" in m else " (GPU numbers are not measured in this run)")
    return "\n".join([
        f"- Command: `{results['command']}`, started {results['date']}, {results['wall_s'] / 60:.1f} min wall time; "
        f"profile `{results['profile']}`.",
        f"- Commit: {commit}.",
        f"- Machine: {m['cpu']}" + (f" ({m['cpu_family']}; {' '.join(m['cpu_flags'])})" if m.get("cpu_flags") else "")
        + f", {m['logical_cpus']} logical CPUs; torch {m['torch']} with {m['torch_threads']} "
        f"threads, Python {m['python']}, MONAI {m['monai']}; device {device}; AMP: {results['amp']}"
        + (f"; load average at the start {m['load_average'][0]:.1f} (the CPU is shared)."
           if "load_average" in m else "."),
        f"- Matmul reference: {mm['n']}x{mm['n']} float32 `torch.matmul`, {mm['gflops']:.1f} GFLOP/s.",
        f"- aunet speed-ups (aunet.speedups) when the run started: {speedups}; in-process timings inside "
        f"reuse_cpu_memory: {results.get('reuse_cpu_memory', False)}.",
    ])


def time_table(key: str) -> Callable[[dict], str]:
    """The timing table of one size key ("small", "paper") of the profile."""
    return lambda results: timing_table(results, key)


REGIONS: dict[str, Callable[[dict], str]] = {
    "run": run_info, "step": lambda r: step_report.old_new_table(r),
    "step-profile": lambda r: step_report.profile_table(r),
    "step-candidates": lambda r: step_report.candidates_table(r), "step-shapes": lambda r: step_report.shapes_table(r),
    "step-paper": lambda r: step_report.paper_table(r), "step-extras": lambda r: step_report.extras_table(r),
    "ratios": summary, "time-small": time_table("small"), "time-paper": time_table("paper"),
    "training": training_table, "variants": variants_table, "fastconv": fastconv_table,
    "switches": switches_table, "allocator": allocator_table, "sliding": sliding_table,
}
HEADINGS = {"run": "The run", "step": "The quick training step, 7487c8c and now",
            "step-profile": "Where a quick step's time goes",
            "step-candidates": "Each speed-up of the step, off in turn",
            "step-shapes": "Seconds per voxel of training", "step-paper": "A training step at the paper's size",
            "step-extras": "torch.compile, processes and threads, validation", "ratios": "Ratios",
            "time-small": "Time and memory, small input",
            "time-paper": "Time and memory, the paper's input size", "training": "Training throughput",
            "variants": "Optional speed-ups", "fastconv": "aunet.fastconv",
            "switches": "aunet's model built with its speed-ups off in turn",
            "allocator": "CPU memory reuse", "sliding": "Whole-volume sliding-window inference"}


def region(name: str, results: dict) -> str:
    """One region's Markdown; a run that did not measure it (e.g. --steps-only) says so."""
    try:
        return REGIONS[name](results)
    except KeyError:
        return "Not measured in this run."


def render(results: dict) -> str:
    """All tables of one run as Markdown (what the command prints)."""
    return "\n\n".join(f"### {HEADINGS[name]}\n\n{region(name, results)}" for name in REGIONS) + "\n"


def fill_docs(text: str, results: dict) -> str:
    """`text` (docs/benchmarks.md) with every generated region filled from `results`."""
    found = marked_names(text)
    if not found:
        raise ValueError("docs/benchmarks.md has no generated regions (<!-- NAME: start --> ... <!-- NAME: end -->).")
    unknown = sorted(set(found) - set(REGIONS))
    if unknown:
        raise ValueError(f"docs/benchmarks.md names unknown generated regions {unknown}; "
                         f"expected names from {', '.join(REGIONS)}.")
    return fill_marked(text, {name: REGIONS[name](results) for name in found}, "docs/benchmarks.md")
