"""CMA-ES (Hansen's default settings, active covariance update) in the unit cube, with optional IPOP restarts.

A sampled point outside the cube is mirrored into ``[0, 1]^d`` (reflection
at the bounds) and, by default, the distribution is updated with the
mirrored (repaired) points; ``bounds="periodic"`` updates with the
unbounded points instead. One generation is ``popsize`` told points.
``ask`` hands out points in any batch size and remembers each one (its
internal point and the generation it was drawn in) in a ring of
``4 * max population`` slots; ``tell`` matches every told point to the asked
one it equals, whatever the order of the tells, and the update runs each
time ``popsize`` points have been told. A told point drawn in an earlier
generation (a batch larger than the population, a slow worker) or never
asked at all joins the current generation as an injected solution, its step
clipped to the Mahalanobis length ``sqrt(n) + 2n / (n + 2)`` (Hansen,
"Injecting External Solutions Into CMA-ES", 2011), so no evaluation is
wasted and none misleads the update. Restarts (IPOP) double the population
inside fixed buffers of the largest size, so nothing recompiles.

Example:
    >>> import jax, jaxhpo
    >>> space = jaxhpo.Space({f"x{i}": jaxhpo.Float(-5.0, 5.0) for i in range(3)})
    >>> sphere = lambda p: sum((p[f"x{i}"] - 1.0) ** 2 for i in range(3))
    >>> s = jaxhpo.strategies.cma_es()
    >>> res = jaxhpo.minimize(sphere, space, s, num_rounds=40, batch_size=7, key=jax.random.key(0))
    >>> bool(res.best_value < 1e-3)
    True
"""

from __future__ import annotations

import math
from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp

from jaxhpo import lapack
from jaxhpo._checks import real_scalar
from jaxhpo.space import Space
from jaxhpo.strategies.base import History, Static, Strategy, history_add, history_init, factory

Array = jax.Array


class CMAState(NamedTuple):
    """CMA-ES state.

    Attributes:
        history: every told point (phenotypes in the unit cube).
        mean, sigma, cov, p_sigma, p_c: the search distribution and its paths.
        eigvecs, eigvals: ``cov = eigvecs diag(eigvals) eigvecs^T`` (refreshed per generation).
        genotypes: ``[max_popsize, d]`` internal points told in the current generation.
        fitness: ``[max_popsize]`` their values.
        injected: ``[max_popsize]`` True for those drawn in another generation (or never asked).
        told: how many of the current generation have been told.
        pool: ``[4 max_popsize, d]`` internal points handed out by ``ask`` (a ring).
        pool_generation: ``[4 max_popsize]`` the update count when each was drawn.
        pool_open: ``[4 max_popsize]`` True while a handed-out point waits for its value.
        asked: points handed out so far (the ring's cursor).
        updates: updates so far, restarts included (a generation's identity).
        popsize: the current population size (doubles on an IPOP restart).
        generation: generations completed since the last restart.
        restarts: restarts so far.
        best_recent: ``[window]`` best value of recent generations (stagnation test).
        key: PRNG key for restart means.
        settings: the numeric settings (``CMASettings``), leaves: one program serves every value.
        static: the initial population size and whether restarts are on.
    """

    history: History
    mean: Array
    sigma: Array
    cov: Array
    p_sigma: Array
    p_c: Array
    eigvecs: Array
    eigvals: Array
    genotypes: Array
    fitness: Array
    injected: Array
    told: Array
    pool: Array
    pool_generation: Array
    pool_open: Array
    asked: Array
    updates: Array
    popsize: Array
    generation: Array
    restarts: Array
    best_recent: Array
    key: Array
    settings: "CMASettings"
    static: Static


class CMASettings(NamedTuple):
    """The numeric settings of ``cma_es()``, leaves of its state (``cma_es(sigma0=0.1)`` and
    ``cma_es()`` share their programs but ``init``).

    Attributes:
        sigma0: the step size of a new search (the first and each restart's).
        tol_x: restart when ``sigma * sqrt(max eigenvalue)`` falls below this.
        tol_fun: restart when recent generations' best values span less than this.
    """

    sigma0: Array
    tol_x: Array
    tol_fun: Array


def mirror(x: Array) -> Array:
    """Reflects any real point into ``[0, 1]`` (period 2, identity inside the cube)."""
    r = jnp.mod(x, 2.0)
    return jnp.where(r > 1.0, 2.0 - r, r)


def default_popsize(dim: int) -> int:
    """Hansen's default ``4 + floor(3 ln d)``."""
    return 4 + int(math.floor(3 * math.log(max(dim, 1))))


def _weights(lam: Array, size: int, n: Array) -> tuple[Array, Array, Array, Array]:
    """Active-CMA recombination weights (Hansen 2016) for the dynamic population ``lam`` in ``size`` slots.

    Returns ``(weights, mu_eff, c_1, c_mu)``: positive weights sum to 1 and drive
    the mean; negative weights (the worst half) only shrink the covariance.
    """
    i = jnp.arange(size, dtype=jnp.float32)
    inside = i < lam
    mu = jnp.floor(lam / 2.0)
    raw = jnp.where(inside, jnp.log((lam + 1.0) / 2.0) - jnp.log(i + 1.0), 0.0)
    pos = jnp.where(i < mu, raw, 0.0)
    neg = jnp.where((i >= mu) & inside, raw, 0.0)
    mu_eff = jnp.sum(pos) ** 2 / jnp.sum(pos**2)
    mu_eff_neg = jnp.sum(neg) ** 2 / jnp.maximum(jnp.sum(neg**2), 1e-30)
    c_1 = 2.0 / ((n + 1.3) ** 2 + mu_eff)
    c_mu = jnp.minimum(1.0 - c_1, 2.0 * (mu_eff - 2.0 + 1.0 / mu_eff) / ((n + 2.0) ** 2 + mu_eff))
    alpha = jnp.minimum(jnp.minimum(1.0 + c_1 / c_mu, 1.0 + 2.0 * mu_eff_neg / (mu_eff + 2.0)),
                        (1.0 - c_1 - c_mu) / (n * c_mu))
    w = pos / jnp.sum(pos) + alpha * neg / jnp.maximum(jnp.sum(jnp.abs(neg)), 1e-30)
    return w, mu_eff, c_1, c_mu


@factory(settings=("sigma0", "tol_x", "tol_fun"))
def cma_es(
    sigma0: float = 0.3,
    popsize: Optional[int] = None,
    x0: str = "center",
    bounds: str = "repair",
    restarts: int = 0,
    tol_x: float = 1e-7,
    tol_fun: float = 1e-10,
) -> Strategy:
    """CMA-ES with Hansen's default learning rates, mirrored bounds and optional IPOP restarts.

    Args:
        sigma0: initial step size (the cube has side 1).
        popsize: points per generation (default ``4 + floor(3 ln d)``).
        x0: initial mean: ``"center"`` of the cube or ``"random"`` (uniform, from the init key).
        bounds: ``"repair"`` (default): points are mirrored into the cube and the
            distribution learns from the mirrored points; ``"periodic"``: it learns
            from the unbounded internal points (a periodic extension of the objective).
            Measured on Ackley5, Rosenbrock4 and Levy10 (500 evaluations, 10 seeds),
            repair reached lower regret on all three.
        restarts: IPOP restarts allowed (each doubles the population, from a
            new random mean); 0 runs one CMA-ES.
        tol_x: restart when ``sigma * sqrt(max eigenvalue)`` falls below this.
        tol_fun: restart when recent generations' best values span less than this.

    Returns:
        A ``Strategy``; ``ask(key, state, num)`` gives ``num`` points of the current generation.
    """
    if not (isinstance(sigma0, (int, float)) and 0 < sigma0 <= 1):
        raise ValueError(f"cma_es: sigma0 must be in (0, 1], got sigma0={sigma0!r}")
    if popsize is not None and (not isinstance(popsize, int) or popsize < 2):
        raise ValueError(f"cma_es: popsize must be an int >= 2, got popsize={popsize!r}")
    if bounds not in ("repair", "periodic"):
        raise ValueError(f"cma_es: bounds must be 'repair' or 'periodic', got bounds={bounds!r}")
    repair = bounds == "repair"
    if x0 not in ("center", "random"):
        raise ValueError(f"cma_es: x0 must be 'center' or 'random', got x0={x0!r}")
    if not isinstance(restarts, int) or restarts < 0:
        raise ValueError(f"cma_es: restarts must be an int >= 0, got restarts={restarts!r}")
    for name, value in (("tol_x", tol_x), ("tol_fun", tol_fun)):
        if not (real_scalar(value) and math.isfinite(value) and value >= 0):
            raise ValueError(f"cma_es: {name} must be a finite number >= 0, got {name}={value!r}")

    def init(key: Array, space: Space, capacity: int) -> CMAState:
        d = space.dim
        lam0 = popsize or default_popsize(d)
        size = lam0 * 2**restarts
        window = 10 + int(math.ceil(30 * d / lam0))
        mean = None if x0 == "center" else jax.random.uniform(jax.random.fold_in(key, 1), (d,), jnp.float32)
        settings = CMASettings(jnp.float32(sigma0), jnp.float32(tol_x), jnp.float32(tol_fun))
        fresh = _fresh(key, d, size, window, jnp.float32(lam0), jnp.zeros((), jnp.int32), Static((lam0, restarts)),
                       history_init(capacity, d), settings, mean=mean)
        ring = POOL_FACTOR * size
        return fresh._replace(
            pool=jnp.zeros((ring, d), jnp.float32),
            pool_generation=jnp.zeros((ring,), jnp.int32),
            pool_open=jnp.zeros((ring,), bool),
            asked=jnp.zeros((), jnp.int32),
            updates=jnp.zeros((), jnp.int32),
        )

    def _fresh(key, d, size, window, lam, n_restarts, static, history, settings, mean=None, carried=None):
        """A new search distribution; ``carried`` keeps the asked-point ring and the update count."""
        if mean is None:
            mean = jnp.full((d,), 0.5, jnp.float32)
        ring = dict(pool=None, pool_generation=None, pool_open=None, asked=None, updates=None)
        if carried is not None:
            ring = {name: getattr(carried, name) for name in ring}
        return CMAState(
            history=history,
            mean=mean,
            sigma=settings.sigma0,
            cov=jnp.eye(d, dtype=jnp.float32),
            p_sigma=jnp.zeros((d,), jnp.float32),
            p_c=jnp.zeros((d,), jnp.float32),
            eigvecs=jnp.eye(d, dtype=jnp.float32),
            eigvals=jnp.ones((d,), jnp.float32),
            genotypes=jnp.zeros((size, d), jnp.float32),
            fitness=jnp.full((size,), jnp.inf, jnp.float32),
            injected=jnp.zeros((size,), bool),
            told=jnp.zeros((), jnp.int32),
            popsize=lam,
            generation=jnp.zeros((), jnp.int32),
            restarts=n_restarts,
            best_recent=jnp.full((window,), jnp.inf, jnp.float32),
            key=key,
            settings=settings,
            static=static,
            **ring,
        )

    def ask(key: Array, state: CMAState, num: int = 1) -> tuple[Array, CMAState]:
        d = state.mean.shape[0]
        z = jax.random.normal(key, (num, d), jnp.float32)
        g = state.mean + state.sigma * ((z * jnp.sqrt(state.eigvals)) @ state.eigvecs.T)
        g = mirror(g) if repair else g
        slots = jnp.mod(state.asked + jnp.arange(num), state.pool.shape[0])
        return mirror(g).astype(state.history.x.dtype), state._replace(
            pool=state.pool.at[slots].set(g),
            pool_generation=state.pool_generation.at[slots].set(state.updates),
            pool_open=state.pool_open.at[slots].set(True),
            asked=state.asked + num,
        )

    def tell(state: CMAState, x: Array, y: Array) -> CMAState:
        history = history_add(state.history, x, y)
        x = jnp.asarray(x).reshape(-1, state.mean.shape[0])
        y = jnp.asarray(y, jnp.float32).reshape(-1)
        q = x.shape[0]
        genotypes, injected, state = _match(state, x)
        # the generation so far, then the new points: an update for each popsize of them
        size = state.genotypes.shape[0]
        queue_g = jnp.concatenate([state.genotypes, genotypes])
        queue_f = jnp.concatenate([state.fitness, jnp.where(jnp.isfinite(y), y, jnp.inf)])
        queue_i = jnp.concatenate([state.injected, injected])
        waiting = jnp.concatenate([jnp.arange(size) < state.told, jnp.ones((q,), bool)])
        order = jnp.argsort(~waiting, stable=True)  # waiting rows first, in order
        queue = (queue_g[order], queue_f[order], queue_i[order], jnp.sum(waiting).astype(jnp.int32))
        lam0, _ = state.static.value
        state = state._replace(history=history)

        def maybe_update(carry, _):
            state, (g, f, inj, n) = carry
            lam = state.popsize.astype(jnp.int32)

            def update(args):
                state, (g, f, inj, n) = args
                state = _update(state._replace(genotypes=g[:size], fitness=f[:size], injected=inj[:size]))
                # what is left belongs to the new generation, as injected solutions
                rest = jnp.arange(g.shape[0]) + lam
                keep = lambda a: a[jnp.minimum(rest, g.shape[0] - 1)]  # noqa: E731
                return state, (keep(g), keep(f), jnp.ones_like(inj), n - lam)

            return jax.lax.cond(n >= lam, update, lambda a: a, (state, (g, f, inj, n))), None

        # at most one update per popsize told (plus one for the generation already under way)
        (state, (g, f, inj, n)), _ = jax.lax.scan(maybe_update, (state, queue), None, length=1 + (q - 1) // lam0)
        unused = jnp.arange(size) >= n
        return state._replace(
            genotypes=jnp.where(unused[:, None], 0.0, g[:size]),
            fitness=jnp.where(unused, jnp.inf, f[:size]),
            injected=inj[:size] & ~unused,
            told=n,
        )

    def _match(state: CMAState, x: Array) -> tuple[Array, Array, CMAState]:
        """Internal points of the told ``x[q, d]``: each matched to the open asked point it equals.

        A point asked in another generation, or not asked by this state at
        all (its internal point is then the told point itself), is flagged
        injected. Matched asked points are closed, so two equal tells take two
        asked points.
        """
        tolerance = 1e-5  # told points come back in the history's dtype (float32 at least)

        def one(pool_open, xi):
            gap = jnp.max(jnp.abs(mirror(state.pool) - xi.astype(jnp.float32)), axis=1)
            gap = jnp.where(pool_open, gap, jnp.inf)
            j = jnp.argmin(gap)
            found = gap[j] <= tolerance
            genotype = jnp.where(found, state.pool[j], xi.astype(jnp.float32))
            injected = ~found | (state.pool_generation[j] != state.updates)
            return pool_open.at[j].set(pool_open[j] & ~found), (genotype, injected)

        pool_open, (genotypes, injected) = jax.lax.scan(one, state.pool_open, x)
        return genotypes, injected, state._replace(pool_open=pool_open)

    def _update(state: CMAState) -> CMAState:
        d = state.mean.shape[0]
        size = state.genotypes.shape[0]
        lam = state.popsize
        n = jnp.float32(d)
        valid = jnp.arange(size) < lam
        fit = jnp.where(valid, state.fitness, jnp.inf)
        order = jnp.argsort(fit)
        w, mu_eff, c_1, c_mu = _weights(lam, size, n)
        inv_sqrt = (state.eigvecs / jnp.sqrt(state.eigvals)) @ state.eigvecs.T
        ys = _clip_injected((state.genotypes[order] - state.mean) / state.sigma, state.injected[order], inv_sqrt, n)
        w_pos = jnp.maximum(w, 0.0)
        y_w = w_pos @ ys
        c_sigma = (mu_eff + 2.0) / (n + mu_eff + 5.0)
        d_sigma = 1.0 + 2.0 * jnp.maximum(0.0, jnp.sqrt((mu_eff - 1.0) / (n + 1.0)) - 1.0) + c_sigma
        c_c = (4.0 + mu_eff / n) / (n + 4.0 + 2.0 * mu_eff / n)
        chi_n = jnp.sqrt(n) * (1.0 - 1.0 / (4.0 * n) + 1.0 / (21.0 * n**2))
        mean = state.mean + state.sigma * y_w
        p_sigma = (1.0 - c_sigma) * state.p_sigma + jnp.sqrt(c_sigma * (2.0 - c_sigma) * mu_eff) * (inv_sqrt @ y_w)
        gen = state.generation + 1
        norm_ps = jnp.linalg.norm(p_sigma)
        h_sigma = (norm_ps / jnp.sqrt(1.0 - (1.0 - c_sigma) ** (2.0 * gen)) < (1.4 + 2.0 / (n + 1.0)) * chi_n)
        h_sigma = h_sigma.astype(jnp.float32)
        p_c = (1.0 - c_c) * state.p_c + h_sigma * jnp.sqrt(c_c * (2.0 - c_c) * mu_eff) * y_w
        # negative weights act on directions rescaled to the Mahalanobis length sqrt(n)
        mahal = jnp.sum((ys @ inv_sqrt.T) ** 2, axis=1)
        w_cov = jnp.where(w >= 0, w, w * n / jnp.maximum(mahal, 1e-20))
        rank_mu = (ys * w_cov[:, None]).T @ ys
        delta = (1.0 - h_sigma) * c_c * (2.0 - c_c)
        decay = 1.0 - c_1 - c_mu * jnp.sum(w) + delta * c_1
        cov = decay * state.cov + c_1 * jnp.outer(p_c, p_c) + c_mu * rank_mu
        cov = 0.5 * (cov + cov.T)
        sigma = state.sigma * jnp.exp(jnp.minimum((c_sigma / d_sigma) * (norm_ps / chi_n - 1.0), 1.0))
        lapack.initialize()  # at trace time, the fast way (eigh calls LAPACK on CPU)
        eigvals, eigvecs = jnp.linalg.eigh(cov)
        eigvals = jnp.maximum(eigvals, 1e-20)
        best = jnp.min(fit)
        best_recent = jnp.roll(state.best_recent, 1).at[0].set(best)
        new = state._replace(
            mean=mean, sigma=sigma, cov=cov, p_sigma=p_sigma, p_c=p_c, eigvecs=eigvecs, eigvals=eigvals,
            fitness=jnp.full((size,), jnp.inf, jnp.float32), injected=jnp.zeros((size,), bool),
            told=jnp.zeros((), jnp.int32), generation=gen, best_recent=best_recent, updates=state.updates + 1,
        )
        _, max_restarts = state.static.value
        if max_restarts == 0:
            return new
        window = state.best_recent.shape[0]
        span = jnp.max(jnp.where(jnp.isfinite(best_recent), best_recent, -jnp.inf)) - jnp.min(best_recent)
        tol_x, tol_fun = state.settings.tol_x, state.settings.tol_fun
        stagnant = (gen >= window) & (span < tol_fun)
        tiny = state.sigma * jnp.sqrt(jnp.max(eigvals)) < tol_x
        ill = jnp.max(eigvals) > 1e7 * jnp.min(eigvals)
        flat = (jnp.max(jnp.where(valid, fit, -jnp.inf)) - best) < tol_fun
        restart = (tiny | ill | stagnant | flat) & (state.restarts < max_restarts)

        def do_restart(s):
            mean0 = jax.random.uniform(jax.random.fold_in(s.key, s.restarts), (d,), jnp.float32)
            lam_new = jnp.minimum(s.popsize * 2.0, jnp.float32(size))
            return _fresh(s.key, d, size, window, lam_new, s.restarts + 1, s.static, s.history, s.settings, mean=mean0,
                          carried=s)

        return jax.lax.cond(restart, do_restart, lambda s: s, new)

    return Strategy(init, ask, tell)


POOL_FACTOR = 4  # asked points remembered per slot of the largest generation


def _clip_injected(ys: Array, injected: Array, inv_sqrt: Array, n: Array) -> Array:
    """Steps of injected solutions shortened to Mahalanobis length ``sqrt(n) + 2n / (n + 2)`` at most (Hansen 2011)."""
    length = jnp.sqrt(jnp.sum((ys @ inv_sqrt.T) ** 2, axis=1))
    limit = jnp.sqrt(n) + 2.0 * n / (n + 2.0)
    scale = jnp.where(injected, jnp.minimum(1.0, limit / jnp.maximum(length, 1e-20)), 1.0)
    return ys * scale[:, None]
