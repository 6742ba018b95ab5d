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
    >>> pending = square.prepare(jnp.ones(3), 2)   # returns at once; compiles on a thread
    >>> square(jnp.arange(3.0), 2).tolist()
    [0.0, 1.0, 4.0]
    >>> square.num_compiles
    1
"""

from __future__ import annotations

import concurrent.futures as cf
import threading
from typing import Any, Callable, Mapping, Optional, Sequence, Union

import jax

from jaxhpo import executable_cache, switch_interval
from jaxhpo.compile_options import COMPILER_OPTIONS, supported


# Tracing and lowering hold the GIL: compiles started together (a staged ask's two programs) take
# turns there, so that the first reaches XLA, which runs without the GIL, as early as possible.
_TRACING = threading.Lock()

# XLA options: one set for every call, or a function of a call's arguments (arrays or stand-ins)
Options = Union[Mapping[str, Any], Callable[[tuple], Mapping[str, Any]]]


class Program:
    """A jitted function with ahead-of-time compiles per argument signature.

    Args:
        fn: a ``jax.jit``-wrapped function.
        static_argnums: positions of its static arguments (as given to ``jit``).
        cache_key: the program's identity for ``jaxhpo.executable_cache``
            (from ``executable_cache.program_key``): a later process loads the
            executable without tracing. None: JAX's own caches only.
        compiler_options: XLA options of the compiles (``jaxhpo.compile_options``), or a function
            of a call's arguments (arrays or ``jax.ShapeDtypeStruct`` stand-ins, static ones as they
            are) that returns them: the options may depend on the shapes (a study's ask program
            compiles for compile speed on its first, small buffer). Default:
            ``compile_options.COMPILER_OPTIONS``.
    """

    def __init__(self, fn: Callable, static_argnums: Sequence[int] = (), cache_key: Optional[str] = None,
                 compiler_options: Optional[Options] = None) -> None:
        if not hasattr(fn, "lower"):
            fn = jax.jit(fn, static_argnums=tuple(static_argnums))
        self._fn = fn
        self._cache_key = cache_key
        options = COMPILER_OPTIONS if compiler_options is None else compiler_options
        self._options: Options = options if callable(options) else dict(options)
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
        # the objects themselves (hashable, compared cheaply: this runs on every call), not their text;
        # and the JAX settings that change tracing (executable_cache keys its entries on them too)
        return tree, static, tuple(
            (getattr(x, "shape", ()), getattr(x, "dtype", type(x)), getattr(x, "weak_type", False),
             getattr(x, "sharding", None))
            for x in leaves
        ), executable_cache.tracing_settings()

    def options(self, *args: Any) -> dict:
        """The XLA options of the compile for ``args`` (arrays or stand-ins)."""
        return dict(self._options(args)) if callable(self._options) else dict(self._options)

    @staticmethod
    def _cache_signature(signature: Any, options: dict) -> Any:
        """``signature`` as ``executable_cache`` keys it: text that is the same in every process
        (the tracing settings are part of ``executable_cache``'s own key), and the XLA options."""
        tree, static, leaves, _ = signature
        text = tuple((shape, str(dtype), weak, str(sharding)) for shape, dtype, weak, sharding in leaves)
        return str(tree), repr((static, text)), sorted(options.items())

    def _future(self, args: tuple, background: bool, lower_here: bool = False) -> Optional[cf.Future]:
        signature = self._signature(args)
        future = self._compiled.get(signature)
        if future is not None:  # the common case, kept cheap: a program called again
            return future
        options = self.options(*args)
        cache_signature = self._cache_signature(signature, options)
        if lower_here and executable_cache.stored(self._cache_key, cache_signature):
            return None  # loads in a few milliseconds when called: nothing to overlap
        with self._lock:
            future = self._compiled.get(signature)
            if future is not None:
                return future
            future = self._compiled[signature] = cf.Future()
        shapes = jax.tree.map(_shape_of, args)
        lowered = None
        if lower_here:
            try:
                lowered = self._fn.lower(*shapes)  # here, in the caller's thread; XLA on the thread
            except BaseException as e:  # noqa: BLE001 - handed to whoever runs the program
                future.set_exception(e)
                return future

        def build() -> Any:
            # background: Python work one thread at a time (two interleaved both finish late);
            # a foreground compile never waits for a background one
            if lowered is not None:
                return lowered.compile(supported(options))
            if background:
                # with a short GIL switch interval: the caller's thread, running trials meanwhile,
                # then waits 0.1 ms, not 5 ms, each time it takes the GIL back
                with _TRACING, switch_interval.responsive():
                    lowering = self._fn.lower(*shapes)
            else:
                lowering = self._fn.lower(*shapes)
            return lowering.compile(supported(options))  # XLA: in parallel with other compiles

        def compile_now() -> None:
            try:
                future.set_result(executable_cache.load_or_compile(self._cache_key, cache_signature, build))
            except BaseException as e:  # noqa: BLE001 - handed to whoever runs the program
                future.set_exception(e)

        if background:
            # not a daemon: a process that ends during the compile waits for it (seconds) at exit,
            # since stopping XLA mid-compile at interpreter shutdown aborts the process
            threading.Thread(target=compile_now, name="jaxhpo-compile", daemon=False).start()
        else:
            compile_now()
        return future

    def prepare(self, *args: Any, lower_here: bool = False) -> bool:
        """Starts compiling for the shapes of ``args`` on a thread (nothing if done or under way);
        returns whether a compile for them is under way (False when the program is ready or,
        with ``lower_here``, left to load from ``executable_cache`` when called).

        Args:
            *args: arguments, or ``jax.ShapeDtypeStruct`` stand-ins, of the calls to prepare for.
            lower_here: trace and lower in this thread before returning, so that only XLA's work
                (which releases the GIL) runs on the thread: for programs prepared side by side
                with work of the caller's own (tracing in two threads at once slows both). A
                program ``executable_cache`` holds is then left to load when called.
        """
        future = self._future(args, background=True, lower_here=lower_here)
        return future is not None and not future.done()

    def output_shapes(self, *args: Any) -> Any:
        """What the program returns for ``args``, as ``jax.ShapeDtypeStruct`` leaves (traced, not compiled
        or run), placed where its outputs land: with the first array argument (so that ``prepare`` for a
        later call on those outputs compiles the signature that call will have).

        Example:
            >>> import jax, jax.numpy as jnp
            >>> total = Program(jax.jit(lambda x: jnp.cumsum(x)))
            >>> out = total.output_shapes(jnp.ones(3))
            >>> out.shape, str(out.dtype), total.num_compiles
            ((3,), 'float32', 0)
        """
        shapes = self._fn.eval_shape(*args)
        placed = [a.sharding for i, a in enumerate(args) if i not in self._static and isinstance(a, jax.Array)]
        if not placed:
            return shapes
        return jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=placed[0],
                                                           weak_type=s.weak_type), shapes)

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


class StagedProgram:
    """Two programs run one after the other, as one: ``second(*args[:-2], first(*args), args[-1])``.

    For an ``ask`` split in stages (``Strategy.ask_stages``): the first stage
    maps ``(..., state, num)`` to a state of the same shapes, the second maps
    ``(..., state, num)`` to ``(x, state)``. ``prepare`` compiles both at once,
    each on its own thread: one stage is traced while XLA compiles the other,
    and XLA's work of both shares the cores (it already runs one compile on
    several threads, so on few cores the wait shrinks by less than half).
    Same interface as ``Program``.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> double = Program(jax.jit(lambda k, s, n: 2 * s, static_argnums=2), static_argnums=(2,))
        >>> plus = Program(jax.jit(lambda k, s, n: (s + n, s), static_argnums=2), static_argnums=(2,))
        >>> both = StagedProgram(double, plus)
        >>> both.prepare(0, jnp.ones(2), 3)
        >>> both(0, jnp.ones(2), 3)[0].tolist()
        [5.0, 5.0]
        >>> both.num_compiles
        1
    """

    def __init__(self, first: Program, second: Program) -> None:
        self.first, self.second = first, second

    @property
    def num_compiles(self) -> int:
        """How many signatures the staged program has compiled (both stages count as one)."""
        return max(self.first.num_compiles, self.second.num_compiles)

    @property
    def compiling(self) -> int:
        return max(self.first.compiling, self.second.compiling)

    @property
    def num_runs(self) -> int:
        return self.second.num_runs

    def prepare(self, *args: Any) -> None:
        """Starts compiling both stages for the shapes of ``args``, each on a thread (the second,
        larger one first: it is traced first, then compiles while the first is traced)."""
        self.second.prepare(*args)
        self.first.prepare(*args)

    def ready(self, *args: Any) -> bool:
        return self.first.ready(*args) and self.second.ready(*args)

    def __call__(self, *args: Any) -> Any:
        state = self.first(*args)
        return self.second(*args[:-2], state, args[-1])
