#!/usr/bin/env bash
# The seed's experiment at full size on one GPU (issue 23) as one prepared command, under 10 min:
#   bash scripts/gpu_full_size_run.sh OUTDIR           # on the GPU machine
#   bash scripts/gpu_full_size_run.sh OUTDIR --tiny    # the same steps CPU-sized (a few minutes)
#
# Self-contained environment: python3 is used as it is when it imports every dependency; else
# the wheels in .whl/ are installed offline beside it (lent GPU machines reach no registry and
# have their own CUDA torch, which is kept: make the wheels here with `bash
# scripts/gpu_wheels.sh` and carry .whl); else, online, .venv-gpu is made with the README's
# install command (--system-site-packages, so a torch the machine has is kept).
#
# Steps, most important first, each under its own timeout and all under one deadline
# (DEADLINE, default 560 s); a failing step does not stop the others:
#   env        the environment above, and what GPU and torch this is
#   bench      bench_gpu.py at the seed's size (500 -> 2000 px) and 128 px, targets beside
#   tests      the CUDA subset: in-memory == engine, two runs byte-identical, a chain alone ==
#              the same chain in a mixed-size run
#   published  the full-size published study (6 photos at native size up to 2000 px, 200
#              generations, x4plus and Lanczos-3, PNG and JPEG 90): wall time vs 5 minutes
#   precision  fp32 vs bf16 collapse statistics with 95% CIs over 6 photos
#   mixed      bench_mixed_sizes.py: buckets vs concurrent streams vs pad-and-crop
#   leaderboard  the `seed` protocol on as many offline models as the time left allows
# OUTDIR gets at most 8 files (what a lent machine sends back): steps.txt, logs.txt, bench.json,
# precision.json, mixed.json and results.tgz (figures and tables); the runs stay in WORK.
set -u
out="${1:-${OUT:-gpu-out}}"
tiny=0
[ "${2:-}" = "--tiny" ] && tiny=1
work="${WORK:-$(mktemp -d /tmp/gpu-run.XXXX)}"
deadline=$(( SECONDS + ${DEADLINE:-560} ))
mkdir -p "$out" "$work"
out=$(cd "$out" && pwd)
export PYTHONPATH="$(pwd)${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
: > "$out/steps.txt"

step() {  # step NAME BUDGET_S CMD...: run CMD under min(budget, time left), log it
  local name=$1 budget=$2; shift 2
  local left=$(( deadline - SECONDS ))
  (( left < budget )) && budget=$left
  if (( budget < 15 )); then echo "$name: skipped (no time left)" | tee -a "$out/steps.txt"; return; fi
  local t0=$SECONDS
  timeout "$budget" "$@" > "$work/$name.log" 2>&1
  local rc=$?
  echo "$name: exit $rc in $(( SECONDS - t0 )) s (limit $budget s)" | tee -a "$out/steps.txt"
}

need="import torch, torchvision, spandrel, pydantic, pooch, platformdirs, typer, rich, yaml, \
pandas, pyarrow, scipy, skimage, safetensors, torchmetrics, matplotlib, PIL"
setup_env() {
  PY=python3
  if $PY -c "$need" 2>/dev/null; then echo "using $(command -v $PY) as it is"; return 0; fi
  if ls .whl/*.whl > /dev/null 2>&1; then  # offline: beside the machine's own torch
    echo "offline: installing $(ls .whl/*.whl | wc -l) carried wheels into $work/site"
    $PY -m pip install -q --no-index --no-deps --no-compile --target "$work/site" .whl/*.whl \
      || return 1
    export PYTHONPATH="$PYTHONPATH:$work/site"
  else  # online: the README's install command, keeping a torch the machine already has
    echo "online: the README's install command into .venv-gpu"
    [ -x .venv-gpu/bin/python ] || python3 -m venv --system-site-packages .venv-gpu || return 1
    PY=.venv-gpu/bin/python
    $PY -c "import torch" 2>/dev/null || $PY -m pip install torch==2.14.1 torchvision==0.29.1 \
      || return 1
    $PY -m pip install -e . || return 1
  fi
  $PY -c "$need"
}
t0=$SECONDS
setup_env > "$work/env.log" 2>&1
echo "env: exit $? in $(( SECONDS - t0 )) s" | tee -a "$out/steps.txt"
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1
  $PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"
} >> "$work/env.log" 2>&1

if (( tiny )); then
  dev=cpu
  step bench 240 $PY scripts/bench_gpu.py --tiny --device cpu --json "$out/bench.json"
  step tests 120 $PY -m pytest -q -p no:cacheprovider tests/test_api.py tests/test_batching.py \
    --device cpu -k "byte_identical or mixed_size"
  step published 150 $PY scripts/reproduce_published.py --small --generations 3 --side 64 \
    --metrics psnr,ssim --device cpu --output "$work/published"
  step precision 150 $PY scripts/precision_study.py --small --upscaler realesr-animevideov3 \
    --device cpu --json "$out/precision.json" --output "$work/precision-runs"
  step mixed 60 $PY scripts/bench_mixed_sizes.py --tiny --device cpu \
    --upscalers lanczos3,realesr-animevideov3 --json "$out/mixed.json"
  lb_models="lanczos3,realesr-animevideov3"
else
  dev=cuda
  photos="skimage:retina skimage:hubble_deep_field skimage:rocket skimage:astronaut \
skimage:coffee skimage:chelsea"
  step bench 170 $PY scripts/bench_gpu.py --device cuda --json "$out/bench.json"
  step tests 100 $PY -m pytest -q -p no:cacheprovider tests/test_api.py \
    tests/test_engine_integrity.py tests/test_batching.py --device cuda
  step published 240 $PY scripts/reproduce_published.py --device cuda \
    --metrics psnr,ssim,ms_ssim --output "$work/published"
  # shellcheck disable=SC2086
  step precision 100 $PY scripts/precision_study.py --device cuda --images $photos \
    --max-side 512 --generations 200 --at 1,10,50,200 --json "$out/precision.json" \
    --output "$work/precision-runs"
  step mixed 40 $PY scripts/bench_mixed_sizes.py --device cuda --max-side 500 \
    --json "$out/mixed.json"
  lb_models="${LB_MODELS:-realesrgan-x4plus,realesr-animevideov3,realesrgan-x4plus-anime,span-*}"
fi
if ! $PY -c "import av" 2>/dev/null && [ -d "$work/published/run" ]; then
  # no PyAV (not carried: 64 MiB limit): the report stops at its video, so write the tables
  step tables 30 $PY -c "from roundtrip_ml.report.data import load_runs
from roundtrip_ml.report.tables import write_tables
print(write_tables(load_runs('$work/published/run'), '$work/published/report/tables',
                   at=[1, 10, 50, 100, 200]))"
fi
# the seed protocol (docs/leaderboard): as many models as the time left allows. Its DIV2K photos
# come from the internet, which the device machine cannot reach: offline, the seed's chain runs
# on scikit-image's largest colour photos instead (another protocol hash, said in the log)
seed_images=""
if ! ROUNDTRIP_OFFLINE=1 $PY -c "from roundtrip_ml.imaging import photosets as p; p.expand('set:div2k-valid/0801')" 2>/dev/null; then
  echo "seed: DIV2K not in the cache; running the seed's chain on offline photos" | tee -a "$out/steps.txt"
  seed_images="--images skimage:hubble_deep_field --images skimage:rocket --images skimage:motorcycle --images skimage:retina --images skimage:coffee --images skimage:chelsea"
fi
# shellcheck disable=SC2086
step leaderboard 600 $PY -m roundtrip_ml.cli leaderboard run --protocol seed $seed_images \
  --models "$lb_models" --device "$dev" --output "$work/leaderboard"

for name in env bench tests published tables precision mixed leaderboard; do
  [ -f "$work/$name.log" ] && { echo "===== $name"; tail -c 20000 "$work/$name.log"; }
done > "$out/logs.txt"
grep -h "^run: \|^figure: \|^report: " "$work/published.log" 2>/dev/null >> "$out/steps.txt"
(cd "$work" && find published/report precision-runs leaderboard -maxdepth 3 \
   \( -name '*.png' -o -name '*.md' -o -name '*.csv' -o -name '*.html' -o -name '*.json' \) \
   -size -4M 2>/dev/null | tar czf "$out/results.tgz" -T - 2>/dev/null)
echo "total: $SECONDS s; runs in $work" | tee -a "$out/steps.txt"
cat "$out/steps.txt"
