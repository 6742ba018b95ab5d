"""Per-trial timeouts and the evaluation of batches (jaxhpo.evaluation through Study.optimize)."""

import concurrent.futures as cf
import signal
import threading
import time

import pytest

import jaxhpo
from jaxhpo.evaluation import TrialTimeout
from jaxhpo.study import TrialState

import _objectives

SPACE = jaxhpo.Space(
    {"x": jaxhpo.Float(-5.0, 5.0), "kind": jaxhpo.Categorical(["a", "b"]), "n": jaxhpo.Int(0, 2)}
)


def _study_with_a_hang_at_trial_1():
    study = jaxhpo.Study(SPACE, jaxhpo.strategies.random(), seed=0)
    for n in (0, 2, 1, 0):  # trial 1 hangs (n == 2); the others return at once
        study.enqueue_trial({"x": 1.0, "kind": "a", "n": n})
    return study


def _hangs_until(release):
    """An objective that, when ``n`` is 2, waits for ``release`` (at most 60 s)."""
    def objective(params):
        if params["n"] == 2:
            release.wait(60)
        return _objectives.quadratic(params)

    return objective


def _check_only_the_hung_trial_failed(study, elapsed):
    states = [t.state for t in study.trials]
    assert states == [TrialState.COMPLETE, TrialState.FAILED, TrialState.COMPLETE, TrialState.COMPLETE]
    assert study.trials[1].error.startswith("TrialTimeout") and "trial_timeout=0.5" in study.trials[1].error
    assert elapsed < 20, f"the search waited for the hung objective ({elapsed:.1f} s)"


def test_in_process_trial_timeout_interrupts_the_objective_and_goes_on():
    study = _study_with_a_hang_at_trial_1()
    before = signal.getsignal(signal.SIGALRM)
    start = time.monotonic()
    study.optimize(_objectives.hang_when_n_is_2, n_trials=4, trial_timeout=0.5, progress=False)
    _check_only_the_hung_trial_failed(study, time.monotonic() - start)
    assert signal.getsignal(signal.SIGALRM) is before  # the caller's handler is back
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


def test_thread_pool_trial_timeout_abandons_the_hung_worker():
    release = threading.Event()
    objective = _hangs_until(release)
    study = _study_with_a_hang_at_trial_1()
    start = time.monotonic()
    with cf.ThreadPoolExecutor(3) as pool:
        try:
            study.optimize(objective, n_trials=4, batch_size=4, executor=pool, trial_timeout=0.5, progress=False)
        finally:
            release.set()
    _check_only_the_hung_trial_failed(study, time.monotonic() - start)


def test_process_pool_trial_timeout_and_trials_wait_for_a_free_worker():
    """One worker hangs; the other runs the remaining trials one after another, each within its own limit."""
    study = _study_with_a_hang_at_trial_1()
    pool = cf.ProcessPoolExecutor(2)
    start = time.monotonic()
    try:
        study.optimize(_objectives.slow_quadratic_or_hang, n_trials=4, batch_size=4, executor=pool,
                       trial_timeout=0.5, progress=False)
    finally:
        for process in list(pool._processes.values()):  # the hung worker cannot be stopped by the pool
            process.kill()
        pool.shutdown(wait=False, cancel_futures=True)
    _check_only_the_hung_trial_failed(study, time.monotonic() - start)


def test_when_every_worker_is_stuck_the_rest_run_again_later_not_failed():
    release = threading.Event()
    objective = _hangs_until(release)
    study = _study_with_a_hang_at_trial_1()
    with cf.ThreadPoolExecutor(1) as pool:
        try:
            with pytest.raises(RuntimeError, match=r"trials \[2, 3\] were not told and run again first"):
                study.optimize(objective, n_trials=4, batch_size=4, executor=pool, trial_timeout=0.5,
                               progress=False)
        finally:
            release.set()
    assert [t.state for t in study.trials] == [TrialState.COMPLETE, TrialState.FAILED,
                                                TrialState.RUNNING, TrialState.RUNNING]
    study.optimize(objective, n_trials=2, progress=False)  # the requeued trials run first
    assert [t.state for t in study.trials] == [TrialState.COMPLETE, TrialState.FAILED,
                                                TrialState.COMPLETE, TrialState.COMPLETE]


def test_trial_timeout_bad_values_and_threads_without_signals():
    study = jaxhpo.Study(SPACE, jaxhpo.strategies.random(), seed=0)
    for bad in (0, -1.0, True, "1"):
        with pytest.raises(ValueError, match=rf"trial_timeout must be a number of seconds > 0 or None, got "
                                             rf"trial_timeout={bad!r}"):
            study.optimize(_objectives.quadratic, n_trials=1, trial_timeout=bad, progress=False)
    errors = []

    def in_a_thread():
        try:
            study.optimize(_objectives.quadratic, n_trials=1, trial_timeout=1.0, progress=False)
        except ValueError as e:
            errors.append(str(e))

    thread = threading.Thread(target=in_a_thread)
    thread.start()
    thread.join()
    assert errors and "main thread" in errors[0] and "ThreadPoolExecutor" in errors[0]
    assert study.trials == []  # refused before anything was asked
    assert issubclass(TrialTimeout, TimeoutError) and jaxhpo.TrialTimeout is TrialTimeout
