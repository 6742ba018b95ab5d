"""Bayesian optimization with a Gaussian-process surrogate, as a pure ``Strategy``.

``ask`` runs, in one traced function and in float64: robust standardization
of the told values (failed ones masked out), with the GP's constant prior
mean at a pessimistic level (their 90th percentile, after De Ath et al.
2020); a marginal-likelihood fit of the GP hyperparameters with
``optax.lbfgs``, a few iterations from the previous fit at each ask and,
every ``refit_every`` observations, a full fit (to convergence, plus fresh
starts on a subset); then acquisition maximization: a candidate set (a
randomly shifted Sobol set plus perturbations of the best points) scored in
one call, and the best global and local candidates and the best observed
point refined by projected Adam in the unit cube. Batches (``num > 1``) use
the kriging believer: each chosen point is observed, in fantasy, at its
posterior mean, which leaves the mean alone and shrinks the variance around
it (a low-rank update, ``gp.with_fantasies``), so the next one looks
elsewhere (measured better than Thompson batches in ``benchmarks/bench_bo.py
--only batch``). Points pending in a ``Study`` (asked, not told) are
fantasized the same way. Thompson sampling draws one joint posterior sample
per batch member on a shared candidate set.

The first ``num_initial`` points come from a scrambled Sobol sequence.

Example:
    >>> import jax, jaxhpo
    >>> space = jaxhpo.Space({"x": jaxhpo.Float(-2.0, 2.0), "y": jaxhpo.Float(-2.0, 2.0)})
    >>> result = jaxhpo.minimize(lambda p: p["x"] ** 2 + p["y"] ** 2, space,
    ...                          jaxhpo.strategies.bayes(num_initial=5), num_rounds=12,
    ...                          key=jax.random.key(0))
    >>> bool(result.best_value < 0.05)
    True
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxhpo.gp import acquisition as acq
from jaxhpo.gp import gp
from jaxhpo.gp.kernels import KERNELS, Layout, same_points, snap, unseen
from jaxhpo.gp.linalg import cholesky_and_inverse
from jaxhpo.space import Space
from jaxhpo.strategies.base import (
    History,
    Static,
    Strategy,
    factory,
    history_init,
    retraced_under_vmap,
    tell_history,
    with_pending,
)
from jaxhpo.strategies.sampling import scrambled_sobol, sobol_directions, sobol_points

Array = jax.Array

ACQUISITIONS = ("log_ei", "ei", "pi", "ucb", "thompson")


class BayesState(NamedTuple):
    history: History
    pending: History  # points asked elsewhere and not yet told (Study); y unused
    raw: Array  # last fitted GP hyperparameters (unconstrained), float32
    fit_count: Array  # observations told at the last fit
    refit_count: Array  # observations told at the last full fit
    directions: Array  # scrambled Sobol directions for the initial design
    shift: Array
    index: Array  # next initial-design index
    layout: Static


@factory
def bayes(
    acquisition: str = "log_ei",
    kernel: str = "matern52",
    num_initial: int = 10,
    num_candidates: int | None = None,
    num_restarts: int = 3,
    fit_steps: int = 50,
    warm_steps: int = 3,
    fit_tol: float = 3e-3,
    refit_every: int = 20,
    refine_starts: int = 8,
    refine_steps: int = 20,
    beta: float = 4.0,
    prior_mean_quantile: float | None = 90.0,
    max_fit_points: int = 128,
    restart_fit_points: int = 64,
    pending_capacity: int = 16,
    repeats: bool = False,
    noisy: bool = False,
) -> Strategy:
    """GP-based Bayesian optimization.

    Args:
        acquisition: ``"log_ei"`` (default), ``"ei"``, ``"pi"``, ``"ucb"`` or ``"thompson"``.
        kernel: ``"matern52"`` (default), ``"matern32"`` or ``"rbf"``; ARD length
            scales; categorical coordinates use an overlap kernel.
        num_initial: Sobol points before the GP takes over.
        num_candidates: random candidates scored per pick (default ``min(1024, 256 * d)``),
            plus a quarter as many perturbations of the best points. Measured in
            ``benchmarks/bench_bo.py``: 1,024 in place of ``min(2048, 256 * d)``
            (a change from 5-d up) gave the same regret (10 seeds, five
            functions) and a third less scoring time in 6-d.
        num_restarts: hyperparameter fit starts in a full fit (the first warm-started).
        fit_steps: most L-BFGS iterations per start in a full fit (each stops
            earlier once converged).
        warm_steps: most L-BFGS iterations of the warm start between full fits,
            per observation told since the previous fit (at most ``fit_steps``).
            The optimum moves little with one more observation; measured in
            ``benchmarks/bench_bo.py``: 3 gave the same regret as running to
            convergence (10 seeds, five functions) at 40 % of the fitting time.
        fit_tol: a start has converged when the largest gradient entry of the
            per-observation negative log likelihood falls below this. Measured in
            ``benchmarks/bench_bo.py``: 3e-3 gave the same regret as 1e-3 on all
            five functions (10 seeds) with 20-25 % faster asks.
        refit_every: a full fit (the warm start to convergence and the fresh
            starts) runs for the first 8 model-based picks and then each time
            the number of observations told passes a multiple of
            ``refit_every``; in between, only the warm start runs,
            ``warm_steps`` iterations per observation told since the previous
            fit. Measured in
            ``benchmarks/bench_bo.py`` (10 seeds, five functions): every 5 gave
            the same regret as every 1 at a third of the fitting time, every
            10 the same as every 5, and every 20 (with ``warm_steps=3``) the
            same again.
        refine_starts: best candidates refined by gradient ascent.
        refine_steps: Adam steps per refinement.
        beta: exploration weight for ``"ucb"``.
        prior_mean_quantile: the GP's constant prior mean is set to this
            percentile of the (standardized, warped) observed values, a
            pessimistic level (after De Ath et al. 2020), so that the empty
            corners of the search space do not look promising; ``None`` puts it
            at their mean. Measured in ``benchmarks/bench_bo.py`` (10-20 seeds):
            90 against ``None`` moved Hartmann6 from -2.8 to -4.3 median log10
            regret, Levy10 from 1.0 to 0.6-0.7, Ackley5 from 0.55 to 0.4 and
            Rosenbrock4 from 1.05 to 0.8, Branin unchanged (-4.6 to -4.7).
        max_fit_points: hyperparameters are fit on a random subset of at most
            this many observations (the posterior always uses all of them).
        restart_fit_points: the fresh starts of a full fit run on a random
            subset of at most this many observations (a quarter of the cost per
            likelihood evaluation at 128 against 64); the best replaces the
            warm fit only if its likelihood on the fitting data is higher.
        pending_capacity: most pending points taken into account in a ``Study``.
        repeats: allow proposing a configuration already evaluated, pending, or
            earlier in the same batch. By default (``False``, for deterministic
            objectives) every proposal is a configuration not seen before:
            candidates are compared as they will be evaluated (integers and
            categories snapped to their values), and when every configuration
            of an all-discrete space has been seen the strategy returns NaN
            rows, which ``Study`` reports as ``SpaceExhausted`` and ``minimize``
            records as failed. An all-discrete space of at most 1.25 times the
            candidate count configurations is enumerated exactly; in larger
            discrete spaces a repeat is proposed only if none of the candidates
            is new.
        noisy: the objective is noisy (the validation loss of a stochastic
            training run, say): the incumbent of the improvement-based
            acquisitions is the lowest posterior mean at an observed point,
            not the luckiest observed value, and repeats are allowed.
    """
    if acquisition not in ACQUISITIONS:
        raise ValueError(f"bayes: acquisition must be one of {ACQUISITIONS}, got acquisition={acquisition!r}")
    if kernel not in KERNELS:
        raise ValueError(f"bayes: kernel must be one of {tuple(KERNELS)}, got kernel={kernel!r}")
    for name, value, low in (
        ("num_initial", num_initial, 1),
        ("num_restarts", num_restarts, 1),
        ("fit_steps", fit_steps, 0),
        ("warm_steps", warm_steps, 0),
        ("refit_every", refit_every, 1),
        ("refine_starts", refine_starts, 1),
        ("refine_steps", refine_steps, 0),
        ("max_fit_points", max_fit_points, 2),
        ("restart_fit_points", restart_fit_points, 2),
        ("pending_capacity", pending_capacity, 1),
    ):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < low:
            raise ValueError(f"bayes: {name} must be an int >= {low}, got {name}={value!r}")
    if num_candidates is not None and (not isinstance(num_candidates, int) or num_candidates < refine_starts):
        raise ValueError(f"bayes: num_candidates must be an int >= refine_starts, got num_candidates={num_candidates!r}")
    if prior_mean_quantile is not None and not (
        isinstance(prior_mean_quantile, (int, float)) and not isinstance(prior_mean_quantile, bool)
        and 0.0 <= prior_mean_quantile <= 100.0
    ):
        raise ValueError(f"bayes: prior_mean_quantile must be None or a number in [0, 100], "
                         f"got prior_mean_quantile={prior_mean_quantile!r}")
    if not (isinstance(fit_tol, (int, float)) and np.isfinite(fit_tol) and fit_tol > 0):
        raise ValueError(f"bayes: fit_tol must be a finite number > 0, got fit_tol={fit_tol!r}")
    for name, value in (("repeats", repeats), ("noisy", noisy)):
        if not isinstance(value, (bool, np.bool_)):
            raise ValueError(f"bayes: {name} must be True or False, got {name}={value!r}")
    repeats = bool(repeats) or bool(noisy)
    if not np.isfinite(beta) or beta < 0:
        raise ValueError(f"bayes: beta must be a finite number >= 0, got beta={beta!r}")

    def init(key: Array, space: Space, capacity: int) -> BayesState:
        history = history_init(capacity, space.dim)
        directions, shift = scrambled_sobol(key, space.dim)
        return BayesState(
            history=history,
            pending=history_init(pending_capacity, space.dim, history.x.dtype),
            raw=jnp.zeros((gp.num_hyper(space.dim),), jnp.float32),
            fit_count=jnp.zeros((), jnp.int32),
            refit_count=jnp.zeros((), jnp.int32),
            directions=directions,
            shift=shift,
            index=jnp.zeros((), jnp.int32),
            layout=Static(Layout.from_space(space)),
        )

    def in_design(state: BayesState, num: int = 1) -> Array:
        """True while the next points come from the initial design (too few observations for the GP).

        In a finite space the design takes at most half of its configurations.
        """
        del num  # the whole batch comes from the design when its first point does
        size = state.layout.value.num_configurations
        initial = num_initial if size is None else min(num_initial, max(2, size // 2))
        return ~((state.history.count >= initial) & (jnp.sum(state.history.valid) >= 2))

    def design_ask(key: Array, state: BayesState, num: int = 1) -> tuple[Array, BayesState]:
        """The next ``num`` points of the scrambled Sobol design (``ask`` while ``in_design``).

        Unless ``repeats``, points whose configuration was already evaluated,
        is pending or came earlier in the batch are skipped (the design moves
        on along the sequence).
        """
        del key
        dtype = state.history.x.dtype
        if repeats:
            x = sobol_points(state.directions, state.shift, state.index + jnp.arange(num)).astype(dtype)
            return x, state._replace(index=(state.index + num).astype(jnp.int32))
        layout = state.layout.value
        window = num + DESIGN_LOOKAHEAD
        x = sobol_points(state.directions, state.shift, state.index + jnp.arange(window)).astype(dtype)
        seen_x, seen_m = _seen(state, layout)
        snapped = snap(x, layout)
        fresh = unseen(snapped, seen_x.astype(dtype), seen_m)
        earlier = jnp.tril(jnp.ones((window, window), bool), -1)  # [i, j]: j comes before i
        repeated = jnp.any(same_points(snapped, snapped) & earlier, axis=1)
        fresh = fresh & ~repeated
        (rows,) = jnp.nonzero(fresh, size=num, fill_value=window)
        found = rows < window
        # none new in the window (a nearly explored small space): the next points in order
        used = jnp.where(jnp.all(found), rows[-1] + 1, num)
        rows = jnp.where(jnp.all(found), rows, jnp.arange(num))
        return x[rows], state._replace(index=(state.index + used).astype(jnp.int32))

    def ask(key: Array, state: BayesState, num: int = 1) -> tuple[Array, BayesState]:
        return retraced_under_vmap(functools.partial(_ask, num=num))(key, state)

    def _ask(key: Array, state: BayesState, num: int = 1) -> tuple[Array, BayesState]:
        initial, after_design = design_ask(key, state, num)  # exact 24-bit values in any float dtype
        # The model runs in a local float64 context; outputs keep the history's
        # dtype. A caller's vmap traces this function again, inside the context
        # (retraced_under_vmap), instead of batching a traced program after the
        # context has closed (float64 literals would then turn float32).
        with jax.enable_x64(True):
            dtype = state.history.x.dtype
            layout = state.layout.value
            use_model = ~in_design(state, num)

            def model(_):
                x, raw, full = _propose(key, state, num, layout)
                count = state.history.count.astype(jnp.int32)
                return x.astype(dtype), raw.astype(jnp.float32), count, jnp.where(full, count, state.refit_count)

            def design(_):
                return initial, state.raw, state.fit_count, state.refit_count

            x, raw, fit_count, refit_count = jax.lax.cond(use_model, model, design, None)
            index = jnp.where(use_model, state.index, after_design.index).astype(jnp.int32)
        return x, state._replace(raw=raw, index=index, fit_count=fit_count, refit_count=refit_count)

    def _propose(key: Array, state: BayesState, num: int, layout: Layout) -> tuple[Array, Array, Array]:
        k_fit, k_subset, k_pick = jax.random.split(key, 3)
        history, pending = state.history, state.pending
        d = layout.dim
        x_obs = snap(jnp.where(jnp.isfinite(history.x), history.x, 0.0).astype(jnp.float64), layout)
        y_obs, m_obs = gp.standardize_outputs(history.y.astype(jnp.float64), history.filled)
        if prior_mean_quantile is not None:
            y_obs = gp.pessimistic_prior_mean(y_obs, m_obs, prior_mean_quantile)

        # 1. hyperparameters: one L-BFGS loop over the starts. The warm start (the previous
        # fit, a few steps, or to convergence in a full fit) on up to max_fit_points rows;
        # in a full fit, fresh starts on the first restart_fit_points of them; the fit
        # with the best likelihood on all fitting rows wins.
        # rows in random order, masked ones last: the first rows are a random subset
        order = jnp.argsort(jnp.where(m_obs, gp.uniform(k_subset, m_obs.shape), 2.0))[:max_fit_points]
        fit_data = jax.tree.map(lambda a: a[order], gp.GPData(x_obs, y_obs, m_obs))
        starts = gp.initial_raw(k_fit, d, num_restarts)  # the prior centre, then random draws
        warm = state.raw.astype(jnp.float64)
        has_warm = jnp.any(warm != 0)
        count = history.count
        # full fits: for the first 8 model-based picks, then whenever the count of told
        # observations passes a multiple of refit_every (in one step or, in batches, over it)
        full = ~has_warm | (count < num_initial + 8) | (count // refit_every > state.fit_count // refit_every)
        # between full fits, warm_steps iterations per observation told since the last fit
        # (a batch of 4 moves the optimum more than one observation does)
        steps = jnp.minimum(warm_steps * jnp.maximum(count - state.fit_count, 1), fit_steps)
        starts = starts.at[0].set(jnp.where(has_warm, warm, starts[0]))
        max_steps = jnp.full((num_restarts,), fit_steps, jnp.int32).at[0].set(jnp.where(full, fit_steps, steps))
        rows = jnp.full((num_restarts,), min(restart_fit_points, max_fit_points), jnp.int32)
        rows = rows.at[0].set(fit_data.mask.shape[0])
        raw = gp.fit(starts, fit_data, layout, kernel, max_steps, jnp.where(full, num_restarts, 1), fit_tol, rows)

        # 2. posterior over the observations, its variance conditioned on fantasies
        # (kriging believer) at the pending points and, later, this batch's earlier picks
        post = gp.posterior(raw, gp.GPData(x_obs, y_obs, m_obs), layout, kernel)
        p_cap = pending.capacity
        x_fant = jnp.concatenate([snap(pending.x.astype(jnp.float64), layout), jnp.zeros((num - 1, d))])
        m_fant = jnp.concatenate([pending.filled, jnp.zeros(num - 1, bool)])
        post = gp.with_fantasies(post, x_fant, m_fant, layout, kernel)
        best = incumbent(post, x_obs, y_obs, m_obs, layout, kernel, noisy)
        ranked = jnp.argsort(jnp.where(m_obs, y_obs, jnp.inf))
        top = x_obs[ranked[: min(5, history.capacity)]]
        top_ok = m_obs[ranked[: min(5, history.capacity)]]

        # what was evaluated (failed trials included), is pending, or is earlier in this batch
        seen = lambda x_fant, m_fant: (jnp.concatenate([x_obs, x_fant]),  # noqa: E731
                                       jnp.concatenate([history.filled, m_fant]))
        if acquisition == "thompson":
            return _thompson(k_pick, post, top, top_ok, num, layout, *seen(x_fant, m_fant)), raw, full

        def pick(carry, k):
            post, x_fant, m_fant, slot = carry
            x = _maximize(k, post, best, top, top_ok, layout, *seen(x_fant, m_fant))
            if num > 1:  # the pick joins the fantasies for the next members of the batch
                row = p_cap + jnp.minimum(slot, num - 2)
                found = jnp.all(jnp.isfinite(x))  # NaN: the space is exhausted
                x_fant = x_fant.at[row].set(jnp.where(found, x, 0.0))
                m_fant = m_fant.at[row].set(found)
                post = gp.with_fantasies(post, x_fant, m_fant, layout, kernel)
            return (post, x_fant, m_fant, slot + 1), x

        _, xs = jax.lax.scan(pick, (post, x_fant, m_fant, 0), jax.random.split(k_pick, num))
        return xs, raw, full

    def _score(post: gp.Posterior, x: Array, best: Array, layout: Layout) -> Array:
        mean, var = gp.predict(post, x, layout, kernel)
        if acquisition == "ucb":
            return acq.ucb(mean, var, beta)
        return acq.ACQUISITIONS[acquisition](mean, var, best)

    def _candidates(key: Array, top: Array, top_ok: Array, layout: Layout, count: int) -> Array:
        if _enumerated(layout, count):  # a small all-discrete space: all of it
            return jnp.asarray(layout.configurations(), jnp.float64)
        d = layout.dim
        k_shift, k_start, k_local = jax.random.split(key, 3)
        shift = jax.random.bits(k_shift, (d,), jnp.uint32)
        start = jax.random.randint(k_start, (), 0, 2**20, jnp.int32)
        uniform = sobol_points(jnp.asarray(sobol_directions(d)), shift, start + jnp.arange(count)).astype(jnp.float64)
        local = _perturb(k_local, top, top_ok, layout, max(count // 4, 1))
        return snap(jnp.concatenate([uniform, local]), layout)

    def _candidate_count(layout: Layout) -> int:
        """Random candidates scored per pick (``num_candidates``, default ``min(1024, 256 d)``)."""
        return num_candidates or min(1024, 256 * layout.dim)

    def _admissible(scores: Array, x: Array, seen_x: Array, seen_m: Array) -> Array:
        """Scores with non-finite values made very low and, unless ``repeats``, seen points at -inf."""
        scores = jnp.where(jnp.isfinite(scores), scores, -1e300)
        return scores if repeats else jnp.where(unseen(x, seen_x, seen_m), scores, -jnp.inf)

    def _maximize(key: Array, post: gp.Posterior, best: Array, top: Array, top_ok: Array, layout: Layout,
                  seen_x: Array, seen_m: Array) -> Array:
        k_cand, _ = jax.random.split(key)
        requested = _candidate_count(layout)
        cands = _candidates(k_cand, top, top_ok, layout, requested)
        count = min(requested, cands.shape[0] - 1)  # an enumerated space: its first rows play the global ones
        scores = _admissible(_score(post, cands, best, layout), cands, seen_x, seen_m)
        # starts: the best global candidates, the best local ones (around the best
        # points), and the best observed point itself (where Optuna's GPSampler also starts)
        n_global = max(1, (refine_starts - 1) // 2)
        n_local = max(1, refine_starts - 1 - n_global)
        global_idx = gp.top_indices(scores[:count], n_global)
        local_idx = count + gp.top_indices(scores[count:], n_local)
        starts = jnp.concatenate([cands[global_idx], cands[local_idx], snap(top[:1], layout)])
        movable = jnp.asarray(~layout.categorical, jnp.float64)
        objective = lambda x: -_score(post, x[None], best, layout)[0]  # noqa: E731
        opt = optax.adam(optax.cosine_decay_schedule(0.05, max(refine_steps, 1), alpha=0.01))

        def refine(x0):
            def step(carry, _):
                x, state, best_x, best_v = carry
                v, g = jax.value_and_grad(objective)(x)
                g = jnp.where(jnp.isfinite(g), g, 0.0) * movable
                better = v < best_v
                best_x, best_v = jnp.where(better, x, best_x), jnp.where(better, v, best_v)
                updates, state = opt.update(g, state, x)
                return (jnp.clip(optax.apply_updates(x, updates), 0.0, 1.0), state, best_x, best_v), None

            init = (x0, opt.init(x0), x0, jnp.inf)
            (x, _, best_x, best_v), _ = jax.lax.scan(step, init, None, length=refine_steps)
            v = objective(x)
            return jnp.where(v < best_v, x, best_x)

        refined = snap(jax.vmap(refine)(starts), layout)
        pool = jnp.concatenate([refined, cands[global_idx[:1]], cands[local_idx[:1]]])
        final = _admissible(_score(post, pool, best, layout), pool, seen_x, seen_m)
        return _chosen(pool, final, cands, scores, _enumerated(layout, requested))

    def _thompson(key: Array, post: gp.Posterior, top: Array, top_ok: Array, num: int, layout: Layout,
                  seen_x: Array, seen_m: Array) -> Array:
        k_cand, k_draw = jax.random.split(key)
        count = _candidate_count(layout)
        cands = _candidates(k_cand, top, top_ok, layout, count)
        mean, cov = gp.predict_joint(post, cands, layout, kernel)
        n = cands.shape[0]
        chol, _ = cholesky_and_inverse(cov + 1e-8 * post.amplitude * jnp.eye(n))
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
        if not _enumerated(layout, count) or repeats:
            return cands[picks]
        return jnp.where(exhausted[:, None], jnp.nan, cands[picks])

    return Strategy(init, ask, tell_history, design_ask=design_ask, in_design=in_design, set_pending=with_pending)


DESIGN_LOOKAHEAD = 32  # Sobol points the initial design looks ahead to skip repeated configurations


def _seen(state: BayesState, layout: Layout) -> tuple[Array, Array]:
    """Snapped points told or pending in ``state``, and the mask of rows that hold one."""
    x = jnp.concatenate([state.history.x, state.pending.x])
    x = snap(jnp.where(jnp.isfinite(x), x, 0.0), layout)
    return x, jnp.concatenate([state.history.filled, state.pending.filled])


def incumbent(post: gp.Posterior, x_obs: Array, y_obs: Array, m_obs: Array, layout: Layout, kernel: str,
              noisy: bool) -> Array:
    """The value to improve on: the lowest observed (standardized) value or, when ``noisy``, the lowest
    posterior mean at an observed point (a lucky noisy draw does not set the bar)."""
    if noisy:
        mean, _ = gp.predict(post._replace(fantasy_mask=jnp.zeros((0,), bool)), x_obs, layout, kernel)
        return jnp.min(jnp.where(m_obs, mean, jnp.inf))
    return jnp.min(jnp.where(m_obs, y_obs, jnp.inf))


def _enumerated(layout: Layout, count: int) -> bool:
    """Whether the candidates are every configuration of the space (all discrete, at most ``1.25 count``)."""
    size = layout.num_configurations
    return size is not None and size <= count + max(count // 4, 1)


def _chosen(pool: Array, final: Array, cands: Array, scores: Array, enumerated: bool) -> Array:
    """The best point of the refined pool; when none is new, the best new candidate; NaN when the
    candidates enumerate the space and none is new (only possible unless ``repeats``)."""
    best_pool, best_cand = gp.argmax(final), gp.argmax(scores)
    x = jnp.where(final[best_pool] > -jnp.inf, pool[best_pool], cands[best_cand])
    if not enumerated:
        return x
    return jnp.where(jnp.maximum(final[best_pool], scores[best_cand]) > -jnp.inf, x, jnp.nan)


def _perturb(key: Array, top: Array, top_ok: Array, layout: Layout, count: int) -> Array:
    """``count`` perturbations of the best points (the best more often)."""
    k_parent, k_scale, k_dims, k_pick, k_noise, k_cat = jax.random.split(key, 6)
    d = layout.dim
    # parents: the best more often (index ~ floor(k u^2)), among those that hold a told point
    available = jnp.maximum(jnp.sum(top_ok), 1)
    parents = top[jnp.floor(available * gp.uniform(k_parent, (count,)) ** 2).astype(jnp.int32)]
    scales = jnp.array([0.2, 0.05, 0.01, 0.002])[jax.random.randint(k_scale, (count, 1), 0, 4, jnp.int32)]
    chosen = gp.uniform(k_dims, (count, d)) < min(1.0, max(0.2, 2.0 / d))
    chosen = chosen.at[jnp.arange(count), jax.random.randint(k_pick, (count,), 0, d, jnp.int32)].set(True)
    moved = jnp.clip(parents + scales * gp.normal(k_noise, (count, d)), 0.0, 1.0)
    categorical = jnp.asarray(layout.categorical)
    moved = jnp.where(categorical, gp.uniform(k_cat, (count, d)), moved)
    return jnp.where(chosen, moved, parents)

