"""Compiled programs that can be prepared ahead of time on a background thread.

``Program`` wraps a jitted function. ``prepare(*args)`` starts compiling it
for the shapes of ``args`` on a thread (``jit(...).lower(...).compile()``,
which releases the GIL while XLA works; with jaxhpo's XLA options,
``jaxhpo.compile_options``) and returns at once; calling the
program with arguments of those shapes waits for that compile, if it is still
running, and then runs it. Calls with shapes never prepared compile in the
foreground, once per shape. The results are those of the jitted function:
only when the compile happens changes.

``Study`` uses it to serve the initial design of ``bayes()`` from a tiny
program while the GP program compiles behind the first trials.

Example:
    >>> import jax, jax.numpy as jnp
    >>> square = Program(jax.jit(lambda x, n: x ** n, static_argnums=1), static_argnums=(1,))
    >>> square.prepare(jnp.ones(3), 2)   # returns at once; compiles on a thread
    >>> square(jnp.arange(3.0), 2).tolist()
    [0.0, 1.0, 4.0]
    >>> square.num_compiles
    1
"""

from __future__ import annotations

import concurrent.futures as cf
import threading
from typing import Any, Callable, Optional, Sequence

import jax

from jaxhpo import executable_cache
from jaxhpo.compile_options import COMPILER_OPTIONS


class Program:
    """A jitted function with ahead-of-time compiles per argument signature.

    Args:
        fn: a ``jax.jit``-wrapped function.
        static_argnums: positions of its static arguments (as given to ``jit``).
        cache_key: the program's identity for ``jaxhpo.executable_cache``
            (from ``executable_cache.program_key``): a later process loads the
            executable without tracing. None: JAX's own caches only.
        compiler_options: XLA options of the compile (``jaxhpo.compile_options``).
    """

    def __init__(self, fn: Callable, static_argnums: Sequence[int] = (), cache_key: Optional[str] = None,
                 compiler_options: Optional[dict] = None) -> None:
        if not hasattr(fn, "lower"):
            fn = jax.jit(fn, static_argnums=tuple(static_argnums))
        self._fn = fn
        self._cache_key = cache_key
        self._options = dict(COMPILER_OPTIONS if compiler_options is None else compiler_options)
        self._static = frozenset(static_argnums)
        self._compiled: dict[Any, cf.Future] = {}
        self.num_runs = 0  # calls that ran the program
        self._lock = threading.Lock()

    @property
    def num_compiles(self) -> int:
        """How many signatures this program has compiled (or is compiling)."""
        return len(self._compiled)

    @property
    def compiling(self) -> int:
        """How many of those compiles are still under way."""
        return sum(not f.done() for f in list(self._compiled.values()))

    def _signature(self, args: tuple) -> Any:
        dynamic = [a for i, a in enumerate(args) if i not in self._static]
        static = tuple(a for i, a in enumerate(args) if i in self._static)
        leaves, tree = jax.tree.flatten(dynamic)
        return tree, static, tuple(
            (getattr(x, "shape", ()), str(getattr(x, "dtype", type(x))), getattr(x, "weak_type", False),
             str(getattr(x, "sharding", None)))
            for x in leaves
        )

    def _future(self, args: tuple, background: bool) -> cf.Future:
        signature = self._signature(args)
        with self._lock:
            future = self._compiled.get(signature)
            if future is not None:
                return future
            future = self._compiled[signature] = cf.Future()
        shapes = jax.tree.map(_shape_of, args)

        def compile_now() -> None:
            try:
                future.set_result(executable_cache.load_or_compile(
                    self._cache_key, (str(signature[0]), repr(signature[1:]), sorted(self._options.items())),
                    lambda: self._fn.lower(*shapes).compile(self._options)))
            except BaseException as e:  # noqa: BLE001 - handed to whoever runs the program
                future.set_exception(e)

        if background:
            # not a daemon: a process that ends during the compile waits for it (seconds) at exit,
            # since stopping XLA mid-compile at interpreter shutdown aborts the process
            threading.Thread(target=compile_now, name="jaxhpo-compile", daemon=False).start()
        else:
            compile_now()
        return future

    def prepare(self, *args: Any) -> None:
        """Starts compiling for the shapes of ``args`` on a thread (nothing if done or under way)."""
        self._future(args, background=True)

    def ready(self, *args: Any) -> bool:
        """Whether the program for the shapes of ``args`` is compiled."""
        future = self._compiled.get(self._signature(args))
        return future is not None and future.done()

    def __call__(self, *args: Any) -> Any:
        compiled = self._future(args, background=False).result()
        self.num_runs += 1
        return compiled(*[a for i, a in enumerate(args) if i not in self._static])


def _shape_of(x: Any) -> Any:
    """Abstract stand-in for an array argument; other values (static ones) as they are."""
    if isinstance(x, jax.Array) or hasattr(x, "__array__") and hasattr(x, "dtype"):
        return jax.ShapeDtypeStruct(
            x.shape, x.dtype, sharding=getattr(x, "sharding", None), weak_type=getattr(x, "weak_type", False)
        )
    return x
