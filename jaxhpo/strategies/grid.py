"""Grid search: every combination of ``Space.grid(resolution)``, each once, in order.

Past the end of the grid, ``ask`` returns rows of NaN and the state's
``exhausted`` flag is set: the grid never repeats silently. ``minimize``
refuses a budget larger than the grid up front, and ``Study.ask`` raises
``GridExhausted``.

Example:
    >>> import jax, jaxhpo
    >>> space = jaxhpo.Space({"c": jaxhpo.Categorical(["a", "b"]), "x": jaxhpo.Float(0, 1)})
    >>> g = jaxhpo.strategies.grid(resolution=3)
    >>> state = g.init(jax.random.key(0), space, 6)
    >>> x, state = g.ask(jax.random.key(0), state, 6)
    >>> bool(state.exhausted)
    False
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxhpo.space import Space
from jaxhpo.strategies.base import History, SpaceExhausted, Strategy, history_init, tell_history, factory

Array = jax.Array


GridExhausted = SpaceExhausted  # the name under which grids raised it first

class GridState(NamedTuple):
    history: History
    points: Array  # [n, d], the whole grid
    index: Array  # next grid row
    exhausted: Array  # True once an ask went past the last row


@factory
def grid(resolution: int = 5) -> Strategy:
    """Exhaustive grid search.

    Args:
        resolution: values per float parameter (integers with more values than
            this are thinned to ``resolution`` values; categoricals take all).
    """
    if int(resolution) != resolution or resolution < 1:
        raise ValueError(f"grid: resolution must be a positive integer, got resolution={resolution!r}")

    def init(key: Array, space: Space, capacity: int) -> GridState:
        del key
        history = history_init(capacity, space.dim)
        points = jnp.asarray(space.grid(resolution), history.x.dtype)
        return GridState(history, points, jnp.zeros((), jnp.int32), jnp.zeros((), bool))

    def ask(key: Array, state: GridState, num: int = 1) -> tuple[Array, GridState]:
        del key
        size = state.points.shape[0]
        rows = state.index + jnp.arange(num)
        inside = rows < size
        x = jnp.where(inside[:, None], state.points[jnp.minimum(rows, size - 1)], jnp.nan)
        return x, state._replace(index=state.index + num, exhausted=state.exhausted | ~inside[-1])

    def num_points(space: Space) -> int:
        return len(space.grid(resolution))

    return Strategy(init, ask, tell_history, num_points=num_points)
