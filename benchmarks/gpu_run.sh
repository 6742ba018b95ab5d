#!/usr/bin/env bash
# One GPU session's checks, within about 9.5 minutes on one H200 (run it with timeout_s=590), with the machine's own
# JAX/Flax/Optax/scikit-learn/pytest (nothing installed; Optuna, Ray and Dask are not there):
#   1. the test files of the JAX core (strategies, GP, minimize, Study, population, fusion,
#      scikit-learn) on the GPU, 8 workers: what breaks or drifts off the CPU;
#   2. bench_latency's first trial, 60-trial Study and 3-round population.search rows,
#      cold and warm (results/latency_gpu.json);
#   3. the flagship (`make demo`'s job) cold, then warm (results/flagship_gpu.json).
# Each part has its own time limit, so one that hangs leaves the others their time.
# Logs and result files go to $OUT when set (/tmp/gpu_out otherwise).
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD" PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false OPENBLAS_NUM_THREADS=1
PY="${PYTHON:-python3}"
OUT="${OUT:-/tmp/gpu_out}"; mkdir -p "$OUT"
{ nvidia-smi -L; "$PY" -c "import jax, flax, optax, sklearn; print('jax', jax.__version__, 'flax', flax.__version__, 'optax', optax.__version__, 'sklearn', sklearn.__version__, jax.devices())"; } 2>&1 | tee "$OUT/device.log"

start=$SECONDS
JAXHPO_CACHE_DIR="$(mktemp -d)" timeout -s INT -k 20 260 "$PY" -m pytest -p no:cacheprovider -o addopts="" \
    -n 8 --dist loadfile --timeout 150 -q -rfE --tb=short --durations=10 \
    tests/test_strategies_*.py tests/test_gp.py tests/test_gp_acquisition.py tests/test_minimize.py \
    tests/test_study.py tests/test_population_train.py tests/test_population_cv.py \
    tests/test_population_models.py tests/test_population_schedulers.py tests/test_population_sharding.py \
    tests/test_ensemble.py tests/test_metrics.py tests/test_sklearn.py tests/test_hypergrad.py \
    tests/test_space.py tests/test_programs.py tests/test_evaluation.py tests/test_executable_cache.py \
    tests/test_compile_cache.py tests/test_lapack.py tests/test_pruners.py 2>&1 | tee "$OUT/tests.log"
echo "tests: $((SECONDS - start)) s" | tee -a "$OUT/device.log"

start=$SECONDS
timeout 100 "$PY" benchmarks/bench_latency.py --only first_trial study60 population3 --suffix _gpu 2>&1 \
    | tee "$OUT/latency.log"
cp benchmarks/results/latency_gpu.json "$OUT/" 2>/dev/null
echo "latency: $((SECONDS - start)) s" | tee -a "$OUT/device.log"

start=$SECONDS  # cold and warm, each a fresh process; the table is the warm run's
timeout 170 "$PY" benchmarks/bench_flagship.py --suffix _gpu 2>&1 | tee "$OUT/flagship.log"
cp benchmarks/results/flagship_gpu.json "$OUT/" 2>/dev/null
echo "flagship: $((SECONDS - start)) s" | tee -a "$OUT/device.log"
ls -la "$OUT"
