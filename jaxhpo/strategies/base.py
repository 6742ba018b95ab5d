"""The strategy contract: ``init / ask / tell`` over an explicit state pytree.

A ``Strategy`` is a NamedTuple of pure functions, in the style of
``optax.GradientTransformation``. Nothing here calls ``jit`` or ``vmap``: the
caller decides. Points live in the unit cube ``[0, 1]^d`` of a ``Space``;
values are minimized.

* ``init(key, space, capacity) -> state``: ``space`` and ``capacity`` are static
  (Python values); ``key`` may be batched with ``vmap``.
* ``ask(key, state, num) -> (x[num, d], state)``: ``num`` is static; the batch
  is first-class, so ``num > 1`` proposes ``num`` trials at once.
* ``tell(state, x[q, d], y[q]) -> state``.

Every state carries a ``History``: a fixed-capacity buffer of told points with
a count, so its shapes never change as observations arrive and nothing
recompiles. Non-finite values are stored but flagged as failed.

Example:
    >>> import jax, jaxhpo
    >>> space = jaxhpo.Space({"x": jaxhpo.Float(-1.0, 1.0)})
    >>> strategy = jaxhpo.strategies.random()
    >>> state = strategy.init(jax.random.key(0), space, 8)
    >>> x, state = strategy.ask(jax.random.key(1), state, 4)
    >>> state = strategy.tell(state, x, (x[:, 0] - 0.5) ** 2)
    >>> int(state.history.count)
    4
"""

from __future__ import annotations

import functools
import inspect
from typing import Any, Callable, NamedTuple, Optional, Protocol

import jax
import jax.numpy as jnp
import numpy as np

from jaxhpo._checks import real_scalar
from jaxhpo.space import Space

Array = jax.Array


class SpaceExhausted(RuntimeError):
    """Raised by the Python shell when a strategy has no new configuration left to propose.

    Strategies signal it by returning NaN rows from ``ask`` (a grid past its
    end, ``bayes()`` in a fully evaluated finite space).
    """


@jax.tree_util.register_pytree_node_class
class Static:
    """Wraps a hashable Python value (such as a ``Space``) as a leafless pytree node.

    States use it to carry static information to ``ask`` without closing over
    it: the value lives in the tree structure, so ``jit``, ``vmap`` and ``scan``
    see no array and never trace it.
    """

    def __init__(self, value: Any) -> None:
        self.value = value

    def tree_flatten(self) -> tuple[tuple, Any]:
        return (), self.value

    @classmethod
    def tree_unflatten(cls, value: Any, children: tuple) -> "Static":
        return cls(value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Static) and self.value == other.value

    def __hash__(self) -> int:
        return hash(self.value)

    def __repr__(self) -> str:
        return f"Static({self.value!r})"


class CapacityWarning(RuntimeWarning):
    """Points were told to a state whose ``History`` was full: they were dropped, and the strategy does not learn from them."""


def _warn_dropped(capacity: int, count: Any) -> None:
    count = np.asarray(count)
    if np.any(count > capacity):
        import warnings

        warnings.warn(
            f"a strategy state of capacity {capacity} has been told {int(count.max())} points: the "
            f"{int(count.max()) - capacity} past its capacity were dropped and the strategy does not learn from "
            f"them; init the state with a larger capacity (strategy.init(key, space, capacity)) or grow it with "
            f"jaxhpo.strategies.grow_state (minimize and Study size it for you)",
            CapacityWarning,
            stacklevel=2,
        )


class History(NamedTuple):
    """Fixed-capacity observation buffer.

    Attributes:
        x: ``[capacity, d]`` told points; rows at or past ``count`` are zeros.
        y: ``[capacity]`` told values; failed (non-finite) values are kept as told.
        count: number of points told so far (may exceed capacity: the rows past
            it are dropped, ``dropped`` counts them, and ``history_add`` warns
            with a ``CapacityWarning``, from inside ``jit`` and ``vmap`` too).
        warn_overflow: ``Static(True)`` (the default): ``history_add`` warns
            when rows are dropped, through a host callback. Drivers that size
            the buffer themselves (``minimize``, ``Study``) turn it off with
            ``drivers_own_capacity``: a program with a host callback is not
            stored in JAX's persistent compilation cache.
    """

    x: Array
    y: Array
    count: Array
    warn_overflow: Any = Static(True)

    @property
    def capacity(self) -> int:
        return self.x.shape[-2]

    @property
    def filled(self) -> Array:
        """``[capacity]`` True where a row holds a told point."""
        return jnp.arange(self.capacity) < self.count[..., None]

    @property
    def dropped(self) -> Array:
        """Number of told points that did not fit in the buffer (0 while ``count <= capacity``)."""
        return jnp.maximum(self.count - self.capacity, 0)

    @property
    def valid(self) -> Array:
        """``[capacity]`` True where a row holds a told point with a finite value."""
        return self.filled & jnp.isfinite(self.y)

    @property
    def failed(self) -> Array:
        """``[capacity]`` True where a row holds a told point whose value is NaN or inf."""
        return self.filled & ~jnp.isfinite(self.y)


def history_init(capacity: int, dim: int, dtype: Any = None) -> History:
    """An empty ``History`` of ``capacity`` rows in ``dim`` dimensions."""
    if int(capacity) != capacity or capacity < 1:
        raise ValueError(f"capacity must be a positive integer, got capacity={capacity!r}")
    dtype = dtype or jnp.result_type(float)
    return History(
        x=jnp.zeros((int(capacity), dim), dtype),
        y=jnp.full((int(capacity),), jnp.nan, dtype),
        count=jnp.zeros((), jnp.int32),
    )


def history_add(history: History, x: Array, y: Array) -> History:
    """Appends ``x[q, d]`` and ``y[q]``; rows past capacity are dropped, never wrapped.

    Dropping is never silent: a ``CapacityWarning`` is issued on the host
    (through ``jax.debug.callback``, so also from inside a caller's ``jit``,
    ``scan`` or ``vmap``), and ``History.dropped`` counts the lost rows.
    """
    x = jnp.asarray(x, history.x.dtype).reshape(-1, history.x.shape[-1])
    y = jnp.asarray(y, history.y.dtype).reshape(-1)
    rows = history.count + jnp.arange(x.shape[0])
    count = history.count + x.shape[0]
    capacity = history.capacity
    if history.warn_overflow.value:
        jax.lax.cond(
            jnp.any(count > capacity),
            lambda c: jax.debug.callback(functools.partial(_warn_dropped, capacity), c),
            lambda c: None,
            count,
        )
    return history._replace(
        x=history.x.at[rows].set(x, mode="drop"),
        y=history.y.at[rows].set(y, mode="drop"),
        count=count,
    )


def history_grow(history: History, capacity: int) -> History:
    """A copy of ``history`` with room for ``capacity`` rows (Python-side, not traced)."""
    extra = int(capacity) - history.capacity
    if extra < 0:
        raise ValueError(f"cannot shrink a history of capacity {history.capacity} to {capacity}")
    return history._replace(x=_pad_rows(history.x, extra, 0.0), y=_pad_rows(history.y, extra, np.nan))


def _pad_rows(a: Array, extra: int, value: float) -> Array:
    """``a`` with ``extra`` rows of ``value`` appended: on the host when ``a`` is concrete (no program
    to compile, for a study that grows its buffer in a later process too), else ``jnp.pad``."""
    widths = ((0, extra),) + ((0, 0),) * (a.ndim - 1)
    if isinstance(a, jax.core.Tracer):
        return jnp.pad(a, widths, constant_values=value)
    return jax.device_put(np.pad(np.asarray(a), widths, constant_values=value))  # jnp.asarray would compile


def history_best(history: History) -> tuple[Array, Array, Array]:
    """``(index, x, y)`` of the lowest finite value told; index is -1 when none is finite."""
    masked = jnp.where(history.valid, history.y, jnp.inf)
    index = jnp.argmin(masked)
    found = jnp.isfinite(masked[index])
    return jnp.where(found, index, -1).astype(jnp.int32), history.x[index], jnp.where(found, masked[index], jnp.nan)


class State(Protocol):
    """Every strategy state is a NamedTuple pytree with a ``history`` field."""

    history: History

    def _replace(self, **kwargs: Any) -> "State": ...


class Strategy(NamedTuple):
    """A search strategy as three pure functions over a state pytree, plus what drivers may rely on.

    Attributes:
        init: ``(key, space, capacity) -> state``.
        ask: ``(key, state, num) -> (x[num, d] in [0, 1], state)``.
        tell: ``(state, x[q, d], y[q]) -> state``.
        recipe: ``(module, factory name, args, kwargs)`` of a factory-made
            strategy (how it pickles); ``None`` otherwise.
        design_ask: optional ``(key, state, num) -> (x, state)`` that returns
            exactly what ``ask`` returns while ``in_design(state, num)`` is
            True, from a program that compiles in a fraction of a second (the
            initial design of a model-based strategy). Drivers serve the first
            trials with it while ``ask`` compiles in the background.
        in_design: optional ``(state, num) -> bool[]``, True when ``design_ask``
            gives ``ask``'s answer for the next ``num`` points.
        set_pending: optional ``(state, x[p, d]) -> state`` for strategies that
            take into account points asked and not yet told (so parallel
            workers get different suggestions); drivers call it before ``ask``.
        num_points: optional ``(space) -> int``: how many points the strategy
            can hand out in ``space`` before it is exhausted (a grid's size);
            ``None`` when there is no such bound. Drivers refuse a larger
            compiled budget instead of evaluating NaN rows.
        ask_stages: optional ``(first, second)`` that split ``ask`` in two:
            ``first(key, state, num) -> state`` (a model fit, say) and
            ``second(key, state, num) -> (x, state)``, with
            ``second(key, first(key, state, num), num)`` exactly what
            ``ask(key, state, num)`` computes. Drivers that compile programs
            ahead (``Study``) build the two side by side, on two threads, which
            shortens the wait for a large ``ask`` on a multi-core CPU.
        shared: optional strategy whose functions this one has, all but
            ``init``: a factory-made strategy that differs from it only in
            numeric settings, which ``init`` puts in the state as leaves
            (``bayes(beta=8.0)`` and ``bayes()``). Drivers compile those
            functions once for both (``shared``'s programs) and ``init`` for
            each. ``None`` when the strategy is its own.
    """

    init: Callable[[Array, Space, int], Any]
    ask: Callable[[Array, Any, int], tuple[Array, Any]]
    tell: Callable[[Any, Array, Array], Any]
    recipe: Any = None
    design_ask: Optional[Callable[[Array, Any, int], tuple[Array, Any]]] = None
    in_design: Optional[Callable[[Any, int], Array]] = None
    set_pending: Optional[Callable[[Any, Array], Any]] = None
    num_points: Optional[Callable[[Space], int]] = None
    ask_stages: Optional[tuple[Callable[[Array, Any, int], Any], Callable[[Array, Any, int], tuple[Array, Any]]]] = None
    shared: Optional["Strategy"] = None

    def programs(self) -> "Strategy":
        """The strategy whose compiled programs this one runs for everything but ``init``
        (``shared``, or itself)."""
        return self if self.shared is None else self.shared

    def __reduce__(self):
        """Factory-made strategies pickle as their recipe (closures cannot be pickled)."""
        if self.recipe is None:
            raise TypeError("this Strategy was not made by a jaxhpo factory and cannot be pickled")
        return (_rebuild, self.recipe)

    def __repr__(self) -> str:
        """A factory-made strategy shows as its call (``bayes(batch_size=4)``), the same in every process."""
        if self.recipe is None:
            return f"Strategy(init={self.init!r}, ask={self.ask!r}, tell={self.tell!r})"
        _, name, args, kwargs = self.recipe
        return f"{name}({', '.join([repr(a) for a in args] + [f'{k}={v!r}' for k, v in kwargs])})"

    def __deepcopy__(self, memo: dict) -> "Strategy":
        return self  # immutable pure functions: a copy is the same strategy


def check_strategy(where: str, strategy: Any) -> None:
    """A clear error when ``strategy`` is not a ``Strategy`` (a factory passed without calling it, say)."""
    if isinstance(strategy, Strategy):
        return
    hint = ""
    if callable(strategy) and getattr(strategy, "__name__", None):
        hint = f"; did you mean {strategy.__name__}() (the factory called)?"
    raise ValueError(f"{where}: strategy must be a jaxhpo Strategy such as jaxhpo.strategies.bayes(), "
                     f"got strategy={strategy!r}{hint}")


def _rebuild(module: str, name: str, args: tuple, kwargs: tuple) -> "Strategy":
    import importlib

    return getattr(importlib.import_module(module), name)(*args, **dict(kwargs))


def factory(fn: Optional[Callable[..., "Strategy"]] = None, *,
            settings: tuple[str, ...] = ()) -> Callable[..., "Strategy"]:
    """Decorates a strategy factory: results are jitted, picklable (by recipe) and shared for equal arguments.

    Each function of the strategy is wrapped in ``jax.jit`` where it is
    defined (``space``, ``capacity`` and ``num`` static), so eager calls run
    compiled programs, and inside a caller's ``jit`` the inner ``jit`` is
    inlined. Sharing means ``bayes()`` called twice returns the same
    functions, so a second ``Study`` reuses the first one's compiled programs.

    Args:
        fn: the factory (``@factory``), or omitted (``@factory(settings=...)``).
        settings: names of the factory's numeric settings that only its
            strategy's ``init`` reads (it puts them in the state as leaves):
            strategies that differ only in their numbers share every other
            function (``Strategy.shared``, the strategy made with those
            arguments left out), so they compile once. ``None`` is not a
            number: a setting passed as ``None`` may change the programs and
            is kept in the shared strategy's call.

    Example:
        >>> import jaxhpo
        >>> ucb = jaxhpo.strategies.bayes(acquisition="ucb", beta=8.0)
        >>> ucb.shared is jaxhpo.strategies.bayes(acquisition="ucb")
        True
        >>> ucb.ask is ucb.shared.ask and ucb.init is not ucb.shared.init
        True
    """
    if fn is None:
        return lambda f: factory(f, settings=settings)
    cache: dict = {}
    signature = inspect.signature(fn)

    def shared_call(args: tuple, kwargs: dict) -> Optional[tuple]:
        """The call that makes the strategy whose functions this call's strategy shares, or None when it
        is this call (or the arguments do not bind: the factory's own error then says why)."""
        try:
            bound = signature.bind(*args, **kwargs).arguments
        except TypeError:
            return None
        common = tuple(sorted((k, v) for k, v in bound.items() if not (k in settings and real_scalar(v))))
        return None if ((), common) == (args, tuple(sorted(kwargs.items()))) else common

    @functools.wraps(fn)
    def make(*args: Any, **kwargs: Any) -> "Strategy":
        key = (args, tuple(sorted(kwargs.items())))
        try:
            hash(key)
        except TypeError:  # unhashable arguments (an optimizer object...): a fresh, unpicklable strategy
            return jit_strategy(fn(*args, **kwargs))
        if key not in cache:
            own = jit_strategy(fn(*args, **kwargs))._replace(recipe=(fn.__module__, fn.__name__, args, key[1]))
            common = shared_call(args, kwargs) if settings else None
            if common is not None:
                shared = make(**dict(common))
                own = shared._replace(init=own.init, recipe=own.recipe, shared=shared)
            cache[key] = own
        return cache[key]

    return make


def jit_strategy(strategy: "Strategy") -> "Strategy":
    """``strategy`` with ``init``, ``ask``, ``tell``, the design functions and the ask stages in ``jax.jit``.

    ``space``, ``capacity`` and ``num`` are static arguments.
    """

    made: list = []  # the type of state init returns, once init has been traced

    def init(key: Array, space: Space, capacity: int) -> Any:
        state = strategy.init(key, space, capacity)
        made[:] = [type(state)]
        return state

    def checked(f: Callable, where: str, position: int) -> Callable:
        """``f`` that first checks, while it is traced, that its state is one this strategy's init makes."""

        def g(*args: Any, **kwargs: Any) -> Any:
            state = args[position]
            if made and not isinstance(state, made[0]):
                raise ValueError(
                    f"strategy.{where}: state is a {type(state).__name__}, which another strategy's init made; "
                    f"this strategy's state is a {made[0].__name__}: pass the state returned by this strategy's "
                    f"init(key, space, capacity)")
            return f(*args, **kwargs)

        return functools.wraps(f)(g)

    def maybe(f: Optional[Callable], where: str, position: int, **static: Any) -> Optional[Callable]:
        return None if f is None else jax.jit(checked(f, where, position), **static)

    return strategy._replace(
        init=jax.jit(init, static_argnums=(1, 2)),
        ask=maybe(strategy.ask, "ask", 1, static_argnums=2),
        tell=maybe(strategy.tell, "tell", 0),
        design_ask=maybe(strategy.design_ask, "design_ask", 1, static_argnums=2),
        in_design=maybe(strategy.in_design, "in_design", 0, static_argnums=1),
        ask_stages=None if strategy.ask_stages is None else tuple(
            maybe(f, "ask_stages", 1, static_argnums=2) for f in strategy.ask_stages),
    )  # set_pending stays eager: its input's length varies, and it is a handful of operations


def retraced_under_vmap(fn: Callable) -> Callable:
    """``fn`` whose batching is a ``vmap`` of ``fn`` itself, traced at the time it is batched.

    Normally JAX batches an already traced program: a ``vmap`` over a
    caller's ``scan`` or ``jit`` that contains ``fn`` batches ``fn``'s
    equations after ``fn`` has returned. Code that traces inside a local
    context (``bayes()``'s GP, in ``jax.enable_x64(True)``) then sees its
    equations re-bound outside it: float64 literals turn float32 when the
    caller has x64 off. Here the batching rule traces ``fn`` again under
    ``vmap``, so its contexts apply to the batched program too. (Like any
    ``custom_vmap`` function, it cannot be differentiated in reverse mode.)

    Example:
        >>> import jax, jax.numpy as jnp
        >>> double = retraced_under_vmap(lambda x: 2 * x)
        >>> jax.vmap(double)(jnp.arange(3.0)).tolist()
        [0.0, 2.0, 4.0]
    """
    wrapped = jax.custom_batching.custom_vmap(fn)

    @wrapped.def_vmap
    def rule(axis_size: int, in_batched: Any, *args: Any) -> tuple[Any, Any]:
        in_axes = tuple(jax.tree.map(lambda batched: 0 if batched else None, b) for b in in_batched)
        out = jax.vmap(fn, in_axes=in_axes, axis_size=axis_size)(*args)
        return out, jax.tree.map(lambda _: True, out)

    return wrapped


def tell_history(state: Any, x: Array, y: Array) -> Any:
    """A ``tell`` that only records the observation: enough for model-free strategies."""
    return state._replace(history=history_add(state.history, x, y))


def with_pending(state: Any, x: Array) -> Any:
    """A ``set_pending`` for states with a ``pending`` History: its points become ``x[p, d]``.

    Model-based strategies fantasize pending points (asked, not yet told) so
    that parallel workers do not all get the same suggestion. Points past the
    buffer's capacity are dropped (pass the most recent last). Concrete points
    are padded on the host, so one compiled program serves every ``p``.
    """
    pending = state.pending
    capacity, dim = pending.x.shape[-2:]
    if isinstance(x, jax.core.Tracer):
        rows = jnp.asarray(x, pending.x.dtype).reshape(-1, dim)[-capacity:]
        padded = jnp.zeros((capacity, dim), pending.x.dtype).at[: rows.shape[0]].set(rows)
    else:
        rows = np.asarray(x, dtype=pending.x.dtype).reshape(-1, dim)[-capacity:]
        padded = np.zeros((capacity, dim), pending.x.dtype)
        padded[: rows.shape[0]] = rows
    return _set_pending(state, padded, np.int32(rows.shape[0]))


@jax.jit
def _set_pending(state: Any, x: Array, count: Array) -> Any:
    y = jnp.where(jnp.arange(x.shape[0]) < count, 0.0, jnp.nan).astype(state.pending.y.dtype)
    return state._replace(pending=History(jnp.asarray(x, state.pending.x.dtype), y, jnp.asarray(count, jnp.int32)))


def drivers_own_capacity(state: Any) -> Any:
    """``state`` with the overflow warning of its ``history`` off: for drivers that never overfill it.

    The warning is a host callback inside ``tell``; without it, the programs a
    driver compiles are stored in JAX's persistent compilation cache.
    """
    return state._replace(history=state.history._replace(warn_overflow=Static(False)))


def grow_state(state: Any, capacity: int) -> Any:
    """Re-allocates the ``history`` of a state with room for ``capacity`` rows."""
    return state._replace(history=history_grow(state.history, capacity))


def next_capacity(needed: int, minimum: int = 16) -> int:
    """The smallest power of two, at least ``minimum``, that holds ``needed`` rows."""
    capacity = minimum
    while capacity < needed:
        capacity *= 2
    return capacity
