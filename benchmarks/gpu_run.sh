#!/usr/bin/env bash
# One GPU session's measurements, within about 9 minutes: population training
# (N up to 4096, loop/scan baselines up to 512), BO per-suggestion time and
# 16 vmapped BO studies. Uses the machine's own JAX/Flax/Optax (no install);
# logs and result files go to $OUT when set.
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD" PYTHONUNBUFFERED=1 PY="${PYTHON:-python3}"
OUT="${OUT:-/tmp/gpu_out}"; mkdir -p "$OUT"
nvidia-smi -L 2>&1 | tee "$OUT/device.log"
"$PY" -c "import jax, flax, optax; print('jax', jax.__version__, 'flax', flax.__version__, 'optax', optax.__version__, jax.devices())" 2>&1 | tee -a "$OUT/device.log"
timeout 270 "$PY" benchmarks/bench_population.py --one-device --sizes 8 32 128 512 1024 2048 4096 \
    --modes auto chunks --loop-max 512 --scan-max 512 --name population_gpu 2>&1 | tee "$OUT/population.log"
timeout 150 "$PY" benchmarks/bench_bo.py --only speed --no-optuna-speed --sizes 100,1000 --suffix _gpu 2>&1 | tee "$OUT/bo_speed.log"
timeout 110 "$PY" benchmarks/bench_bo.py --only many --suffix _gpu 2>&1 | tee "$OUT/bo_many.log"
cp benchmarks/results/*_gpu.json "$OUT/" 2>/dev/null
ls -la "$OUT"
