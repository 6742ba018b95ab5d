"""Acquisition optimization over the space as it will be evaluated: candidates, refinement, picks.

Apart from any acquisition (as Optuna keeps ``_gp/optim_mixed.py`` apart from
``acqf.py``): ``maximize`` takes a score function ``x [n, d] -> [n]`` and finds
its best unseen configuration; ``thompson_picks`` takes a joint posterior over
candidates. Candidates are snapped to what will be run (integers to their bin,
categories to a choice), so the score judges exactly the configuration that
will be evaluated, and a point whose configuration was already evaluated,
pending, or picked earlier in the batch is never chosen while a new one exists
(unless ``repeats``).

Example:
    >>> import jax, jax.numpy as jnp, jaxhpo
    >>> from jaxhpo.gp.kernels import Layout
    >>> layout = Layout.from_space(jaxhpo.Space({"x": jaxhpo.Float(0.0, 1.0), "y": jaxhpo.Float(0.0, 1.0)}))
    >>> score = lambda x: -jnp.sum((x - 0.3) ** 2, axis=-1)   # best at (0.3, 0.3)
    >>> with jax.enable_x64(True):   # float64 inside, as bayes() calls it
    ...     top, top_ok = jnp.full((1, 2), 0.5), jnp.array([True])
    ...     seen_x, seen_m = jnp.zeros((1, 2)), jnp.array([False])
    ...     x = maximize(jax.random.key(0), score, top, top_ok, layout, seen_x, seen_m,
    ...                  count=256, refine_starts=4, refine_steps=30, repeats=False)
    ...     bool(jnp.all(jnp.abs(x - 0.3) < 0.02))
    True
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import optax

from jaxhpo.gp import gp
from jaxhpo.gp.kernels import Layout, same_points, snap, unseen
from jaxhpo.gp.linalg import cholesky_and_inverse
from jaxhpo.strategies.sampling import sobol_directions, sobol_points

Array = jax.Array
ScoreFn = Callable[[Array], Array]  # x [n, d] -> scores [n], larger is better


def enumerated(layout: Layout, count: int) -> bool:
    """Whether the candidates are every configuration of the space (all discrete, at most ``1.25 count``)."""
    size = layout.num_configurations
    return size is not None and size <= count + max(count // 4, 1)


def candidates(key: Array, top: Array, top_ok: Array, layout: Layout, count: int) -> Array:
    """``count`` shifted Sobol points plus ``count // 4`` perturbations of ``top``, snapped; or, in a small
    all-discrete space (``enumerated``), every configuration."""
    if enumerated(layout, count):
        return jnp.asarray(layout.configurations(), jnp.float64)
    d = layout.dim
    k_sobol, k_local = jax.random.split(key)
    bits = jax.random.bits(k_sobol, (d + 1,), jnp.uint32)  # the digital shift and the start, one draw
    start = (bits[d] >> 12).astype(jnp.int32)  # in [0, 2**20)
    uniform = sobol_points(jnp.asarray(sobol_directions(d)), bits[:d], start + jnp.arange(count)).astype(jnp.float64)
    local = perturb(k_local, top, top_ok, layout, max(count // 4, 1))
    return snap(jnp.concatenate([uniform, local]), layout)


def perturb(key: Array, top: Array, top_ok: Array, layout: Layout, count: int) -> Array:
    """``count`` perturbations of the best points ``top`` (rows where ``top_ok``; the best more often).

    Two random draws serve every choice (each draw is XLA code of its own: fewer draws, a faster
    compile).
    """
    k_uniform, k_noise = jax.random.split(key)
    d = layout.dim
    u = gp.uniform(k_uniform, (count, 3 + 2 * d))  # parent, scale, forced coordinate, d coordinates, d categories
    # parents: the best more often (index ~ floor(k u^2)), among those that hold a told point
    available = jnp.maximum(jnp.sum(top_ok), 1)
    parents = top[jnp.floor(available * u[:, 0] ** 2).astype(jnp.int32)]
    scales = jnp.array([0.2, 0.05, 0.01, 0.002])[jnp.minimum(jnp.floor(4 * u[:, 1]), 3).astype(jnp.int32)][:, None]
    forced = jnp.minimum(jnp.floor(d * u[:, 2]), d - 1).astype(jnp.int32)
    chosen = (u[:, 3:3 + d] < min(1.0, max(0.2, 2.0 / d))) | (jnp.arange(d) == forced[:, None])
    moved = jnp.clip(parents + scales * gp.normal(k_noise, (count, d)), 0.0, 1.0)
    categorical = jnp.asarray(layout.categorical)
    moved = jnp.where(categorical, u[:, 3 + d:], moved)
    return jnp.where(chosen, moved, parents)


def admissible(scores: Array, x: Array, seen_x: Array, seen_m: Array, repeats: bool) -> Array:
    """Scores with non-finite values made very low and, unless ``repeats``, seen points at -inf."""
    scores = jnp.where(jnp.isfinite(scores), scores, -1e300)
    return scores if repeats else jnp.where(unseen(x, seen_x, seen_m), scores, -jnp.inf)


def refine(score: ScoreFn, starts: Array, layout: Layout, steps: int) -> tuple[Array, Array]:
    """Projected Adam ascent of ``score`` from each row of ``starts`` in the unit cube (categorical
    coordinates held), keeping the best point seen along each path; returns that point snapped (as it
    will be evaluated, ``snap``) and its score.

    The rows move together: ``score`` scores each row on its own, so one pullback of ones gives every
    row its own gradient (one traced program for all rows, no ``vmap``). Every score is taken by the
    loop's one instance of ``score``: ``steps + 1`` points along each path (the start, then after each
    step), then one more pass scores the snapped best points. Each separate call of ``score`` would be
    XLA code of its own (a third of the proposal program's compile for two of them).

    Returns:
        ``(x [n, d], scores [n])``: the best point of each path, snapped, and its score.
    """
    movable = jnp.asarray(~layout.categorical, jnp.float64)
    objective = lambda x: -score(x)  # noqa: E731  [n] values, lower is better
    opt = optax.adam(optax.cosine_decay_schedule(0.05, max(steps, 1), alpha=0.01))

    def step(carry, i):
        x, state, best_x, best_v = carry
        last = i > steps  # the final pass: the snapped best points, not a step
        at = jnp.where(last, snap(best_x, layout), x)
        v, pullback = jax.vjp(objective, at)
        (g,) = pullback(jnp.ones_like(v))
        g = jnp.where(jnp.isfinite(g), g, 0.0) * movable
        better = (v < best_v) & ~last
        best_x, best_v = jnp.where(better[:, None], at, best_x), jnp.where(better, v, best_v)
        updates, state = opt.update(g, state, x)
        return (jnp.clip(optax.apply_updates(x, updates), 0.0, 1.0), state, best_x, best_v), v

    init = (starts, opt.init(starts), starts, jnp.full(starts.shape[:1], jnp.inf, starts.dtype))
    (_, _, best_x, _), values = jax.lax.scan(step, init, jnp.arange(steps + 2))
    return snap(best_x, layout), -values[-1]


def maximize(key: Array, score: ScoreFn, top: Array, top_ok: Array, layout: Layout, seen_x: Array, seen_m: Array,
             *, count: int, refine_starts: int, refine_steps: int, repeats: bool) -> Array:
    """The unseen configuration ``[d]`` with the best ``score``: candidates scored at once, the best global
    and local ones and the best observed point (``top[0]``, where Optuna's GPSampler also starts) refined,
    then snapped and scored again. NaN when the candidates enumerate the space and none is new.

    Args:
        key: PRNG key of the candidates.
        score: ``x [n, d] -> [n]``, larger is better (differentiable for the refinement).
        top, top_ok: the best observed points ``[k, d]`` (best first) and which rows hold one.
        layout: the space's layout (snapping, categorical coordinates).
        seen_x, seen_m: configurations already evaluated, pending or picked, and which rows hold one.
        count: random candidates (plus a quarter as many perturbations of ``top``).
        refine_starts: candidates refined by gradient ascent.
        refine_steps: Adam steps per refinement.
        repeats: whether a seen configuration may be picked again.
    """
    k_cand, _ = jax.random.split(key)
    cands = candidates(k_cand, top, top_ok, layout, count)
    # an enumerated space: its first rows play the global ones, the last the local ones (its one row both,
    # in a space of one configuration)
    globals_ = max(1, min(count, cands.shape[0] - 1))
    locals_ = min(globals_, cands.shape[0] - 1)
    scores = admissible(score(cands), cands, seen_x, seen_m, repeats)
    n_global = max(1, (refine_starts - 1) // 2)
    n_local = max(1, refine_starts - 1 - n_global)
    global_idx = gp.top_indices(scores[:globals_], n_global)
    local_idx = locals_ + gp.top_indices(scores[locals_:], n_local)
    starts = jnp.concatenate([cands[global_idx], cands[local_idx], snap(top[:1], layout)])
    refined, refined_scores = refine(score, starts, layout, refine_steps)
    pool = jnp.concatenate([refined, cands[global_idx[:1]], cands[local_idx[:1]]])
    final = jnp.concatenate([admissible(refined_scores, refined, seen_x, seen_m, repeats),
                             scores[global_idx[:1]], scores[local_idx[:1]]])  # candidates: scored above
    return _chosen(pool, final, cands, scores, enumerated(layout, count))


def _chosen(pool: Array, final: Array, cands: Array, scores: Array, is_enumerated: bool) -> Array:
    """The best point of the refined pool; when none is new, the best new candidate; NaN when the
    candidates enumerate the space and none is new (only possible unless ``repeats``)."""
    best_pool, best_cand = gp.argmax(final), gp.argmax(scores)
    x = jnp.where(final[best_pool] > -jnp.inf, pool[best_pool], cands[best_cand])
    if not is_enumerated:
        return x
    return jnp.where(jnp.maximum(final[best_pool], scores[best_cand]) > -jnp.inf, x, jnp.nan)


def thompson_picks(key: Array, joint: Callable[[Array], tuple[Array, Array]], scale: Array, top: Array,
                   top_ok: Array, num: int, layout: Layout, seen_x: Array, seen_m: Array, *, count: int,
                   repeats: bool) -> Array:
    """``num`` distinct configurations ``[num, d]``, each the minimum of one joint posterior draw over a
    shared candidate set (Thompson sampling).

    Args:
        key: PRNG key (candidates and draws).
        joint: ``x [n, d] -> (mean [n], cov [n, n])``, the joint posterior.
        scale: the posterior's amplitude (sets the jitter added to ``cov``).
        top, top_ok, layout, seen_x, seen_m, count, repeats: as ``maximize``.
        num: draws (batch members).
    """
    k_cand, k_draw = jax.random.split(key)
    cands = candidates(k_cand, top, top_ok, layout, count)
    mean, cov = joint(cands)
    n = cands.shape[0]
    chol, _ = cholesky_and_inverse(cov + 1e-8 * scale * jnp.eye(n))
    chol = jnp.where(jnp.isfinite(chol), chol, jnp.diag(jnp.sqrt(jnp.clip(jnp.diag(cov), 1e-12))))
    draws = mean + gp.normal(k_draw, (num, n)) @ chol.T

    # distinct picks: each draw takes its best candidate not taken by earlier draws; a pick takes
    # every candidate of the same configuration (snapped candidates repeat in discrete spaces)
    def take(taken, sample):
        i = gp.argmax(jnp.where(taken, -jnp.inf, -sample))
        return taken | same_points(cands, cands[i][None])[:, 0], i

    taken = jnp.zeros(n, bool) if repeats else ~unseen(cands, seen_x, seen_m)
    exhausted = jnp.sum(~taken) - jnp.arange(num) <= 0  # [num]: no new candidate left for this draw
    _, picks = jax.lax.scan(take, taken, draws)
    if not enumerated(layout, count) or repeats:
        return cands[picks]
    return jnp.where(exhausted[:, None], jnp.nan, cands[picks])
