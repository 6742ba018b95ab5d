"""Tests for random, Sobol and Latin hypercube samplers."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import qmc

import jaxhpo
from jaxhpo.strategies.sampling import sobol_directions, sobol_points

SPACE3 = jaxhpo.Space({"a": jaxhpo.Float(0, 1), "b": jaxhpo.Float(0, 1), "c": jaxhpo.Float(0, 1)})


@pytest.mark.parametrize("make", [jaxhpo.strategies.random, jaxhpo.strategies.sobol, jaxhpo.strategies.lhs])
def test_constructors_need_no_arguments_and_stay_in_cube(make):
    s = make()
    state = s.init(jax.random.key(0), SPACE3, 64)
    x, state = jax.jit(s.ask, static_argnums=2)(jax.random.key(1), state, 64)
    assert x.shape == (64, 3)
    assert bool(jnp.all((x >= 0) & (x < 1)))
    state = jax.jit(s.tell)(state, x, jnp.sum(x, axis=1))
    assert int(state.history.count) == 64


def test_unscrambled_sobol_matches_scipy():
    for dim in (1, 6, 40, 256):
        ours = sobol_points(jnp.asarray(sobol_directions(dim)), jnp.zeros(dim, jnp.uint32), jnp.arange(256))
        np.testing.assert_array_equal(np.asarray(ours, np.float64), qmc.Sobol(dim, scramble=False).random(256))
    with pytest.raises(ValueError, match="dim"):
        sobol_directions(257)


def test_scrambled_sobol_is_balanced_and_differs_by_key():
    s = jaxhpo.strategies.sobol()
    xs = []
    for seed in range(2):
        state = s.init(jax.random.key(seed), SPACE3, 64)
        x, _ = s.ask(None, state, 64)
        x = np.asarray(x)
        # (t, m, s)-net property: every coordinate hits each of 64 bins exactly once
        for j in range(3):
            assert sorted((x[:, j] * 64).astype(int)) == list(range(64))
        # and every pair of coordinates hits each of 8x8 cells exactly once
        cells = (x[:, 0] * 8).astype(int) * 8 + (x[:, 1] * 8).astype(int)
        assert sorted(cells) == list(range(64))
        xs.append(x)
    assert not np.allclose(xs[0], xs[1])
    # lower discrepancy than random points
    rand = np.asarray(jax.random.uniform(jax.random.key(0), (64, 3)))
    assert qmc.discrepancy(xs[0]) < qmc.discrepancy(rand)


def test_sobol_continues_the_sequence_across_asks():
    s = jaxhpo.strategies.sobol()
    state = s.init(jax.random.key(3), SPACE3, 64)
    whole, _ = s.ask(None, state, 32)
    a, state = s.ask(None, state, 16)
    b, state = s.ask(None, state, 16)
    np.testing.assert_array_equal(np.concatenate([a, b]), whole)


def test_lhs_budget_is_one_latin_hypercube():
    s = jaxhpo.strategies.lhs()
    state = s.init(jax.random.key(0), SPACE3, 50)
    ask = jax.jit(s.ask, static_argnums=2)
    parts = []
    for _ in range(5):
        x, state = ask(jax.random.key(9), state, 10)
        parts.append(np.asarray(x))
    x = np.concatenate(parts)
    for j in range(3):
        assert sorted((x[:, j] * 50).astype(int)) == list(range(50))
    # past the budget, a fresh design, not a repeat
    more, state = jax.jit(s.ask, static_argnums=2)(jax.random.key(0), state, 50)
    assert not np.allclose(np.sort(more[:, 0]), np.sort(x[:, 0]))
    for j in range(3):
        assert sorted((np.asarray(more)[:, j] * 50).astype(int)) == list(range(50))
    with pytest.raises(ValueError, match="num_samples"):
        jaxhpo.strategies.lhs(num_samples=0)


def test_random_is_uniform():
    s = jaxhpo.strategies.random()
    state = s.init(jax.random.key(0), SPACE3, 8)
    x, _ = s.ask(jax.random.key(5), state, 20000)
    assert np.asarray(x).mean(0) == pytest.approx([0.5] * 3, abs=0.01)
