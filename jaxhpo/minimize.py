"""``minimize``: a whole search over a JAX objective as one compiled program.

The rounds run in a ``lax.scan``: ask a batch, decode it, evaluate the
objective on the batch, tell. Since the search is a pure function of its
key, ``jax.vmap`` over keys runs many independent studies at once.

Example:
    >>> import jax, jaxhpo
    >>> space = jaxhpo.Space({"x": jaxhpo.Float(-2.0, 2.0)})
    >>> result = jaxhpo.minimize(lambda p: (p["x"] - 1.0) ** 2, space,
    ...                          jaxhpo.strategies.sobol(), num_rounds=8,
    ...                          batch_size=4, key=jax.random.key(0))
    >>> bool(result.best_value < 0.05)
    True
    >>> many = jax.vmap(lambda k: jaxhpo.minimize(lambda p: (p["x"] - 1.0) ** 2, space,
    ...     jaxhpo.strategies.random(), num_rounds=8, key=k))(jax.random.split(jax.random.key(0), 16))
    >>> many.best_value.shape
    (16,)
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from jaxhpo import compile_cache, compile_options
from jaxhpo._checks import positive_int
from jaxhpo._objective_key import ObjectiveKey
from jaxhpo.gp.blas import limit_blas_threads
from jaxhpo.space import Space
from jaxhpo.strategies.base import Strategy, check_strategy, drivers_own_capacity, history_best

Array = jax.Array
Objective = Callable[[dict[str, Array]], Array]


class MinimizeResult(NamedTuple):
    """Everything a ``minimize`` run saw, as a pytree (batched under ``vmap``).

    Attributes:
        x: ``[n, d]`` unit-cube points in evaluation order (``n = rounds * batch``).
        y: ``[n]`` values (NaN/inf where the objective failed).
        params: decoded parameters, each ``[n]``.
        failed: ``[n]`` True where the value was not finite.
        best_index: index into ``x``/``y`` of the best finite value (-1 if none).
        best_params: decoded parameters of the best point, each a scalar.
        best_value: the best finite value (NaN if none).
        best_so_far: ``[rounds]`` best finite value after each round.
        state: the final strategy state.
    """

    x: Array
    y: Array
    params: dict[str, Array]
    failed: Array
    best_index: Array
    best_params: dict[str, Array]
    best_value: Array
    best_so_far: Array
    state: Any


def minimize(
    objective: Objective,
    space: Space,
    strategy: Strategy,
    *,
    num_rounds: int,
    batch_size: int = 1,
    key: Array,
) -> MinimizeResult:
    """Minimizes ``objective`` over ``space`` with ``strategy`` in one compiled program.

    Args:
        objective: JAX function from a dict of batched parameters (each
            ``[batch_size]``; categoricals as indices) to values ``[batch_size]``.
            Maximize by returning the negated value.
        space: the search space.
        strategy: any ``Strategy``, e.g. ``jaxhpo.strategies.sobol()``.
        num_rounds: number of ask/evaluate/tell rounds.
        batch_size: points asked and evaluated together per round.
        key: PRNG key; ``vmap`` over keys for independent studies.

    Returns:
        A ``MinimizeResult``.

    Raises:
        ValueError: for a non-positive ``num_rounds`` or ``batch_size``, or a
            grid smaller than the budget.
    """
    num_rounds = positive_int("minimize", "num_rounds", num_rounds)
    batch_size = positive_int("minimize", "batch_size", batch_size)
    if not isinstance(space, Space):
        raise ValueError(f"minimize: space must be a jaxhpo.Space, got space={space!r}")
    check_strategy("minimize", strategy)
    if not _is_key(key):
        raise ValueError(f"minimize: key must be a JAX PRNG key such as jax.random.key(0), got key={key!r}")
    key_shape = key.shape if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) else key.shape[:-1]
    if key_shape != ():
        raise ValueError(
            f"minimize: key must be one PRNG key, got a batch of keys of shape {key_shape}; for one search "
            f"per key, vmap over them: jax.vmap(lambda k: jaxhpo.minimize(..., key=k))(keys)"
        )
    capacity = num_rounds * batch_size
    points = None if strategy.num_points is None else strategy.num_points(space)
    if points is not None and points < capacity:
        raise ValueError(
            f"minimize: the strategy has {points} points to hand out (a grid's size) but num_rounds * "
            f"batch_size = {capacity}; lower the budget or raise the grid resolution"
        )
    # The search runs in the caller's precision: the objective sees the dtypes the
    # caller's settings give, and points and values come back in the caller's
    # default float. A model-based strategy keeps its own float64 boundary inside
    # its ask (bayes(): a local x64 context, traced again under a caller's vmap by
    # strategies.base.retraced_under_vmap).
    dtype = jnp.result_type(float)
    objective = ObjectiveKey(objective)  # a fresh but identical lambda reuses the compiled search
    if isinstance(key, jax.core.Tracer):  # under the caller's jit/vmap: nothing runs here
        return _run(objective, space, strategy, num_rounds, batch_size, dtype, key)
    # called directly: the top-level program (jaxhpo's XLA options), run to completion with BLAS
    # limited (jaxhpo.gp.blas)
    compile_cache.ensure()
    with limit_blas_threads():
        # the search compiles for the strategy's shared functions (Strategy.shared: bayes(beta=8.0)
        # runs bayes()'s), from a state its own init makes in a small program of its own
        k_run, state = _start_top(space, strategy, num_rounds * batch_size, key)
        return jax.block_until_ready(_search_top(objective, space, strategy.programs(), num_rounds, batch_size,
                                                 dtype, k_run, state))


def _is_key(key: Any) -> bool:
    """A new-style PRNG key (``jax.random.key``) or a legacy ``uint32[2]`` one (``jax.random.PRNGKey``)."""
    dtype = getattr(key, "dtype", None)
    if dtype is None:
        return False
    if jnp.issubdtype(dtype, jax.dtypes.prng_key):
        return True
    return dtype == jnp.uint32 and getattr(key, "shape", ())[-1:] == (2,)


def _run(
    objective: Objective, space: Space, strategy: Strategy, num_rounds: int, batch_size: int, dtype: Any, key: Array
) -> MinimizeResult:
    k_run, state = _start(space, strategy, num_rounds * batch_size, key)
    return _search(objective, space, strategy, num_rounds, batch_size, dtype, k_run, state)


def _start(space: Space, strategy: Strategy, capacity: int, key: Array) -> tuple[Array, Any]:
    """The key of the rounds and the strategy's first state, from the search's key."""
    k_init, k_run = jax.random.split(key)
    # sized for the whole budget: no overflow check (its host callback would keep the program out of the cache)
    return k_run, drivers_own_capacity(strategy.init(k_init, space, capacity))


def _search(objective: Objective, space: Space, strategy: Strategy, num_rounds: int, batch_size: int, dtype: Any,
            k_run: Array, state: Any) -> MinimizeResult:
    """The rounds of ask, evaluate and tell from ``state``, and their result."""

    def one_round(state: Any, k: Array) -> tuple[Any, tuple[Array, Array]]:
        x, state = strategy.ask(k, state, batch_size)
        out = objective(space.decode(x))
        if out is None or isinstance(out, (dict, str)):
            raise ValueError(f"minimize: objective must return an array of {batch_size} values (one per point of "
                             f"the batch it is given), got {type(out).__name__}: {out!r}")
        y = jnp.asarray(out)
        if jnp.iscomplexobj(y):
            raise ValueError("minimize: objective returned complex values; return real ones (for example the "
                             "absolute value or the real part) so that nothing is dropped silently")
        if y.shape != (batch_size,):
            raise ValueError(
                f"minimize: objective must return values of shape ({batch_size},) for a batch of "
                f"{batch_size}, got shape {y.shape}"
            )
        y = y.astype(x.dtype)
        y = jnp.where(jnp.all(jnp.isfinite(x), axis=-1), y, jnp.nan)  # past a grid's end
        state = strategy.tell(state, x, y)
        return state, (x, y)

    state, (xs, ys) = jax.lax.scan(one_round, state, jax.random.split(k_run, num_rounds))
    ys = ys.astype(dtype)
    x = xs.reshape(num_rounds * batch_size, space.dim)
    y = ys.reshape(-1)
    per_round = jnp.min(jnp.where(jnp.isfinite(ys), ys, jnp.inf), axis=1)
    best_so_far = jax.lax.cummin(per_round)
    best_so_far = jnp.where(jnp.isfinite(best_so_far), best_so_far, jnp.nan)
    params = space.decode(x)
    best_index, _, _ = history_best(state.history)  # the history holds exactly x, y in order
    best_value = jnp.where(best_index >= 0, y[jnp.maximum(best_index, 0)], jnp.nan)
    best_params = jax.tree.map(lambda v: v[jnp.maximum(best_index, 0)], params)
    return MinimizeResult(
        x=x,
        y=y,
        params=params,
        failed=~jnp.isfinite(y),
        best_index=best_index,
        best_params=best_params,
        best_value=best_value,
        best_so_far=best_so_far,
        state=state,
    )


# minimize called directly: two top-level programs (jaxhpo's XLA options)
_start_top = compile_options.jit(_start, compile_options.SMALL_PROGRAM_OPTIONS, static_argnums=(0, 1, 2))
_search_top = compile_options.jit(_search, static_argnums=(0, 1, 2, 3, 4, 5))
_run = jax.jit(_run, static_argnums=(0, 1, 2, 3, 4, 5))  # under the caller's jit or vmap
