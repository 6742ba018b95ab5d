"""Test-session setup: XLA compiles the tests' own programs as jaxhpo compiles its programs.

Most of the suite's time is XLA compiling strategies that the tests call eagerly or
under their own ``jit``; jaxhpo's top-level programs already use
``jaxhpo.compile_options.COMPILER_OPTIONS`` (classic CPU emitters, LLVM level 1: the same
results, measured), and the process-wide ``XLA_FLAGS`` made from them give the tests'
programs the same (about a quarter less time on the bayes, study and minimize tests, 2-core
CPU). Only the options this jaxlib's XLA knows become flags (an unknown flag in ``XLA_FLAGS``
aborts the process): a child process asks ``jaxhpo.compile_options.supported``, since
this one must not start XLA before the flags are set. Set ``XLA_FLAGS`` yourself to test
with other flags: then this does nothing. pytest-xdist's workers inherit the variable.
"""

import os
import subprocess
import sys

if "XLA_FLAGS" not in os.environ:
    _ASK = ("from jaxhpo.compile_options import COMPILER_OPTIONS, supported; "
            "print(' '.join(f'--{k}={str(v).lower()}' for k, v in supported(COMPILER_OPTIONS).items()))")
    _flags = subprocess.run([sys.executable, "-c", _ASK], capture_output=True, text=True,
                            env=dict(os.environ, JAX_PLATFORMS="cpu"),
                            cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    if _flags.returncode == 0:
        os.environ["XLA_FLAGS"] = _flags.stdout.strip()
