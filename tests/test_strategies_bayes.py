"""Tests for bayes(): beats random search, never a NaN, batches spread, works in Study and under vmap."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxhpo
from jaxhpo.testing.functions import BRANIN

# a small configuration keeps compile and run time low in tests
SMALL = dict(num_initial=5, num_candidates=256, num_restarts=2, fit_steps=10, refine_steps=8)


def test_bayes_beats_random_on_branin():
    bo = SMALL_BO
    rs = jaxhpo.strategies.random()
    keys = jax.random.split(jax.random.key(0), 3)
    run = lambda s: jax.vmap(lambda k: jaxhpo.minimize(  # noqa: E731
        BRANIN.objective, BRANIN.space, s, num_rounds=25, key=k).best_value)(keys)
    regret_bo = np.asarray(run(bo)) - BRANIN.optimum_value
    regret_rs = np.asarray(run(rs)) - BRANIN.optimum_value
    assert np.all(np.isfinite(regret_bo))
    assert np.median(regret_bo) < 0.05 < np.median(regret_rs)
    assert np.all(regret_bo < regret_rs)


SPACE = jaxhpo.Space({"x": jaxhpo.Float(0.0, 1.0), "n": jaxhpo.Int(1, 4), "c": jaxhpo.Categorical(["a", "b", "c"])})


def _state_with(x, y, strategy):
    state = strategy.init(jax.random.key(0), SPACE, 32)
    return strategy.tell(state, jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32))


SMALL_BO = jaxhpo.strategies.bayes(**SMALL)
ASK = jax.jit(SMALL_BO.ask, static_argnums=2)  # one compilation shared by the cases below


@pytest.mark.parametrize("case", ["duplicates", "constant", "huge", "failed"])
def test_no_nan_in_suggestions_on_degenerate_data(case):
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(12, 3))
    y = np.sin(5 * x[:, 0]) + x[:, 1]
    if case == "duplicates":
        x[6:] = x[:6]
        y[6:] = y[:6]
    elif case == "constant":
        y[:] = 1.0
    elif case == "huge":
        y = 1e9 * y
    elif case == "failed":
        y[::2] = np.nan
        y[1] = np.inf
    state = _state_with(x, y, SMALL_BO)
    xq, _ = ASK(jax.random.key(1), state, 3)
    xq = np.asarray(xq)
    assert np.all(np.isfinite(xq)) and np.all((xq >= 0) & (xq <= 1))


def test_batch_proposals_spread_out():
    # SMALL_BO's batches on this mixed space are hybrid (batch="auto"); the believer's too
    for strategy, ask in ((SMALL_BO, ASK), (jaxhpo.strategies.bayes(batch="believer", **SMALL), None)):
        ask = ask or jax.jit(strategy.ask, static_argnums=2)
        rng = np.random.default_rng(1)
        x = rng.uniform(size=(12, 3))
        state = _state_with(x, (x[:, 0] - 0.3) ** 2, strategy)
        xq, _ = ask(jax.random.key(2), state, 3)
        decoded = SPACE.decode(xq)
        points = {(round(float(a), 4), int(b), int(c)) for a, b, c in zip(decoded["x"], decoded["n"], decoded["c"])}
        assert len(points) == 3, points


def test_full_refits_follow_the_number_of_observations_told():
    # full fits for the first 8 model-based picks (counts below 5 + 8), then each time the
    # count passes a multiple of refit_every=20, here in a batch of 3 from 18 to 21 (a
    # count % refit_every == 0 rule would never fire)
    rng = np.random.default_rng(4)
    state = _state_with(rng.uniform(size=(6, 3)), rng.uniform(size=6), SMALL_BO)
    full_at = []
    for i in range(8):
        count = int(state.history.count)
        x, state = ASK(jax.random.key(i), state, 3)
        assert int(state.fit_count) == count
        if int(state.refit_count) == count:
            full_at.append(count)
        state = SMALL_BO.tell(state, x, jnp.sum(x, axis=1))
    assert full_at == [6, 9, 12, 21]


def test_study_with_bayes_is_pending_aware_and_finds_the_optimum():
    study = jaxhpo.Study(SPACE, SMALL_BO, seed=0)

    def objective(p):
        return (p["x"] - 0.7) ** 2 + 0.1 * (p["n"] - 3) ** 2 + (0.0 if p["c"] == "b" else 0.5)

    study.optimize(objective, n_trials=20, progress=False)
    assert study.best_params["c"] == "b"
    assert study.best_value < 0.12  # the optimum is 0; the other categories cost 0.5
    # three asks in a row without tells: the pending points are fantasized, so they differ
    a, b, c = study.ask(), study.ask(), study.ask()
    assert len({tuple(t.x.round(6)) for t in (a[0], b[0], c[0])}) == 3


def test_bad_arguments():
    with pytest.raises(ValueError, match="acquisition"):
        jaxhpo.strategies.bayes(acquisition="foo")
    with pytest.raises(ValueError, match="kernel"):
        jaxhpo.strategies.bayes(kernel="linear")
    with pytest.raises(ValueError, match="num_initial"):
        jaxhpo.strategies.bayes(num_initial=0)
    with pytest.raises(ValueError, match="beta"):
        jaxhpo.strategies.bayes(beta=float("nan"))
    with pytest.raises(ValueError, match="fit_tol=0"):
        jaxhpo.strategies.bayes(fit_tol=0)
    with pytest.raises(ValueError, match="prior_mean_quantile=150"):
        jaxhpo.strategies.bayes(prior_mean_quantile=150)
    with pytest.raises(ValueError, match="warm_steps=-1"):
        jaxhpo.strategies.bayes(warm_steps=-1)
    with pytest.raises(ValueError, match="restart_fit_points=1"):
        jaxhpo.strategies.bayes(restart_fit_points=1)
    with pytest.raises(ValueError, match="batch='kriging'"):
        jaxhpo.strategies.bayes(batch="kriging")


def test_batch_auto_is_hybrid_on_spaces_with_discrete_coordinates_and_the_believer_on_continuous_ones():
    from jaxhpo.gp.kernels import Layout
    from jaxhpo.strategies.bayes import BayesConfig

    mixed, continuous = Layout.from_space(SPACE), Layout.from_space(jaxhpo.Space({"x": jaxhpo.Float(0.0, 1.0)}))
    config = lambda **kw: BayesConfig(**{**dict(zip(BayesConfig._fields, [None] * len(BayesConfig._fields))),  # noqa: E731
                                         "acquisition": "log_ei", "batch": "auto", **kw})
    assert config().hybrid_batch(mixed, 4) and not config().thompson_batch(continuous, 4)
    assert not config().thompson_batch(mixed, 1)  # one point: the acquisition
    assert not config(batch="believer").thompson_batch(mixed, 4)
    assert config(batch="thompson").thompson_batch(continuous, 4)
    assert not config(batch="thompson").hybrid_batch(mixed, 4)
    assert config(acquisition="thompson", batch="believer").thompson_batch(continuous, 1)
    assert not config(acquisition="thompson").hybrid_batch(mixed, 4)  # acquisition="thompson": draws only
    # and the picks are those of the chosen mode: auto on the mixed space equals batch="hybrid"
    rng = np.random.default_rng(3)
    x = rng.uniform(size=(12, 3))
    picks = {}
    for mode in ("auto", "thompson", "believer", "hybrid", "penalized"):
        strategy = SMALL_BO if mode == "auto" else jaxhpo.strategies.bayes(batch=mode, **SMALL)
        ask = ASK if mode == "auto" else jax.jit(strategy.ask, static_argnums=2)
        picks[mode] = np.asarray(ask(jax.random.key(4), _state_with(x, (x[:, 0] - 0.3) ** 2, strategy), 3)[0])
    np.testing.assert_array_equal(picks["auto"], picks["hybrid"])
    # hybrid: the acquisition's best first (the believer's first pick), then Thompson draws given it
    assert config(batch="hybrid").hybrid_batch(continuous, 4) and not config(batch="hybrid").hybrid_batch(mixed, 1)
    np.testing.assert_array_equal(picks["hybrid"][0], picks["believer"][0])
    assert not np.array_equal(picks["hybrid"][1:], picks["believer"][1:])
    assert not np.array_equal(picks["hybrid"][1:], picks["thompson"][1:])
    assert len({tuple(np.round(row, 6)) for row in picks["hybrid"]}) == 3
    # local penalization: the same first pick, then the acquisition's picks away from it (no fantasies)
    assert config(batch="penalized").penalized_batch(4) and not config(batch="penalized").thompson_batch(mixed, 4)
    np.testing.assert_array_equal(picks["penalized"][0], picks["believer"][0])
    assert not np.array_equal(picks["penalized"][1:], picks["believer"][1:])
    assert len({tuple(np.round(row, 6)) for row in picks["penalized"]}) == 3


# ---------------------------------------------------------------- mixed spaces: no repeats (issue 17)
FINITE = jaxhpo.Space({"n": jaxhpo.Int(1, 3), "c": jaxhpo.Categorical(["a", "b", "c"]),
                       "m": jaxhpo.Int(1, 4, log=True)})  # 36 configurations


def _config(params):
    return tuple(params[name] for name in sorted(params))


def _finite_objective(p):
    return (p["n"] - 2) ** 2 + (p["c"] != "b") + 0.1 * p["m"]


def test_a_small_finite_space_is_enumerated_without_a_repeat_then_reported_exhausted():
    study = jaxhpo.Study(FINITE, jaxhpo.strategies.bayes(num_initial=4, refine_steps=3), seed=0)
    study.reserve(36)  # the budget known: no program compiled ahead for a larger buffer, never used here
    for _ in range(36):
        [trial] = study.ask()
        study.tell(trial, _finite_objective(trial.params))
    configs = [_config(t.params) for t in study.trials]
    assert len(set(configs)) == 36
    with pytest.raises(jaxhpo.strategies.SpaceExhausted, match="exhausted"):
        study.ask()
    # optimize stops there instead of failing
    study.optimize(_finite_objective, n_trials=5, progress=False)
    assert len(study.trials) == 36


def test_a_space_of_one_configuration_gives_it_once_then_is_reported_exhausted():
    # a fixed Int (Optuna's suggest_int(name, 3, 3)) and a one-choice categorical: the design may not ask
    # for two valid points it cannot have (it handed out the one configuration again), nor the proposal
    # split one enumerated candidate into global and local ones (it failed on an empty reduction)
    space = jaxhpo.Space({"k": jaxhpo.Int(3, 3), "c": jaxhpo.Categorical(["x"])})
    study = jaxhpo.Study(space, jaxhpo.strategies.bayes(refine_steps=3), seed=0)
    study.optimize(lambda p: float(p["k"]), n_trials=4, progress=False)
    assert [t.params for t in study.trials] == [{"k": 3, "c": "x"}]
    with pytest.raises(jaxhpo.strategies.SpaceExhausted, match="exhausted after 1 trials"):
        study.ask()


@pytest.mark.parametrize("acquisition, batch", [("log_ei", "believer"), ("thompson", "auto"), ("log_ei", "hybrid")])
def test_batches_are_distinct_configurations_never_seen_before(acquisition, batch):
    # all discrete, 19 x 64 x 2 x 4 = 9,728 configurations: too many to enumerate, candidates are sampled
    # (and, snapped, repeat: Thompson draws once took one configuration twice through two candidates)
    space = jaxhpo.Space({"depth": jaxhpo.Int(2, 20), "leaf": jaxhpo.Int(1, 64, log=True),
                          "crit": jaxhpo.Categorical(["gini", "entropy"]), "k": jaxhpo.Int(0, 3)})
    strategy = jaxhpo.strategies.bayes(acquisition=acquisition, batch=batch, num_initial=4, refine_steps=3)
    study = jaxhpo.Study(space, strategy, seed=1)
    objective = lambda p: (p["depth"] - 4) ** 2 + abs(np.log(p["leaf"] / 8)) + (p["crit"] == "gini") + p["k"]  # noqa: E731
    study.optimize(objective, n_trials=40, batch_size=4, progress=False)
    configs = [_config(t.params) for t in study.trials]
    assert len(configs) == 40 and len(set(configs)) == 40
    assert study.best_value <= 1.5  # and it still optimizes (optimum 0 at depth 4, leaf 8, entropy, k 0)


def test_a_continuous_design_is_the_sobol_sequence_from_a_program_without_the_repeat_check():
    from jaxhpo.strategies.sampling import sobol_points

    s = jaxhpo.strategies.bayes(num_initial=8)
    continuous = jaxhpo.Space({"a": jaxhpo.Float(0.0, 1.0), "b": jaxhpo.Float(1e-3, 1.0, log=True)})
    state = s.init(jax.random.key(0), continuous, 16)
    x, after = s.design_ask(jax.random.key(1), state, 3)
    np.testing.assert_array_equal(np.asarray(x), np.asarray(sobol_points(state.directions, state.shift,
                                                                         jnp.arange(3))))
    assert int(after.index) == 3
    x2, _ = s.design_ask(jax.random.key(1), s.tell(after, x, jnp.ones(3)), 2)
    np.testing.assert_array_equal(np.asarray(x2), np.asarray(sobol_points(state.directions, state.shift,
                                                                          jnp.arange(3, 5))))

    def size(space):  # lines of the design program's jaxpr, nested ones included
        st = s.init(jax.random.key(0), space, 16)
        return len(str(jax.make_jaxpr(s.design_ask, static_argnums=2)(jax.random.key(1), st, 1)).splitlines())

    # the check against told, pending and earlier points is left out only where it cannot find one
    assert 3 * size(continuous) < size(SPACE)


def test_proposals_are_the_points_the_gp_scored():
    from jaxhpo.gp.kernels import Layout, snap

    s = jaxhpo.strategies.bayes(num_initial=4, refine_steps=3)
    layout = Layout.from_space(FINITE)
    u = jax.random.uniform(jax.random.key(0), (500, 3))
    snapped = np.asarray(snap(u, layout))
    assert FINITE.to_python(FINITE.decode_numpy(snapped), 7) == FINITE.to_python(FINITE.decode_numpy(np.asarray(u)), 7)
    for i in range(500):  # snapping keeps every configuration
        assert _config(FINITE.to_python(FINITE.decode_numpy(snapped), i)) == _config(
            FINITE.to_python(FINITE.decode_numpy(np.asarray(u)), i))
    x = jax.random.uniform(jax.random.key(1), (6, 3))
    state = s.tell(s.init(jax.random.key(0), FINITE, 32), x, jnp.sum(x, axis=1))
    assert not bool(s.in_design(state, 3))
    proposal, _ = s.ask(jax.random.key(2), state, 3)
    np.testing.assert_allclose(np.asarray(snap(proposal, layout)), np.asarray(proposal), atol=1e-6)


def test_repeats_allowed_on_request():
    tiny = jaxhpo.Space({"c": jaxhpo.Categorical(["a", "b"])})
    study = jaxhpo.Study(tiny, jaxhpo.strategies.bayes(num_initial=2, refine_steps=2, repeats=True), seed=0)
    study.optimize(lambda p: float(p["c"] == "a"), n_trials=6, progress=False)
    assert len(study.trials) == 6  # two configurations, six trials: repeats
    strict = jaxhpo.Study(tiny, jaxhpo.strategies.bayes(num_initial=2, refine_steps=2), seed=0)
    strict.optimize(lambda p: float(p["c"] == "a"), n_trials=6, progress=False)
    assert len(strict.trials) == 2


def test_noisy_incumbent_is_the_lowest_posterior_mean():
    from jaxhpo.gp import gp
    from jaxhpo.gp.kernels import Layout
    from jaxhpo.strategies.bayes import incumbent

    space = jaxhpo.Space({"x": jaxhpo.Float(0.0, 1.0)})
    layout = Layout.from_space(space)
    with jax.enable_x64(True):
        x = jnp.linspace(0.0, 1.0, 12)[:, None]
        noise = 0.3 * jax.random.normal(jax.random.key(0), (12,), jnp.float64)
        y = (x[:, 0] - 0.5) ** 2 + noise
        y = y.at[3].set(-2.0)  # one lucky draw far below the curve
        mask = jnp.ones(12, bool)
        raw = gp.pack(jnp.array([0.3]), jnp.array(1.0), jnp.array(0.1))
        post = gp.posterior(raw, gp.GPData(x, y, mask), layout)
        mean, _ = gp.predict(post, x, layout)
        noisy = incumbent(post, x, y, mask, layout, "matern52", True)
        plain = incumbent(post, x, y, mask, layout, "matern52", False)
    assert float(plain) == -2.0
    np.testing.assert_allclose(float(noisy), float(jnp.min(mean)), rtol=1e-6)
    assert float(noisy) > -2.0  # the lucky value does not set the bar


def test_numeric_settings_are_state_leaves_one_program_for_every_value_and_vmappable():
    from _compiles import counting

    from jaxhpo.strategies.bayes import BayesSettings

    strategy = jaxhpo.strategies.bayes(acquisition="ucb", beta=4.0, **SMALL)
    xs = np.asarray(jax.random.uniform(jax.random.key(1), (8, 3)))
    ys = np.asarray([BRANIN.fn(np.array([-5 + 15 * x[0], 15 * x[1]])) for x in xs], np.float32)
    state = _state_with(xs, ys, strategy)
    assert isinstance(state.settings, BayesSettings) and float(state.settings.beta) == 4.0
    ask = strategy.ask  # jitted where the factory defines it (num static); shared with bayes(beta=400) below
    picks = {}
    states = {beta: state._replace(settings=state.settings._replace(beta=jnp.float32(beta)))
              for beta in (0.0, 4.0, 400.0)}  # made first: a scalar's conversion is a program of its own
    key = jax.random.key(2)
    with counting() as c:
        for beta, s in states.items():
            picks[beta] = np.asarray(ask(key, s, 1)[0])
    assert c.programs <= 1  # the first call compiles; other values of beta reuse that program
    # the leaf is what the ask reads: a factory with that beta gives the same pick
    again = jaxhpo.strategies.bayes(acquisition="ucb", beta=400.0, **SMALL)
    np.testing.assert_array_equal(picks[400.0], np.asarray(again.ask(jax.random.key(2), _state_with(xs, ys, again))[0]))
    assert not np.array_equal(picks[0.0], picks[400.0])  # pure exploitation and exploration pick differently
    # vmap over beta: one program, the same picks as one at a time
    betas = jnp.array([0.0, 400.0], jnp.float32)
    batched = jax.vmap(lambda b: strategy.ask(jax.random.key(2), state._replace(
        settings=state.settings._replace(beta=b)))[0])(betas)
    np.testing.assert_allclose(np.asarray(batched), np.stack([picks[0.0], picks[400.0]]), atol=1e-6)


def test_ask_stages_compose_to_ask():
    """bayes() splits its ask into the hyperparameter fit and the proposal (``Strategy.ask_stages``),
    which a Study compiles as two programs side by side: together they give exactly what ``ask`` gives,
    in the design and after it, one point and a batch (the hybrid batch of a mixed space, the
    believer's of a continuous one)."""
    continuous = jaxhpo.Space({"a": jaxhpo.Float(0.0, 1.0), "b": jaxhpo.Float(1e-3, 1.0, log=True)})
    rng = np.random.default_rng(5)
    fit, propose = SMALL_BO.ask_stages
    for space, told, nums in ((SPACE, 3, (1, 3)), (SPACE, 12, (1, 3)), (continuous, 12, (3,))):
        x = rng.uniform(size=(told, space.dim))
        state = SMALL_BO.tell(SMALL_BO.init(jax.random.key(0), space, 32), jnp.asarray(x, jnp.float32),
                              jnp.asarray((x[:, 0] - 0.3) ** 2, jnp.float32))
        for num in nums:
            key = jax.random.key(told + num)
            x_ask, s_ask = SMALL_BO.ask(key, state, num)
            fitted = fit(key, state, num)
            x_staged, s_staged = propose(key, fitted, num)
            np.testing.assert_array_equal(np.asarray(x_staged), np.asarray(x_ask))
            for a, b in zip(jax.tree.leaves(s_staged), jax.tree.leaves(s_ask)):
                np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
            if told > 5:  # past the design, the fit stage changed the hyperparameters, the propose stage did not
                assert not np.array_equal(np.asarray(fitted.raw), np.asarray(state.raw))
                np.testing.assert_array_equal(np.asarray(s_staged.raw), np.asarray(fitted.raw))
