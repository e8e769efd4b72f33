#!/usr/bin/env bash
# The GPU check behind README's GPU figures: the full benchmark, then the reference tests,
# on a CUDA host whose Python already has jax[cuda], torch, optax, flax, scipy, scikit-learn
# and torchmetrics. Wheels of the missing peers (pytorch-metric-learning, faiss-cpu) may be
# placed in .whl/ beforehand. Writes RESULTS_gpu.md and the logs to $OUT (default /tmp/gpu_out).
#
# DRY_RUN=1 prints every step instead of running it, except `python -m benchmarks --dry-run`
# (what the benchmark would time, with its environments), which it runs: a check of this
# script and of the benchmark's command line that needs no GPU (tests/test_benchmarks.py).
set -uo pipefail
OUT=${OUT:-/tmp/gpu_out}
DRY_RUN=${DRY_RUN:-}
PYTHON=${PYTHON:-python3}
mkdir -p "$OUT"

step() {  # a step of the check: printed, and run unless DRY_RUN is set
  echo "+ $*"
  if [ -z "$DRY_RUN" ]; then "$@"; fi
}

logged() {  # logged LOG COMMAND...: a step whose output goes to LOG
  local log=$1
  shift
  echo "+ $* > $log 2>&1"
  if [ -z "$DRY_RUN" ]; then "$@" > "$log" 2>&1; fi
}

if compgen -G ".whl/*.whl" > /dev/null; then
  step "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site:$PWD
else
  export PYTHONPATH=$PWD
fi
export PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false
step nvidia-smi -L
step "$PYTHON" -c "import jax, torch; print('jax', jax.__version__, jax.devices(), '| torch', torch.__version__, torch.cuda.is_available())"
if [ -n "$DRY_RUN" ]; then
  "$PYTHON" -m benchmarks --dry-run --output "$OUT/RESULTS_gpu.md" || exit 1
fi
logged "$OUT/bench.log" timeout "${BENCH_TIMEOUT:-240}" "$PYTHON" -m benchmarks --output "$OUT/RESULTS_gpu.md"
echo "benchmarks exit $?"
if [ -z "$DRY_RUN" ]; then tail -n 40 "$OUT/bench.log"; fi
logged "$OUT/tests.log" timeout "${TEST_TIMEOUT:-200}" "$PYTHON" -m pytest -q -n 8 -p no:cacheprovider \
  --ignore=tests/test_examples.py --ignore=tests/test_docs.py -o addopts="" tests
echo "tests exit $?"
if [ -z "$DRY_RUN" ]; then
  grep -E "passed|failed|error" "$OUT/tests.log" | tail -n 5
  grep -E "^(FAILED|ERROR)" "$OUT/tests.log" | head -n 40
fi
exit 0
