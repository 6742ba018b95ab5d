"""Tests for minimize: compiled, vmappable, deterministic, robust to failures."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxhpo
from jaxhpo.testing.functions import BRANIN

SPACE = jaxhpo.Space({"x": jaxhpo.Float(-2.0, 2.0), "n": jaxhpo.Int(0, 3), "c": jaxhpo.Categorical(["a", "b"])})


def objective(p):
    return (p["x"] - 1.0) ** 2 + p["n"] + 0.5 * p["c"]


@pytest.mark.parametrize("make", [jaxhpo.strategies.random, jaxhpo.strategies.sobol, jaxhpo.strategies.lhs])
def test_vmap_over_keys_equals_separate_runs(make):
    strategy = make()
    keys = jax.random.split(jax.random.key(0), 16)
    run = lambda k: jaxhpo.minimize(objective, SPACE, strategy, num_rounds=6, batch_size=3, key=k)  # noqa: E731
    batched = jax.jit(jax.vmap(run))(keys)
    assert batched.y.shape == (16, 18)
    for i in range(16):
        single = run(keys[i])
        np.testing.assert_allclose(batched.x[i], single.x, rtol=1e-6)
        np.testing.assert_allclose(batched.y[i], single.y, rtol=1e-6)
        assert float(batched.best_value[i]) == pytest.approx(float(single.best_value), rel=1e-6)
        for name in SPACE.names:
            assert batched.best_params[name][i] == single.best_params[name]
    # different keys, different studies
    assert len({float(v) for v in batched.y[:, 0]}) > 8


def test_result_is_consistent():
    r = jaxhpo.minimize(objective, SPACE, jaxhpo.strategies.sobol(), num_rounds=10, batch_size=4, key=jax.random.key(1))
    assert r.x.shape == (40, 3) and r.y.shape == (40,)
    np.testing.assert_allclose(r.y, objective(SPACE.decode(r.x)), rtol=1e-6)
    assert float(r.best_value) == pytest.approx(float(jnp.min(r.y)))
    assert float(objective(r.best_params)) == pytest.approx(float(r.best_value))
    per_round = np.minimum.accumulate(np.asarray(r.y).reshape(10, 4).min(1))
    np.testing.assert_allclose(r.best_so_far, per_round)
    assert int(r.state.history.count) == 40


def test_failed_evaluations_are_recorded_and_search_goes_on():
    def flaky(p):
        value = objective(p)
        return jnp.where(p["x"] > 0.5, jnp.nan, jnp.where(p["x"] < -1.5, jnp.inf, value))

    r = jaxhpo.minimize(flaky, SPACE, jaxhpo.strategies.random(), num_rounds=20, batch_size=4, key=jax.random.key(2))
    x = np.asarray(r.params["x"])
    np.testing.assert_array_equal(r.failed, (x > 0.5) | (x < -1.5))
    assert 0 < int(r.failed.sum()) < 80
    assert np.isfinite(float(r.best_value)) and float(r.best_params["x"]) <= 0.5
    assert int(r.state.history.valid.sum()) == 80 - int(r.failed.sum())


def test_all_failed_gives_nan_best_not_garbage():
    r = jaxhpo.minimize(lambda p: jnp.full(p["x"].shape, jnp.nan), SPACE, jaxhpo.strategies.random(),
                        num_rounds=2, batch_size=2, key=jax.random.key(0))
    assert int(r.best_index) == -1 and np.isnan(float(r.best_value))


def test_random_search_makes_progress_on_branin():
    keys = jax.random.split(jax.random.key(0), 8)
    r = jax.vmap(lambda k: jaxhpo.minimize(BRANIN.objective, BRANIN.space, jaxhpo.strategies.sobol(), num_rounds=64,
                                           key=k))(keys)
    assert np.all(np.diff(np.asarray(r.best_so_far), axis=1) <= 0)
    assert np.median(np.asarray(r.best_value)) - BRANIN.optimum_value < 1.0


@pytest.mark.parametrize(
    "kwargs, word",
    [({"num_rounds": 0}, "num_rounds"), ({"num_rounds": 2, "batch_size": 0}, "batch_size"),
     ({"num_rounds": 2.5}, "num_rounds")],
)
def test_bad_arguments(kwargs, word):
    with pytest.raises(ValueError, match=word):
        jaxhpo.minimize(objective, SPACE, jaxhpo.strategies.random(), key=jax.random.key(0), **kwargs)


def test_wrong_objective_shape_is_explained():
    with pytest.raises(ValueError, match=r"shape \(4,\)"):
        jaxhpo.minimize(lambda p: jnp.sum(p["x"]), SPACE, jaxhpo.strategies.random(), num_rounds=2, batch_size=4,
                        key=jax.random.key(0))


def test_a_fresh_identical_objective_reuses_the_compiled_search():
    from _compiles import counting

    def run():
        objective = lambda p: (p["x"] - 0.3) ** 2  # noqa: E731 - a new function object each call
        return jaxhpo.minimize(objective, SPACE, jaxhpo.strategies.random(), num_rounds=4, key=jax.random.key(0))

    first = run()
    with counting() as c:
        second = run()
    assert c.programs == 0
    assert jnp.array_equal(first.y, second.y)
    # a different constant in the closure is another objective: it compiles, and gives its own values
    shift = 0.7
    with counting() as c:
        other = jaxhpo.minimize(lambda p: (p["x"] - shift) ** 2, SPACE, jaxhpo.strategies.random(), num_rounds=4,
                                key=jax.random.key(0))
    assert c.programs > 0
    assert not jnp.array_equal(other.y, first.y)


def test_objective_key_tells_closures_apart():
    from jaxhpo._objective_key import ObjectiveKey

    def make(scale, table):
        return lambda p: scale * table[0] * p["x"]

    table = np.ones(3)
    assert ObjectiveKey(make(2.0, table)) == ObjectiveKey(make(2.0, table))
    assert ObjectiveKey(make(2.0, table)) != ObjectiveKey(make(2.0, np.ones(3)))  # arrays by identity
    assert ObjectiveKey(make(2, table)) != ObjectiveKey(make(2.0, table))  # 2 and 2.0 by type too
    assert ObjectiveKey(make(2.0, table)) != ObjectiveKey(lambda p: 2.0 * p["x"])


def test_counts_accept_numpy_integers_and_refuse_bools():
    space = jaxhpo.Space({"x": jaxhpo.Float(0.0, 1.0)})
    res = jaxhpo.minimize(lambda p: p["x"], space, jaxhpo.strategies.random(), num_rounds=np.int64(3),
                          batch_size=np.int32(2), key=jax.random.key(0))
    assert res.y.shape == (6,)
    with pytest.raises(ValueError, match="num_rounds must be a positive int, got num_rounds=True"):
        jaxhpo.minimize(lambda p: p["x"], space, jaxhpo.strategies.random(), num_rounds=True, key=jax.random.key(0))


@pytest.mark.parametrize("objective, message", [
    (lambda p: None, "objective must return an array of 2 values"),
    (lambda p: {"loss": p["x"]}, "objective must return an array of 2 values"),
    (lambda p: p["x"] + 1j, "complex values"),
])
def test_objective_mistakes_are_clear_errors(objective, message):
    space = jaxhpo.Space({"x": jaxhpo.Float(0.0, 1.0)})
    with pytest.raises(ValueError, match=message):
        jaxhpo.minimize(objective, space, jaxhpo.strategies.random(), num_rounds=2, batch_size=2, key=jax.random.key(0))


def test_a_factory_or_an_int_key_is_a_clear_error():
    space = jaxhpo.Space({"x": jaxhpo.Float(0.0, 1.0)})
    with pytest.raises(ValueError, match=r"did you mean random\(\)"):
        jaxhpo.minimize(lambda p: p["x"], space, jaxhpo.strategies.random, num_rounds=2, key=jax.random.key(0))
    with pytest.raises(ValueError, match=r"key must be a JAX PRNG key such as jax.random.key\(0\), got key=0"):
        jaxhpo.minimize(lambda p: p["x"], space, jaxhpo.strategies.random(), num_rounds=2, key=0)
    jaxhpo.minimize(lambda p: p["x"], space, jaxhpo.strategies.random(), num_rounds=2, key=jax.random.PRNGKey(0))
    for keys in (jax.random.split(jax.random.key(0), 3), jax.random.split(jax.random.PRNGKey(0), 3)):
        with pytest.raises(ValueError, match=r"got a batch of keys of shape \(3,\).*jax.vmap"):
            jaxhpo.minimize(lambda p: p["x"], space, jaxhpo.strategies.random(), num_rounds=2, key=keys)


@pytest.mark.parametrize("strategy", [jaxhpo.strategies.random(), jaxhpo.strategies.bayes(num_initial=2, refine_steps=2)],
                         ids=["random", "bayes"])
def test_the_objective_runs_in_the_callers_precision(strategy):
    # minimize used to trace the whole search, the user's objective included, inside jax.enable_x64(True)
    seen = {}

    def objective(p):
        seen["x"], seen["default"] = p["x"].dtype, jnp.result_type(float)
        seen["x64"] = jax.config.jax_enable_x64
        return p["x"] ** 2

    space = jaxhpo.Space({"x": jaxhpo.Float(-1.0, 1.0)})
    result = jaxhpo.minimize(objective, space, strategy, num_rounds=4, key=jax.random.key(0))
    assert seen == {"x": jnp.float32, "default": jnp.float32, "x64": False}
    assert result.x.dtype == jnp.float32 and result.y.dtype == jnp.float32

