"""XLA options for the programs jaxhpo compiles at the top level (never for code inside yours).

On CPU, XLA's newer fusion emitters spend most of a GP program's compile
time generating code; the classic emitters produce programs that run as
fast here. Measured on the 2-core CPU machine (the 6-d ``bayes()`` ask
program, 64 rows): 6.3 s of compile with the fusion emitters, 4.0 s without,
7.4 ms and 6.4 ms per ask, the same suggestions. And LLVM's optimization
level 1 instead of XLA's default (level 2): the suggestions of two studies
(30 trials, and 24 in batches of 4) bit-identical, the same time per ask, and
random-number code, which the default level unrolls and vectorizes, compiles
4-5x faster (a 256 x 6 uniform draw: 0.85 s -> 0.18 s). The emitter option
concerns XLA's CPU backend only; XLA's GPU backends read the optimization
level too (for their own LLVM code generation). The GPU figures in
``benchmarks/README.md`` (session 21, an H200) were measured with these
options; whether XLA's defaults compile or run faster there is not measured.

JAX accepts compiler options on top-level programs only, so ``jit`` here is
used where jaxhpo is sure to be the outermost caller (``Study``'s programs,
``minimize`` called directly); under your own ``jit`` your options apply.

XLA adds, renames and drops these options between releases, and refuses a
compile with one it does not know (JAX 0.11 dropped
``xla_cpu_use_fusion_emitters``: every jaxhpo program failed there). So
``supported`` keeps the options the running XLA knows, found once per
process by compiling an empty program (a few milliseconds), and ``jit``
applies it when first called; an option dropped means XLA's default.

Example:
    >>> import jax.numpy as jnp
    >>> from jaxhpo.compile_options import jit
    >>> jit(lambda x: x + 1)(jnp.float32(1)).item()
    2.0
"""

from __future__ import annotations

import functools
import threading
from typing import Any, Callable, Mapping

import jax
import numpy as np

COMPILER_OPTIONS: dict[str, Any] = {"xla_cpu_use_fusion_emitters": False, "xla_backend_optimization_level": 1}

# For the small programs a Study runs before its first trial (the strategy's init, its initial
# design): XLA's backend optimizations cost more compile time than they save. Measured (2-core CPU,
# 6-d bayes(), fresh process): init 0.43 s -> 0.17 s and the design program 0.47 s -> 0.14 s to
# compile, the design then running in 0.5 ms instead of 0.3 ms.
SMALL_PROGRAM_OPTIONS: dict[str, Any] = {**COMPILER_OPTIONS, "xla_backend_optimization_level": 0}


# For a Study's ask on a buffer of at most SMALL_STUDY_CAPACITY trials (its first buffer), on a
# CPU: level 0, see ``study_ask_options``.
SMALL_STUDY_CAPACITY = 64
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


def study_ask_options(capacity: int, platform: str = "cpu") -> dict[str, Any]:
    """The XLA options of a ``Study``'s ask program for a buffer of ``capacity`` trials.

    On a CPU, a buffer of at most ``SMALL_STUDY_CAPACITY`` (64) trials, a study's first,
    gets ``SMALL_PROGRAM_OPTIONS`` (LLVM level 0): its program runs at most 64
    times, and where the objective is fast its compile is what the user waits
    for. Larger buffers get ``COMPILER_OPTIONS`` (level 1), whose programs run
    faster for the hundreds of asks that fill them (the 6-d GP: about half the
    compile time at level 0, two to three times the run time; measured in
    ``benchmarks/README.md``, the bench_latency section). The choice follows
    the buffer, never the timing: a study's trials are the same in every
    process, with or without the compilation caches. On other platforms (not
    measured there) every buffer gets ``COMPILER_OPTIONS``.

    Args:
        capacity: rows of the study's trial buffer (``state.history.capacity``).
        platform: the backend the program is compiled for (``jax.default_backend()``).

    Example:
        >>> [study_ask_options(n)["xla_backend_optimization_level"] for n in (64, 128)]
        [0, 1]
        >>> study_ask_options(64, "gpu")["xla_backend_optimization_level"]
        1
    """
    small = platform == "cpu" and capacity <= SMALL_STUDY_CAPACITY
    return dict(SMALL_PROGRAM_OPTIONS if small else COMPILER_OPTIONS)


def supported(options: Mapping[str, Any]) -> dict[str, Any]:
    """The options of ``options`` that the running XLA knows (the others would fail every compile).

    Args:
        options: XLA compile options, name to value (one of this module's dicts, say).

    Returns:
        A new dict with the options XLA accepts; those it refuses are left out.

    Example:
        >>> from jaxhpo.compile_options import supported
        >>> supported({"xla_backend_optimization_level": 1, "xla_no_such_option": True})
        {'xla_backend_optimization_level': 1}
    """
    return dict(_supported(tuple(sorted(options.items()))))


@functools.lru_cache(maxsize=None)
def _supported(items: tuple) -> tuple:
    if _accepted(items):  # the usual case: one probe for the whole set
        return items
    return tuple(item for item in items if _accepted((item,)))


@functools.lru_cache(maxsize=None)
def _accepted(items: tuple) -> bool:
    try:
        jax.jit(_empty, compiler_options=dict(items)).lower(np.float32(0)).compile()
    except jax.errors.JaxRuntimeError as error:
        if "No such compile option" not in str(error):
            raise
        return False
    return True


def _empty(x: Any) -> Any:
    return x


class _Jit:
    """``jax.jit(fn, compiler_options=supported(options), **kwargs)``, made when first used.

    Made lazily because finding the supported options needs XLA's backend,
    which importing jaxhpo must not start. Calls, ``lower`` and the other
    attributes of a jitted function go to the jitted function.
    """

    def __init__(self, fn: Callable, options: Mapping[str, Any], kwargs: dict) -> None:
        functools.update_wrapper(self, fn)
        self._fn, self._options, self._kwargs = fn, dict(options), kwargs
        self._jitted: Any = None
        self._lock = threading.Lock()

    def _get(self) -> Any:
        if self._jitted is None:
            with self._lock:
                if self._jitted is None:
                    self._jitted = jax.jit(self._fn, compiler_options=supported(self._options), **self._kwargs)
        return self._jitted

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._get()(*args, **kwargs)

    def lower(self, *args: Any, **kwargs: Any) -> Any:  # defined here: hasattr(fn, "lower") makes nothing
        return self._get().lower(*args, **kwargs)

    def __reduce__(self) -> tuple:  # pickled as what it is made of (the lock and program stay behind)
        return _Jit, (self._fn, self._options, self._kwargs)

    def __getattr__(self, name: str) -> Any:  # trace, eval_shape, clear_cache ...
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(self._get(), name)


def jit(fn: Callable, options: Mapping[str, Any] = COMPILER_OPTIONS, **kwargs: Any) -> Callable:
    """``jax.jit(fn, **kwargs)`` compiled with the ``options`` this XLA knows (for top-level programs only).

    Args:
        fn: the function to compile, as for ``jax.jit``.
        options: XLA compile options; those the running XLA does not know are left out.
        **kwargs: passed to ``jax.jit`` (``static_argnums``, ``donate_argnums`` ...).

    Returns:
        A callable that behaves as ``jax.jit``'s result (calls, ``lower``).
    """
    return _Jit(fn, options, kwargs)
