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
