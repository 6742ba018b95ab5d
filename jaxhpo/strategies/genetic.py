"""A genetic algorithm in the unit cube that treats integer and categorical genes as such.

Parents are the best ``pool_size`` points told so far (elitism: the best
point never leaves the pool). Each child takes two tournament winners,
mixes them gene by gene (uniform crossover; continuous genes blend), and
mutates: continuous genes by a Gaussian step, integer genes by a step of at
least one bin, categorical genes by a fresh uniform choice (never a
meaningless "nearby" category). Until ``pool_size`` points have succeeded,
asks sample uniformly.

Example:
    >>> import jax, jaxhpo
    >>> space = jaxhpo.Space({"x": jaxhpo.Float(-2.0, 2.0), "c": jaxhpo.Categorical(["a", "b", "c"])})
    >>> f = lambda p: (p["x"] - 1.0) ** 2 + (p["c"] != 2)
    >>> res = jaxhpo.minimize(f, space, jaxhpo.strategies.genetic(), num_rounds=20, batch_size=8,
    ...                       key=jax.random.key(0))
    >>> int(res.best_params["c"]), bool(res.best_value < 0.05)
    (2, True)
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxhpo.space import Categorical, Int, Space
from jaxhpo.strategies.base import History, Static, Strategy, history_init, tell_history, factory

Array = jax.Array


class GeneticSettings(NamedTuple):
    """The numeric settings of ``genetic()``, leaves of its state (one program serves every value).

    Attributes:
        crossover: probability that a child mixes two parents.
        mutation: per-gene mutation probability (``1 / d`` when ``genetic(mutation=None)``).
        sigma: Gaussian mutation scale for continuous genes.
    """

    crossover: Array
    mutation: Array
    sigma: Array


class GeneticState(NamedTuple):
    """Genetic algorithm state: the history (parents are its best points), the settings, the gene kinds."""

    history: History
    settings: GeneticSettings
    genes: Static  # (bins per gene: 0 = continuous, k = k equal bins), (categorical per gene)


def _below(key: Array, shape: tuple, n: Array) -> Array:
    """Uniform integers in ``[0, n)`` (``n`` may be traced; at least 1)."""
    return jax.random.randint(key, shape, 0, jnp.maximum(jnp.asarray(n, jnp.int32), 1), jnp.int32)


def _bin_centers(u: Array, bins: Array) -> Array:
    k = jnp.maximum(bins, 1).astype(u.dtype)
    return jnp.where(bins > 0, (jnp.floor(jnp.clip(u, 0.0, 1.0 - 1e-7) * k) + 0.5) / k, u)


@factory(settings=("crossover", "mutation", "sigma"))
def genetic(
    pool_size: int = 16,
    tournament: int = 3,
    crossover: float = 0.9,
    mutation: float | None = None,
    sigma: float = 0.1,
) -> Strategy:
    """A genetic algorithm: tournament selection, uniform crossover, typed mutation, elitism.

    Args:
        pool_size: parents kept (the best points so far).
        tournament: competitors per tournament.
        crossover: probability that a child mixes two parents (else it copies one).
        mutation: per-gene mutation probability (default ``1 / d``, at least one gene mutates).
        sigma: Gaussian mutation scale for continuous genes (unit cube).
    """
    for name, v, ok in (("pool_size", pool_size, isinstance(pool_size, int) and pool_size >= 2),
                        ("tournament", tournament, isinstance(tournament, int) and tournament >= 1),
                        ("crossover", crossover, 0.0 <= crossover <= 1.0),
                        ("sigma", sigma, sigma > 0),
                        ("mutation", mutation, mutation is None or 0.0 <= mutation <= 1.0)):
        if not ok:
            raise ValueError(f"genetic: bad {name}={v!r}")

    def init(key: Array, space: Space, capacity: int) -> GeneticState:
        bins, cats = [], []
        for p in space.params.values():
            if isinstance(p, Categorical):
                bins.append(len(p.choices))
                cats.append(True)
            elif isinstance(p, Int) and not p.log:
                bins.append(p.high - p.low + 1)
                cats.append(False)
            else:
                bins.append(0)
                cats.append(False)
        rate = mutation if mutation is not None else 1.0 / space.dim
        settings = GeneticSettings(*(jnp.float32(v) for v in (crossover, rate, sigma)))
        return GeneticState(history_init(capacity, space.dim), settings, Static((tuple(bins), tuple(cats))))

    def ask(key: Array, state: GeneticState, num: int = 1) -> tuple[Array, GeneticState]:
        bins_t, cats_t = state.genes.value
        d = len(bins_t)
        bins = jnp.asarray(np.asarray(bins_t, np.int32))
        cats = jnp.asarray(np.asarray(cats_t, bool))
        dtype = state.history.x.dtype
        k_rand, k_t1, k_t2, k_cross, k_blend, k_mut, k_step, k_cat, k_copy, k_force = jax.random.split(key, 10)
        k = min(pool_size, state.history.capacity)
        masked = jnp.where(state.history.valid, state.history.y, jnp.inf)
        top, pool_idx = jax.lax.top_k(-masked, k)  # the k best, best first, without a full sort
        pool = state.history.x[pool_idx].astype(jnp.float32)
        n_ok = jnp.sum(jnp.isfinite(top))
        ready = n_ok >= k
        # tournaments: the lowest rank among `tournament` random draws wins (pool is sorted best first)
        draws1 = _below(k_t1, (num, tournament), jnp.maximum(n_ok, 1))
        draws2 = _below(k_t2, (num, tournament), jnp.maximum(n_ok, 1))
        a, b = pool[jnp.min(draws1, axis=1)], pool[jnp.min(draws2, axis=1)]
        mix = jax.random.uniform(k_cross, (num, d), jnp.float32) < 0.5
        blend = jax.random.uniform(k_blend, (num, d), jnp.float32)
        child_cont = blend * a + (1.0 - blend) * b
        child = jnp.where(bins > 0, jnp.where(mix, a, b), jnp.where(mix, child_cont, a))
        settings = state.settings
        do_cross = jax.random.uniform(k_copy, (num, 1), jnp.float32) < settings.crossover
        child = jnp.where(do_cross, child, a)
        mutate = jax.random.uniform(k_mut, (num, d), jnp.float32) < settings.mutation
        forced = jax.nn.one_hot(_below(k_force, (num,), d), d, dtype=bool)
        mutate = mutate | (forced & ~jnp.any(mutate, axis=1, keepdims=True))
        step = settings.sigma * jax.random.normal(k_step, (num, d), jnp.float32)
        width = 1.0 / jnp.maximum(bins, 1).astype(jnp.float32)
        int_step = jnp.sign(step) * jnp.maximum(jnp.abs(step), width)
        fresh_cat = jax.random.uniform(k_cat, (num, d), jnp.float32)
        mutated = jnp.where(cats, fresh_cat, jnp.where(bins > 0, child + int_step, child + step))
        child = jnp.where(mutate, mutated, child)
        child = jnp.abs(child)  # reflect at 0 and 1
        child = jnp.where(child > 1.0, 2.0 - child, child)
        child = _bin_centers(jnp.clip(child, 0.0, 1.0), bins)
        uniform = _bin_centers(jax.random.uniform(k_rand, (num, d), jnp.float32), bins)
        x = jnp.where(ready, child, uniform)
        return x.astype(dtype), state

    return Strategy(init, ask, tell_history)
