#!/usr/bin/env bash
# Population benchmark on a GPU machine: N up to 4096 members, within 5 minutes.
# Needs JAX with CUDA (pip install -U "jax[cuda12]") and jaxhpo installed (pip install -e ".[sklearn]").
# The per-model baselines run up to N = 512 (the goal there: >= 20x the Python loop).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python}"
"$PY" -c "import jax; print(jax.devices())"
timeout "${LIMIT:-300}" "$PY" benchmarks/bench_population.py --one-device \
    --sizes 8 32 128 512 1024 2048 4096 --modes auto chunks --loop-max 512 --scan-max 512 \
    --name population_gpu
