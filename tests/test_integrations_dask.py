"""Study.optimize on a real dask.distributed LocalCluster with process workers, one killed mid-trial."""

import pytest

import jaxhpo
from jaxhpo.study import TrialState

import _objectives

distributed = pytest.importorskip("distributed", reason="dask.distributed is not installed (pip install dask[distributed])")
dask = pytest.importorskip("dask")

SPACE = jaxhpo.Space(
    {
        "x": jaxhpo.Float(-4.0, 4.0),
        "kind": jaxhpo.Categorical(["a", "b"]),
        "n": jaxhpo.Int(0, 3),
    }
)


def _cluster(**config):
    with dask.config.set({"distributed.scheduler.allowed-failures": config.get("allowed_failures", 3)}):
        cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                           dashboard_address=None, silence_logs=40)
    return cluster


def _check_all_told_once(study, n_trials):
    assert len(study.trials) == n_trials
    assert [t.number for t in study.trials] == list(range(n_trials))  # nothing duplicated, nothing lost
    assert all(t.state is TrialState.COMPLETE for t in study.trials)  # nobody blamed the objective
    for t in study.trials:
        assert t.value == pytest.approx(_objectives.quadratic(t.params))


@pytest.mark.parametrize("allowed_failures", [3, 0], ids=["dask-reschedules", "killed-worker-error"])
def test_a_worker_killed_mid_trial_loses_nothing_and_fails_nothing(tmp_path, monkeypatch, caplog,
                                                                   allowed_failures):
    # With dask's default, the scheduler runs a killed worker's task again elsewhere; with
    # allowed-failures=0 the future raises KilledWorker and the study sends the trial back itself.
    monkeypatch.setenv("JAXHPO_TEST_MARKER", str(tmp_path / "killed"))  # inherited by the worker processes
    study = jaxhpo.Study(SPACE, jaxhpo.strategies.random(), seed=3, storage=str(tmp_path / "study.jsonl"))
    with _cluster(allowed_failures=allowed_failures) as cluster, distributed.Client(cluster) as client:
        executor = client.get_executor(pure=False)
        study.optimize(_objectives.kill_worker_once, n_trials=24, batch_size=4, executor=executor, progress=False)
    assert (tmp_path / "killed").exists()  # a worker did die mid-trial
    sent_back = [r.getMessage() for r in caplog.records if "it will run again" in r.getMessage()]
    if allowed_failures == 0:
        # the study's own retry, for the trial that killed its worker and any other task dask had placed there
        assert sent_back and all("KilledWorker" in m for m in sent_back)
    else:
        assert not sent_back  # dask ran it again by itself
    _check_all_told_once(study, 24)
    study.close()
    resumed = jaxhpo.Study.load(str(tmp_path / "study.jsonl"), jaxhpo.strategies.random())
    assert [(t.number, t.value, t.state) for t in resumed.trials] == [
        (t.number, t.value, t.state) for t in study.trials]  # the journal holds each trial once


@pytest.mark.parametrize("pure", [False, True])
def test_pure_false_keeps_identical_configurations_apart(tmp_path, monkeypatch, pure):
    # Two trials of the same configuration are two runs with pure=False; with dask's default pure=True
    # they are merged into one task (why the README says to pass pure=False).
    study = jaxhpo.Study(SPACE, jaxhpo.strategies.random(), seed=0)
    for _ in range(3):
        study.enqueue_trial({"x": 0.5, "kind": "a", "n": 1})
    counter = tmp_path / "calls"
    monkeypatch.setenv("JAXHPO_TEST_COUNTER", str(counter))
    with _cluster() as cluster, distributed.Client(cluster) as client:
        study.optimize(_objectives.count_calls, n_trials=3, batch_size=3, executor=client.get_executor(pure=pure),
                       progress=False)
    assert counter.read_text() == ("x" if pure else "xxx")  # pure=False: three runs; dask's default: one
    assert [t.params for t in study.trials] == [{"x": 0.5, "kind": "a", "n": 1}] * 3
