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


def test_local_penalty_matches_the_closed_form_and_positive_log_keeps_the_order():
    rng = np.random.default_rng(0)
    f_picked = rng.normal(size=(2, 3))
    f = np.concatenate([f_picked + 0.1 * rng.normal(size=(2, 3)), f_picked + 0.5 * rng.normal(size=(2, 3)),
                        rng.normal(size=(2, 3))])  # near the picks (penalized), and anywhere
    mean_p, sd_p, best, lipschitz = np.array([0.4, -0.1]), np.array([0.3, 0.05]), -0.5, 2.5
    with jax.enable_x64(True):
        out = np.asarray(acq.log_local_penalty(jnp.asarray(f), jnp.asarray(f_picked), jnp.asarray(mean_p),
                                               jnp.asarray(sd_p), jnp.asarray([True, True]), jnp.asarray(best),
                                               jnp.asarray(lipschitz)))
        only_first = np.asarray(acq.log_local_penalty(jnp.asarray(f), jnp.asarray(f_picked), jnp.asarray(mean_p),
                                                      jnp.asarray(sd_p), jnp.asarray([True, False]),
                                                      jnp.asarray(best), jnp.asarray(lipschitz)))
        at_pick = float(acq.log_local_penalty(jnp.asarray(f_picked[:1]), jnp.asarray(f_picked), jnp.asarray(mean_p),
                                              jnp.asarray(sd_p), jnp.asarray([True, False]), jnp.asarray(best),
                                              jnp.asarray(lipschitz))[0])
        mean, var = jnp.asarray([0.0, 1.0, -2.0]), jnp.asarray([1.0, 0.5, 2.0])
        for name in ("ei", "ucb", "log_ei"):
            score = acq.make(name, beta=4.0)
            as_log = acq.positive_log(score, name)
            assert np.array_equal(np.argsort(np.asarray(score(mean, var, 0.0))),
                                  np.argsort(np.asarray(as_log(mean, var, 0.0))))
    distance = np.linalg.norm(f[:, None, :] - f_picked[None, :, :], axis=-1)
    terms = norm.logcdf((best + lipschitz * distance - mean_p) / sd_p)
    assert terms.sum(1).min() < -1.0  # some points are penalized noticeably
    np.testing.assert_allclose(out, terms.sum(1), rtol=1e-7)
    np.testing.assert_allclose(only_first, terms[:, 0], rtol=1e-7)  # masked picks add nothing
    # at a picked point the penalizer is the probability that it does not beat the incumbent
    assert at_pick == pytest.approx(norm.logcdf((best - mean_p[0]) / sd_p[0]), rel=1e-6)
