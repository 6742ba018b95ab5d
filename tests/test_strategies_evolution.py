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
    for name, value in (("tol_x", -1.0), ("tol_fun", float("nan")), ("tol_x", None), ("tol_fun", True)):
        with pytest.raises(ValueError, match=f"cma_es: {name} must be a finite number >= 0, got {name}="):
            cma_es(**{name: value})


def test_cma_es_step_size_and_tolerances_are_state_leaves_one_program_for_every_value():
    # cma_es(sigma0=...) for another value shares every program but init, and reads its own step size
    from _compiles import counting

    space = jaxhpo.Space({"a": jaxhpo.Float(0.0, 1.0), "b": jaxhpo.Float(0.0, 1.0)})
    objective = lambda p: 0.0 * p["a"]  # noqa: E731 - a plateau: flat generations restart (tol_fun)
    wide = jaxhpo.minimize(objective, space, cma_es(sigma0=0.5, popsize=4, restarts=1), num_rounds=1, batch_size=4,
                           key=jax.random.key(0))
    with counting() as c:
        narrow = jaxhpo.minimize(objective, space, cma_es(sigma0=0.01, popsize=4, restarts=1), num_rounds=1,
                                 batch_size=4, key=jax.random.key(0))
    assert [n for n in c.named if not n.startswith("_start")] == [], c.named
    assert cma_es(sigma0=0.01, popsize=4, restarts=1).shared is cma_es(popsize=4, restarts=1)
    assert float(narrow.state.settings.sigma0) == pytest.approx(0.01)
    spread = lambda r: float(np.std(np.asarray(r.x[:4]), axis=0).max())  # noqa: E731 - the first generation
    assert spread(narrow) < 0.05 < spread(wide)
    assert int(wide.state.restarts) == 1  # the flat generation restarted, its step size from the state (sigma0)
    assert float(wide.state.sigma) == pytest.approx(0.5) and float(narrow.state.sigma) == pytest.approx(0.01)
    # the shared search from this strategy's init gives what the strategy's own search traced in one
    # program (minimize under the caller's jit) gives
    traced = jax.jit(lambda k: jaxhpo.minimize(objective, space, cma_es(sigma0=0.01, popsize=4, restarts=1),
                                               num_rounds=1, batch_size=4, key=k))(jax.random.key(0))
    np.testing.assert_array_equal(np.asarray(traced.x), np.asarray(narrow.x))


@pytest.mark.parametrize("make, small, large, read", [
    (genetic, {"sigma": 0.01, "crossover": 0.1}, {"sigma": 0.5, "crossover": 0.9},
     lambda s: (float(s.settings.sigma), float(s.settings.crossover))),
    (policy_gradient, {"learning_rate": 0.01, "entropy": 0.0}, {"learning_rate": 0.5, "entropy": 0.1},
     lambda s: (float(s.opt_state.hyperparams["learning_rate"]), float(s.settings.entropy))),
])
def test_genetic_and_policy_numeric_settings_are_state_leaves_one_program_for_every_value(make, small, large, read):
    from _compiles import counting

    def run(kwargs):
        return jaxhpo.minimize(mixed_objective, MIXED, make(**kwargs), num_rounds=6, batch_size=8,
                               key=jax.random.key(2))

    first = run(small)
    with counting() as c:
        second = run(large)
    assert [n for n in c.named if not n.startswith("_start")] == [], c.named
    assert make(**large).shared is make() and make(**small).shared is make()
    assert read(first.state) == pytest.approx(tuple(small.values()))
    assert read(second.state) == pytest.approx(tuple(large.values()))
    assert not np.array_equal(np.asarray(first.x[8:]), np.asarray(second.x[8:]))  # the values are used


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
    for value in (float("inf"), None, "0.1"):
        with pytest.raises(ValueError, match="policy_gradient: entropy must be a finite number, got entropy="):
            policy_gradient(entropy=value)


def _cma_generation(order):
    """One 3-d CMA-ES generation of popsize 7, told one point at a time in ``order``."""
    space = jaxhpo.Space({f"x{i}": jaxhpo.Float(-1.0, 1.0) for i in range(3)})
    s = cma_es()
    state = s.init(jax.random.key(0), space, 32)
    x, state = s.ask(jax.random.key(1), state, 7)
    y = jnp.sum((x - 0.2) ** 2, axis=1)
    for i in order:
        state = s.tell(state, x[i:i + 1], y[i:i + 1])
    return state


def test_cma_es_matches_told_values_to_their_points_in_any_order():
    in_order = _cma_generation(range(7))
    shuffled = _cma_generation([4, 0, 6, 2, 5, 1, 3])
    assert int(in_order.generation) == int(shuffled.generation) == 1
    for name in ("mean", "sigma", "cov", "p_sigma", "p_c"):
        np.testing.assert_allclose(getattr(shuffled, name), getattr(in_order, name), rtol=1e-5, atol=1e-7,
                                   err_msg=name)
    assert not np.allclose(in_order.mean, 0.5)  # the generation did move the mean


@pytest.mark.parametrize("batch_size", [3, 8])
def test_cma_es_converges_with_a_batch_size_other_than_its_population(batch_size):
    # popsize 8 in 4-d: batches of 3 split generations, batches of 8 + 1 asked ahead of the update
    s = cma_es(popsize=7)
    res = jaxhpo.minimize(sphere, SPHERE_SPACE, s, num_rounds=560 // batch_size, batch_size=batch_size,
                          key=jax.random.key(0))
    assert float(res.best_value) < 1e-6
    assert int(res.state.generation) == (560 // batch_size) * batch_size // 7


def test_cma_es_a_point_never_asked_is_injected_not_misattributed():
    space = jaxhpo.Space({f"x{i}": jaxhpo.Float(0.0, 1.0) for i in range(2)})
    s = cma_es(popsize=4)
    state = s.init(jax.random.key(0), space, 16)
    x, state = s.ask(jax.random.key(1), state, 3)
    foreign = jnp.array([[0.9, 0.9]], x.dtype)
    state = s.tell(state, jnp.concatenate([x, foreign]), jnp.array([1.0, 2.0, 3.0, 0.5]))
    assert int(state.generation) == 1 and int(state.told) == 0
    assert not bool(jnp.any(state.pool_open))  # the three asked points were all matched


def _eigh_executions(jaxpr, times=1):
    """How many times ``eigh`` runs in a closed jaxpr (scan bodies count once per iteration)."""
    total = 0
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "eigh":
            total += times
        inner_times = times * (eqn.params["length"] if eqn.primitive.name == "scan" else 1)
        for value in eqn.params.values():
            for sub in value if isinstance(value, (list, tuple)) else [value]:
                if hasattr(sub, "jaxpr"):
                    total += _eigh_executions(getattr(sub, "jaxpr", sub), inner_times)
    return total


def test_cma_es_vmapped_tell_updates_once_per_generation():
    # under vmap a lax.cond runs both branches: a cond per told point would run the update
    # (with its eigendecomposition) once per point instead of once per generation
    space = jaxhpo.Space({f"x{i}": jaxhpo.Float(0.0, 1.0) for i in range(3)})
    s = cma_es()  # popsize 7
    states = jax.vmap(lambda k: s.init(k, space, 32))(jax.random.split(jax.random.key(0), 4))
    x = jnp.zeros((4, 7, 3))
    jaxpr = jax.make_jaxpr(jax.vmap(s.tell))(states, x, jnp.zeros((4, 7)))
    assert _eigh_executions(jaxpr.jaxpr) == 1
