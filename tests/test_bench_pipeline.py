"""Smoke test of benchmarks/bench_pipeline.py and benchmarks/gpu_check.py at tiny sizes on the CPU.

Asserts structure only, never a time (speed is measured by benchmarks/, not by tests).
"""
from __future__ import annotations

import json

from benchmarks import bench_pipeline, gpu_check


def test_pipeline_benchmark_runs_and_renders(tmp_path):
    """Every measurement runs and the table names the machine."""
    out = tmp_path / "pipeline.json"
    assert bench_pipeline.main(["--quick", "--device", "cpu", "--val-cases", "2", "--step-ms", "20",
                                "--out", str(out), "--data-dir", str(tmp_path / "data")]) == 0
    results = json.loads(out.read_text())
    assert set(results["batches"]) == {"today", "new_0", "new_2", "crops_only"}
    assert results["validation"]["val_cases"] == 2 and results["validation"]["today_s"] > 0
    table = bench_pipeline.table(results)
    assert "| loop thread, ms per batch (2 x 32x32x32) |" in table and "avx512_bf16" in table


def test_gpu_check_plans_and_runs_tiny_on_the_cpu(tmp_path, capsys):
    """--dry-run lists the stages (torchrun when there are several GPUs); --cpu-tiny runs them on the CPU."""
    assert gpu_check.main(["--dry-run", "--work", str(tmp_path / "w")]) == 0
    plan = capsys.readouterr().out
    assert "one_gpu (limit" in plan and "torch.distributed.run --standalone --nproc-per-node=2" in plan
    assert "--profile paper" in plan and "--device cuda" in plan
    out = tmp_path / "out"
    assert gpu_check.main(["--cpu-tiny", "--only", "phantom,one_gpu", "--out", str(out),
                           "--work", str(tmp_path / "w")]) == 0
    results = json.loads((out / "gpu_check.json").read_text())
    run = results["runs"]["one_gpu"]
    assert run["epochs"] == 3 and 0 <= run["data_wait_share"] <= 1 and run["step_s"] > 0
    assert "| one_gpu | 1 |" in (out / "gpu_check.md").read_text()
