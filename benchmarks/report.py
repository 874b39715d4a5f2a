"""Markdown tables (and docs/benchmarks.md) rendered from the raw results JSON of one benchmark run."""
from __future__ import annotations

import statistics

# The paper's inference times: one forward pass of a 160x160x96 volume, batch 1, on a GPU (poster table).
PAPER_GPU_S = {"aunet.UNet": 0.167, "aunet.AttentionUNet": 0.179}
PAPER_SIZE = [160, 160, 96]
GIB = 2**30


def med(times: list[float]) -> float:
    return statistics.median(times)


def _size(size: list[int], batch: int = 1) -> str:
    return ("" if batch == 1 else f"{batch} x ") + "x".join(map(str, size))


def _gib(n: float | None) -> str:
    return "-" if n is None else f"{n / GIB:.2f} GiB"


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(map(str, r)) + " |" for r in rows])


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
            paper = "1.07 (0.179 / 0.167 s)" if at_paper_size and name == "aunet.AttentionUNet / aunet.UNet" else "-"
            rows.append([name, size, f"{fwd[name]:.3f}", f"{fwd_min[name]:.3f}", f"{bwd[name]:.3f}", paper])
    return _table(["time ratio (same run)", "input", "forward (medians)", "forward (minima)",
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
            f"interleaved repeats.\n\n" + _table(header, rows))


def training_table(results: dict) -> str:
    rows = []
    for entry in results["training"]:
        voxels = entry["batch"] * entry["size"][0] * entry["size"][1] * entry["size"][2]
        for name, times in entry["times"].items():
            rows.append([name, _size(entry["size"], entry["batch"]), f"{med(times):.3f}",
                         f"{voxels / med(times) / 1e6:.3f}"])
    return _table(["model", "batch x patch", "s / step", "M voxels / s"], rows)


def variants_table(results: dict) -> str:
    rows = []
    v = results["variants"]
    base = {k: med(v[k]["times"]["default"]) for k in v}
    for name in v["forward"]["times"]:
        tf, tb = med(v["forward"]["times"][name]), med(v["forward_backward"]["times"][name])
        rows.append([name, f"{tf:.3f}", f"{base['forward'] / tf:.2f}x", f"{tb:.3f}",
                     f"{base['forward_backward'] / tb:.2f}x"])
    return (f"aunet.AttentionUNet, input 1x1x{_size(v['forward']['size'])}, variants interleaved.\n\n"
            + _table(["variant", "forward s", "speed-up", "fwd+bwd s", "speed-up"], rows))


def fastconv_table(results: dict) -> str:
    f = results.get("fastconv")
    if not f:
        return "Not measured in this run."
    parts = []
    for key, entry in f.items():
        t = {n: med(v) for n, v in entry["times"].items()}
        shipped = t["monai.AttentionUnet (as shipped)"]
        rows = [[n, f"{v:.3f}", f"{v / shipped:.3f}"] for n, v in t.items()]
        parts.append(f"Input 1x1x{_size(entry['size'])}, forward+backward, median of {len(next(iter(entry['times'].values())))} "
                     f"interleaved repeats.\n\n" + _table(["model (convolution path)", "fwd+bwd s",
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
                rows.append([label, _size(entry["size"]), n_rep, name, f"{v:.3f}", f"{v / t['default']:.3f}"])
    return ("aunet.AttentionUNet, batch 1, each switch interleaved with the default in one process (medians).\n\n"
            + _table(["step", "input", "repeats", "setting", "time s", "/ default"], rows))


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
    ratio = {s: t[f"{a_name}, reuse {s}"] / t[f"{m_name}, reuse {s}"] for s in ("on", "off")
             if f"{a_name}, reuse {s}" in t and f"{m_name}, reuse {s}" in t}
    n = len(next(iter(runs.values()))["times"])
    return (f"Input 1x1x{_size(a['size'])}, forward+backward, median of {n} repeats after {a['warmup']} warm-up "
            f"steps, one fresh process per row.\n\n"
            + _table(["model", "reuse_cpu_memory", "fwd+bwd s", "speed-up", "page faults / step",
                      "process peak RSS"], rows)
            + "\n\n" + "; ".join(f"{a_name} / {m_name} with reuse {s}: {r:.3f}" for s, r in ratio.items()) + ".")


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
    return _table(["model", "volume", "patch", "overlap", "reuse_cpu_memory", "time s",
                   "peak memory (above the loaded image)", "process peak RSS"], rows)


def render(results: dict) -> str:
    """All tables of one run as Markdown."""
    m = results["machine"]
    parts = [f"Device: {m['device']} ({m.get('gpu', m['cpu'])}), torch {m['torch']}, {m['torch_threads']} threads; "
             f"matmul {results['matmul']['n']}x{results['matmul']['n']} float32: {results['matmul']['gflops']:.1f} GFLOP/s; "
             f"AMP: {results['amp']}; profile: {results['profile']}; in-process timings inside "
             f"reuse_cpu_memory: {results.get('reuse_cpu_memory', False)}.",
             "### Ratios\n\n" + summary(results)]
    for key in results["forward"]:
        parts.append(f"### Time and memory at {_size(results['forward'][key]['size'])}\n\n" + timing_table(results, key))
    parts.append("### Training throughput (forward + backward + Adam step)\n\n" + training_table(results))
    parts.append("### Optional speed-ups\n\n" + variants_table(results))
    parts.append("### aunet.fastconv: where the forward+backward speed comes from\n\n" + fastconv_table(results))
    parts.append("### aunet's other CPU speed-ups, switched off in turn\n\n" + switches_table(results))
    parts.append("### CPU memory reuse (aunet.device.reuse_cpu_memory)\n\n" + allocator_table(results))
    parts.append("### Whole-volume sliding-window inference\n\n" + sliding_table(results))
    return "\n\n".join(parts) + "\n"


def render_docs(results: dict) -> str:
    """docs/benchmarks.md: how the numbers were made, on what, and the tables."""
    m = results["machine"]
    return f"""# Benchmarks

Generated by `benchmarks/benchmark.py --write-docs` from `benchmarks/out/results.json`; do not edit by hand.

Command: `{results['command']}` (run {results['date']}, {results['wall_s'] / 60:.1f} min wall time).

Machine: {m['cpu']}, {m['logical_cpus']} logical CPUs, torch {m['torch']} with {m['torch_threads']} threads,
Python {m['python']}, MONAI {m['monai']}; device `{m['device']}`{', ' + m['gpu'] if 'gpu' in m else ''}.

**GPU numbers are not measured yet**: these are CPU numbers. The script supports `--device cuda` (mixed
precision with `torch.autocast`, CUDA synchronisation around every timed call, peak memory from
`torch.cuda.max_memory_allocated`); the "paper (GPU)" column holds the paper's own GPU times and is not
comparable with CPU seconds, only the ratios are.

How to read these numbers:
- Models: aunet `UNet` and `AttentionUNet` (defaults: 2 gates per level, the paper's 6.40 M); MONAI
  `AttentionUnet(spatial_dims=3, in_channels=1, out_channels=4, channels=(16,32,64,128,256), strides=(2,2,2,2))`;
  its baseline without gates is MONAI `BasicUNet(features=(16,32,64,128,256,16))`, which has the same
  widths and two 3x3x3 convolutions per level (MONAI's `UNet` has one per level). The MONAI pair differs
  in more than the gates, so its ratio is an upper bound on MONAI's gate cost; aunet's pair differs
  only by the gates.
- Times are medians of repeats after warm-up steps (2 in the full profile, 1 with --quick), with the compared models timed in turns
  (A, B, C, D, A, B, ...): absolute seconds vary between machines and runs, ratios from the same run
  are what we report.
- Forward = `model.eval()` under `torch.inference_mode()`; forward+backward = train mode, `mean(logits).backward()`.
- The in-process timings (ratios, time tables, training, variants, fastconv, switches) run inside
  `aunet.device.reuse_cpu_memory()`, as aunet's trainer does, for aunet's and MONAI's models alike; the "CPU memory reuse" table measures what it brings, one fresh process per row.
- Peak memory on the CPU: the peak RSS of a fresh subprocess minus its RSS just before one call, with
  glibc's default allocator (one process per measurement); the "CPU memory reuse" table gives the
  process peak over several steps with reuse on and off; on CUDA, `max_memory_allocated` above what
  was allocated before.
- GFLOP are counted by `torch.utils.flop_counter.FlopCounterMode` (convolutions; BatchNorm, resampling
  and activations are not counted), GFLOP/s = counted FLOPs / median time; the percentage compares it
  with a {results['matmul']['n']}x{results['matmul']['n']} float32 `torch.matmul` timed the same way on the same machine.

{render(results)}
## What was done to make the models fast, and what was kept

- No redundant resampling: at every gated level the gating signal g already lives on W_x x's grid, so
  `aunet.layers.interpolate` returns it unchanged; the only resampling the gates add is the upsampling of
  alpha (one channel) once per gate.
- ReLUs run in place; inference (`aunet.inference`, the forward timings above) runs under
  `torch.inference_mode()`; on CUDA under `torch.autocast` (bfloat16 where supported, else float16).
- Channels-last 3D memory format and `torch.compile` are options, not defaults:
  `aunet.unet.optimise(model, channels_last=True, compile=False)`; the "Optional speed-ups" table shows
  what they give here (`--compile` adds the compiled variants; compilation is slow on 2 cores).
- `aunet.fastconv` (default; same weights and function as `nn.Conv3d`, tested to float32 rounding): on
  the CPU, PyTorch picks its convolution kernel with a heuristic tuned for 2D images that sends many
  3D layers at batch 1 to a slow im2col kernel, and oneDNN's weight gradient parallelises poorly over a
  single volume. aunet runs every 3x3x3 convolution's forward through oneDNN and its backward on the
  volume cut into two depth halves with a one-slice halo (a batch of two). The "aunet.fastconv" table
  shows it off and on, and what the same swap gives MONAI's model: the aunet / MONAI ratios in the
  first table compare aunet as shipped with MONAI as shipped.
- CPU memory reuse (`aunet.device.reuse_cpu_memory`, on in the trainer; an option for sliding-window
  inference, where the table above shows its trade-off): glibc hands every allocation above 32 MiB fresh pages from the kernel and gives them back
  on free, and the kernel zero-fills each page on first touch; at batch 1 and 160x160x96 the first
  levels' activations are all that large, and in a forward+backward most of the time went to these page
  faults (the "page faults / step" column). Inside the block glibc keeps freed memory and reuses it;
  the price is a higher process peak (the "process peak RSS" column), given back when the block ends.
  It changes no number a model computes, only where its memory comes from.
- Exact x2 upsampling (`aunet.upsample`, default on the CPU; the same numbers as `F.interpolate` with
  `align_corners=False`, tested to float rounding, gradient included): at a scale of exactly 2 the
  trilinear weights are constants (0.75 and 0.25) and separable, so three one-axis passes that write
  into strided views replace PyTorch's per-voxel 8-neighbour kernel; the backward is its transpose. Every
  decoder level, the alpha maps and the deep-supervision head upsample by 2. The "switched off in turn"
  table shows what it saves.
- Folded gates in eval mode (`aunet.gate.GatedSkip`, default): in eval mode BatchNorm is a fixed affine
  map, so each level's two gates' output transforms W, their concatenation and the merge conv + BN
  compose into one 1x1x1 conv of the skip features, weighted per voxel by each gate's alpha (same
  function, tested to float rounding; training runs the layers as written). The same table shows it
  off and on.
- Deep-supervision fusion without the full-resolution concatenation: the fusion 1x1x1 conv is composed
  with each level's 1x1x1 conv at that level's resolution before upsampling (same function and
  parameters, see `UNet.head`).
- Tried and not kept: computing the 1x1x1 convolutions as one matmul (PyTorch's CPU path for 1x1x1
  kernels on channels-first tensors is slow in isolation), because an interleaved A/B of the whole
  model showed no gain.
"""
