#!/usr/bin/env bash
# The GPU checks of issues 4 and 5, as one script for a lent GPU machine (nothing here runs in CI).
#   1. notebook 04 executed by papermill on CUDA with mixed precision, at a larger size than the CPU
#      quick profile; time per epoch and peak GPU memory are read from its run folders;
#   2. the benchmark on CUDA with AMP: 160x160x96 inference time of both models next to the paper's
#      0.167 s / 0.179 s.
# Everything it writes lands in ${OUT:-gpu_out}/ (the device tool brings $OUT back).
# Usage: bash benchmarks/gpu_check.sh   (needs the .venv built by `make setup`, or run `make setup` first)
set -euo pipefail
OUT=${OUT:-gpu_out}
mkdir -p "$OUT"
make setup >/dev/null
PY=.venv/bin/python
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/gpu.csv"
$PY -c "import torch; assert torch.cuda.is_available(), 'no CUDA'; print(torch.__version__, torch.cuda.get_device_name())" | tee "$OUT/torch.txt"
[ -f data/phantom/dataset.json ] || .venv/bin/aunet data phantom --out data/phantom --cases 30 --seed 0
# 1. notebook 04 on CUDA with the paper profile (2 mm, 160x160x96 patches, batch 2, the paper's widths)
.venv/bin/papermill --kernel aunet --cwd notebooks notebooks/04_training.ipynb "$OUT/04_training_cuda.ipynb" \
  -p profile paper -p epochs 10 -p iterations_per_epoch 20 -p out_dir "../$OUT/runs" \
  -p figures_dir "../$OUT/figures" -p device cuda
$PY - "$OUT" <<'PY'
import csv, json, sys, torch
out = sys.argv[1]
rows = {m: list(csv.DictReader(open(f"{out}/runs/{m}/history.csv"))) for m in ("unet", "attention_unet")}
print(json.dumps({m: {"epochs": len(r), "median_epoch_s": sorted(float(x["seconds"]) for x in r)[len(r) // 2],
                      "peak_gpu_gib": max(float(x["gpu_peak_gib"]) for x in r),
                      "last_val_pancreas_dice": float(r[-1]["val_pancreas_dice"])} for m, r in rows.items()}, indent=1))
PY
# 2. the benchmark on CUDA with AMP
$PY -m benchmarks.benchmark --device cuda --out "$OUT/benchmark_cuda.json" | tee "$OUT/benchmark_cuda.md"
