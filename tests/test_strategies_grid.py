"""Tests for grid search."""

import jax
import numpy as np
import pytest

import jaxhpo
from jaxhpo.strategies import GridExhausted

SPACE = jaxhpo.Space({"x": jaxhpo.Float(0, 1), "n": jaxhpo.Int(1, 3), "c": jaxhpo.Categorical(["a", "b"])})


def test_grid_hands_out_every_point_once_in_order_then_stops():
    g = jaxhpo.strategies.grid(resolution=3)
    state = g.init(jax.random.key(0), SPACE, 18)
    ask = jax.jit(g.ask, static_argnums=2)
    seen = []
    for _ in range(3):
        x, state = ask(jax.random.key(0), state, 6)
        seen.append(np.asarray(x))
    seen = np.concatenate(seen)
    np.testing.assert_allclose(seen, SPACE.grid(3), rtol=1e-6)
    assert not bool(state.exhausted)
    x, state = ask(jax.random.key(0), state, 2)
    assert np.isnan(np.asarray(x)).all()
    assert bool(state.exhausted)


def test_minimize_refuses_budget_past_grid():
    with pytest.raises(ValueError, match="has 18 points to hand out"):
        jaxhpo.minimize(lambda p: p["x"], SPACE, jaxhpo.strategies.grid(3), num_rounds=19, key=jax.random.key(0))


def test_minimize_over_whole_grid_finds_grid_optimum():
    r = jaxhpo.minimize(
        lambda p: (p["x"] - 0.5) ** 2 + p["n"] + 2.0 * p["c"],
        SPACE,
        jaxhpo.strategies.grid(3),
        num_rounds=3,
        batch_size=6,
        key=jax.random.key(0),
    )
    assert float(r.best_value) == pytest.approx(1.0)
    assert SPACE.to_python(r.best_params) == {"x": 0.5, "n": 1, "c": "a"}


def test_study_grid_exhaustion_is_explicit():
    study = jaxhpo.Study(SPACE, jaxhpo.strategies.grid(3))
    study.optimize(lambda p: p["x"], n_trials=30, progress=False)
    assert len(study.trials) == 18  # stopped at the end of the grid
    combos = {tuple(t.params.values()) for t in study.trials}
    assert len(combos) == 18
    with pytest.raises(GridExhausted, match="exhausted"):
        study.ask()
