"""Smoke test of benchmarks/: the models build, one tiny interleaved timing runs, the report renders.

Asserts structure only, never a time (speed is measured by benchmarks/, not by tests).
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from aunet.text import marked_names
from benchmarks import benchmark, fresh, probes
from benchmarks import measure as bench_measure
from benchmarks import models as bench_models
from benchmarks import report as bench_report

ROOT = Path(__file__).resolve().parents[1]


def test_models_build_and_one_tiny_timing():
    cpu = torch.device("cpu")
    models = {name: bench_models.build(name) for name in bench_models.BUILDERS}
    assert bench_models.parameters("aunet.UNet") == 5_888_004
    assert bench_models.parameters("aunet.AttentionUNet") == 6_407_402
    # 32^3, not 16^3: BasicUNet's InstanceNorm needs more than one voxel at the 1/16 bottleneck
    x = bench_measure.make_input((32, 32, 32), 1, cpu)
    steps = {name: bench_measure.forward_step(m, x, cpu, amp=False) for name, m in models.items()}
    times = bench_measure.interleaved(steps, cpu, warmup=0, repeats=1)
    assert set(times) == set(bench_models.BUILDERS)
    assert all(len(t) == 1 and t[0] >= 0 for t in times.values())
    flops = {name: bench_models.count_flops(name, (32, 32, 32)) for name in ("aunet.AttentionUNet", "aunet.UNet")}
    assert flops["aunet.AttentionUNet"] > flops["aunet.UNet"]


def test_report_renders_ratios_from_raw_times():
    names = list(bench_models.BUILDERS)
    times = {"small": {"size": [16, 16, 16], "batch": 1, "times": {n: [1.0, 2.0, 3.0] for n in names}}}
    times["small"]["times"]["aunet.AttentionUNet"] = [2.0, 4.0, 6.0]
    results = {"pairs": bench_models.PAIRS, "forward": times, "forward_backward": times}
    r = bench_report.ratios(results, "forward", "small")
    assert r["aunet.AttentionUNet / aunet.UNet"] == pytest.approx(2.0)
    assert r["aunet.AttentionUNet / monai.AttentionUnet"] == pytest.approx(2.0)
    assert "| aunet.AttentionUNet / aunet.UNet | 16x16x16 | 2.000 |" in bench_report.summary(results)


def test_allocator_table_from_raw_runs():
    run = lambda t, faults: {"times": [t], "minor_faults": [faults], "peak_rss_bytes": 2**30, "in_effect": True}
    results = {"pairs": bench_models.PAIRS, "allocator": {"size": [16, 16, 16], "warmup": 1, "runs": {
        "aunet.AttentionUNet, reuse on": run(1.0, 0), "aunet.AttentionUNet, reuse off": run(2.0, 1000),
        "monai.AttentionUnet, reuse on": run(0.5, 0), "monai.AttentionUnet, reuse off": run(1.5, 900)}}}
    table = bench_report.allocator_table(results)
    assert "| aunet.AttentionUNet | on | 1.000 | 2.00x | 0 | 1.00 GiB |" in table
    assert "aunet.AttentionUNet / monai.AttentionUnet with reuse on: 2.000" in table
    assert "with reuse off: 1.333" in table
    assert "Not measured" in bench_report.allocator_table({})


def test_switches_measured_and_rendered():
    """The models built with speed-ups off run (tiny input, one repeat) and render as ratios to the default."""
    cpu = torch.device("cpu")
    sw = benchmark.measure_switches(cpu, False, {"small": (32, 32, 32)}, warmup=0,
                                    repeats={"small": 1}, backward_repeats={"small": 1})
    labels = [label for label, _, _ in benchmark.SWITCHES]
    assert list(sw["forward"]["small"]["times"]) == labels
    assert list(sw["forward_backward"]["small"]["times"]) == [l for l, _, backward in benchmark.SWITCHES if backward]
    sw["forward"]["small"]["times"] = {"default": [2.0], "exact upsampling off": [3.0], "gate folding off": [2.5]}
    table = bench_report.switches_table({"switches": sw})
    assert "| forward (eval) | 32x32x32 | 1 | exact upsampling off | 3.000 | 1.500 |" in table
    assert "Not measured" in bench_report.switches_table({})


def test_fresh_process_runs_a_named_function():
    """python -m benchmarks.fresh MODULE:FUNCTION: the function's dict comes back from a new process."""
    out = fresh.run(probes.peak_memory, kind="forward", model="aunet.UNet", size=[16, 16, 16], batch=1,
                    device="cpu", amp=False)
    assert set(out) >= {"peak_bytes", "time_s", "peak_rss_bytes"} and out["time_s"] > 0
    with pytest.raises(ValueError, match="module-level"):
        fresh.run(lambda: {})


def test_docs_are_the_stored_results_rendered():
    """docs/benchmarks.md's generated regions are exactly what the stored results render to, date included."""
    docs = (ROOT / "docs" / "benchmarks.md").read_text()
    results = json.loads((ROOT / "benchmarks" / "out" / "results.json").read_text())
    assert bench_report.fill_docs(docs, results) == docs, "rerun: python -m benchmarks.benchmark --render " \
                                                          "benchmarks/out/results.json --write-docs"
    assert f"started {results['date']}" in docs and "Commit: " in docs
    assert set(marked_names(docs)) == set(bench_report.REGIONS)


def test_fill_docs_replaces_regions_and_rejects_unknown_names():
    results = {"pairs": bench_models.PAIRS, "allocator": {}}
    text = "prose\n<!-- allocator: start -->\nold\n<!-- allocator: end -->\nmore prose\n"
    filled = bench_report.fill_docs(text, results)
    assert filled.startswith("prose\n<!-- allocator: start -->\nNot measured") and filled.endswith("more prose\n")
    assert "old" not in filled and bench_report.fill_docs(filled, results) == filled
    with pytest.raises(ValueError, match="unknown generated regions"):
        bench_report.fill_docs("<!-- nope: start -->\n<!-- nope: end -->", results)
    with pytest.raises(ValueError, match="no generated regions"):
        bench_report.fill_docs("just prose", results)


# --- the training step: workers of two codes in turns, the profile's categories, the tables ---------------------

TINY_STEP = {"base_filters": 2, "patch_size": [32, 32, 16], "batch_size": 1}


def test_step_workers_of_two_codes_run_in_turns():
    """7487c8c's package (git archive) and this tree's, each in its own process, timed in turns."""
    from benchmarks import step_stages, train_step

    variants = {"old": {"code": step_stages.OLD, "threads": 1, "config": TINY_STEP},
                "new": {"threads": 1, "config": TINY_STEP, "off": ["bf16"]}}
    run = train_step.interleave(variants, rounds=2, steps=1, warmup=0)
    assert run["variants"]["old"]["info"]["step"].startswith("7487c8c Trainer.train_epoch")
    assert run["variants"]["new"]["info"]["step"] == "aunet.step.TrainingStep"
    info = run["variants"]["new"]["info"]
    assert info["forward_dtype"] == "float32" and "bf16" in info["off"]
    assert all(len(v["times"]) == 2 and min(v["times"]) > 0 for v in run["variants"].values())
    assert run["ratios"]["old"] == 1.0


def test_profile_categories():
    from benchmarks.step_worker import LOSS, OTHER, category

    assert category(["autograd::engine::evaluate_function: ConvolutionBackward0", "aten::copy_"], False) == \
        "convolution backward"
    assert category(["_Conv3x3x3Backward", "aten::cat"], False) == "convolution backward"
    assert category(["aten::conv3d", "aten::convolution", "aten::mkldnn_convolution"], False) == "convolution forward"
    assert category(["aten::batch_norm", "aten::native_batch_norm"], False) == "BatchNorm"
    assert category(["autograd::engine::evaluate_function: ToCopyBackward0", "aten::copy_"], False) == "dtype casts"
    assert category(["aten::scatter_"], False) == OTHER  # not a concatenation
    assert category(["aten::mul"], True) == LOSS
    assert category(["Optimizer.step#Adam.step", "aten::_fused_adam_"], True) == "Adam (zero_grad, step)"


def test_step_worker_profiles_a_step():
    import subprocess
    import sys

    from benchmarks import train_step

    out = subprocess.run([sys.executable, str(train_step.WORKER), "--threads", "1", "--profile-steps", "1",
                          "--config", json.dumps(TINY_STEP)], capture_output=True, text=True, check=True,
                         env={**__import__("os").environ, "PYTHONPATH": str(ROOT)}, timeout=600)
    profile = json.loads(next(l for l in out.stdout.splitlines() if l.startswith("profile "))[len("profile "):])
    seconds = profile["seconds"]
    assert {"convolution forward", "convolution backward", "BatchNorm", "Adam (zero_grad, step)"} <= set(seconds)
    assert all(v >= 0 for v in seconds.values()) and sum(seconds.values()) > 0


def test_step_tables_from_raw_rounds():
    """Speeds are per-round ratios against 7487c8c of the same ISA; GFLOP/s from the counted FLOPs."""
    from benchmarks import step_report

    def variant(times, dtype="float32", isa=None):
        return {"times": times, "info": {"forward_dtype": dtype, "threads": 1},
                "spec": {"env": {"ONEDNN_MAX_CPU_ISA": isa}} if isa else {}}
    def run(variants):
        return {"rounds": 2, "steps": 1, "warmup": 1, "load_before": [3.0], "load_after": [3.5], "variants": variants}
    runs = {"1 thread(s), default ISA": run({"7487c8c": variant([1.0, 2.0]),
                                             "this tree": variant([0.5, 0.5], "bfloat16")}),
            "1 thread(s), AVX2": run({"7487c8c": variant([1.0, 1.0], isa="AVX2"),
                                      "this tree": variant([1.0, 1.25], isa="AVX2")})}
    steps = {"flops": {"quick": 10e9, "quick, monai": 5e9},
             "matmul": {"1 thread(s)": {"float32": 100.0, "bfloat16": 400.0}},
             "old_new": runs}
    table = step_report.old_new_table({"steps": steps})
    row = "| 1 thread(s), default ISA | this tree | bfloat16 | no | 0.500 | 0.500 | 3.00x | 2.00x | 20.0 | 20 % | 5 % |"
    assert row + " 3.0 / 3.5 |" in table
    assert "| 1 thread(s), AVX2 | this tree | float32 | no | 1.125 | 1.000 | 0.90x | 1.00x |" in table
    candidates = {"1 thread(s), default ISA: fused Adam off": run({"this tree": variant([1.0, 1.0]),
                                                                  "fused Adam off": variant([1.5, 1.1])})}
    table = step_report.candidates_table({"steps": {"candidates": candidates}})
    assert "| 1 thread(s), default ISA | fused Adam off | float32 | no | 1.000 | 1.300 | 1.30 | 3.0 / 3.5 |" in table
    assert "Not measured" in step_report.old_new_table({}) and "Not measured" in step_report.shapes_table({})
