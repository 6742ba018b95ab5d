"""Exact Gaussian process over a masked, fixed-size buffer, fit with Optax.

All functions are pure and expect float64 inputs (call them inside
``jax.enable_x64(True)``; ``jaxhpo.strategies.bayes`` does). Rows with
``mask == False`` are removed from the model exactly: their rows and columns
of the kernel matrix become the identity and their targets zero, so they add
nothing to the likelihood and nothing to the posterior. Shapes therefore stay
fixed as observations arrive, and nothing recompiles.

Hyperparameters (ARD length scales, amplitude, noise) are stored as a
vector of their logarithms, kept in boxes by projection; weak log-normal
priors (length scales scaled with the dimension, after Hvarfner et al. 2024)
regularize the marginal likelihood, which ``optax.lbfgs`` maximizes to
convergence from one or several starts (the first warm, from the previous fit).

Example:
    >>> import jax, jax.numpy as jnp
    >>> from jaxhpo.gp import gp, kernels
    >>> with jax.enable_x64(True):
    ...     layout = kernels.Layout.from_space_info([False], [0])
    ...     x = jnp.linspace(0, 1, 8)[:, None]
    ...     data = gp.GPData(x, jnp.sin(6 * x[:, 0]), jnp.ones(8, bool))
    ...     raw = gp.fit(gp.initial_raw(jax.random.key(0), 1, 4), data, layout)
    ...     post = gp.posterior(raw, data, layout)
    ...     mean, var = gp.predict(post, x[:2], layout)
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxhpo.gp.kernels import KERNELS, Layout, features, sqdist
from jaxhpo.gp.linalg import cholesky_and_inverse, gaussian_nll_terms
from jaxhpo.gp.linesearch import zoom_linesearch

Array = jax.Array

# Boxes for the hyperparameters, in log space (the unit cube is the input domain;
# targets are standardized).
LOG_LENGTHSCALE = (float(np.log(5e-3)), float(np.log(50.0)))
LOG_AMPLITUDE = (float(np.log(5e-2)), float(np.log(20.0)))
LOG_NOISE = (float(np.log(1e-6)), float(np.log(0.5)))
JITTER = 1e-9


class GPData(NamedTuple):
    """Training data: ``x[m, d]`` in the unit cube, targets ``y[m]``, ``mask[m]``."""

    x: Array
    y: Array
    mask: Array


class Hyper(NamedTuple):
    lengthscales: Array
    amplitude: Array
    noise: Array


class Posterior(NamedTuple):
    """What prediction needs, computed once per fit.

    ``inv`` is the inverse Cholesky factor of the masked Gram matrix with the
    rows of masked observations zeroed, so ``k(x)^T K^-1 k(x) = |inv k(x)|^2``.
    The ``fantasy_*`` fields condition the variance on extra points observed
    at the posterior mean (pending trials, earlier members of a batch); see
    ``with_fantasies``. Without fantasies they have zero rows.
    """

    features: Array  # [m, F] training features
    alpha: Array  # [m]  K^-1 y
    inv: Array  # [m, m] L^-1 (masked rows zeroed)
    amplitude: Array
    noise: Array
    lengthscales: Array
    fantasy_features: Array  # [p, F]
    fantasy_proj: Array  # [m, p] inv @ k(observations, fantasies)
    fantasy_inv: Array  # [p, p] inverse Cholesky factor of the fantasies' noisy posterior covariance
    fantasy_mask: Array  # [p]


def num_hyper(dim: int) -> int:
    return dim + 2


# The unconstrained vector holds log length scales, log amplitude and log noise,
# clipped into these boxes after every optimizer step (a projected L-BFGS).
_LOWER = (LOG_LENGTHSCALE[0], LOG_AMPLITUDE[0], LOG_NOISE[0])
_UPPER = (LOG_LENGTHSCALE[1], LOG_AMPLITUDE[1], LOG_NOISE[1])


def _bounds(size: int) -> tuple[Array, Array]:
    dim = size - 2
    lower = jnp.concatenate([jnp.full((dim,), _LOWER[0]), jnp.array(_LOWER[1:])])
    upper = jnp.concatenate([jnp.full((dim,), _UPPER[0]), jnp.array(_UPPER[1:])])
    return lower, upper


def clip_raw(raw: Array) -> Array:
    """Projects an unconstrained vector ``[..., d + 2]`` into the hyperparameter boxes."""
    lower, upper = _bounds(raw.shape[-1])
    return jnp.clip(raw, lower, upper)


def unpack(raw: Array) -> Hyper:
    """Vector ``[d + 2]`` of logs to positive hyperparameters (clipped into their boxes)."""
    raw = clip_raw(raw)
    return Hyper(lengthscales=jnp.exp(raw[:-2]), amplitude=jnp.exp(raw[-2]), noise=jnp.exp(raw[-1]))


def pack(lengthscales: Array, amplitude: Array, noise: Array) -> Array:
    """Inverse of ``unpack``."""
    return clip_raw(jnp.log(jnp.concatenate([lengthscales, jnp.atleast_1d(amplitude), jnp.atleast_1d(noise)])))


def _prior_centre(dim: int) -> tuple[float, float, float]:
    # log length scale ~ N(log(d) / 2 - 0.9, 3) in unit-cube units: the dimension
    # scaling of Hvarfner et al. (2024), centred on shorter scales (length 1 in 6-d,
    # as Optuna's prior), measured better on Ackley5, Levy10 and Hartmann6 in
    # benchmarks/bench_bo.py than their centre sqrt(2) + log(d) / 2
    return float(0.5 * np.log(dim) - 0.9), 0.0, float(np.log(1e-4))


def log_prior(h: Hyper) -> Array:
    """Weak log-normal priors on length scales, amplitude and noise."""
    dim = h.lengthscales.shape[-1]
    mu_ls, mu_amp, mu_noise = _prior_centre(dim)
    lp = -0.5 * jnp.sum((jnp.log(h.lengthscales) - mu_ls) ** 2) / 3.0
    lp += -0.5 * (jnp.log(h.amplitude) - mu_amp) ** 2 / 1.0
    lp += -0.5 * (jnp.log(h.noise) - mu_noise) ** 2 / 4.0
    return lp


# Under an outer jit traced without x64, primitives whose lowering re-derives a
# dtype from the global flag (argmin/argmax, float64 random draws) fail to lower;
# these helpers avoid them, so GP code runs in float64 inside any caller's jit.
def argmax(values: Array) -> Array:
    """Index of the largest value (the first on ties; NaN-free input), safe inside a local x64 context.

    Two reductions rather than ``argmax`` (see above) or ``lax.top_k``, which
    sorts: on CPU 0.03 ms against 0.3-0.45 ms for 2,000 values.
    """
    index = jnp.arange(values.shape[0], dtype=jnp.int32)
    return jnp.min(jnp.where(values == jnp.max(values), index, values.shape[0]))


def top_indices(values: Array, k: int) -> Array:
    """Indices of the ``k`` largest values, largest first (small static ``k``; NaN-free input).

    One ``argmax`` per index in a ``fori_loop``: the loop body compiles once (an unrolled loop
    compiled ``k`` copies: 0.5 s of XLA time for the 7 of an acquisition step, 2-core CPU), and
    no sort (``lax.top_k`` ran 10x slower here).
    """

    def one(i, carry):
        values, out = carry
        j = argmax(values)
        return values.at[j].set(-jnp.inf), out.at[i].set(j)

    _, out = jax.lax.fori_loop(0, k, one, (values, jnp.zeros((k,), jnp.int32)))
    return out


def uniform(key: Array, shape: tuple[int, ...]) -> Array:
    """Uniform [0, 1) draws made in float32 (see ``argmax``), returned as float64."""
    return jax.random.uniform(key, shape, jnp.float32).astype(jnp.float64)


def normal(key: Array, shape: tuple[int, ...]) -> Array:
    """Standard normal draws made in float32 (see ``argmax``), returned as float64."""
    return jax.random.normal(key, shape, jnp.float32).astype(jnp.float64)


def initial_raw(key: Array, dim: int, num: int) -> Array:
    """``num`` starting points ``[num, d + 2]``: the prior centre, then random draws around it."""
    mu_ls, mu_amp, mu_noise = _prior_centre(dim)
    centre = pack(jnp.full((dim,), np.exp(mu_ls)), jnp.asarray(np.exp(mu_amp)), jnp.asarray(np.exp(mu_noise)))
    spread = normal(key, (num, dim + 2)) * jnp.concatenate([jnp.full((dim,), 1.0), jnp.array([0.5, 1.0])])
    return centre + spread.at[0].set(0.0)


def kernel_matrix(h: Hyper, fa: Array, fb: Array, kernel: str) -> Array:
    return h.amplitude * KERNELS[kernel](sqdist(fa, fb))


def _masked_with_noise(k: Array, mask: Array, h: Hyper, jitter: Array) -> Array:
    """Adds noise and jitter to a covariance's diagonal; masked rows and columns become the identity."""
    both = mask[:, None] & mask[None, :]
    return jnp.where(both, k, 0.0) + jnp.diag(jnp.where(mask, h.noise + jitter * h.amplitude, 1.0))


def _masked_gram(h: Hyper, data: GPData, layout: Layout, kernel: str, jitter: Array) -> tuple[Array, Array]:
    f = features(data.x, h.lengthscales, layout)
    return _masked_with_noise(kernel_matrix(h, f, f, kernel), data.mask, h, jitter), f


def neg_log_marginal_likelihood(raw: Array, data: GPData, layout: Layout, kernel: str = "matern52") -> Array:
    """Negative log marginal likelihood minus log prior, per observation; finite always."""
    h = unpack(raw)
    k, _ = _masked_gram(h, data, layout, kernel, jnp.asarray(JITTER))
    y = jnp.where(data.mask, data.y, 0.0)
    n = jnp.maximum(jnp.sum(data.mask), 1)
    nll = gaussian_nll_terms(k, y) + 0.5 * n * jnp.log(2 * jnp.pi)
    value = (nll - log_prior(h)) / n
    return jnp.where(jnp.isfinite(value), value, 1e10)


# The fit's loop, its line search and the choice between starts call the loss four times in one program:
# jitted, it is traced and differentiated once per shape, not at every call, and XLA inlines it into the
# same program as before (what it saves: benchmarks/README.md, the bench_latency section).
_nll = jax.jit(neg_log_marginal_likelihood, static_argnums=(2, 3))


def fit(
    raw_init: Array,
    data: GPData,
    layout: Layout,
    kernel: str = "matern52",
    max_steps: Array | int = 50,
    num_starts: Array | int | None = None,
    tol: float = 1e-3,
    rows: Array | None = None,
) -> Array:
    """Fits hyperparameters with L-BFGS from the starts ``raw_init[r, p]``; returns the best fit.

    Each start runs ``optax.lbfgs`` (with ``jaxhpo.gp.linesearch``'s zoom line
    search: optax's steps, one evaluation of the likelihood per line-search
    iteration in the program) until the largest gradient entry of the
    per-observation loss falls below ``tol``, the loss stops decreasing, or
    its step limit. Starts run one after another in one ``lax.while_loop``
    (one compiled L-BFGS serves them all), so a warm start from the previous
    fit costs a few iterations, and a cheap warm-only fit and a full
    multi-start fit share one program.

    Args:
        raw_init: ``[r, d + 2]`` starting points.
        data: the observations.
        layout: the coordinates' layout.
        kernel: the kernel's name.
        max_steps: most iterations, for every start (an int) or per start
            (``[r]``); may be traced.
        num_starts: how many of the starts to run (traced, at most ``r``;
            default all); ``0`` runs nothing and returns ``raw_init[0]``.
        tol: the gradient tolerance.
        rows: optional ``[r]`` count of data rows each start fits on (the
            first ones; the rest are masked), so that fresh starts can fit a
            subset cheaply.

    Returns:
        The start whose fit has the lowest loss on all of ``data`` (with one
        start run, its fit, without evaluating the loss again).
    """
    r = raw_init.shape[0]
    total = r if num_starts is None else num_starts
    total = jnp.minimum(jnp.asarray(total, jnp.int32), r)
    steps = jnp.broadcast_to(jnp.asarray(max_steps, jnp.int32), (r,))
    rows = jnp.full((r,), data.mask.shape[0], jnp.int32) if rows is None else jnp.asarray(rows, jnp.int32)
    full_loss = lambda raw: _nll(raw, data, layout, kernel)  # noqa: E731
    opt = optax.lbfgs(memory_size=10, linesearch=zoom_linesearch(max_steps=12))

    def run(raw: Array, limit: Array, num_rows: Array) -> Array:
        subset = data._replace(mask=data.mask & (jnp.arange(data.mask.shape[0]) < num_rows))
        loss = lambda raw: _nll(raw, subset, layout, kernel)  # noqa: E731
        value_and_grad = optax.value_and_grad_from_state(loss)

        def not_done(carry):
            _, _, step, done = carry
            return (step < limit) & ~done

        def step_fn(carry):
            params, state, step, _ = carry
            value, grad = value_and_grad(params, state=state)
            grad = jnp.where(jnp.isfinite(grad), grad, 0.0)
            updates, state = opt.update(grad, state, params, value=value, grad=grad, value_fn=loss)
            new = optax.apply_updates(params, updates)
            new = jnp.where(jnp.all(jnp.isfinite(new)), clip_raw(new), params)
            new_value = optax.tree.get(state, "value")
            stalled = jnp.abs(value - new_value) <= 1e-10 * (1.0 + jnp.abs(value))
            done = (jnp.max(jnp.abs(grad)) < tol) | stalled
            return new, state, step + 1, done

        init = (raw, opt.init(raw), jnp.zeros((), jnp.int32), jnp.zeros((), bool))
        params, _, _, _ = jax.lax.while_loop(not_done, step_fn, init)
        return params

    def over_starts(carry):
        i, best, best_value = carry
        params = run(raw_init[i], steps[i], rows[i])
        value = jax.lax.cond(total > 1, full_loss, lambda p: jnp.zeros((), p.dtype), params)
        better = value < best_value
        return i + 1, jnp.where(better, params, best), jnp.where(better, value, best_value)

    init = (jnp.zeros((), jnp.int32), raw_init[0], jnp.asarray(jnp.inf, raw_init.dtype))
    _, best, _ = jax.lax.while_loop(lambda c: c[0] < total, over_starts, init)
    return best


def _cholesky_with_growing_jitter(h: Hyper, data: GPData, layout: Layout, kernel: str) -> tuple[Array, Array]:
    """Inverse Cholesky factor of the masked Gram matrix; jitter grows tenfold until it succeeds."""

    def attempt(jitter):
        k, f = _masked_gram(h, data, layout, kernel, jitter)
        _, inv = cholesky_and_inverse(k)
        return inv, f

    def not_done(carry):
        inv, _, jitter = carry
        return ~jnp.all(jnp.isfinite(inv)) & (jitter < 1.0)

    def retry(carry):
        _, _, jitter = carry
        inv, f = attempt(jitter * 10.0)
        return inv, f, jitter * 10.0

    inv, f = attempt(jnp.asarray(JITTER))
    inv, f, _ = jax.lax.while_loop(not_done, retry, (inv, f, jnp.asarray(JITTER)))
    return inv, f


def posterior(raw: Array, data: GPData, layout: Layout, kernel: str = "matern52") -> Posterior:
    """The posterior given hyperparameters ``raw`` and ``data`` (no fantasies)."""
    h = unpack(raw)
    inv, f = _cholesky_with_growing_jitter(h, data, layout, kernel)
    inv = jnp.where(data.mask[:, None], inv, 0.0)
    y = jnp.where(data.mask, data.y, 0.0)
    alpha = inv.T @ (inv @ y)
    return Posterior(f, alpha, inv, h.amplitude, h.noise, h.lengthscales, jnp.zeros((0, f.shape[-1]), f.dtype),
                     jnp.zeros((f.shape[0], 0), f.dtype), jnp.zeros((0, 0), f.dtype), jnp.zeros((0,), bool))


def _hyper(post: Posterior) -> Hyper:
    return Hyper(post.lengthscales, post.amplitude, post.noise)


def with_fantasies(post: Posterior, x: Array, mask: Array, layout: Layout, kernel: str = "matern52") -> Posterior:
    """Conditions ``post`` on noisy observations at ``x[p, d]`` (where ``mask``) equal to its own mean.

    This is the kriging believer (and constant-liar-at-the-mean) fantasy used
    for pending trials and batch members. Observing a point at its posterior
    mean leaves the mean unchanged everywhere, so only the variance changes,
    by a rank-``p`` Schur-complement update: with ``c(x)`` the posterior
    covariance between ``x`` and the fantasies and ``S`` their posterior
    covariance plus noise, ``var'(x) = var(x) - c(x)^T S^-1 c(x)``. Exactly
    the posterior of the GP refit on observations plus fantasy rows, at the
    cost of a ``p x p`` factorization instead of an ``(m + p)``-square one.
    Replaces any earlier fantasies of ``post``.
    """
    h = _hyper(post)
    fp = features(x, post.lengthscales, layout)
    proj = post.inv @ kernel_matrix(h, post.features, fp, kernel)  # [m, p]
    s = _masked_with_noise(kernel_matrix(h, fp, fp, kernel) - proj.T @ proj, mask, h, jnp.asarray(JITTER))
    _, inv = cholesky_and_inverse(0.5 * (s + s.T))
    # a failed factorization (never seen: noise and jitter keep S positive) drops the fantasies
    inv = jnp.where(jnp.all(jnp.isfinite(inv)), inv, 0.0)
    inv = jnp.where(mask[:, None], inv, 0.0)
    return post._replace(fantasy_features=fp, fantasy_proj=proj, fantasy_inv=inv, fantasy_mask=mask)


def _fantasy_factor(post: Posterior, fx: Array, v: Array, kernel: str) -> Array:
    """``[n, p]`` rows whose squared norms are the variance the fantasies remove at ``fx``."""
    h = _hyper(post)
    c = kernel_matrix(h, fx, post.fantasy_features, kernel) - v @ post.fantasy_proj
    return c @ post.fantasy_inv.T


def predict(post: Posterior, x: Array, layout: Layout, kernel: str = "matern52") -> tuple[Array, Array]:
    """Posterior mean and variance (of the latent function) at ``x[n, d]``."""
    fx = features(x, post.lengthscales, layout)
    h = _hyper(post)
    kxs = kernel_matrix(h, fx, post.features, kernel)  # [n, m]
    mean = kxs @ post.alpha
    v = kxs @ post.inv.T
    var = post.amplitude - jnp.sum(v * v, axis=-1)
    if post.fantasy_mask.shape[0]:
        def removed(_):
            u = _fantasy_factor(post, fx, v, kernel)
            return jnp.sum(u * u, axis=-1)

        var = var - jax.lax.cond(jnp.any(post.fantasy_mask), removed, lambda _: jnp.zeros_like(var), None)
    return mean, jnp.maximum(var, 1e-12 * post.amplitude)


def features_of(post: Posterior, x: Array, layout: Layout) -> Array:
    """The kernel features ``[n, F]`` of points ``x[n, d]`` under ``post``'s length scales: the space in which
    the kernel is a function of Euclidean distance (categories one-hot)."""
    return features(x, post.lengthscales, layout)


def mean_gradient_bound(post: Posterior, x: Array, mask: Array, layout: Layout, kernel: str = "matern52") -> Array:
    """The largest norm of the posterior mean's gradient, in feature space, at the rows of ``x[n, d]`` where
    ``mask``: an estimate of the mean's Lipschitz constant there (for local penalization; at least 1e-6).

    The mean is a function of the features alone, ``k(f, F) @ alpha``, so its gradient is taken with
    respect to ``f`` (one pullback of ones: each row's mean depends on its own row only).
    """
    h = _hyper(post)

    def mean(f: Array) -> Array:
        return kernel_matrix(h, f, post.features, kernel) @ post.alpha

    f = features(x, post.lengthscales, layout)
    values, pullback = jax.vjp(mean, f)
    (grad,) = pullback(jnp.ones_like(values))
    norms = jnp.sqrt(jnp.sum(grad * grad, axis=-1))
    return jnp.maximum(jnp.max(jnp.where(mask & jnp.isfinite(norms), norms, 0.0)), 1e-6)


def predict_joint(post: Posterior, x: Array, layout: Layout, kernel: str = "matern52") -> tuple[Array, Array]:
    """Posterior mean ``[n]`` and covariance ``[n, n]`` at ``x[n, d]``."""
    fx = features(x, post.lengthscales, layout)
    h = _hyper(post)
    kxs = kernel_matrix(h, fx, post.features, kernel)
    v = kxs @ post.inv.T
    cov = kernel_matrix(h, fx, fx, kernel) - v @ v.T
    if post.fantasy_mask.shape[0]:
        u = _fantasy_factor(post, fx, v, kernel)
        cov = cov - u @ u.T
    return kxs @ post.alpha, 0.5 * (cov + cov.T)


def standardize_outputs(y: Array, mask: Array) -> tuple[Array, Array]:
    """Robustly standardizes and warps targets; returns ``(targets, mask)``.

    Non-finite values are masked out. Values are centred on the median and
    scaled by the interquartile range, the upper (bad) tail is compressed
    with ``log1p`` (and once more beyond 19 scale units) so that a few huge values (1e9) do not flatten the rest,
    and the result is standardized to mean 0 and variance 1. Constant values
    give zeros.
    """
    mask = mask & jnp.isfinite(y)
    n = jnp.maximum(jnp.sum(mask), 1)
    ym = jnp.where(mask, y, jnp.nan)
    median = jnp.nan_to_num(jnp.nanmedian(ym))
    q25, q75 = jnp.nanpercentile(ym, 25.0), jnp.nanpercentile(ym, 75.0)
    std = jnp.sqrt(jnp.sum(jnp.where(mask, (y - median) ** 2, 0.0)) / n)
    scale = jnp.nan_to_num((q75 - q25) / 1.349)
    scale = jnp.where(scale > 1e-12 * (1.0 + jnp.abs(median)), scale, std)
    scale = jnp.where(scale > 1e-300, scale, 1.0)
    z = jnp.where(mask, (y - median) / scale, 0.0)
    w = jnp.log1p(jnp.maximum(z, 0.0))
    w = jnp.where(w > 3.0, 3.0 + jnp.log1p(jnp.maximum(w - 3.0, 0.0)), w)  # extreme values (z > 19): once more
    z = jnp.where(z > 0, w, z)
    mean = jnp.sum(jnp.where(mask, z, 0.0)) / n
    spread = jnp.sqrt(jnp.sum(jnp.where(mask, (z - mean) ** 2, 0.0)) / n)
    spread = jnp.where(spread > 1e-12, spread, 1.0)
    return jnp.where(mask, (z - mean) / spread, 0.0), mask


def pessimistic_prior_mean(y: Array, mask: Array, quantile: float = 90.0) -> Array:
    """Shifts (standardized) targets so that the GP's zero prior mean sits at their ``quantile``-th percentile.

    For minimization a constant prior mean at a bad observed level (De Ath,
    Fieldsend and Everson, "What do you mean? The role of the mean function
    in Bayesian optimisation", GECCO 2020, who use the worst value) makes
    regions far from the data look no better than the bad observations, so
    expected improvement stops spending evaluations on empty corners of the
    cube and refines the promising basins. A high percentile rather than the
    maximum keeps one outlier from setting the level. Masked entries stay 0.
    """
    level = jnp.nan_to_num(jnp.nanpercentile(jnp.where(mask, y, jnp.nan), quantile))
    return jnp.where(mask, y - level, 0.0)
