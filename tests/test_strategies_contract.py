"""The strategy contract, over every strategy: jitted where defined, eager calls equal nested ones."""

from _compiles import counting

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxhpo
from jaxhpo import strategies

SPACE = jaxhpo.Space({"x": jaxhpo.Float(-2.0, 2.0), "n": jaxhpo.Int(0, 3), "c": jaxhpo.Categorical(["a", "b"])})

ALL = {
    "random": lambda: strategies.random(),
    "sobol": lambda: strategies.sobol(),
    "lhs": lambda: strategies.lhs(),
    "grid": lambda: strategies.grid(),
    "bayes": lambda: strategies.bayes(num_initial=2, refine_steps=2),
    "cma_es": lambda: strategies.cma_es(),
    "genetic": lambda: strategies.genetic(),
    "policy_gradient": lambda: strategies.policy_gradient(),
}


def _objective(x):
    return jnp.sum((x - 0.3) ** 2, axis=-1)


@pytest.mark.parametrize("name", sorted(ALL))
def test_eager_calls_are_compiled_and_equal_nested_jit(name):
    strategy = ALL[name]()
    state = strategy.init(jax.random.key(0), SPACE, 16)
    for i in range(3):  # past bayes()'s initial design
        x, state = strategy.ask(jax.random.key(i), state, 2)
        state = strategy.tell(state, x, _objective(x))
    key = jax.random.key(7)
    for fn in (strategy.init, strategy.ask, strategy.tell):  # jitted where the strategy is defined
        assert hasattr(fn, "lower"), f"{name}: {fn} is not a jitted function"
    eager_x, eager_state = strategy.ask(key, state, 2)
    with counting() as c:  # a second eager call runs the program compiled where the strategy is defined
        again_x, _ = jax.block_until_ready(strategy.ask(key, state, 2))
    assert c.programs == 0, f"{name}: an eager ask built {c.programs} programs (not compiled where defined?)"
    nested_x, nested_state = jax.jit(lambda k, s: strategy.ask(k, s, 2))(key, state)
    np.testing.assert_array_equal(np.asarray(eager_x), np.asarray(again_x))
    np.testing.assert_allclose(np.asarray(eager_x), np.asarray(nested_x), rtol=0, atol=1e-6)
    assert eager_x.shape == (2, SPACE.dim) and eager_x.dtype == state.history.x.dtype
    told = strategy.tell(eager_state, eager_x, _objective(eager_x))
    assert int(told.history.count) == 8


@pytest.mark.parametrize("name", sorted(ALL))
def test_design_ask_matches_ask_while_in_design(name):
    strategy = ALL[name]()
    if strategy.design_ask is None:
        assert strategy.in_design is None  # both or neither
        return
    state = strategy.init(jax.random.key(0), SPACE, 16)
    while bool(strategy.in_design(state, 1)):
        key = jax.random.key(int(state.history.count))
        x_full, s_full = strategy.ask(key, state, 1)
        x_fast, s_fast = strategy.design_ask(key, state, 1)
        np.testing.assert_array_equal(np.asarray(x_full), np.asarray(x_fast))
        for a, b in zip(jax.tree.leaves(s_full), jax.tree.leaves(s_fast)):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
        state = strategy.tell(s_full, x_full, _objective(x_full))
    assert int(state.history.count) >= 2


@pytest.mark.parametrize("x64", [False, True], ids=["x64-off", "x64-on"])
@pytest.mark.parametrize("name", sorted(ALL))
def test_precision_contract_inside_a_users_jit_and_vmap(name, x64):
    """Every strategy under the caller's precision (in the manner of optax's float64 test).

    A user's own jit + vmap loop runs with x64 off or on: points and values
    come back in the caller's default float dtype, finite and in the unit
    cube, the vmapped runs equal separate runs, and the caller's precision is
    what it was (the library never flips it; the GP's float64 stays inside).
    """
    strategy = ALL[name]()

    def search(key):
        state = strategy.init(key, SPACE, 12)

        def round_(state, k):
            x, state = strategy.ask(k, state, 2)
            return strategy.tell(state, x, _objective(x)), x

        state, xs = jax.lax.scan(round_, state, jax.random.split(key, 6))
        return xs.reshape(-1, SPACE.dim), state.history.y

    with jax.enable_x64(x64):
        dtype = jnp.result_type(float)
        keys = jax.random.split(jax.random.key(3), 2)
        xs, ys = jax.jit(jax.vmap(search))(keys)
        alone = [jax.jit(search)(k) for k in keys]
        assert jax.config.jax_enable_x64 == x64  # not flipped by the library
    assert xs.dtype == dtype and ys.dtype == dtype, (xs.dtype, ys.dtype, dtype)
    assert np.all(np.isfinite(np.asarray(xs))) and np.all((np.asarray(xs) >= 0) & (np.asarray(xs) <= 1))
    assert np.all(np.isfinite(np.asarray(ys)))
    for i, (x_alone, _) in enumerate(alone):
        np.testing.assert_allclose(np.asarray(xs[i]), np.asarray(x_alone), rtol=0, atol=1e-5)


@pytest.mark.parametrize("name", sorted(ALL))
def test_failed_values_are_kept_as_failures_and_asks_stay_finite(name):
    """NaN and inf values (failed trials) are recorded as failed; the next asks are still valid points."""
    strategy = ALL[name]()
    state = strategy.init(jax.random.key(0), SPACE, 24)
    for i in range(4):
        x, state = strategy.ask(jax.random.key(i), state, 3)
        y = _objective(x)
        y = y.at[0].set(jnp.nan).at[1].set(jnp.inf if i % 2 else -jnp.inf)  # two failures per batch
        state = strategy.tell(state, x, y)
    history = state.history
    assert int(history.count) == 12 and int(jnp.sum(history.failed)) == 8
    assert int(jnp.sum(history.valid)) == 4
    x, _ = strategy.ask(jax.random.key(9), state, 3)
    assert np.all(np.isfinite(np.asarray(x))) and np.all((np.asarray(x) >= 0) & (np.asarray(x) <= 1))
    index, _, best = strategies.history_best(history)
    assert np.isfinite(float(best)) and bool(history.valid[int(index)])  # the best is a finite value


@pytest.mark.parametrize("name", sorted(ALL))
def test_told_values_stay_with_their_points_whatever_the_order_of_tell(name):
    """Telling a batch in another order keeps each value with its point (rows permuted together)."""
    strategy = ALL[name]()
    state = strategy.init(jax.random.key(0), SPACE, 16)
    x, state = strategy.ask(jax.random.key(1), state, 4)
    y = _objective(x)
    order = np.array([2, 0, 3, 1])
    shuffled = strategy.tell(state, x[order], y[order])
    hx, hy = np.asarray(shuffled.history.x[:4]), np.asarray(shuffled.history.y[:4])
    np.testing.assert_allclose(hy, np.asarray(_objective(jnp.asarray(hx))), rtol=1e-6)
    in_order = strategy.tell(state, x, y)
    # the same observations, as sets of (point, value) pairs
    pairs = lambda s: sorted(map(tuple, np.c_[np.asarray(s.history.x[:4]), np.asarray(s.history.y[:4])]))  # noqa: E731
    np.testing.assert_allclose(pairs(shuffled), pairs(in_order), rtol=1e-6)


@pytest.mark.parametrize("name", sorted(ALL))
def test_a_study_resumed_from_its_journal_continues_as_an_uninterrupted_one(name, tmp_path):
    """Journal replay equals an uninterrupted run: the same trials, the same next suggestions."""
    space = SPACE
    objective = lambda p: (p["x"] - 0.5) ** 2 + p["n"] + (p["c"] == "b")  # noqa: E731

    def run(path, stop_after=None):
        study = jaxhpo.Study(space, ALL[name](), seed=4, storage=path)
        for i in range(6 if stop_after is None else stop_after):
            trials = study.ask(2)
            for t in trials:
                study.tell(t, objective(t.params))
        return study

    whole = run(str(tmp_path / "whole.jsonl"))
    part = run(str(tmp_path / "part.jsonl"), stop_after=3)
    part.close()
    resumed = jaxhpo.Study.load(str(tmp_path / "part.jsonl"), ALL[name]())
    for i in range(3):
        for t in resumed.ask(2):
            resumed.tell(t, objective(t.params))
    assert [t.params for t in resumed.trials] == [t.params for t in whole.trials]
    assert [t.value for t in resumed.trials] == [t.value for t in whole.trials]
    whole.close()
    resumed.close()


def test_cma_es_tell_under_vmap_runs_one_update_per_generation_told():
    """The vmap cost check: telling a whole generation runs the CMA update (with its eigh) once, not once
    per told point (a lax.cond per point turns, under vmap, into every update computed for every point)."""
    strategy = strategies.cma_es()
    keys = jax.random.split(jax.random.key(0), 3)
    states = jax.vmap(lambda k: strategy.init(k, SPACE, 64))(keys)
    lam = int(states.popsize[0])

    def updates_in(q):
        x = jnp.full((3, q, SPACE.dim), 0.5)
        jaxpr = jax.make_jaxpr(jax.vmap(strategy.tell))(states, x, jnp.zeros((3, q)))
        lengths = []

        def walk(jx):
            for eqn in jx.eqns:
                if eqn.primitive.name == "scan" and "eigh" in str(eqn.params["jaxpr"]):
                    lengths.append(eqn.params["length"])
                    continue
                for value in eqn.params.values():  # into jit, cond and other nested programs
                    for sub in value if isinstance(value, (list, tuple)) else [value]:
                        inner = getattr(sub, "jaxpr", sub)
                        if hasattr(inner, "eqns"):
                            walk(inner)

        walk(jaxpr.jaxpr)
        return lengths

    assert updates_in(lam) == [1]  # a generation told at once: one update
    assert updates_in(2 * lam) == [2]
    assert updates_in(1) == [1]
