"""Benchmark functions reach their known optima and nothing lower nearby."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxhpo.testing.functions import FUNCTIONS


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_value_at_optimum(name):
    f = FUNCTIONS[name]
    with jax.enable_x64(True):
        for x in f.optimum_x:
            assert float(f.fn(jnp.asarray(x, jnp.float64))) == pytest.approx(f.optimum_value, abs=1e-5)
        # random points and small perturbations of the optimum are never below the optimum
        lo, hi = np.array(f.bounds).T
        u = np.random.default_rng(0).uniform(size=(20000, f.dim))
        values = np.asarray(f.fn(jnp.asarray(lo + u * (hi - lo))))
        near = np.asarray(f.optimum_x[0]) + 1e-3 * np.random.default_rng(1).normal(size=(100, f.dim))
        assert values.min() >= f.optimum_value - 1e-9
        assert np.asarray(f.fn(jnp.asarray(near))).min() >= f.optimum_value - 1e-9


def test_objective_uses_decoded_params():
    f = FUNCTIONS["branin"]
    params = {"x0": jnp.asarray([np.pi]), "x1": jnp.asarray([2.275])}
    assert float(f.objective(params)[0]) == pytest.approx(f.optimum_value, abs=1e-4)
