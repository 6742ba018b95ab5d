"""XLA options for the programs jaxhpo compiles at the top level (never for code inside yours).

On CPU, XLA's newer fusion emitters spend most of a GP program's compile
time generating code; the classic emitters produce programs that run as
fast here. Measured on the 2-core CPU machine (the 6-d ``bayes()`` ask
program, 64 rows): 6.3 s of compile with the fusion emitters, 4.0 s without,
7.4 ms and 6.4 ms per ask, the same suggestions. The option only concerns
XLA's CPU backend; other backends ignore it.

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

COMPILER_OPTIONS: dict[str, Any] = {"xla_cpu_use_fusion_emitters": False}


def jit(fn: Callable, **kwargs: Any) -> Callable:
    """``jax.jit(fn, **kwargs)`` compiled with ``COMPILER_OPTIONS`` (for top-level programs only)."""
    return jax.jit(fn, compiler_options=COMPILER_OPTIONS, **kwargs)
