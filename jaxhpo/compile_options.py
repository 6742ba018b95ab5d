"""XLA options for the programs jaxhpo compiles at the top level (never for code inside yours).

On CPU, XLA's newer fusion emitters spend most of a GP program's compile
time generating code; the classic emitters produce programs that run as
fast here. Measured on the 2-core CPU machine (the 6-d ``bayes()`` ask
program, 64 rows): 6.3 s of compile with the fusion emitters, 4.0 s without,
7.4 ms and 6.4 ms per ask, the same suggestions. And LLVM's optimization
level 1 instead of XLA's default (level 2): the suggestions of two studies
(30 trials, and 24 in batches of 4) bit-identical, the same time per ask, and
random-number code, which the default level unrolls and vectorizes, compiles
4-5x faster (a 256 x 6 uniform draw: 0.85 s -> 0.18 s). The options only
concern XLA's CPU backend; other backends ignore them.

JAX accepts compiler options on top-level programs only, so ``jit`` here is
used where jaxhpo is sure to be the outermost caller (``Study``'s programs,
``minimize`` called directly); under your own ``jit`` your options apply.

Example:
    >>> import jax.numpy as jnp
    >>> from jaxhpo.compile_options import jit
    >>> jit(lambda x: x + 1)(jnp.float32(1)).item()
    2.0
"""

from __future__ import annotations

from typing import Any, Callable

import jax

COMPILER_OPTIONS: dict[str, Any] = {"xla_cpu_use_fusion_emitters": False, "xla_backend_optimization_level": 1}

# For the small programs a Study runs before its first trial (the strategy's init, its initial
# design): XLA's backend optimizations cost more compile time than they save. Measured (2-core CPU,
# 6-d bayes(), fresh process): init 0.43 s -> 0.17 s and the design program 0.47 s -> 0.14 s to
# compile, the design then running in 0.5 ms instead of 0.3 ms.
SMALL_PROGRAM_OPTIONS: dict[str, Any] = {**COMPILER_OPTIONS, "xla_backend_optimization_level": 0}


# For population training: LLVM level 1 only. The classic emitters saved 1 s of compile there but
# ran the training loop 1.5x slower (0.29 s -> 0.44 s for 8 MLPs x 20-30 epochs); level 1 compiled
# 8 MLPs' 20-epoch program in 5.5-5.8 s instead of 6.3-7.9 s, trained as fast (0.53-0.55 s against
# 0.54-0.56 s) and the same members up to float32 rounding (52 of 656,312 parameters and metrics
# differed, by at most 2e-7 relative; 2-core CPU).
TRAINING_OPTIONS: dict[str, Any] = {"xla_backend_optimization_level": 1}


# For a population's initialization program (run once per population, mostly random-number code):
# the small-program options. Measured (2-core CPU, the flagship's 8 LeNet CNNs, fresh process, cache
# off): 2.6-3.6 s -> 1.7-2.0 s of CPU to trace and compile. The parameters drawn may differ in the
# last float32 bit (6,894 of 542,512 did: LLVM's optimizations reorder the truncated normal's float
# arithmetic), as they would on another CPU.
INIT_OPTIONS: dict[str, Any] = SMALL_PROGRAM_OPTIONS


def jit(fn: Callable, options: dict[str, Any] = COMPILER_OPTIONS, **kwargs: Any) -> Callable:
    """``jax.jit(fn, **kwargs)`` compiled with ``options`` (for top-level programs only)."""
    return jax.jit(fn, compiler_options=options, **kwargs)
