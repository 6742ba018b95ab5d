"""JaxhpoSearch in a real (local) Ray Tune run, its translation of Tune spaces, save/restore."""

import math
import sys

import pytest

import jaxhpo
from jaxhpo.study import TrialState

ray = pytest.importorskip("ray", reason="Ray Tune is not installed (pip install 'ray[tune]')")
tune = pytest.importorskip("ray.tune")
from jaxhpo.integrations.ray import JaxhpoSearch, space_from_tune  # noqa: E402

PARAM_SPACE = {
    "opt": {"lr": tune.loguniform(1e-4, 1e-1), "momentum": tune.uniform(0.0, 0.99)},
    "act": tune.choice(["relu", "gelu", "tanh"]),
    "width": tune.randint(8, 65),
    "epochs": 5,
}


def _loss(config):
    return (abs(math.log10(config["opt"]["lr"]) + 2.0) + (config["opt"]["momentum"] - 0.9) ** 2
            + 0.01 * abs(config["width"] - 32) + (config["act"] != "gelu"))


def test_tune_spaces_translate_exactly_and_others_are_refused():
    space, constants = space_from_tune(PARAM_SPACE)
    assert constants == {"epochs": 5}
    assert space.params["opt/lr"] == jaxhpo.Float(1e-4, 1e-1, log=True)
    assert space.params["opt/momentum"] == jaxhpo.Float(0.0, 0.99)
    assert space.params["width"] == jaxhpo.Int(8, 64)  # Tune's randint excludes its upper bound
    assert space.params["act"] == jaxhpo.Categorical(["relu", "gelu", "tanh"])
    with pytest.raises(ValueError, match="'q' is Float sampled by Normal"):
        space_from_tune({"q": tune.randn(0, 1)})
    with pytest.raises(ValueError, match="grid_search at 'g'"):
        space_from_tune({"g": tune.grid_search([1, 2])})
    with pytest.raises(ValueError, match="'f' is tune.sample_from"):
        space_from_tune({"f": tune.sample_from(lambda _: 1)})
    with pytest.raises(ValueError, match="mode must be 'min' or 'max'"):
        JaxhpoSearch(mode="minimize")


def test_a_local_tune_run_with_save_and_restore(tmp_path):
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # Ray's workers cannot import this test module
    try:
        def trainable(config):
            for step in range(1, 3):
                tune.report({"loss": _loss(config) + 1.0 / step, "step": step})

        search = JaxhpoSearch(strategy=jaxhpo.strategies.bayes(), seed=0)
        tuner = tune.Tuner(trainable, param_space=PARAM_SPACE,
                           tune_config=tune.TuneConfig(search_alg=search, metric="loss", mode="min", num_samples=8,
                                                       reuse_actors=True),
                           run_config=tune.RunConfig(storage_path=str(tmp_path), name="run1", verbose=0))
        results = tuner.fit()
        assert not results.errors, results.errors
        study = search.study
        assert len(study.trials) == 8 and all(t.state is TrialState.COMPLETE for t in study.trials)
        best = results.get_best_result()
        assert best.metrics["loss"] == pytest.approx(study.best_value)  # Tune and the study agree
        configs = [r.config for r in results]
        assert all(c["epochs"] == 5 and 8 <= c["width"] <= 64 for c in configs)
        assert len({(c["opt"]["lr"], c["width"], c["act"]) for c in configs}) == 8  # concurrent trials differ
        for trial in study.trials:  # the value told is the trainable's last report for those parameters
            cfg = {"opt": {"lr": trial.params["opt/lr"], "momentum": trial.params["opt/momentum"]},
                   "act": trial.params["act"], "width": trial.params["width"]}
            assert trial.value == pytest.approx(_loss(cfg) + 0.5)
            assert sorted(trial.intermediate_values) == [1, 2]

        # save, restore into a new searcher: it continues exactly as the saved one would
        path = str(tmp_path / "searcher.pkl")
        search.save(path)
        restored = JaxhpoSearch(strategy=jaxhpo.strategies.bayes())
        restored.restore(path)
        assert [(t.params, t.value) for t in restored.study.trials] == [(t.params, t.value) for t in study.trials]
        assert restored.suggest("next") == search.suggest("next")

        # and a second Tune run continues the restored search
        more = JaxhpoSearch(strategy=jaxhpo.strategies.bayes())
        more.restore(path)
        tune.Tuner(trainable, param_space=PARAM_SPACE,
                   tune_config=tune.TuneConfig(search_alg=more, metric="loss", mode="min", num_samples=3, reuse_actors=True),
                   run_config=tune.RunConfig(storage_path=str(tmp_path), name="run2", verbose=0)).fit()
        assert len(more.study.trials) == 11
        assert [t.params for t in more.study.trials[:8]] == [t.params for t in study.trials[:8]]
        assert all(t.state is TrialState.COMPLETE for t in more.study.trials)
    finally:
        ray.shutdown()


def test_errors_and_missing_metrics_are_failed_trials_and_points_run_first():
    search = JaxhpoSearch(jaxhpo.Space({"x": jaxhpo.Float(-1.0, 1.0)}), jaxhpo.strategies.random(), metric="loss",
                          mode="max", points_to_evaluate=[{"x": 0.25}])
    first = search.suggest("a")
    assert first == {"x": 0.25}
    search.on_trial_complete("a", {"loss": 2.0})
    search.suggest("b")
    search.on_trial_complete("b", error=True)
    search.suggest("c")
    search.on_trial_complete("c", {"other": 1.0})
    search.add_evaluated_point({"x": -0.5}, 3.0)
    states = [t.state for t in search.study.trials]
    assert states == [TrialState.COMPLETE, TrialState.FAILED, TrialState.FAILED, TrialState.COMPLETE]
    assert search.study.best_value == 3.0 and search.study.direction == "maximize"
    assert "without the metric 'loss'" in search.study.trials[2].error


def test_a_searcher_pickles_with_its_search():
    # Tune pickles the searcher with the experiment (Tuner(...) and Tuner.restore)
    search = JaxhpoSearch(jaxhpo.Space({"x": jaxhpo.Float(-1.0, 1.0)}), jaxhpo.strategies.sobol(), metric="loss",
                          mode="min", seed=2)
    for i in range(3):
        config = search.suggest(str(i))
        search.on_trial_complete(str(i), {"loss": config["x"] ** 2})
    search.suggest("running")
    copy = ray.cloudpickle.loads(ray.cloudpickle.dumps(search))
    assert [(t.params, t.value, t.state) for t in copy.study.trials] == [
        (t.params, t.value, t.state) for t in search.study.trials]
    assert copy.suggest("next") == search.suggest("next")  # "running" is not handed out again
    copy.on_trial_complete("running", {"loss": 0.5})
    assert copy.study.trials[3].value == 0.5
