"""Tests for the History buffer and the strategy contract."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxhpo
from jaxhpo.strategies.base import CapacityWarning, history_add, history_best, history_grow, history_init, next_capacity


def test_history_keeps_shape_and_flags_failed():
    h = history_init(8, 2)
    shapes = jax.tree.map(jnp.shape, h)
    add = jax.jit(history_add)
    h = add(h, jnp.ones((3, 2)) * 0.5, jnp.array([1.0, jnp.nan, -2.0]))
    h = add(h, jnp.zeros((2, 2)), jnp.array([jnp.inf, 0.5]))
    assert jax.tree.map(jnp.shape, h) == shapes
    assert int(h.count) == 5
    np.testing.assert_array_equal(h.filled, [1, 1, 1, 1, 1, 0, 0, 0])
    np.testing.assert_array_equal(h.valid, [1, 0, 1, 0, 1, 0, 0, 0])
    np.testing.assert_array_equal(h.failed, [0, 1, 0, 1, 0, 0, 0, 0])
    assert np.isnan(h.y[1]) and np.isinf(h.y[3])  # failed values kept as told
    index, x, y = history_best(h)
    assert int(index) == 2 and float(y) == -2.0


def test_history_drops_past_capacity_and_grows():
    with pytest.warns(CapacityWarning, match="capacity 2 has been told 3 points: the 1 past"):
        h = history_add(history_init(2, 1), jnp.arange(3.0)[:, None], jnp.arange(3.0))
        jax.effects_barrier()
    np.testing.assert_array_equal(h.y, [0.0, 1.0])  # third row dropped, not wrapped
    assert int(h.dropped) == 1
    g = history_grow(history_init(2, 1), 8)
    assert g.capacity == 8


def test_growing_a_history_keeps_its_rows_and_compiles_nothing_unless_traced():
    from _compiles import counting

    h = history_add(history_init(4, 2), jnp.full((3, 2), 0.25), jnp.array([1.0, jnp.nan, 3.0]))
    with counting() as c:
        g = history_grow(h, 16)
    assert c.programs == 0, c.names  # padded on the host (a later process grows without a compile)
    assert g.capacity == 16 and g.x.dtype == h.x.dtype and g.y.dtype == h.y.dtype
    np.testing.assert_array_equal(np.asarray(g.x[:4]), np.asarray(h.x))
    np.testing.assert_array_equal(np.asarray(g.y[:4]), np.asarray(h.y))
    assert np.all(np.asarray(g.x[4:]) == 0.0) and np.all(np.isnan(np.asarray(g.y[4:])))
    assert int(g.count) == 3 and np.asarray(g.valid).tolist() == [True, False, True] + [False] * 13
    traced = jax.jit(lambda h: history_grow(h, 16))(h)  # inside a program it pads there
    for a, b in zip(jax.tree.leaves(traced), jax.tree.leaves(g)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    with pytest.raises(ValueError, match="shrink"):
        history_grow(g, 4)
    with pytest.raises(ValueError, match="capacity"):
        history_init(0, 1)
    assert next_capacity(17) == 32 and next_capacity(1) == 16


def test_best_of_all_failed_is_reported_as_none():
    h = history_add(history_init(4, 1), jnp.zeros((2, 1)), jnp.array([jnp.nan, jnp.inf]))
    index, _, y = history_best(h)
    assert int(index) == -1 and np.isnan(y)


@pytest.mark.parametrize("batched", [False, True])
def test_overflow_inside_a_users_jit_scan_and_vmap_warns_and_only_then(batched):
    """A user's own loop that tells more than the state holds starved the GP without a sign."""
    import warnings

    space = jaxhpo.Space({"x": jaxhpo.Float(0.0, 1.0)})
    strategy = jaxhpo.strategies.random()

    def search(key, rounds):
        state = strategy.init(key, space, 4)

        def body(state, k):
            x, state = strategy.ask(k, state, 2)
            return strategy.tell(state, x, x[:, 0]), None

        return jax.lax.scan(body, state, jax.random.split(key, rounds))[0].history

    keys = jax.random.split(jax.random.key(0), 3)
    run = jax.jit(jax.vmap(search, in_axes=(0, None)) if batched else search, static_argnums=1)
    key = keys if batched else keys[0]
    with warnings.catch_warnings():
        warnings.simplefilter("error", CapacityWarning)
        history = run(key, 2)  # exactly full: no warning
        jax.effects_barrier()
    assert np.all(np.asarray(history.dropped) == 0)
    with pytest.warns(CapacityWarning, match="capacity 4 has been told 6 points.*larger capacity"):
        history = run(key, 3)
        jax.effects_barrier()
    assert np.all(np.asarray(history.dropped) == 2)


def test_a_state_made_by_another_strategy_is_a_clear_error():
    space = jaxhpo.Space({"x": jaxhpo.Float(0.0, 1.0), "n": jaxhpo.Int(1, 4)})
    key = jax.random.key(0)
    sobol_state = jaxhpo.strategies.sobol().init(key, space, 8)
    bayes = jaxhpo.strategies.bayes()
    bayes.init(key, space, 8)
    with pytest.raises(ValueError, match=r"strategy.ask: state is a \w+State, which another strategy's init made; "
                                         r"this strategy's state is a BayesState"):
        bayes.ask(key, sobol_state, 2)
    genetic = jaxhpo.strategies.genetic(pool_size=4)
    genetic_state = genetic.init(key, space, 8)
    with pytest.raises(ValueError, match=r"strategy.tell: state is a \w+State.*init\(key, space, capacity\)"):
        genetic.tell(sobol_state, jnp.full((1, 2), 0.5), jnp.ones(1))
    x, genetic_state = genetic.ask(key, genetic_state, 2)  # its own state still works
    assert int(genetic.tell(genetic_state, x, jnp.ones(2)).history.count) == 2


def test_strategies_that_differ_only_in_numeric_settings_share_every_function_but_init():
    import pickle

    bayes = jaxhpo.strategies.bayes
    ucb = bayes(acquisition="ucb", beta=8.0, fit_tol=1e-3)
    common = bayes(acquisition="ucb")
    assert ucb.shared is common and common.shared is None and ucb.programs() is common
    assert ucb.init is not common.init
    assert (ucb.ask, ucb.tell, ucb.design_ask, ucb.in_design, ucb.ask_stages) == (
        common.ask, common.tell, common.design_ask, common.in_design, common.ask_stages)
    assert bayes("ucb").shared is common  # positional arguments name the same strategy
    # init puts its own numbers in the state; the strategy pickles and shows as its own call
    state = ucb.init(jax.random.key(0), jaxhpo.Space({"x": jaxhpo.Float(0.0, 1.0)}), 8)
    assert float(state.settings.beta) == 8.0 and abs(float(state.settings.fit_tol) - 1e-3) < 1e-9
    assert pickle.loads(pickle.dumps(ucb)) is ucb and repr(ucb) == "bayes(acquisition='ucb', beta=8.0, fit_tol=0.001)"
    # None is not a number: without a prior-mean quantile the programs differ, and nothing is shared
    assert bayes(prior_mean_quantile=None).shared is None
    assert bayes(prior_mean_quantile=None, beta=2.0).shared is bayes(prior_mean_quantile=None)
    assert jaxhpo.strategies.sobol().shared is None  # a factory without numeric settings
