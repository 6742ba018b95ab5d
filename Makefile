# Quick start: `make demo` runs the main job, `make test` runs the tests.
# Each creates .venv (Python 3.10+) and installs what it needs when missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test bench bench-deps clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	OPENBLAS_NUM_THREADS=1 $(PY) examples/flagship.py

test: $(STAMP)
	$(PY) -m pytest -n auto --dist loadfile

# Peers for benchmarks: the CPU build of torch first (Optuna's GPSampler needs it).
bench-deps: $(STAMP)
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[bench]"

bench: bench-deps
	OPENBLAS_NUM_THREADS=1 $(PY) benchmarks/bench_random.py

clean:
	rm -rf $(VENV) .pytest_cache
