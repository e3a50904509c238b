#!/usr/bin/env bash
# The GPU checks of issue 12 as one prepared run (for a session lent a GPU machine):
#   bash scripts/gpu_check_issue12.sh OUTDIR
# 1. the benchmark (ceiling, models x precisions x modes x batches, loop overhead, Lanczos-3);
# 2. the device-parametrised tests on CUDA (in-memory chain == engine, two runs byte-identical);
# 3. the precision study (fp32 vs bf16 collapse statistics with 95% CIs over the photos);
# 4. the published study at full size (all shipped photos, 200 generations, x4plus vs Lanczos-3,
#    PNG vs JPEG 90) with its wall time.
# Each step writes into OUTDIR and the script goes on if one fails, so one run gives every
# figure it can. Budget: about 10 minutes on an H100/H200 (steps 3 and 4 dominate).
set -u
out="${1:-${OUT:-gpu-out}}"
mkdir -p "$out"
export PYTHONPATH="${PYTHONPATH:-}:$(pwd)"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$out/gpu.txt" 2>&1
python -c "import torch; print(torch.__version__, torch.version.cuda)" >> "$out/gpu.txt" 2>&1
step() { local name=$1; shift; local t0=$SECONDS
  "$@" > "$out/$name.log" 2>&1; echo "$name: exit $? in $((SECONDS - t0)) s" | tee -a "$out/steps.txt"; }
step bench timeout 240 python scripts/bench_gpu.py --json "$out/bench.json"
step tests timeout 120 python -m pytest -q -p no:cacheprovider tests/test_api.py \
  tests/test_engine_integrity.py --device cuda
step precision timeout 300 python scripts/precision_study.py --device cuda --json "$out/precision.json" \
  --output "$out/precision-runs"
step published timeout 300 python scripts/reproduce_published.py --device cuda --output "$out/published"
cat "$out/steps.txt"
