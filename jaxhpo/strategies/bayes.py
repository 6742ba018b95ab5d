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
point refined by projected Adam in the unit cube. Batches (``num > 1``) on
continuous spaces use the kriging believer: each chosen point is observed, in
fantasy, at its posterior mean, which leaves the mean alone and shrinks the
variance around it (a low-rank update, ``gp.with_fantasies``), so the next
one looks elsewhere. On spaces with an integer or categorical coordinate a
batch is by default (``batch="auto"``) the acquisition's pick, then Thompson
draws given it: one joint posterior sample per further member on a shared
candidate set, each member the best unseen candidate of its draw (measured
better there, and for populations to fuse: ``population.search`` asks for
such batches on any space). Points pending in a ``Study`` (asked, not told) are
fantasized as the believer does. The first ``num_initial`` points come from
a scrambled Sobol sequence.

The parts: ``BayesConfig`` (what is static: counts, shapes, choices) and
``BayesSettings`` (numeric settings, pytree leaves of the state: one program
serves every value, and a caller may ``vmap`` over them); the acquisitions
(``jaxhpo.gp.acquisition.make``); the acquisition optimizer
(``jaxhpo.strategies.acquisition_optimizer``, which takes a score function);
the hyperparameter fit schedule (``fit_hyperparameters``); ``propose`` wires
them for one ask (the module is about 580 lines, most of them the factory's
argument checks and documentation). Why the defaults are what they are, with the measurements:
``benchmarks/README.md`` ("bayes() settings").

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
from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

from jaxhpo.gp import acquisition as acq
from jaxhpo.gp import gp
from jaxhpo.gp.kernels import KERNELS, Layout, same_points, snap, unseen
from jaxhpo.space import Space
from jaxhpo.strategies import acquisition_optimizer as optimizer
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
from jaxhpo.strategies.sampling import scrambled_sobol, sobol_points

Array = jax.Array

ACQUISITIONS = ("log_ei", "ei", "pi", "log_pi", "ucb", "thompson")
BATCH_MODES = ("auto", "believer", "thompson", "hybrid", "penalized")
DESIGN_LOOKAHEAD = 32  # Sobol points the initial design looks ahead to skip repeated configurations


class BayesConfig(NamedTuple):
    """What is static in ``bayes()``: counts and shapes (each value its own program), and choices."""

    acquisition: str
    kernel: str
    num_initial: int
    num_candidates: Optional[int]
    num_restarts: int
    fit_steps: int
    warm_steps: int
    refit_every: int
    refine_starts: int
    refine_steps: int
    max_fit_points: int
    restart_fit_points: int
    pending_capacity: int
    repeats: bool
    noisy: bool
    batch: str  # how a batch of several points is chosen: "auto", "believer", "thompson" or "hybrid"
    prior_mean: bool  # whether the prior mean sits at BayesSettings.prior_mean_quantile (else the mean)

    def thompson_batch(self, layout: Layout, num: int) -> bool:
        """Whether ``num`` points are picked by Thompson draws, all of them or all but the first
        (``hybrid_batch``); else by the acquisition and the kriging believer.

        ``acquisition="thompson"`` always; a batch (``num > 1``) with ``batch="thompson"`` or
        ``"hybrid"``, or with ``batch="auto"`` on a space with an integer or categorical coordinate
        (there as hybrid batches, measured better: ``benchmarks/README.md``, "bench_mixed.py"); the
        believer stays on continuous spaces, where it was better.
        """
        if self.acquisition == "thompson":
            return True
        if num == 1 or self.batch in ("believer", "penalized"):
            return False
        return self.batch in ("thompson", "hybrid") or any(layout.discrete)

    def penalized_batch(self, num: int) -> bool:
        """Whether the members of a batch after the first are the acquisition's picks under local
        penalization (``batch="penalized"``), not the kriging believer's."""
        return self.batch == "penalized" and num > 1 and self.acquisition != "thompson"

    def hybrid_batch(self, layout: Layout, num: int) -> bool:
        """Whether a Thompson batch (``thompson_batch``) takes its first member by the acquisition
        (``batch="hybrid"``, and ``"auto"`` on a space with an integer or categorical coordinate):
        the best single pick, then draws from the posterior given it."""
        hybrid = self.batch == "hybrid" or (self.batch == "auto" and any(layout.discrete))
        return hybrid and self.acquisition != "thompson" and self.thompson_batch(layout, num)

    def candidate_count(self, layout: Layout) -> int:
        """Random candidates scored per pick (``num_candidates``, default ``min(1024, 256 d)``)."""
        return self.num_candidates or min(1024, 256 * layout.dim)


class BayesSettings(NamedTuple):
    """The numeric settings of ``bayes()``, leaves of its state: traced, so one program serves every value.

    Attributes:
        beta: UCB's exploration weight.
        fit_tol: gradient tolerance of the hyperparameter fit.
        prior_mean_quantile: percentile of the observed values the GP's prior mean sits at.
    """

    beta: Array
    fit_tol: Array
    prior_mean_quantile: Array


class BayesState(NamedTuple):
    history: History
    pending: History  # points asked elsewhere and not yet told (Study); y unused
    raw: Array  # last fitted GP hyperparameters (unconstrained), in the caller's float dtype
    fit_count: Array  # observations told at the last fit
    refit_count: Array  # observations told at the last full fit
    directions: Array  # scrambled Sobol directions for the initial design
    shift: Array
    index: Array  # next initial-design index
    settings: BayesSettings
    layout: Static


@factory(settings=("beta", "fit_tol", "prior_mean_quantile"))
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
    batch: str = "auto",
) -> Strategy:
    """GP-based Bayesian optimization.

    Args:
        acquisition: ``"log_ei"`` (default), ``"ei"``, ``"pi"`` (scored as log PI: the same
            maximizer, usable gradients), ``"log_pi"``, ``"ucb"`` or ``"thompson"``.
        kernel: ``"matern52"`` (default), ``"matern32"`` or ``"rbf"``; ARD length
            scales; categorical coordinates use an overlap kernel.
        num_initial: Sobol points before the GP takes over.
        num_candidates: random candidates scored per pick (default ``min(1024, 256 * d)``),
            plus a quarter as many perturbations of the best points.
        num_restarts: hyperparameter fit starts in a full fit (the first warm-started).
        fit_steps: most L-BFGS iterations per start in a full fit (each stops
            earlier once converged).
        warm_steps: most L-BFGS iterations of the warm start between full fits,
            per observation told since the previous fit (at most ``fit_steps``).
        fit_tol: a start has converged when the largest gradient entry of the
            per-observation negative log likelihood falls below this (a state
            leaf: ``BayesSettings.fit_tol``).
        refit_every: a full fit (the warm start to convergence and the fresh
            starts) runs for the first 8 model-based picks and then each time
            the number of observations told passes a multiple of
            ``refit_every``; in between, only the warm start runs,
            ``warm_steps`` iterations per observation told since the previous fit.
        refine_starts: best candidates refined by gradient ascent.
        refine_steps: Adam steps per refinement.
        beta: exploration weight for ``"ucb"`` (a state leaf: ``BayesSettings.beta``).
        prior_mean_quantile: the GP's constant prior mean is set to this
            percentile of the (standardized) observed values, a pessimistic
            level (after De Ath et al. 2020), so that the empty corners of the
            search space do not look promising; ``None`` puts it at their mean
            (a state leaf: ``BayesSettings.prior_mean_quantile``).
        max_fit_points: hyperparameters are fit on a random subset of at most
            this many observations (the posterior always uses all of them).
        restart_fit_points: the fresh starts of a full fit run on a random
            subset of at most this many observations; the best replaces the
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
        batch: how a batch (``ask(..., num > 1)``) is chosen when ``acquisition`` is not
            ``"thompson"``: ``"believer"`` (kriging believer: each pick maximizes the
            acquisition, then is observed in fantasy at its posterior mean), ``"thompson"``
            (each member the best of one joint posterior draw), ``"hybrid"`` (the first
            member maximizes the acquisition, as one point alone would; the others are
            Thompson draws from the posterior given it), ``"penalized"`` (local
            penalization, Gonzalez et al. 2016: each member maximizes the acquisition
            times a penalizer around every earlier member, whose radius comes from a
            Lipschitz constant of the posterior mean), or ``"auto"`` (default):
            ``"hybrid"`` on spaces with an integer or categorical coordinate, the believer
            on continuous ones, as measured (``benchmarks/README.md``). One point at a time
            (``num == 1``) always uses ``acquisition``.

    Example:
        >>> import jax, jaxhpo
        >>> space = jaxhpo.Space({"x": jaxhpo.Float(0.0, 1.0)})
        >>> strategy = jaxhpo.strategies.bayes(acquisition="ucb", beta=2.0)
        >>> state = strategy.init(jax.random.key(0), space, 16)
        >>> float(state.settings.beta)  # numeric settings are leaves: replace them without a compile
        2.0
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
    if num_candidates is not None and (not isinstance(num_candidates, (int, np.integer))
                                       or isinstance(num_candidates, bool) or num_candidates < refine_starts):
        raise ValueError(f"bayes: num_candidates must be an int >= refine_starts ({refine_starts}), "
                         f"got num_candidates={num_candidates!r}")
    if prior_mean_quantile is not None and not (
        isinstance(prior_mean_quantile, (int, float)) and not isinstance(prior_mean_quantile, bool)
        and 0.0 <= prior_mean_quantile <= 100.0
    ):
        raise ValueError(f"bayes: prior_mean_quantile must be None or a number in [0, 100], "
                         f"got prior_mean_quantile={prior_mean_quantile!r}")
    if not (isinstance(fit_tol, (int, float)) and np.isfinite(fit_tol) and fit_tol > 0):
        raise ValueError(f"bayes: fit_tol must be a finite number > 0, got fit_tol={fit_tol!r}")
    if batch not in BATCH_MODES:
        raise ValueError(f"bayes: batch must be one of {BATCH_MODES}, got batch={batch!r}")
    for name, value in (("repeats", repeats), ("noisy", noisy)):
        if not isinstance(value, (bool, np.bool_)):
            raise ValueError(f"bayes: {name} must be True or False, got {name}={value!r}")
    if not (isinstance(beta, (int, float, np.integer, np.floating)) and not isinstance(beta, bool)
            and np.isfinite(beta) and beta >= 0):
        raise ValueError(f"bayes: beta must be a finite number >= 0, got beta={beta!r}")
    config = BayesConfig(
        acquisition=acquisition, kernel=kernel, num_initial=int(num_initial),
        num_candidates=None if num_candidates is None else int(num_candidates), num_restarts=int(num_restarts),
        fit_steps=int(fit_steps), warm_steps=int(warm_steps), refit_every=int(refit_every),
        refine_starts=int(refine_starts), refine_steps=int(refine_steps), max_fit_points=int(max_fit_points),
        restart_fit_points=int(restart_fit_points), pending_capacity=int(pending_capacity),
        repeats=bool(repeats) or bool(noisy), noisy=bool(noisy), batch=batch,
        prior_mean=prior_mean_quantile is not None)
    settings = (float(beta), float(fit_tol), 0.0 if prior_mean_quantile is None else float(prior_mean_quantile))

    def init(key: Array, space: Space, capacity: int) -> BayesState:
        return init_state(config, settings, key, space, capacity)

    def in_design(state: BayesState, num: int = 1) -> Array:
        return in_initial_design(config, state, num)

    def design_ask(key: Array, state: BayesState, num: int = 1) -> tuple[Array, BayesState]:
        return initial_design_ask(config, key, state, num)

    def ask(key: Array, state: BayesState, num: int = 1) -> tuple[Array, BayesState]:
        return retraced_under_vmap(functools.partial(model_ask, config, num=num))(key, state)

    def fit(key: Array, state: BayesState, num: int = 1) -> BayesState:
        return retraced_under_vmap(functools.partial(fit_stage, config, num=num))(key, state)

    def propose_points(key: Array, state: BayesState, num: int = 1) -> tuple[Array, BayesState]:
        return retraced_under_vmap(functools.partial(propose_stage, config, num=num))(key, state)

    return Strategy(init, ask, tell_history, design_ask=design_ask, in_design=in_design, set_pending=with_pending,
                    ask_stages=(fit, propose_points))



def init_state(config: BayesConfig, settings: tuple[float, float, float], key: Array, space: Space,
               capacity: int) -> BayesState:
    """An empty state: ``capacity`` history rows, the scrambled Sobol design, the settings as leaves."""
    history = history_init(capacity, space.dim)
    directions, shift = scrambled_sobol(key, space.dim)
    dtype = history.x.dtype  # the caller's float: settings follow it (float32 with x64 off)
    return BayesState(
        history=history,
        pending=history_init(config.pending_capacity, space.dim, dtype),
        raw=jnp.zeros((gp.num_hyper(space.dim),), dtype),
        fit_count=jnp.zeros((), jnp.int32),
        refit_count=jnp.zeros((), jnp.int32),
        directions=directions,
        shift=shift,
        index=jnp.zeros((), jnp.int32),
        settings=BayesSettings(*(jnp.asarray(v, dtype) for v in settings)),
        layout=Static(Layout.from_space(space)),
    )


def in_initial_design(config: BayesConfig, state: BayesState, num: int = 1) -> Array:
    """True while the next points come from the initial design (too few observations for the GP).

    In a finite space the design takes at most half of its configurations
    (the one there is, in a space of one configuration).
    """
    del num  # the whole batch comes from the design when its first point does
    size = state.layout.value.num_configurations
    initial, needed = (config.num_initial, 2) if size is None else (
        min(config.num_initial, max(2, size // 2), size), min(2, size))
    return ~((state.history.count >= initial) & (jnp.sum(state.history.valid) >= needed))


def initial_design_ask(config: BayesConfig, key: Array, state: BayesState, num: int = 1) -> tuple[Array, BayesState]:
    """The next ``num`` points of the scrambled Sobol design (``ask`` while ``in_design``).

    Unless ``repeats``, points whose configuration was already evaluated,
    is pending or came earlier in the batch are skipped (the design moves
    on along the sequence). In a space without integer or categorical
    coordinates the sequence's points are distinct by construction, so the
    program takes them as they come, without that check (it made the
    program about five times larger: the first trial of a ``Study`` waits for it).
    """
    del key
    dtype = state.history.x.dtype
    if config.repeats or not any(state.layout.value.discrete):
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


def model_ask(config: BayesConfig, key: Array, state: BayesState, num: int = 1) -> tuple[Array, BayesState]:
    """``ask``: the design's points while ``in_design``, the GP's proposals after.

    It is ``propose_stage(key, fit_stage(key, state, num), num)``: the
    hyperparameter fit, then the acquisition with the fitted hyperparameters
    as the state holds them. A ``Study`` compiles the two stages as two
    programs, side by side on two threads (``Strategy.ask_stages``).
    """
    return propose_stage(config, key, fit_stage(config, key, state, num), num)


def _model_data(config: BayesConfig, state: BayesState, layout: Layout) -> gp.GPData:
    """The told points (snapped, float64) and their standardized values, failed ones masked out."""
    history = state.history
    x_obs = snap(jnp.where(jnp.isfinite(history.x), history.x, 0.0).astype(jnp.float64), layout)
    y_obs, m_obs = gp.standardize_outputs(history.y.astype(jnp.float64), history.filled)
    if config.prior_mean:
        y_obs = gp.pessimistic_prior_mean(y_obs, m_obs, state.settings.prior_mean_quantile.astype(jnp.float64))
    return gp.GPData(x_obs, y_obs, m_obs)


def fit_stage(config: BayesConfig, key: Array, state: BayesState, num: int = 1) -> BayesState:
    """``ask``'s first stage: the GP hyperparameters fitted for this ask, in the state (which
    is unchanged while ``in_design``)."""
    # The model runs in a local float64 context; outputs keep the state's
    # dtype. A caller's vmap traces this function again, inside the context
    # (retraced_under_vmap), instead of batching a traced program after the
    # context has closed (float64 literals would then turn float32).
    with jax.enable_x64(True):
        layout = state.layout.value
        use_model = ~in_initial_design(config, state, num)

        def fit(_):
            k_fit, k_subset, _ = jax.random.split(key, 3)
            raw, full = fit_hyperparameters(config, k_fit, k_subset, state, _model_data(config, state, layout),
                                            layout)
            count = state.history.count.astype(jnp.int32)
            return raw.astype(state.raw.dtype), count, jnp.where(full, count, state.refit_count)

        def keep(_):
            return state.raw, state.fit_count, state.refit_count

        raw, fit_count, refit_count = jax.lax.cond(use_model, fit, keep, None)
    return state._replace(raw=raw, fit_count=fit_count, refit_count=refit_count)


def propose_stage(config: BayesConfig, key: Array, state: BayesState, num: int = 1) -> tuple[Array, BayesState]:
    """``ask``'s second stage: the design's points while ``in_design``, else the GP's proposals
    with the hyperparameters in ``state`` (``fit_stage``'s)."""
    initial, after_design = initial_design_ask(config, key, state, num)  # exact 24-bit values in any float dtype
    with jax.enable_x64(True):  # as in fit_stage
        dtype = state.history.x.dtype
        layout = state.layout.value
        use_model = ~in_initial_design(config, state, num)

        def model(_):
            return propose(config, key, state, num, layout).astype(dtype)

        def design(_):
            return initial

        x = jax.lax.cond(use_model, model, design, None)
        index = jnp.where(use_model, state.index, after_design.index).astype(jnp.int32)
    return x, state._replace(index=index)


def fit_hyperparameters(config: BayesConfig, key_starts: Array, key_subset: Array, state: BayesState,
                        data: gp.GPData, layout: Layout) -> tuple[Array, Array]:
    """The GP hyperparameters for this ask, and whether it was a full fit.

    One L-BFGS loop over the starts. The warm start (the previous fit, a few
    steps, or to convergence in a full fit) on up to ``max_fit_points`` rows;
    in a full fit, fresh starts on the first ``restart_fit_points`` of them;
    the fit with the best likelihood on all fitting rows wins. Full fits run
    for the first 8 model-based picks, then whenever the count of told
    observations passes a multiple of ``refit_every``; in between,
    ``warm_steps`` iterations per observation told since the last fit.
    """
    history = state.history
    # rows in random order, masked ones last: the first rows are a random subset
    order = jnp.argsort(jnp.where(data.mask, gp.uniform(key_subset, data.mask.shape), 2.0))[:config.max_fit_points]
    fit_data = jax.tree.map(lambda a: a[order], data)
    starts = gp.initial_raw(key_starts, layout.dim, config.num_restarts)  # the prior centre, then random draws
    warm = state.raw.astype(jnp.float64)
    has_warm = jnp.any(warm != 0)
    count = history.count
    full = (~has_warm | (count < config.num_initial + 8)
            | (count // config.refit_every > state.fit_count // config.refit_every))
    # a batch of 4 moves the optimum more than one observation does
    steps = jnp.minimum(config.warm_steps * jnp.maximum(count - state.fit_count, 1), config.fit_steps)
    starts = starts.at[0].set(jnp.where(has_warm, warm, starts[0]))
    max_steps = (jnp.full((config.num_restarts,), config.fit_steps, jnp.int32)
                 .at[0].set(jnp.where(full, config.fit_steps, steps)))
    rows = jnp.full((config.num_restarts,), min(config.restart_fit_points, config.max_fit_points), jnp.int32)
    rows = rows.at[0].set(fit_data.mask.shape[0])
    tol = state.settings.fit_tol.astype(jnp.float64)
    raw = gp.fit(starts, fit_data, layout, config.kernel, max_steps, jnp.where(full, config.num_restarts, 1), tol,
                 rows)
    return raw, full


def propose(config: BayesConfig, key: Array, state: BayesState, num: int, layout: Layout) -> Array:
    """``num`` proposals (float64) from the GP with the hyperparameters in ``state.raw``."""
    _, _, k_pick = jax.random.split(key, 3)  # the first two keys are fit_stage's
    history, pending, settings = state.history, state.pending, state.settings
    d = layout.dim
    x_obs, y_obs, m_obs = _model_data(config, state, layout)
    raw = state.raw.astype(jnp.float64)

    # the posterior over the observations, its variance conditioned on fantasies (kriging
    # believer) at the pending points and, later, this batch's earlier picks
    kernel = config.kernel
    post = gp.posterior(raw, gp.GPData(x_obs, y_obs, m_obs), layout, kernel)
    p_cap = pending.capacity
    x_fant = jnp.concatenate([snap(pending.x.astype(jnp.float64), layout), jnp.zeros((num - 1, d))])
    m_fant = jnp.concatenate([pending.filled, jnp.zeros(num - 1, bool)])
    post = gp.with_fantasies(post, x_fant, m_fant, layout, kernel)
    best = incumbent(post, x_obs, y_obs, m_obs, layout, kernel, config.noisy)
    ranked = jnp.argsort(jnp.where(m_obs, y_obs, jnp.inf))
    top = x_obs[ranked[: min(5, history.capacity)]]
    top_ok = m_obs[ranked[: min(5, history.capacity)]]
    count = config.candidate_count(layout)

    def seen(x_fant: Array, m_fant: Array) -> tuple[Array, Array]:
        """What was evaluated (failed trials included), is pending, or is earlier in this batch."""
        return jnp.concatenate([x_obs, x_fant]), jnp.concatenate([history.filled, m_fant])

    def thompson(key: Array, post: gp.Posterior, x_fant: Array, m_fant: Array, draws: int) -> Array:
        joint = lambda x: gp.predict_joint(post, x, layout, kernel)  # noqa: E731
        return optimizer.thompson_picks(key, joint, post.amplitude, top, top_ok, draws, layout,
                                        *seen(x_fant, m_fant), count=count, repeats=config.repeats)

    if config.thompson_batch(layout, num) and not config.hybrid_batch(layout, num):
        return thompson(k_pick, post, x_fant, m_fant, num)
    acquisition = acq.make(config.acquisition, beta=settings.beta.astype(jnp.float64))
    penalized = config.penalized_batch(num)
    if penalized:  # local penalization (Gonzalez et al. 2016): the log acquisition plus log penalizers
        acquisition = acq.positive_log(acquisition, config.acquisition)
        lipschitz = gp.mean_gradient_bound(post, x_obs, m_obs, layout, kernel)
    # with local penalization, the earlier picks of this batch: points, posterior means and standard
    # deviations, and which rows hold one (nothing otherwise)
    penalizers = ((jnp.zeros((num - 1, d)), jnp.zeros(num - 1), jnp.ones(num - 1), jnp.zeros(num - 1, bool))
                  if penalized else ())

    def pick(carry, k):
        post, x_fant, m_fant, slot, pen = carry

        def score(x: Array) -> Array:
            mean, var = gp.predict(post, x, layout, kernel)
            value = acquisition(mean, var, best)
            if penalized:
                x_pen, mu_pen, sd_pen, m_pen = pen
                f, f_pen = gp.features_of(post, x, layout), gp.features_of(post, x_pen, layout)
                value = value + acq.log_local_penalty(f, f_pen, mu_pen, sd_pen, m_pen, best, lipschitz)
            return value

        x = optimizer.maximize(k, score, top, top_ok, layout, *seen(x_fant, m_fant), count=count,
                               refine_starts=config.refine_starts, refine_steps=config.refine_steps,
                               repeats=config.repeats)
        if num > 1:  # the pick joins the fantasies (or the penalizers) for the next members of the batch
            row = p_cap + jnp.minimum(slot, num - 2)
            found = jnp.all(jnp.isfinite(x))  # NaN: the space is exhausted
            x_fant = x_fant.at[row].set(jnp.where(found, x, 0.0))
            m_fant = m_fant.at[row].set(found)
            if penalized:
                x_pen, mu_pen, sd_pen, m_pen = pen
                mean, var = gp.predict(post, jnp.where(found, x, 0.0)[None], layout, kernel)
                i = jnp.minimum(slot, num - 2)
                pen = (x_pen.at[i].set(jnp.where(found, x, 0.0)), mu_pen.at[i].set(mean[0]),
                       sd_pen.at[i].set(jnp.sqrt(var[0])), m_pen.at[i].set(found))
            else:
                post = gp.with_fantasies(post, x_fant, m_fant, layout, kernel)
        return (post, x_fant, m_fant, slot + 1, pen), x

    if config.hybrid_batch(layout, num):  # the acquisition's pick, then draws given it (as a fantasy)
        k_first, k_draws = jax.random.split(k_pick, num)[:2]  # k_first: the believer's first key
        (post, x_fant, m_fant, _, _), first = pick((post, x_fant, m_fant, 0, penalizers), k_first)
        return jnp.concatenate([first[None], thompson(k_draws, post, x_fant, m_fant, num - 1)])
    _, xs = jax.lax.scan(pick, (post, x_fant, m_fant, 0, penalizers), jax.random.split(k_pick, num))
    return xs


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
