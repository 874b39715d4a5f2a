#!/usr/bin/env bash
# The GPU checks of issue 11 as one call for a lent GPU machine (sized for under 8 minutes on one H200; nothing
# here runs in CI): step time, share of the step waiting for data, epoch time and peak memory at the paper
# profile on one GPU and, where there are several, with torchrun on all of them; the batch pipeline and the
# validation on the GPU. The stages and what they write: benchmarks/gpu_check.py. Results land in
# ${OUT:-gpu_out}/ (the device tool brings $OUT back); data and runs in /tmp/aunet_gpu_check.
#
# Usage: bash benchmarks/gpu_check.sh [--dry-run | --cpu-tiny] [--extra] [--processes N]
# Python: $PYTHON, else .venv/bin/python (make setup), else python3. A GPU machine without a package
# registry may lack aunet's dependencies (its image has torch, numpy, scipy, tqdm, matplotlib, but not
# nibabel): put their wheels in .whl/ (README's "Training on GPUs") and they are installed for this call.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -n "${PYTHON:-}" ]; then PY=$PYTHON; elif [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
if ! "$PY" -c "import nibabel, tqdm, scipy" 2>/dev/null; then
  if ls .whl/*.whl >/dev/null 2>&1; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --target /tmp/aunet_site .whl/*.whl
    export PYTHONPATH="/tmp/aunet_site${PYTHONPATH:+:$PYTHONPATH}"
  else
    echo "gpu_check: $PY cannot import nibabel, tqdm and scipy; run 'make setup' or put their wheels in .whl/" >&2
    exit 2
  fi
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # aunet from this checkout, installed or not
if command -v nvidia-smi >/dev/null 2>&1; then
  mkdir -p "${OUT:-gpu_out}"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "${OUT:-gpu_out}/gpu.csv" || true
fi
exec "$PY" -m benchmarks.gpu_check "$@"
