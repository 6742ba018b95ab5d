"""Acquisition functions of a Gaussian posterior, for minimization; larger is better.

Each takes the posterior ``mean`` and ``var`` (arrays of the same shape) and
returns a score to maximize. ``log_ei`` is computed stably far in the tails
(Ament et al., 2023, "Unexpected improvements to expected improvement"), so
it keeps a useful gradient where plain EI underflows to zero.

Example:
    >>> import jax.numpy as jnp
    >>> round(float(ei(jnp.array(0.0), jnp.array(1.0), best=jnp.array(0.0))), 6)  # phi(0)
    0.398942
"""

from __future__ import annotations

import math
from typing import Callable

import jax
import jax.numpy as jnp
from jax.scipy.special import log_ndtr, ndtr

from jaxhpo.gp.kernels import sqdist

Array = jax.Array

_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


def _log_phi(z: Array) -> Array:
    return -0.5 * z * z - _LOG_SQRT_2PI


def log_h(z: Array) -> Array:
    """``log(phi(z) + z * Phi(z))``, accurate for any ``z``."""
    z_mid = jnp.where(z > -1.0, z, -1.0)
    direct = jnp.log(jnp.exp(_log_phi(z_mid)) + z_mid * ndtr(z_mid))
    # each branch sees only inputs from its own domain, so no NaN leaks into gradients
    z_low = jnp.where((z <= -1.0) & (z > -1e3), z, -2.0)
    mills = jnp.exp(log_ndtr(z_low) - _log_phi(z_low))  # Phi / phi, < 1 / |z|
    tail = _log_phi(z_low) + jnp.log1p(z_low * mills)
    z_far = jnp.where(z <= -1e3, z, -1e3)
    asymptotic = _log_phi(z_far) - 2.0 * jnp.log(-z_far)
    out = jnp.where(z > -1.0, direct, jnp.where(z > -1e3, tail, asymptotic))
    return out


def _z(mean: Array, var: Array, best: Array) -> tuple[Array, Array]:
    sigma = jnp.sqrt(jnp.maximum(var, 1e-30))
    return (best - mean) / sigma, sigma


def log_ei(mean: Array, var: Array, best: Array) -> Array:
    """Log expected improvement below ``best``."""
    z, sigma = _z(mean, var, best)
    return jnp.log(sigma) + log_h(z)


def ei(mean: Array, var: Array, best: Array) -> Array:
    """Expected improvement below ``best``: ``sigma * (z Phi(z) + phi(z))``."""
    z, sigma = _z(mean, var, best)
    return sigma * (z * ndtr(z) + jnp.exp(_log_phi(z)))


def pi(mean: Array, var: Array, best: Array) -> Array:
    """Probability of improvement below ``best``."""
    z, _ = _z(mean, var, best)
    return ndtr(z)


def log_pi(mean: Array, var: Array, best: Array) -> Array:
    """Log probability of improvement (stable for tiny probabilities)."""
    z, _ = _z(mean, var, best)
    return log_ndtr(z)


def ucb(mean: Array, var: Array, beta: Array = 2.0) -> Array:
    """Upper confidence bound for minimization: ``-(mean - sqrt(beta) * sigma)``."""
    return -(mean - jnp.sqrt(beta) * jnp.sqrt(jnp.maximum(var, 0.0)))


Acquisition = Callable[[Array, Array, Array], Array]  # (mean, var, best) -> scores, larger is better


def positive_log(acquisition: Acquisition, name: str) -> Acquisition:
    """``acquisition`` as the log of a positive score (local penalization multiplies such scores).

    ``"log_ei"``, ``"pi"`` and ``"log_pi"`` already are logs; EI's log is taken (floored at 1e-300);
    UCB, which may be negative, goes through ``log(softplus(.))`` (as Gonzalez et al. 2016 transform it).
    """
    if name in ("log_ei", "pi", "log_pi"):
        return acquisition
    if name == "ei":
        return lambda mean, var, best: jnp.log(jnp.maximum(acquisition(mean, var, best), 1e-300))
    return lambda mean, var, best: jnp.log(jnp.maximum(jax.nn.softplus(acquisition(mean, var, best)), 1e-300))


def log_local_penalty(f: Array, f_picked: Array, mean_picked: Array, sd_picked: Array, mask_picked: Array,
                      best: Array, lipschitz: Array) -> Array:
    """Log local penalizers (Gonzalez et al. 2016, "Batch Bayesian optimization via local penalization"),
    summed over the picked points, at points with kernel features ``f[n, F]``.

    For minimization with incumbent ``best`` and a Lipschitz constant ``L`` of the objective (in the
    features' metric), a picked point ``x_j`` with ``f(x_j) ~ N(mean_j, sd_j^2)`` rules out the ball
    of radius ``(f(x_j) - best) / L`` around it; the penalizer is the probability that ``x`` lies
    outside it, ``Phi((best + L |x - x_j| - mean_j) / sd_j)``.

    Args:
        f: the features of the scored points ``[n, F]``.
        f_picked: the features of the picked points ``[p, F]``.
        mean_picked, sd_picked: their posterior means and standard deviations ``[p]``.
        mask_picked: ``[p]`` which picked rows count.
        best: the incumbent value.
        lipschitz: the Lipschitz constant ``L``.

    Returns:
        ``[n]`` the sum over the masked picked points of ``log Phi(...)`` (0 where none).
    """
    distance = jnp.sqrt(jnp.maximum(sqdist(f, f_picked), 1e-30))
    z = (best + lipschitz * distance - mean_picked[None, :]) / jnp.maximum(sd_picked[None, :], 1e-6)
    return jnp.sum(jnp.where(mask_picked[None, :], log_ndtr(z), 0.0), axis=-1)


ACQUISITIONS: dict[str, Callable[..., Array]] = {
    "log_ei": log_ei,
    "ei": ei,
    "pi": log_pi,  # scored as log PI: the same maximizer as PI, with gradients where PI underflows
    "log_pi": log_pi,
    "ucb": ucb,
}


def make(name: str, *, beta: Array = 2.0) -> Acquisition:
    """The acquisition ``name`` with its own parameters bound, behind one signature ``(mean, var, best)``.

    Args:
        name: ``"log_ei"``, ``"ei"``, ``"pi"`` (scored as log PI, which has the
            same maximizer and keeps a gradient far from the incumbent),
            ``"log_pi"`` or ``"ucb"``.
        beta: UCB's exploration weight (may be a traced array: one program for
            every value); the others take no parameter.

    Example:
        >>> import jax.numpy as jnp
        >>> score = make("ucb", beta=4.0)
        >>> float(score(jnp.array(1.0), jnp.array(1.0), jnp.array(0.0)))  # -(1 - 2 * 1)
        1.0
    """
    if name not in ACQUISITIONS:
        raise ValueError(f"acquisition must be one of {tuple(ACQUISITIONS)}, got {name!r}")
    if name == "ucb":
        return lambda mean, var, best: ucb(mean, var, beta)
    return ACQUISITIONS[name]
