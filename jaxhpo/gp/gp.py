"""Exact Gaussian process over a masked, fixed-size buffer, fit with Optax.

All functions are pure and expect float64 inputs (call them inside
``jax.enable_x64(True)``; ``jaxhpo.strategies.bayes`` does). Rows with
``mask == False`` are removed from the model exactly: their rows and columns
of the kernel matrix become the identity and their targets zero, so they add
nothing to the likelihood and nothing to the posterior. Shapes therefore stay
fixed as observations arrive, and nothing recompiles.

Hyperparameters (ARD length scales, amplitude, noise) are stored as an
unconstrained vector and mapped into boxes by a sigmoid; weak log-normal
priors (length scales scaled with the dimension, after Hvarfner et al. 2024)
regularize the marginal likelihood, which ``optax.lbfgs`` maximizes from
several starts in one vmapped call.

Example:
    >>> import jax, jax.numpy as jnp
    >>> from jaxhpo.gp import gp, kernels
    >>> with jax.enable_x64(True):
    ...     layout = kernels.Layout.from_space_info([False], [0])
    ...     x = jnp.linspace(0, 1, 8)[:, None]
    ...     data = gp.GPData(x, jnp.sin(6 * x[:, 0]), jnp.ones(8, bool))
    ...     raw = gp.fit(gp.initial_raw(jax.random.key(0), 1, 4), data, layout)
    ...     post = gp.posterior(raw, data, layout)
    ...     mean, var = gp.predict(post, x[:2])
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxhpo.gp.kernels import KERNELS, Layout, features, sqdist
from jaxhpo.gp.linalg import cholesky_and_inverse, gaussian_nll_terms

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
    """What prediction needs, computed once per fit."""

    features: Array  # [m, F] training features
    alpha: Array  # [m]  K^-1 y
    kinv: Array  # [m, m] K^-1 (masked rows zeroed)
    amplitude: Array
    noise: Array
    lengthscales: Array


def num_hyper(dim: int) -> int:
    return dim + 2


def _box(raw: Array, bounds: tuple[float, float]) -> Array:
    lo, hi = bounds
    return lo + (hi - lo) * jax.nn.sigmoid(raw)


def _unbox(value: Array, bounds: tuple[float, float]) -> Array:
    lo, hi = bounds
    p = jnp.clip((value - lo) / (hi - lo), 1e-6, 1 - 1e-6)
    return jnp.log(p) - jnp.log1p(-p)


def unpack(raw: Array) -> Hyper:
    """Unconstrained vector ``[d + 2]`` to positive hyperparameters."""
    return Hyper(
        lengthscales=jnp.exp(_box(raw[:-2], LOG_LENGTHSCALE)),
        amplitude=jnp.exp(_box(raw[-2], LOG_AMPLITUDE)),
        noise=jnp.exp(_box(raw[-1], LOG_NOISE)),
    )


def pack(lengthscales: Array, amplitude: Array, noise: Array) -> Array:
    """Inverse of ``unpack``."""
    return jnp.concatenate(
        [
            _unbox(jnp.log(lengthscales), LOG_LENGTHSCALE),
            _unbox(jnp.log(jnp.atleast_1d(amplitude)), LOG_AMPLITUDE),
            _unbox(jnp.log(jnp.atleast_1d(noise)), LOG_NOISE),
        ]
    )


def _prior_centre(dim: int) -> tuple[float, float, float]:
    # log length scale ~ N(sqrt(2) + log(d) / 2, 3), in unit-cube units (Hvarfner et al.)
    return float(np.sqrt(2.0) + 0.5 * np.log(dim)), 0.0, float(np.log(1e-4))


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
    """Index of the largest value (NaN-free input), safe inside a local x64 context."""
    return jax.lax.top_k(values, 1)[1][0]


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


def _masked_gram(h: Hyper, data: GPData, layout: Layout, kernel: str, jitter: Array) -> tuple[Array, Array]:
    f = features(data.x, h.lengthscales, layout)
    both = data.mask[:, None] & data.mask[None, :]
    k = jnp.where(both, kernel_matrix(h, f, f, kernel), 0.0)
    diag = jnp.where(data.mask, h.noise + jitter * h.amplitude, 1.0)
    return k + jnp.diag(diag), f


def neg_log_marginal_likelihood(raw: Array, data: GPData, layout: Layout, kernel: str = "matern52") -> Array:
    """Negative log marginal likelihood minus log prior, per observation; finite always."""
    h = unpack(raw)
    k, _ = _masked_gram(h, data, layout, kernel, jnp.asarray(JITTER))
    y = jnp.where(data.mask, data.y, 0.0)
    n = jnp.maximum(jnp.sum(data.mask), 1)
    nll = gaussian_nll_terms(k, y) + 0.5 * n * jnp.log(2 * jnp.pi)
    value = (nll - log_prior(h)) / n
    return jnp.where(jnp.isfinite(value), value, 1e10)


def fit(raw_init: Array, data: GPData, layout: Layout, kernel: str = "matern52", steps: int = 25) -> Array:
    """Fits hyperparameters from each start in ``raw_init[r, p]`` with L-BFGS; returns the best.

    Every start runs ``steps`` L-BFGS iterations (fixed, so it vmaps), all
    starts in one vmapped call.
    """
    loss = lambda raw: neg_log_marginal_likelihood(raw, data, layout, kernel)  # noqa: E731
    opt = optax.lbfgs(memory_size=10)
    value_and_grad = optax.value_and_grad_from_state(loss)

    def run(raw: Array) -> tuple[Array, Array]:
        def step(carry, _):
            params, state = carry
            value, grad = value_and_grad(params, state=state)
            grad = jnp.where(jnp.isfinite(grad), grad, 0.0)
            updates, state = opt.update(grad, state, params, value=value, grad=grad, value_fn=loss)
            new = optax.apply_updates(params, updates)
            new = jnp.where(jnp.all(jnp.isfinite(new)), jnp.clip(new, -12.0, 12.0), params)
            return (new, state), None

        (params, _), _ = jax.lax.scan(step, (raw, opt.init(raw)), None, length=steps)
        return params, loss(params)

    params, values = jax.vmap(run)(raw_init)
    return params[argmax(-values)]


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
    """The posterior given hyperparameters ``raw`` and ``data``."""
    h = unpack(raw)
    inv, f = _cholesky_with_growing_jitter(h, data, layout, kernel)
    y = jnp.where(data.mask, data.y, 0.0)
    kinv = inv.T @ inv
    both = data.mask[:, None] & data.mask[None, :]
    kinv = jnp.where(both, kinv, 0.0)
    alpha = kinv @ y
    return Posterior(f, alpha, kinv, h.amplitude, h.noise, h.lengthscales)


def predict(post: Posterior, x: Array, layout: Layout, kernel: str = "matern52") -> tuple[Array, Array]:
    """Posterior mean and variance (of the latent function) at ``x[n, d]``."""
    fx = features(x, post.lengthscales, layout)
    h = Hyper(post.lengthscales, post.amplitude, post.noise)
    kxs = kernel_matrix(h, fx, post.features, kernel)  # [n, m]
    mean = kxs @ post.alpha
    var = post.amplitude - jnp.sum((kxs @ post.kinv) * kxs, axis=-1)
    return mean, jnp.maximum(var, 1e-12 * post.amplitude)


def predict_joint(post: Posterior, x: Array, layout: Layout, kernel: str = "matern52") -> tuple[Array, Array]:
    """Posterior mean ``[n]`` and covariance ``[n, n]`` at ``x[n, d]``."""
    fx = features(x, post.lengthscales, layout)
    h = Hyper(post.lengthscales, post.amplitude, post.noise)
    kxs = kernel_matrix(h, fx, post.features, kernel)
    cov = kernel_matrix(h, fx, fx, kernel) - kxs @ post.kinv @ kxs.T
    return kxs @ post.alpha, 0.5 * (cov + cov.T)


def standardize_outputs(y: Array, mask: Array) -> tuple[Array, Array]:
    """Robustly standardizes and warps targets; returns ``(targets, mask)``.

    Non-finite values are masked out. Values are centred on the median and
    scaled by the interquartile range, the upper (bad) tail is compressed
    with ``log1p(log1p(.))`` so that a few huge values (1e9) do not flatten the rest,
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
    z = jnp.where(z > 0, jnp.log1p(jnp.log1p(jnp.maximum(z, 0.0))), z)
    mean = jnp.sum(jnp.where(mask, z, 0.0)) / n
    spread = jnp.sqrt(jnp.sum(jnp.where(mask, (z - mean) ** 2, 0.0)) / n)
    spread = jnp.where(spread > 1e-12, spread, 1.0)
    return jnp.where(mask, (z - mean) / spread, 0.0), mask
