import numpy as np
import pytest

import jaxhpo
from jaxhpo.pruners import MedianPruner, SuccessiveHalvingPruner
from jaxhpo.study import TrialPruned, TrialState

SPACE = jaxhpo.Space({"x": jaxhpo.Float(0.0, 1.0)})


def curve_objective(params, trial):
    # loss curves shift with x: the pruner can tell bad trials early
    for step in range(1, 10):
        loss = params["x"] + 1.0 / step
        trial.report(step, loss)
        if trial.should_prune():
            raise TrialPruned()
    return loss


def test_median_pruner_prunes_worse_than_median_only():
    study = jaxhpo.Study(SPACE, jaxhpo.strategies.sobol(), pruner=MedianPruner(n_startup_trials=4), seed=0)
    study.optimize(curve_objective, n_trials=24, progress=False)
    states = [t.state for t in study.trials]
    assert all(s is TrialState.COMPLETE for s in states[:4])  # startup trials never pruned
    pruned = [t for t in study.trials if t.state is TrialState.PRUNED]
    assert pruned
    for t in pruned:
        step = t.last_step
        done_before = [u for u in study.trials[: t.number] if u.state is TrialState.COMPLETE]
        assert t.intermediate_values[step] > np.median([u.intermediate_values[step] for u in done_before])
        assert t.value == t.intermediate_values[step]
    # the best trial is complete and among the lowest x
    assert study.best_params["x"] <= np.quantile([t.params["x"] for t in study.trials], 0.25)


def test_median_pruner_respects_maximize_and_warmup():
    study = jaxhpo.Study(SPACE, jaxhpo.strategies.sobol(), direction="maximize",
                         pruner=MedianPruner(n_startup_trials=2, n_warmup_steps=5), seed=0)

    def objective(params, trial):
        for step in range(1, 8):
            trial.report(step, params["x"])
            if trial.should_prune():
                assert step >= 5
                raise TrialPruned()
        return params["x"]

    study.optimize(objective, n_trials=12, progress=False)
    for t in study.trials:
        if t.state is TrialState.PRUNED:
            assert t.params["x"] < study.best_value


def test_successive_halving_pruner_rungs():
    pruner = SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
    study = jaxhpo.Study(SPACE, jaxhpo.strategies.sobol(), pruner=pruner, seed=1)
    study.optimize(curve_objective, n_trials=27, progress=False)
    pruned = [t for t in study.trials if t.state is TrialState.PRUNED]
    assert pruned and all(t.last_step in (1, 3, 9) for t in pruned)
    completed = [t for t in study.trials if t.state is TrialState.COMPLETE]
    assert len(completed) < 27 / 2
    # a pruned trial was worse at its rung than the promotion threshold of the trials before it
    t = pruned[-1]
    step = t.last_step
    before = sorted(u.intermediate_values[step] for u in study.trials[: t.number + 1] if step in u.intermediate_values)
    assert t.intermediate_values[step] > before[max(len(before) // 3 - 1, 0)]


def test_reports_and_pruned_state_survive_the_journal(tmp_path):
    path = str(tmp_path / "study.jsonl")
    study = jaxhpo.Study(SPACE, jaxhpo.strategies.sobol(), storage=path, pruner=MedianPruner(n_startup_trials=2))
    study.optimize(curve_objective, n_trials=10, progress=False)
    study.close()
    again = jaxhpo.Study.load(path, jaxhpo.strategies.sobol(), pruner=MedianPruner(n_startup_trials=2))
    assert [t.state for t in again.trials] == [t.state for t in study.trials]
    assert [t.intermediate_values for t in again.trials] == [t.intermediate_values for t in study.trials]
    assert [t.value for t in again.trials] == [t.value for t in study.trials]


def test_bad_pruner_and_report():
    with pytest.raises(ValueError, match="pruner"):
        jaxhpo.Study(SPACE, pruner="median")
    with pytest.raises(ValueError, match="reduction_factor"):
        SuccessiveHalvingPruner(reduction_factor=1)
    study = jaxhpo.Study(SPACE, jaxhpo.strategies.sobol())
    [trial] = study.ask()
    with pytest.raises(ValueError, match="step"):
        trial.report(-1, 0.5)
    with pytest.raises(ValueError, match="value"):
        trial.report(1, "bad")
    assert not trial.should_prune()  # no pruner
    study.tell(trial, 1.0)
    with pytest.raises(ValueError, match="already"):
        trial.report(2, 0.5)
