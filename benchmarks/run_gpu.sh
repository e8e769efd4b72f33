#!/usr/bin/env bash
# The GPU check behind README's GPU figures: the full benchmark, then the reference tests,
# on a CUDA host whose Python already has jax[cuda], torch, optax, flax, scipy, scikit-learn
# and torchmetrics. Wheels of the missing peers (pytorch-metric-learning, faiss-cpu) may be
# placed in .whl/ beforehand. Writes RESULTS_gpu.md and the logs to $OUT (default /tmp/gpu_out).
set -uo pipefail
OUT=${OUT:-/tmp/gpu_out}
mkdir -p "$OUT"
if compgen -G ".whl/*.whl" > /dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site:$PWD
else
  export PYTHONPATH=$PWD
fi
export PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false
nvidia-smi -L
python3 -c "import jax, torch; print('jax', jax.__version__, jax.devices(), '| torch', torch.__version__, torch.cuda.is_available())"
timeout "${BENCH_TIMEOUT:-240}" python3 -m benchmarks --output "$OUT/RESULTS_gpu.md" > "$OUT/bench.log" 2>&1
echo "benchmarks exit $?"; tail -n 40 "$OUT/bench.log"
timeout "${TEST_TIMEOUT:-200}" python3 -m pytest -q -n 8 -p no:cacheprovider \
  --ignore=tests/test_examples.py --ignore=tests/test_docs.py -o addopts="" tests > "$OUT/tests.log" 2>&1
echo "tests exit $?"; grep -E "passed|failed|error" "$OUT/tests.log" | tail -n 5
grep -E "^(FAILED|ERROR)" "$OUT/tests.log" | head -n 40
