"""Test-session setup: XLA compiles the tests' own programs as jaxhpo compiles its programs.

Most of the suite's time is XLA compiling strategies that the tests call eagerly or
under their own ``jit``; jaxhpo's top-level programs already use
``jaxhpo.compile_options.COMPILER_OPTIONS`` (classic CPU emitters, LLVM level 1: the same
results, measured), and the process-wide ``XLA_FLAGS`` made from them give the tests'
programs the same (about a quarter less time on the bayes, study and minimize tests, 2-core
CPU). Set ``XLA_FLAGS`` yourself to test with other flags: then this does nothing.
"""

import os

from jaxhpo.compile_options import COMPILER_OPTIONS  # imports JAX without starting its backends

os.environ.setdefault("XLA_FLAGS", " ".join(f"--{name}={str(value).lower()}"
                                            for name, value in COMPILER_OPTIONS.items()))
