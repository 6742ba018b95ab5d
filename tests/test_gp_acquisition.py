"""Acquisition functions against closed forms (SciPy)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import norm

from jaxhpo.gp import acquisition as acq


def test_ei_pi_ucb_match_closed_forms():
    mean = np.array([0.0, 1.0, -2.0, 0.5])
    var = np.array([1.0, 0.25, 4.0, 1e-4])
    best = 0.2
    sigma = np.sqrt(var)
    z = (best - mean) / sigma
    with jax.enable_x64(True):
        ei = np.asarray(acq.ei(jnp.asarray(mean), jnp.asarray(var), jnp.asarray(best)))
        log_ei = np.asarray(acq.log_ei(jnp.asarray(mean), jnp.asarray(var), jnp.asarray(best)))
        pi = np.asarray(acq.pi(jnp.asarray(mean), jnp.asarray(var), jnp.asarray(best)))
        ucb = np.asarray(acq.ucb(jnp.asarray(mean), jnp.asarray(var), 4.0))
    ref = sigma * (z * norm.cdf(z) + norm.pdf(z))
    np.testing.assert_allclose(ei, ref, rtol=1e-10)
    np.testing.assert_allclose(log_ei, np.log(ref), rtol=1e-8)
    np.testing.assert_allclose(pi, norm.cdf(z), rtol=1e-10)
    np.testing.assert_allclose(ucb, -(mean - 2.0 * sigma), rtol=1e-12)


def test_log_ei_is_finite_and_monotone_far_in_the_tail():
    with jax.enable_x64(True):
        means = jnp.asarray([1.0, 5.0, 40.0, 400.0, 4e4, 4e8])
        values = acq.log_ei(means, jnp.ones(6), jnp.asarray(0.0))
        grads = jax.vmap(jax.grad(lambda m: acq.log_ei(m, 1.0, 0.0)))(means)
    assert bool(jnp.all(jnp.isfinite(values))) and bool(jnp.all(jnp.isfinite(grads)))
    assert bool(jnp.all(jnp.diff(values) < 0)) and bool(jnp.all(grads < 0))
    # matches the exact value where SciPy can still compute it
    z = -5.0
    assert float(values[1]) == pytest.approx(np.log(norm.pdf(z) + z * norm.cdf(z)), rel=1e-10)
