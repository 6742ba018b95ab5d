import time

import numpy as np
import pytest

optuna = pytest.importorskip("optuna")

import jax  # noqa: E402

import jaxhpo  # noqa: E402
from jaxhpo.integrations.optuna import JaxhpoSampler  # noqa: E402
from _compiles import optimization_levels  # noqa: E402

optuna.logging.set_verbosity(optuna.logging.WARNING)
BAYES = dict(num_initial=5, refine_steps=3)


def objective(trial):
    x = trial.suggest_float("x", 1e-3, 10.0, log=True)
    n = trial.suggest_int("n", 0, 8)
    c = trial.suggest_categorical("c", ["a", "b", "c"])
    s = trial.suggest_float("s", 0.0, 1.0, step=0.25)
    if c == "b":  # a conditional parameter: outside the intersection search space
        trial.suggest_float("extra", 0.0, 1.0)
    return (np.log10(x) - 0.5) ** 2 + (n - 5) ** 2 / 10 + (c != "b") + (s - 0.5) ** 2


def test_sampler_optimizes_a_mixed_space_deterministically_without_repeats():
    runs = []
    for _ in range(2):
        study = optuna.create_study(sampler=JaxhpoSampler(jaxhpo.strategies.bayes(**BAYES), seed=0))
        study.optimize(objective, n_trials=24)
        runs.append(study)
    assert [t.params for t in runs[0].trials] == [t.params for t in runs[1].trials]
    assert runs[0].best_value < 0.1  # optimum 0 at x = 10**0.5, n = 5, c = "b", s = 0.5
    configs = [tuple(sorted((k, v) for k, v in t.params.items() if k != "extra")) for t in runs[0].trials]
    assert len(set(configs)) == len(configs)
    for t in runs[0].trials:  # values on Optuna's grid (step) and inside the bounds
        assert t.params["s"] in (0.0, 0.25, 0.5, 0.75, 1.0) and 1e-3 <= t.params["x"] <= 10.0


def test_running_trials_are_pending_and_failed_or_pruned_ones_are_told():
    sampler = JaxhpoSampler(jaxhpo.strategies.bayes(**BAYES), seed=1)
    study = optuna.create_study(sampler=sampler, direction="maximize")

    def flaky(trial):
        value = -objective(trial)
        if trial.number == 3:
            raise RuntimeError("diverged")
        if trial.number == 4:
            trial.report(value, 0)
            raise optuna.TrialPruned()
        return value

    study.optimize(flaky, n_trials=10, catch=(RuntimeError,))
    first, second = study.ask(), study.ask()
    for t in (first, second):  # both running: the second is sampled with the first pending
        for name, dist in (("x", (1e-3, 10.0)), ("n", (0, 8)), ("s", (0.0, 1.0))):
            (t.suggest_float(name, *dist, log=True) if name == "x" else t.suggest_int(name, *dist)
             if name == "n" else t.suggest_float(name, *dist, step=0.25))
        t.suggest_categorical("c", ["a", "b", "c"])
    model = list(sampler._models.values())[-1]  # the current intersection search space
    assert int(model.state.pending.count) == 1
    history = model.state.history
    assert int(history.count) == 10  # every finished trial told once: 8 complete, 1 failed, 1 pruned
    assert int(np.sum(np.asarray(history.failed))) == 1
    assert first.params != second.params


def test_no_recompile_as_the_study_grows():
    from jaxhpo.integrations.optuna import _sampler_programs

    strategy = jaxhpo.strategies.bayes(**BAYES)
    study = optuna.create_study(sampler=JaxhpoSampler(strategy, seed=2))
    study.optimize(objective, n_trials=10)  # the design and the first model-based asks compile here
    ask, _ = _sampler_programs(strategy)
    while ask.compiling:  # a program prepared for a search space the study has left (define-by-run)
        time.sleep(0.01)
    built = []
    jax.monitoring.register_event_duration_secs_listener(
        lambda event, duration, **_: built.append(event) if event == "/jax/core/compile/backend_compile_duration" else None)
    study.optimize(objective, n_trials=15)
    assert built == []


def test_the_model_program_compiles_behind_the_design_trials_with_jaxhpo_options(monkeypatch):
    # as in a Study: the strategy's model (bayes()'s GP, two programs) is prepared on a thread during the
    # initial design, compiled with jaxhpo's XLA options (LLVM level 1: for the overhead per trial)
    from jaxhpo.integrations.optuna import _sampler_programs

    levels = optimization_levels(monkeypatch, "jit_optuna_ask_")  # what reaches XLA, compile by compile
    strategy = jaxhpo.strategies.bayes(num_initial=3, refine_steps=2)  # programs no other test compiled
    before = jaxhpo.compile_cache.cache_dir()
    try:
        jaxhpo.compile_cache.set_cache_dir(None)  # compile, do not load
        study = optuna.create_study(sampler=JaxhpoSampler(strategy, seed=0))
        study.optimize(lambda t: (t.suggest_float("x", 0.0, 1.0) - 0.3) ** 2, n_trials=3)  # the design only
        ask, _ = _sampler_programs(strategy)
        assert ask.num_runs == 0 and ask.num_compiles == 1  # prepared before its first use
        study.optimize(lambda t: (t.suggest_float("x", 0.0, 1.0) - 0.3) ** 2, n_trials=3)
        assert ask.num_runs == 3 and ask.num_compiles == 1
    finally:
        jaxhpo.compile_cache.set_cache_dir(before)
    assert levels == [1, 1]  # the fit, the proposal
    assert study.best_value < 0.01


def test_multi_objective_studies_are_refused_clearly():
    study = optuna.create_study(sampler=JaxhpoSampler(jaxhpo.strategies.random(), seed=0),
                                directions=["minimize", "minimize"])
    with pytest.raises(ValueError, match="multi-objective"):
        study.optimize(lambda t: (t.suggest_float("x", 0, 1), t.suggest_float("y", 0, 1)), n_trials=2)
    trial = study.ask()  # the independent path refuses too (Optuna's SingleOnlySamplerTestCase asks this)
    with pytest.raises(ValueError, match="multi-objective"):
        study.sampler.sample_independent(study, study._storage.get_trial(trial._trial_id), "x",
                                         optuna.distributions.FloatDistribution(0.0, 1.0))


def test_stepped_floats_with_step_one_round_trip():
    # a float with step=1 is modelled as an index like any stepped float (found by Optuna's own sampler tests)
    study = optuna.create_study(sampler=JaxhpoSampler(jaxhpo.strategies.random(), seed=0))
    study.optimize(lambda t: t.suggest_float("c", 1, 9, step=1) + t.suggest_int("f", 1, 9, step=2), n_trials=12)
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    assert {t.params["c"] for t in study.trials} <= set(map(float, range(1, 10)))
    assert {t.params["f"] for t in study.trials} <= {1, 3, 5, 7, 9}
    assert len({t.params["c"] for t in study.trials}) > 3


def test_bad_arguments():
    with pytest.raises(ValueError, match=r"did you mean bayes\(\)"):
        JaxhpoSampler(jaxhpo.strategies.bayes)
    with pytest.raises(ValueError, match="seed must be an int"):
        JaxhpoSampler(seed="0")


def test_export_copies_every_finished_trial_into_an_optuna_storage(tmp_path):
    from jaxhpo.integrations.optuna import export_study

    space = jaxhpo.Space({"x": jaxhpo.Float(-2.0, 2.0), "lr": jaxhpo.Float(1e-4, 1e-1, log=True),
                          "n": jaxhpo.Int(1, 9), "act": jaxhpo.Categorical(["relu", "tanh"])})
    path = str(tmp_path / "study.jsonl")
    study = jaxhpo.Study(space, jaxhpo.strategies.sobol(), seed=0, storage=path)
    trials = study.ask(5)
    for i, t in enumerate(trials[:3]):
        t.report(0, 10.0 + i)
        t.set_user_attr("fold", i)
        study.tell(t, t.params["x"] ** 2 + t.params["n"])
    study.tell(trials[3], ValueError("diverged"))  # failed; trials[4] stays running
    study.close()
    loaded = jaxhpo.Study.load(path, jaxhpo.strategies.sobol())
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    export_study(loaded, url, study_name="exported")
    out = optuna.load_study(study_name="exported", storage=url)  # another reader, from the database
    got = sorted(out.get_trials(), key=lambda t: t.system_attrs["jaxhpo_number"])
    assert [t.system_attrs["jaxhpo_number"] for t in got] == [0, 1, 2, 3]  # the running trial is left out
    for t, src in zip(got[:3], trials[:3]):
        assert t.state == optuna.trial.TrialState.COMPLETE and t.value == study.trials[src.number].value
        assert t.params == src.params and t.user_attrs == {"fold": src.number}
        assert t.intermediate_values == {0: 10.0 + src.number}
        assert t.datetime_complete >= t.datetime_start
    assert got[3].state == optuna.trial.TrialState.FAIL and "diverged" in got[3].system_attrs["fail_reason"]
    assert out.best_value == study.best_value and out.best_params == study.best_params
    with pytest.raises(ValueError, match="already holds a study named 'exported'"):
        export_study(loaded, url, study_name="exported")
    odd = jaxhpo.Study(jaxhpo.Space({"f": jaxhpo.Categorical([(1, 2), (3, 4)])}), jaxhpo.strategies.random())
    with pytest.raises(ValueError, match=r"parameter 'f' has the choice \(1, 2\)"):
        export_study(odd)


def test_import_continues_an_optuna_study_with_every_finished_trial(tmp_path):
    from jaxhpo.integrations.optuna import import_study

    source = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=1))

    def objective(trial):
        x = trial.suggest_float("x", 1e-3, 1.0, log=True)
        n = trial.suggest_int("n", 1, 8)
        kind = trial.suggest_categorical("kind", ["a", "b"])
        trial.set_user_attr("note", f"n={n}")
        trial.report(x, step=0)
        if trial.number == 3:
            raise optuna.TrialPruned()
        if trial.number == 5:
            raise RuntimeError("boom")
        return x * n + (kind == "a")

    source.optimize(objective, n_trials=8, catch=(RuntimeError,))
    running = source.ask()  # left out: it has no outcome yet
    running.suggest_float("x", 1e-3, 1.0, log=True)
    study = import_study(source, jaxhpo.strategies.bayes(), seed=0, storage=str(tmp_path / "imported.jsonl"))
    assert study.direction == "maximize"
    assert study.space.params == {"x": jaxhpo.Float(1e-3, 1.0, log=True), "n": jaxhpo.Int(1, 8),
                                  "kind": jaxhpo.Categorical(["a", "b"])}
    finished = [t for t in source.trials if t.state != optuna.trial.TrialState.RUNNING]
    assert [t.params for t in study.trials] == [t.params for t in finished]  # exactly, in float64
    assert [t.state.value for t in study.trials] == ["complete"] * 3 + ["pruned", "complete", "failed"] + [
        "complete"] * 2
    assert study.trials[3].value == finished[3].intermediate_values[0]  # a pruned trial keeps its last value
    assert [t.value for t in study.trials if t.state.value == "complete"] == [
        t.value for t in finished if t.state == optuna.trial.TrialState.COMPLETE]
    assert study.trials[0].user_attrs == {"note": finished[0].user_attrs["note"]}
    assert study.best_value == source.best_value
    study.optimize(lambda p: p["x"] * p["n"] + (p["kind"] == "a"), n_trials=4, progress=False)  # continues
    assert len(study.trials) == 12
    study.close()
    assert len(jaxhpo.Study.load(str(tmp_path / "imported.jsonl"), jaxhpo.strategies.bayes()).trials) == 12

    stepped = optuna.create_study()
    stepped.optimize(lambda t: t.suggest_float("s", 0.0, 1.0, step=0.25), n_trials=2)
    with pytest.raises(ValueError, match="parameter 's' has step=0.25"):
        import_study(stepped)
    moved = optuna.create_study()
    moved.optimize(lambda t: t.suggest_float("y", 0.0, 1.0 + t.number), n_trials=2)
    with pytest.raises(ValueError, match="parameter 'y' has the distribution"):
        import_study(moved)
    with pytest.raises(ValueError, match="2 objectives"):
        import_study(optuna.create_study(directions=["minimize", "minimize"]))
