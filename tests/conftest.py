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
