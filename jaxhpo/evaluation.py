"""Running a batch of trials: in this process or on an executor, with per-trial timeouts.

``Study.optimize`` hands a batch of trials to ``evaluate`` and tells what it
yields. Three kinds of outcome come back, as each evaluation finishes:

* the objective's value, or the exception it raised (``TrialPruned``, one of
  ``catch``): the trial is told, and the search goes on;
* a ``TrialTimeout`` when the trial ran longer than ``trial_timeout``: told
  as failed;
* an ``InfrastructureFault`` (a dead worker, a broken pool, a cancelled
  future): not the objective's failure; the shell runs the trial again.

Example:
    >>> from jaxhpo.evaluation import evaluate
    >>> [outcome for _, outcome in evaluate(lambda p: p["x"] ** 2, [_Job({"x": 3.0})], None, (Exception,))]
    [9.0]
"""

from __future__ import annotations

import concurrent.futures as cf
import inspect
import signal
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Optional

MAX_INFRASTRUCTURE_RETRIES = 2  # a trial whose worker dies more often than this fails (it may be the cause)


class TrialPruned(Exception):
    """Raise it from an objective (after ``trial.should_prune()``) to stop the trial as pruned."""


class TrialTimeout(TimeoutError):
    """A trial ran longer than ``trial_timeout``; it is recorded as failed and the search goes on."""


@dataclass
class InfrastructureFault:
    """What ``evaluate`` yields when a trial could not run through no fault of the objective."""

    error: str
    executor_broken: bool


@dataclass
class _Job:  # the smallest trial-like object, for the doctest
    params: dict


def takes_trial(fn: Callable) -> bool:
    """True when ``fn`` takes two required positional arguments: ``fn(params, trial)``."""
    try:
        params = [
            p for p in inspect.signature(fn).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
        ]
    except (TypeError, ValueError):
        return False
    return len(params) == 2


def check_trial_timeout(where: str, trial_timeout: Any, executor: Optional[cf.Executor]) -> Optional[float]:
    """``trial_timeout`` as seconds (or None), with a clear error where it cannot be enforced."""
    if trial_timeout is None:
        return None
    if isinstance(trial_timeout, bool) or not isinstance(trial_timeout, (int, float)) or not trial_timeout > 0:
        raise ValueError(f"{where}: trial_timeout must be a number of seconds > 0 or None, "
                         f"got trial_timeout={trial_timeout!r}")
    if executor is None and not _can_alarm():
        raise ValueError(f"{where}: trial_timeout without an executor interrupts the objective with SIGALRM, which "
                         f"only the main thread of a Unix process receives; call optimize from the main thread, or "
                         f"pass executor=concurrent.futures.ThreadPoolExecutor(...)")
    return float(trial_timeout)


def _can_alarm() -> bool:
    return hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()


def infrastructure_fault(error: BaseException) -> Optional[InfrastructureFault]:
    """A dead worker, a broken pool, a cancelled future (dask's too); None for the objective's own errors."""
    broken = isinstance(error, cf.BrokenExecutor)
    if broken or isinstance(error, cf.CancelledError) or type(error).__name__ in ("KilledWorker", "CommClosedError"):
        return InfrastructureFault(f"{type(error).__name__}: {error}", broken)
    return None


def evaluate(
    fn: Callable,
    batch: list,
    executor: Optional[cf.Executor],
    catch: tuple,
    with_trial: bool = False,
    trial_timeout: Optional[float] = None,
) -> Iterable[tuple[Any, Any]]:
    """Yields ``(trial, value or exception or InfrastructureFault)`` as evaluations finish.

    Args:
        fn: the objective, called as ``fn(params)`` or ``fn(params, trial)``.
        batch: trials (anything with a ``params`` dict) to evaluate.
        executor: a ``concurrent.futures.Executor``, or ``None`` to run here, one after another.
        catch: exception types that are the objective's failures (yielded); others propagate.
        with_trial: pass the trial as the second argument.
        trial_timeout: seconds a trial may run. In this process the objective
            is interrupted by ``TrialTimeout`` (raised through SIGALRM where
            Python code runs: a long call into C returns first). On an executor
            a standard-library pool is given a trial only when a worker is free,
            so the clock starts at submission (on other executors, such as
            dask's, too: keep ``batch`` within their workers); at the limit
            ``TrialTimeout`` is yielded and the future abandoned (a thread or
            process worker cannot be stopped from outside: it stays busy until
            the objective returns, and its late result is ignored).
    """
    if executor is None:
        for trial in batch:
            try:
                with _alarm(trial_timeout):
                    value = fn(dict(trial.params), trial) if with_trial else fn(dict(trial.params))
                yield trial, value
            except TrialPruned as e:
                yield trial, e
            except catch as e:  # noqa: PERF203 - one objective call per iteration
                yield trial, e
        return
    if trial_timeout is None:
        yield from _on_executor(fn, batch, executor, catch, with_trial)
    else:
        yield from _on_executor_with_timeout(fn, batch, executor, catch, with_trial, trial_timeout)


def _submit(executor: cf.Executor, fn: Callable, trial: Any, with_trial: bool) -> Any:
    """The trial's future, or an ``InfrastructureFault`` when the pool is already broken or shut down."""
    try:
        return executor.submit(fn, dict(trial.params), *((trial,) if with_trial else ()))
    except (cf.BrokenExecutor, RuntimeError) as e:
        return InfrastructureFault(f"{type(e).__name__}: {e}", True)


def _outcome(future: cf.Future, catch: tuple) -> Any:
    """The value, the objective's exception, or an ``InfrastructureFault``, of a finished future."""
    try:
        error = future.exception()
    except cf.CancelledError as e:
        error = e
    fault = None if error is None else infrastructure_fault(error)
    if fault is not None:
        return fault
    if error is not None and not isinstance(error, (catch, TrialPruned)):
        raise error
    return error if error is not None else future.result()


def _on_executor(fn: Callable, batch: list, executor: cf.Executor, catch: tuple,
                 with_trial: bool) -> Iterable[tuple[Any, Any]]:
    futures = {}
    for t in batch:
        future = _submit(executor, fn, t, with_trial)
        if isinstance(future, InfrastructureFault):
            yield t, future
        else:
            futures[future] = t
    for future in cf.as_completed(futures):
        yield futures[future], _outcome(future, catch)


def _worker_count(executor: cf.Executor) -> Optional[int]:
    """Workers of a standard-library pool; None where jaxhpo cannot see the executor's queue (dask)."""
    if isinstance(executor, (cf.ThreadPoolExecutor, cf.ProcessPoolExecutor)):
        return getattr(executor, "_max_workers", None)
    return None


def _on_executor_with_timeout(fn: Callable, batch: list, executor: cf.Executor, catch: tuple, with_trial: bool,
                              trial_timeout: float) -> Iterable[tuple[Any, Any]]:
    """Trials submitted only as workers are free (so a trial's clock starts at submission), each timed."""
    workers = _worker_count(executor)
    waiting = list(batch)
    running: dict = {}  # future -> (trial, deadline)
    abandoned: set = set()  # futures past their time whose worker is still busy
    while waiting or running:
        abandoned = {f for f in abandoned if not f.done()}
        while waiting and (workers is None or len(running) + len(abandoned) < workers):
            trial = waiting.pop(0)
            future = _submit(executor, fn, trial, with_trial)
            if isinstance(future, InfrastructureFault):
                yield trial, future
            else:
                running[future] = (trial, time.monotonic() + trial_timeout)
        if not running:  # every worker is still busy with an abandoned trial
            for trial in waiting:
                yield trial, InfrastructureFault(
                    f"all {workers} workers of the executor are still running trials abandoned after "
                    f"trial_timeout={trial_timeout} s", True)
            return
        next_deadline = min(deadline for _, deadline in running.values())
        done, _ = cf.wait(running, timeout=max(next_deadline - time.monotonic(), 0.0),
                          return_when=cf.FIRST_COMPLETED)
        for future in done:
            trial, _ = running.pop(future)
            yield trial, _outcome(future, catch)
        now = time.monotonic()
        for future in [f for f, (_, deadline) in running.items() if deadline <= now]:
            trial, _ = running.pop(future)
            if not future.cancel():
                abandoned.add(future)
            yield trial, TrialTimeout(f"trial {getattr(trial, 'number', '?')} ran longer than "
                                      f"trial_timeout={trial_timeout} s; its worker was abandoned")


class _alarm:
    """Raises ``TrialTimeout`` in the main thread after ``seconds`` (no-op for None)."""

    def __init__(self, seconds: Optional[float]) -> None:
        self.seconds = seconds

    def _fire(self, signum: int, frame: Any) -> None:
        raise TrialTimeout(f"the trial ran longer than trial_timeout={self.seconds} s")

    def __enter__(self) -> None:
        if self.seconds is not None:
            self.previous = signal.signal(signal.SIGALRM, self._fire)
            signal.setitimer(signal.ITIMER_REAL, self.seconds)

    def __exit__(self, *exc: Any) -> None:
        if self.seconds is not None:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, self.previous)
