import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxhpo
from jaxhpo.strategies import cma_es, genetic, policy_gradient, policy_probabilities
from jaxhpo.strategies.cma import mirror

SPHERE_SPACE = jaxhpo.Space({f"x{i}": jaxhpo.Float(-1.0, 1.0) for i in range(4)})


def sphere(p):
    return sum((p[f"x{i}"] - 0.3) ** 2 for i in range(4))


def test_cma_es_converges_on_a_sphere_with_a_valid_covariance():
    s = cma_es(sigma0=0.3)
    run = jax.jit(lambda k: jaxhpo.minimize(sphere, SPHERE_SPACE, s, num_rounds=60, batch_size=8, key=k))
    res = run(jax.random.key(0))
    assert float(res.best_value) < 1e-6
    st = res.state
    cov = np.asarray(st.cov)
    np.testing.assert_allclose(cov, cov.T, atol=1e-6)
    assert np.linalg.eigvalsh(cov).min() > 0
    assert int(st.generation) == 60  # popsize 8 in 4-d: one generation per batch
    # the mean sits at the optimum (0.3 maps to 0.65 in the unit cube)
    np.testing.assert_allclose(np.asarray(st.mean), 0.65, atol=1e-3)
    # best-so-far improves over the run
    assert float(res.best_so_far[-1]) < float(res.best_so_far[10]) < float(res.best_so_far[0])


def test_cma_es_vmaps_over_seeds_and_mirrors_bounds():
    s = cma_es(sigma0=0.5)
    run = jax.jit(jax.vmap(lambda k: jaxhpo.minimize(sphere, SPHERE_SPACE, s, num_rounds=5, batch_size=8, key=k)))
    res = run(jax.random.split(jax.random.key(1), 4))
    assert res.best_value.shape == (4,)
    x = np.asarray(res.x)
    assert np.all((x >= 0) & (x <= 1))
    np.testing.assert_allclose(mirror(jnp.array([-0.2, 0.4, 1.3, 2.5])), [0.2, 0.4, 0.7, 0.5], atol=1e-6)


def test_cma_es_ipop_restarts_double_the_population():
    # a plateau: every point has the same value, so each generation is flat and triggers a restart
    space = jaxhpo.Space({"a": jaxhpo.Float(0.0, 1.0), "b": jaxhpo.Float(0.0, 1.0)})
    s = cma_es(popsize=4, restarts=2)
    res = jaxhpo.minimize(lambda p: 0.0 * p["a"], space, s, num_rounds=12, batch_size=4, key=jax.random.key(0))
    assert int(res.state.restarts) == 2 and float(res.state.popsize) == 16.0
    assert res.state.genotypes.shape == (16, 2)


def test_cma_es_bad_arguments():
    for kwargs in ({"sigma0": 0.0}, {"popsize": 1}, {"restarts": -1}):
        with pytest.raises(ValueError, match="cma_es"):
            cma_es(**kwargs)


MIXED = jaxhpo.Space({
    "x": jaxhpo.Float(-2.0, 2.0),
    "n": jaxhpo.Int(1, 6),
    "c": jaxhpo.Categorical(["a", "b", "c", "d", "e"]),
})


def mixed_objective(p):
    return (p["x"] - 0.5) ** 2 + (p["n"] - 4) ** 2 + 2.0 * (p["c"] != 3)


def test_genetic_elitism_and_genes_in_range():
    s = genetic(pool_size=8)
    res = jaxhpo.minimize(mixed_objective, MIXED, s, num_rounds=25, batch_size=8, key=jax.random.key(0))
    x = np.asarray(res.x)
    assert np.all((x >= 0) & (x <= 1))
    params = res.params
    assert np.all((np.asarray(params["c"]) >= 0) & (np.asarray(params["c"]) < 5))
    assert np.all((np.asarray(params["n"]) >= 1) & (np.asarray(params["n"]) <= 6))
    # discrete genes sit on bin centres: no two points of one category differ in that coordinate
    for col, k in ((1, 6), (2, 5)):
        np.testing.assert_allclose((x[:, col] * k) % 1.0, 0.5, atol=1e-4)
    # elitism: the best point told so far is always a parent: the next ask's children derive from the pool,
    # whose first member is the best point
    st = res.state
    masked = np.where(np.isfinite(np.asarray(st.history.y)), np.asarray(st.history.y), np.inf)
    best = np.asarray(st.history.x)[np.argmin(masked)]
    assert int(res.best_params["c"]) == 3 and int(res.best_params["n"]) == 4
    children, _ = s.ask(jax.random.key(5), st, 64)
    dist = np.abs(np.asarray(children) - best).max(axis=1)
    assert np.min(dist) < 0.2  # offspring of the elite appear


def test_genetic_and_policy_beat_random_on_a_categorical_problem():
    space = jaxhpo.Space({f"c{i}": jaxhpo.Categorical(list("abcde")) for i in range(8)})
    target = jnp.array([0, 1, 2, 3, 4, 0, 1, 2])

    def f(p):
        return sum((p[f"c{i}"] != target[i]).astype(jnp.float32) for i in range(8))

    def median_best(strategy):
        run = jax.vmap(lambda k: jaxhpo.minimize(f, space, strategy, num_rounds=25, batch_size=8, key=k).best_value)
        return float(np.median(jax.jit(run)(jax.random.split(jax.random.key(0), 4))))

    rnd = median_best(jaxhpo.strategies.random())
    assert median_best(genetic()) < rnd - 1.0
    assert median_best(policy_gradient()) < rnd - 1.0


def test_policy_concentrates_on_the_optimum():
    space = jaxhpo.Space({f"c{i}": jaxhpo.Categorical(list("abcd")) for i in range(3)})
    target = jnp.array([2, 0, 3])

    def f(p):
        return sum((p[f"c{i}"] != target[i]).astype(jnp.float32) for i in range(3))

    res = jaxhpo.minimize(f, space, policy_gradient(), num_rounds=40, batch_size=8, key=jax.random.key(0))
    probs = np.asarray(policy_probabilities(res.state))
    np.testing.assert_array_equal(probs.argmax(1), np.asarray(target))
    assert np.all(probs[np.arange(3), np.asarray(target)] > 0.6)
    np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-5)


def test_policy_discretizes_floats_and_survives_failures():
    space = jaxhpo.Space({"x": jaxhpo.Float(0.0, 1.0)})
    s = policy_gradient(bins=5)
    state = s.init(jax.random.key(0), space, 64)
    for r in range(4):
        x, state = s.ask(jax.random.key(r), state, 16)
        y = jnp.where(jnp.arange(16) % 4 == 0, jnp.nan, (x[:, 0] - 0.9) ** 2)  # a quarter fail
        state = s.tell(state, x, y)
    assert np.all(np.isfinite(np.asarray(state.logits)))
    assert state.logits.shape == (1, 5)
    assert int(np.argmax(np.asarray(state.logits)[0])) == 4
    with pytest.raises(ValueError, match="bins"):
        policy_gradient(bins=1)
