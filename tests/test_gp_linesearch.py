"""Tests for jaxhpo.gp.linesearch: optax's zoom line search's steps, with the objective traced once."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxhpo.gp.linesearch import zoom_linesearch


def _rosenbrock(w):
    return jnp.sum(100.0 * (w[1:] - w[:-1] ** 2) ** 2 + (1.0 - w[:-1]) ** 2)


def _lbfgs_path(linesearch, objective, start, iterations):
    """Every iterate of ``iterations`` L-BFGS steps, and how often ``objective`` was traced."""
    traced = []

    def counted(w):
        traced.append(1)
        return objective(w)

    opt = optax.lbfgs(memory_size=10, linesearch=linesearch)
    value_and_grad = optax.value_and_grad_from_state(counted)

    @jax.jit
    def step(w, state):
        value, grad = value_and_grad(w, state=state)
        updates, state = opt.update(grad, state, w, value=value, grad=grad, value_fn=counted)
        return optax.apply_updates(w, updates), state

    w, state, path = start, opt.init(start), []
    for _ in range(iterations):
        w, state = step(w, state)
        path.append(np.asarray(w))
    return np.stack(path), len(traced)


@pytest.mark.parametrize("start", [[-1.2, 1.0, 0.5, -0.3], [2.0, -2.0, 0.0, 3.0]])
def test_takes_the_steps_of_optax_zoom_linesearch_and_traces_the_objective_less(start):
    with jax.enable_x64(True):
        start = jnp.asarray(start, jnp.float64)
        theirs, traced_theirs = _lbfgs_path(optax.scale_by_zoom_linesearch(max_linesearch_steps=12), _rosenbrock,
                                            start, 40)
        ours, traced_ours = _lbfgs_path(zoom_linesearch(max_steps=12), _rosenbrock, start, 40)
    # the same steps up to rounding (XLA fuses the two programs differently: last-bit differences,
    # which Rosenbrock's valley amplifies to about 1e-8 by the 25th iterate)
    np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-7)
    assert float(_rosenbrock(jnp.asarray(ours[-1]))) < 0.1 * float(_rosenbrock(start))  # a descent
    # optax traces the objective in both phases of its search (and lax.cond traces a branch more than
    # once); here it is traced twice in all: optax.value_and_grad_from_state's, and the search's one
    assert traced_ours == 2 and traced_theirs > traced_ours, (traced_theirs, traced_ours)


def test_a_search_that_cannot_decrease_stays_put_and_unexpected_arguments_are_an_error():
    with jax.enable_x64(True):
        flat_then_nan = lambda w: jnp.where(jnp.sum(w) > 0.0, jnp.nan, jnp.sum(w ** 2))  # noqa: E731
        opt = optax.lbfgs(linesearch=zoom_linesearch(max_steps=5))
        w = jnp.asarray([-0.1, -0.2])
        state = opt.init(w)
        value, grad = jax.value_and_grad(flat_then_nan)(w)
        updates, state = opt.update(-grad * 0 + jnp.asarray([10.0, 10.0]), state, w, value=value,
                                    grad=-jnp.asarray([10.0, 10.0]), value_fn=flat_then_nan)
        assert np.all(np.isfinite(np.asarray(w + updates)))
        with pytest.raises(TypeError, match="unexpected arguments"):
            zoom_linesearch(3).update(w, zoom_linesearch(3).init(w), w, value=value, grad=grad,
                                      value_fn=flat_then_nan, data=1)
