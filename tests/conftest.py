"""Test-session setup: XLA compiles the tests' own programs as jaxhpo compiles its small programs.

Most of the suite's time is XLA compiling strategies that the tests call eagerly or
under their own ``jit``, each program run a few times. jaxhpo's top-level programs pass
their own options (``jaxhpo.compile_options``: LLVM level 1, level 0 for the programs that
run once or twice), which take precedence over ``XLA_FLAGS``; the process-wide
``XLA_FLAGS`` made from ``SMALL_PROGRAM_OPTIONS`` give the tests' own programs classic
emitters and no backend optimization: about a quarter less time than XLA's defaults with
level 1 on the bayes, study and minimize tests, and a fifth less again with level 0
(``test_strategies_contract.py`` alone, one process: 79 s -> 60 s, 2-core CPU); the
programs compute the same things, more slowly. Only the options this jaxlib's XLA knows
become flags (an unknown flag in ``XLA_FLAGS`` aborts the process): a child process asks
``jaxhpo.compile_options.supported``, since this one must not start XLA before the flags
are set. Set ``XLA_FLAGS`` yourself to test with other flags: then this does nothing.
pytest-xdist's workers inherit the variable.
"""

import os
import subprocess
import sys

# One BLAS and OpenMP thread per test process: pytest-xdist already runs one process per core, and
# OpenBLAS's (or torch's) own threads on top of that oversubscribe the cores and spin (measured in
# benchmarks/README.md, bench_latency section, session 30). Set them yourself to test with more
# threads; pytest-xdist's workers inherit them (they start after this file is read).
for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

if "XLA_FLAGS" not in os.environ:
    _ASK = ("from jaxhpo.compile_options import SMALL_PROGRAM_OPTIONS, supported; "
            "print(' '.join(f'--{k}={str(v).lower()}' for k, v in supported(SMALL_PROGRAM_OPTIONS).items()))")
    _flags = subprocess.run([sys.executable, "-c", _ASK], capture_output=True, text=True,
                            env=dict(os.environ, JAX_PLATFORMS="cpu"),
                            cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    if _flags.returncode == 0:
        os.environ["XLA_FLAGS"] = _flags.stdout.strip()


import jax  # noqa: E402 - after XLA_FLAGS; importing JAX starts no backend
import pytest  # noqa: E402

# The test files that take longest, longest first (the seconds each took in session 31's run on
# the 2-core machine, ``--durations=0`` summed per file). With ``--dist loadfile`` pytest-xdist hands
# out whole files as its workers free up, by default those with the most tests first, which left the
# long files with few tests (examples, two-process training, PostgreSQL workers) to the end while the
# other worker idled. Longest first, the workers finish within a few seconds of each other. A file
# missing here only runs later: nothing is skipped.
LONGEST_FILES = (
    "tests/test_strategies_bayes.py",  # 78 s
    "tests/test_strategies_contract.py",  # 66 s
    "tests/test_population_train.py",  # 49 s
    "tests/test_sklearn.py",  # 41 s
    "tests/test_ensemble.py",  # 39 s
    "tests/test_examples.py",  # 38 s
    "tests/test_study.py",  # 33 s
    "tests/test_integrations_ray.py",  # 16-29 s
    "tests/test_population_multihost.py",  # 27 s
    "tests/test_integrations_optuna_workers.py",  # 25 s
    "tests/test_strategies_evolution.py",  # 20 s
    "tests/test_minimize.py",  # 19 s
    "tests/test_population_schedulers.py",  # 19 s
    "tests/test_integrations_optuna.py",  # 16 s
    "tests/test_executable_cache.py",  # 15 s
    "tests/test_integrations_optuna_dashboard.py",  # 14 s
    "tests/test_strategies_acquisition_optimizer.py",  # 12 s
    "tests/test_fault_matrix.py",  # 12 s
    "tests/test_gp.py",  # 12 s
    "tests/test_population_sharding.py",  # 8 s
    "tests/test_population_cv.py",  # 8 s
)


def pytest_configure(config):
    if hasattr(config.option, "loadscopereorder"):  # pytest-xdist: keep the order made below
        config.option.loadscopereorder = False


def pytest_collection_modifyitems(session, config, items):
    """Runs the longest files first (``LONGEST_FILES``), each file's tests in their own order."""
    rank = {path: i for i, path in enumerate(LONGEST_FILES)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::", 1)[0], len(rank)))  # stable


@pytest.fixture
def full_float32_products():
    """Matrix products and convolutions in full float32 for the test (all threads).

    For tests that compare two ways of computing the same float32 result (a population against
    its members alone, a patch convolution against XLA's): on a GPU JAX's default precision
    multiplies in TF32, whose rounding differs between kernels (3e-5 to 8e-4 relative on an
    H200), while on a CPU this changes nothing.
    """
    before = jax.config.jax_default_matmul_precision
    jax.config.update("jax_default_matmul_precision", "highest")
    try:
        yield
    finally:
        jax.config.update("jax_default_matmul_precision", before)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    """An xdist worker ends here, once it has reported its last result, without JAX's exit-time
    clean-up: freeing the thousands of programs a worker compiled takes seconds, which
    pytest-xdist's controller waits for. Runs without pytest-xdist end normally."""
    if os.environ.get("PYTEST_XDIST_WORKER") and hasattr(config, "workeroutput"):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
