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


def test_a_step_into_non_finite_values_comes_back_to_a_lower_finite_point_as_optax_does():
    # NaN past sum(w) = 0, the minimum at (1, 1) beyond it: the first trial step lands in the NaN region
    nan_beyond = lambda w: jnp.where(jnp.sum(w) > 0.0, jnp.nan, jnp.sum((w - 1.0) ** 2))  # noqa: E731
    with jax.enable_x64(True):
        w = jnp.asarray([-0.5, -0.2])
        value, grad = jax.value_and_grad(nan_beyond)(w)
        moved = []
        for linesearch in (zoom_linesearch(max_steps=12), optax.scale_by_zoom_linesearch(max_linesearch_steps=12)):
            opt = optax.lbfgs(linesearch=linesearch)
            updates, _ = opt.update(grad, opt.init(w), w, value=value, grad=grad, value_fn=nan_beyond)
            moved.append(np.asarray(w + updates))
        reached = float(nan_beyond(jnp.asarray(moved[0])))
        assert np.isfinite(reached) and reached < float(value)
    np.testing.assert_allclose(moved[0], moved[1], rtol=1e-12)


def test_an_argument_value_fn_does_not_take_is_an_error_naming_it():
    w = jnp.zeros(2)
    search = zoom_linesearch(3)
    with pytest.raises(TypeError, match=r"unexpected arguments \['data'\]"):
        search.update(w, search.init(w), w, value=jnp.float32(0.0), grad=w, value_fn=lambda p: jnp.sum(p), data=1)


def test_a_unit_first_step_is_optax_lbfgs_default_search_on_a_float32_tree():
    # what the ensemble fits run (jaxhpo.ensemble._optim): a softmax regression, float32, dict parameters
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(120, 6)), jnp.float32)
    y = jnp.asarray(rng.integers(0, 3, 120))

    def loss(p):
        logits = x @ p["w"] + p["b"]
        return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, y)) + 1e-3 * jnp.sum(p["w"] ** 2)

    start = {"w": jnp.zeros((6, 3)), "b": jnp.zeros(3)}
    paths = []
    for linesearch in (zoom_linesearch(20, initial_guess="one"), None):  # None: optax.lbfgs() as it is
        opt = optax.lbfgs() if linesearch is None else optax.lbfgs(linesearch=linesearch)
        value_and_grad = optax.value_and_grad_from_state(loss)

        @jax.jit
        def step(p, state, opt=opt, value_and_grad=value_and_grad):
            value, grad = value_and_grad(p, state=state)
            updates, state = opt.update(grad, state, p, value=value, grad=grad, value_fn=loss)
            return optax.apply_updates(p, updates), state, value

        p, state, values = start, opt.init(start), []
        for _ in range(15):
            p, state, value = step(p, state)
            values.append(float(value))
        paths.append((np.concatenate([np.asarray(p["w"]).ravel(), np.asarray(p["b"])]), values))
    (ours, our_values), (theirs, their_values) = paths
    assert their_values[-1] < 0.95 * their_values[0]  # the case takes real steps
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(our_values, their_values, rtol=1e-6)


def test_a_unit_first_step_takes_optax_lbfgs_default_steps_and_differs_from_keeping_the_last():
    with jax.enable_x64(True):
        start = jnp.asarray([-1.2, 1.0, 0.5, -0.3], jnp.float64)
        # optax.lbfgs()'s default search, spelled out (_lbfgs_path builds the L-BFGS around it)
        theirs, _ = _lbfgs_path(optax.scale_by_zoom_linesearch(max_linesearch_steps=20, initial_guess_strategy="one"),
                                _rosenbrock, start, 40)
        ours, _ = _lbfgs_path(zoom_linesearch(20, initial_guess="one"), _rosenbrock, start, 40)
        kept, _ = _lbfgs_path(zoom_linesearch(20), _rosenbrock, start, 40)
    np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-7)
    assert np.max(np.abs(kept - theirs)) > 1e-3  # the first guess matters on this path


def test_an_unknown_initial_guess_is_an_error_naming_it():
    with pytest.raises(ValueError, match="initial_guess='two'"):
        zoom_linesearch(5, initial_guess="two")
