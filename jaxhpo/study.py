"""``Study``: the ask/tell shell for any Python objective, with a crash-safe journal.

The study keeps a strategy state (the functional core) and a list of
``Trial`` records. With ``storage="path.jsonl"`` every ask and tell is
appended and synced; ``Study.load(path)`` replays the journal, so a study
killed at any moment resumes with every told trial intact and hands out the
trials that were still running again, with the same numbers and parameters.

The module is longer than the others (about 700 lines) because ``Study`` is
one object users drive whose methods share the journal, the strategy state
and the trial list (ask, tell, enqueue, optimize, replay); its parts with a
job of their own live apart: ``trial`` (the records), ``study_programs`` (the
compiled programs), ``evaluation`` (batches on executors, timeouts),
``journal`` (the file).

Example:
    >>> import jaxhpo
    >>> space = jaxhpo.Space({"x": jaxhpo.Float(-5.0, 5.0), "kind": jaxhpo.Categorical(["a", "b"])})
    >>> study = jaxhpo.Study(space, jaxhpo.strategies.sobol(), seed=0)
    >>> study.optimize(lambda p: (p["x"] - 1.0) ** 2 + (p["kind"] == "b"), n_trials=16, progress=False)
    >>> study.best_params["kind"]
    'a'
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import math
import time
from typing import Any, Callable, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxhpo import compile_cache, journal
from jaxhpo._checks import int_seed, positive_int, real_scalar
from jaxhpo.evaluation import (
    MAX_INFRASTRUCTURE_RETRIES,
    InfrastructureFault,
    TrialPruned,
    check_trial_timeout,
    evaluate,
    takes_trial,
)
from jaxhpo.gp.blas import limit_blas_threads
from jaxhpo.keys import seed_array
from jaxhpo.study_programs import state_delta, study_programs
from jaxhpo.trial import Trial, TrialState
from jaxhpo.progress import progress_bar
from jaxhpo.space import Categorical, Int, Space
from jaxhpo.strategies.base import (
    SpaceExhausted,
    Strategy,
    check_strategy,
    grow_state,
    next_capacity,
)

logger = logging.getLogger("jaxhpo")

_JOURNAL_VERSION = 1
# the first buffer of a study: 64 rows cost a GP ask almost nothing more than 16, and a study that
# asks one trial at a time (no budget given) then compiles its GP program once for its first 64 trials
INITIAL_CAPACITY = 64


def _default_strategy() -> Strategy:
    from jaxhpo import strategies

    return strategies.default()


class Study:
    """Ask/tell optimization of any Python objective.

    Args:
        space: the search space.
        strategy: any ``Strategy``; defaults to ``jaxhpo.strategies.default()``.
        direction: ``"minimize"`` or ``"maximize"``.
        storage: path of a JSON-lines journal, or ``None`` to keep nothing on disk.
        pruner: stops unpromising trials early (``jaxhpo.pruners.MedianPruner()``,
            ``SuccessiveHalvingPruner()``); objectives report with ``trial.report``.
            The file must not hold a study already; use ``Study.load`` to resume.
        seed: seed of the study's PRNG key.

    Example:
        >>> import jaxhpo
        >>> study = jaxhpo.Study(jaxhpo.Space({"x": jaxhpo.Float(0.0, 1.0)}))
        >>> [trial] = study.ask()
        >>> study.tell(trial, trial.params["x"] ** 2)
        >>> len(study.trials)
        1
    """

    def __init__(
        self,
        space: Space,
        strategy: Optional[Strategy] = None,
        direction: str = "minimize",
        storage: Optional[str] = None,
        seed: int = 0,
        pruner: Any = None,
    ) -> None:
        if not isinstance(space, Space):
            raise ValueError(f"Study: space must be a jaxhpo.Space, got space={space!r}")
        if direction not in ("minimize", "maximize"):
            raise ValueError(f"Study: direction must be 'minimize' or 'maximize', got direction={direction!r}")
        int_seed("Study", seed)
        if strategy is not None:
            check_strategy("Study", strategy)
        if pruner is not None and not callable(getattr(pruner, "prune", None)):
            raise ValueError(f"Study: pruner must have a prune(study, trial) method, got pruner={pruner!r}")
        if storage is not None:  # before anything compiles: a refused storage starts no program
            _check_new_storage(space, storage)
        self.pruner = pruner
        self.space = space
        self.strategy = strategy or _default_strategy()
        self.direction = direction
        self.seed = int(seed)
        self.trials: list[Trial] = []
        self._sign = 1.0 if direction == "minimize" else -1.0
        self._requeued: list[Trial] = []
        self._budget_end = 0  # trials the buffer was last reserved for (reserve)
        self._pending_told = False  # whether the strategy state holds pending points
        self._enqueued: list[tuple] = []  # (parameters as given, point) to evaluate next (enqueue_trial)
        self._stop = False
        self._ask_calls = 0
        self._to_prepare: list[Callable[[], Any]] = []  # background compiles to start after an ask
        compile_cache.ensure()
        self._seed = seed_array(self.seed)  # the programs make its key
        programs = study_programs(self.strategy)
        self._ask_fn, self._design_fn, self._in_design, self._tell_fn = (
            programs.ask, programs.design, programs.in_design, programs.tell)
        capacity = next_capacity(1, INITIAL_CAPACITY)
        if self._design_fn is not None:
            # init and the programs of a first ask of one trial: traced and lowered here, one after
            # the other, and compiled by XLA on threads side by side (or loaded, when stored)
            first = None
            if programs.init.prepare(space, capacity, self._seed, lower_here=True):  # not stored
                try:
                    first = programs.init.output_shapes(space, capacity, self._seed)
                except Exception:  # noqa: BLE001 - init's own error is raised by the call below
                    pass
            if first is not None:
                self._in_design.prepare(first, 1, lower_here=True)
                self._design_fn.prepare(self._seed, np.int32(0), first, 1, lower_here=True)
        self._state = programs.init(space, capacity, self._seed)
        self._journal: Optional[journal.Journal] = None
        if storage is not None:
            self._journal = journal.Journal(storage)
            self._log(
                {
                    "op": "create",
                    "version": _JOURNAL_VERSION,
                    "space": space.to_dict(),
                    "direction": direction,
                    "seed": self.seed,
                }
            )

    # ------------------------------------------------------------ resume
    @classmethod
    def load(cls, path: str, strategy: Optional[Strategy] = None, pruner: Any = None,
             rerun_running: bool = True) -> "Study":
        """Resumes the study journaled at ``path``.

        Told trials come back as they were; trials asked but never told (running
        when the process died) are handed out again by the next ``ask``, with
        their numbers and parameters. Pass the same ``strategy`` as the original
        study (strategies are code, not data, as with Optuna's samplers).

        Args:
            path: the journal.
            strategy: the original study's strategy (``Study``'s default when None).
            pruner: as ``Study`` takes it.
            rerun_running: False leaves trials that were running as running, to be
                told by whoever still runs them (a driver that resumes its own
                trials, as Ray Tune does), instead of handing them out again.
        """
        contents = journal.scan(path)
        records = contents.records
        if not records or records[0][1].get("op") != "create" or records[0][0] != 1:
            what = ("damaged: not a readable record, or its checksum does not match what it says, as after an "
                    "edit by hand" if 1 in contents.damaged else "something else")
            raise ValueError(f"Study.load: {path!r} does not start with a study record (line 1 is {what}); "
                             f"nothing was changed: restore the first line, or start a new study in a new file")
        head = records[0][1]
        if head.get("version") != _JOURNAL_VERSION:
            raise ValueError(f"Study.load: unsupported journal version {head.get('version')!r} in {path!r}")
        if contents.problems():
            logger.warning("Study.load: %s: %s; those lines were skipped and the file is left as it is (trials "
                           "whose tell is missing come back as running)", path, contents.problems())
        study = cls(Space.from_dict(head["space"]), strategy, head["direction"], None, head["seed"], pruner)
        for line, record in records[1:]:
            try:
                study._replay(record)
            except (KeyError, TypeError, ValueError, IndexError) as e:
                raise ValueError(f"Study.load: {path!r} line {line}: cannot replay {record!r}: {e}") from None
        if rerun_running:
            study._requeued = [t for t in study.trials if t.state is TrialState.RUNNING]
        study._journal = journal.Journal(path)
        logger.info(
            "resumed %s: %d trials told, %d running (%s)", path,
            sum(t.state is not TrialState.RUNNING for t in study.trials),
            sum(t.state is TrialState.RUNNING for t in study.trials),
            "to run again" if rerun_running else "left to whoever runs them",
        )
        return study

    def _replay(self, record: dict) -> None:
        op = record["op"]
        if op == "grow":
            if record["capacity"] > self._state.history.capacity:  # journals of studies that began smaller
                self._state = grow_state(self._state, record["capacity"])
        elif op == "ask":
            numbers = [item["number"] for item in record["trials"]]
            if numbers != list(range(len(self.trials), len(self.trials) + len(numbers))):
                raise ValueError(f"trials {numbers} do not follow the {len(self.trials)} trials before them "
                                 f"(an ask record is missing or damaged)")
            if record.get("enqueued"):  # parameters given by the user: the strategy was not asked
                for item in record["trials"]:
                    self._ask_enqueued(item["params"], np.asarray(item["x"], dtype=np.float64), record.get("time"))
                return
            # the state change the original call recorded, else the call again (same key, same change)
            if not self._apply_delta(record.get("state")):
                self._strategy_ask(record["n"])
                self._start_prepared()
            else:
                self._ask_calls += 1
                self._pending_told = self.strategy.set_pending is not None and any(
                    t.state is TrialState.RUNNING for t in self.trials
                )
            for item in record["trials"]:
                x = np.asarray(item["x"], dtype=np.float64)
                trial = self._make_trial(item["number"], x, record.get("time"))
                if "params" in item and not _same_params(trial.params, item["params"]):
                    raise ValueError(f"trial {trial.number}'s parameters {item['params']} are not what its point "
                                     f"means in the study's space ({trial.params}): the space in the first line "
                                     f"does not match the trials (was it edited?)")
                self.trials.append(trial)
        elif op == "attr":
            self.trials[record["number"]].user_attrs[record["key"]] = record["value"]
        elif op == "report":
            self.trials[record["number"]].intermediate_values[int(record["step"])] = float(record["value"])
        elif op == "tell":
            number = record["number"]
            if not isinstance(number, int) or not 0 <= number < len(self.trials):
                raise ValueError(f"trial {number!r} was never asked (an ask record is missing or damaged)")
            trial = self.trials[number]
            if trial.state is not TrialState.RUNNING:
                raise ValueError(f"trial {number} was already told ({trial.state.value}): a duplicated tell")
            value = record["value"]
            value = float("nan") if value is None else float(value)
            if record["state"] == TrialState.FAILED.value and math.isfinite(value):
                value = float("nan")
            pruned = record["state"] == TrialState.PRUNED.value
            self._record_tell(trial, value, record.get("error"), record.get("time"), pruned)
        else:
            raise ValueError(f"unknown journal record {record!r}")

    # ------------------------------------------------------------ ask / tell
    def ask(self, n: int = 1) -> list[Trial]:
        """Proposes ``n`` trials (fewer only when the space runs out).

        Raises:
            SpaceExhausted: when the strategy has no new configuration left (a grid past its end,
                ``bayes()`` in a fully evaluated finite space).
        """
        n = positive_int("Study.ask", "n", n)
        out = self._requeued[:n]
        self._requeued = self._requeued[len(out) :]
        while len(out) < n and self._enqueued:
            out.append(self._ask_enqueued(*self._enqueued.pop(0)))
        need = n - len(out)
        if need:
            before = self._state
            x = self._strategy_ask(need)
            # what the ask changed, for the journal's replay (copies the state to the host: only when journaled)
            delta = state_delta(before, self._state) if self._journal is not None else None
            x = x[np.all(np.isfinite(x), axis=1)]
            now = time.time()
            fresh = [self._make_trial(len(self.trials) + i, row, now) for i, row in enumerate(x)]
            with journal.deferred_interrupts():
                self._log(
                    {
                        "op": "ask",
                        "n": need,
                        "trials": [{"number": t.number, "x": t.x.tolist(), "params": t.params} for t in fresh],
                        "time": now,
                        **({"state": delta} if delta is not None else {}),
                    }
                )
                self.trials.extend(fresh)
            out.extend(fresh)
            self._start_prepared()
            if not out:
                raise SpaceExhausted(f"the search space is exhausted after {len(self.trials)} trials: the "
                                     f"strategy has no new configuration left")
        return out

    def enqueue_trial(self, params: dict[str, Any]) -> None:
        """Asks for ``params`` to be evaluated next, exactly as given (a known good configuration, say).

        The next ``ask`` hands it out before any suggestion of the strategy,
        which learns from its value like from any other trial.

        Args:
            params: a value for every parameter (categoricals as their choices).

        Raises:
            ValueError: for unknown or missing names, or values outside the space.
        """
        self._enqueued.append(self._checked_params(params))

    def add_trial(self, params: dict[str, Any], value: Any) -> Trial:
        """Records a trial evaluated elsewhere: ``params`` (as ``enqueue_trial`` takes them) and its ``value``."""
        trial = self._ask_enqueued(*self._checked_params(params))
        self.tell(trial, value)
        return trial

    def stop(self) -> None:
        """Makes a running ``optimize`` return after the trials under way are told (from the objective or
        a callback, as ``optuna.Study.stop``)."""
        self._stop = True

    def _checked_params(self, params: dict[str, Any]) -> tuple[dict[str, Any], np.ndarray]:
        """``params`` checked against the space, as plain values, and the point they encode to."""
        if not isinstance(params, dict):
            raise ValueError(f"Study: params must be a dict of parameter values, got params={params!r}")
        indices = {}
        for name, param in self.space.params.items():
            if name in params and isinstance(param, Categorical):
                try:
                    indices[name] = param.index(params[name])
                except ValueError:
                    raise ValueError(f"Study: params[{name!r}]={params[name]!r} is not one of the choices "
                                     f"{list(param.choices)}") from None
        values = {name: indices.get(name, value) for name, value in params.items()}
        x = np.asarray(self.space.encode(values, dtype=np.float32), dtype=np.float64)  # names, ranges checked
        out = {}
        for name, param in self.space.params.items():
            value = params[name]
            if isinstance(param, Categorical):
                value = param.choices[indices[name]]
            elif isinstance(param, Int):
                if float(value) != int(value):
                    raise ValueError(f"Study: params[{name!r}] must be an integer, got {value!r}")
                value = int(value)
            else:
                value = float(value)
            out[name] = value
        return out, x

    def _ask_enqueued(self, params: dict[str, Any], x: np.ndarray, when: Optional[float] = None) -> Trial:
        """A running trial for checked ``params`` at ``x``, journaled (no journal yet while ``load``
        replays one); the strategy is not asked."""
        now = time.time() if when is None else when
        trial = Trial(number=len(self.trials), params=dict(params), x=x, datetime_start=now, _study=self)
        with journal.deferred_interrupts():
            self._log({"op": "ask", "n": 1, "enqueued": True, "time": now,
                       "trials": [{"number": trial.number, "x": x.tolist(), "params": trial.params}]})
            self.trials.append(trial)
        return trial

    def tell(self, trial: Trial | int, value: Any) -> None:
        """Records the outcome of a trial.

        Args:
            trial: the ``Trial`` (or its number).
            value: a number, or an exception the objective raised. NaN, inf
                and exceptions mark the trial failed; the search goes on.
                ``TrialPruned()`` marks it pruned: its last reported value is
                kept (and given to the strategy), or NaN if it reported none.
        """
        if isinstance(trial, Trial) and trial._study is not None and trial._study is not self:
            raise ValueError(f"Study.tell: trial {trial.number} belongs to another study; tell it to the study "
                             f"that asked it (nothing was recorded)")
        number = trial.number if isinstance(trial, Trial) else trial
        if not isinstance(number, (int, np.integer)) or not 0 <= number < len(self.trials):
            raise ValueError(f"Study.tell: unknown trial {trial!r}")
        record = self.trials[number]
        if record.state is not TrialState.RUNNING:
            raise ValueError(f"Study.tell: trial {number} was already told ({record.state.value})")
        if record in self._requeued:
            self._requeued.remove(record)
        error = None
        pruned = isinstance(value, TrialPruned)
        if pruned:
            last = record.last_step
            value = record.intermediate_values[last] if last is not None else float("nan")
        elif isinstance(value, BaseException):
            error = f"{type(value).__name__}: {value}"
            value = float("nan")
        else:
            try:
                value = float(value)
            except (TypeError, ValueError):
                raise ValueError(f"Study.tell: value must be a number or an exception, got value={value!r}") from None
        now = time.time()
        outcome = _outcome(value, pruned)
        # on disk first, then in memory; Ctrl-C waits for both (a failed write leaves the trial running)
        with journal.deferred_interrupts():
            self._log({"op": "tell", "number": number, "value": value, "state": outcome.value, "error": error,
                       "time": now})
            self._record_tell(record, value, error, now, pruned)
        if record.state is TrialState.FAILED:
            logger.warning("trial %d failed: %s", number, error or f"value {value}")

    def _record_tell(
        self, trial: Trial, value: float, error: Optional[str], when: Optional[float], pruned: bool = False
    ) -> None:
        trial.value = value
        trial.error = error
        trial.state = _outcome(value, pruned)
        trial.datetime_complete = when if when is not None else time.time()
        history = self._state.history
        if int(history.count) + 1 > history.capacity:
            self._grow(next_capacity(int(history.count) + 1, 2 * history.capacity))
        # converted by NumPy and handed to the program as they are (it puts them on its device: 0.1 ms,
        # against 0.4 ms for jax.device_put); jnp.asarray(..., dtype) would compile a conversion program
        # per shape in every process
        y = np.asarray([self._sign * value], history.y.dtype)
        self._state = self._tell_fn(self._state, np.asarray(trial.x[None], history.x.dtype), y)

    def reserve(self, n_trials: int) -> None:
        """Makes room for ``n_trials`` more trials now, so the strategy's buffers (and its
        compiled programs) do not grow, and recompile, while they arrive."""
        planned = int(self._state.history.count) + len(self._requeued) + int(n_trials)
        self._budget_end = planned
        if planned > self._state.history.capacity:
            self._grow(next_capacity(planned, INITIAL_CAPACITY))

    def _grow(self, capacity: int) -> None:
        self._state = grow_state(self._state, capacity)
        self._log({"op": "grow", "capacity": capacity})

    def _strategy_ask(self, n: int) -> np.ndarray:
        n = int(n)
        args = (self._seed, np.int32(self._ask_calls))  # the ask's key is made inside its program
        self._ask_calls += 1
        running = [t.x for t in self.trials if t.state is TrialState.RUNNING]
        if self.strategy.set_pending is not None and (running or self._pending_told):
            # model-based: fantasize the trials still running (and clear them once none is)
            self._state = self.strategy.set_pending(self._state, np.asarray(running).reshape(-1, self.space.dim))
            self._pending_told = bool(running)
        if self._design_fn is not None and bool(self._in_design(self._state, n)):
            # the initial design from a small program; the full one compiles behind it (started
            # once the trials are made, so that its tracing does not hold the GIL before they are)
            state = self._state
            x, self._state = self._design_fn(*args, state, n)
            self._to_prepare.append(lambda: self._ask_fn.prepare(*args, state, n))
        else:
            with limit_blas_threads():  # GP strategies call LAPACK (jaxhpo.gp.blas)
                x, self._state = jax.block_until_ready(self._ask_fn(*args, self._state, n))
        self._prepare_growth(args, n, len(running))
        return np.asarray(x, dtype=np.float64)

    def _apply_delta(self, delta: Optional[dict]) -> bool:
        """Applies a journaled state change (``study_programs.state_delta``); False when it does not fit."""
        if not delta:
            return False
        leaves, tree = jax.tree.flatten(self._state)
        if delta.get("leaves") != len(leaves):
            return False
        new = list(leaves)
        for index, spec in delta["changed"].items():
            i = int(index)
            value = np.asarray(spec["value"], dtype=spec["dtype"]).reshape(spec["shape"])
            if not 0 <= i < len(leaves) or value.shape != leaves[i].shape or value.dtype != leaves[i].dtype:
                return False
            new[i] = jax.device_put(value)  # jnp.asarray would build a stage program per shape
        self._state = jax.tree.unflatten(tree, new)
        return True

    def _prepare_growth(self, args: tuple, n: int, running: int) -> None:
        """Compiles, behind the next trials, the ask for the buffer this study is about to grow into."""
        history = self._state.history
        outstanding = running + int(history.count)
        # once the buffer is half full (a GP program compiles in seconds: tens of fast trials
        # ahead), and only past any budget reserved (which already sized the buffer)
        if outstanding > self._budget_end and outstanding + max(4 * n, history.capacity // 2) > history.capacity:
            grown = grow_state(self._state, 2 * history.capacity)
            self._to_prepare.append(lambda: self._ask_fn.prepare(*args, grown, n))

    def _start_prepared(self) -> None:
        """Starts the background compiles the last ask asked for."""
        while self._to_prepare:
            self._to_prepare.pop(0)()

    def _make_trial(self, number: int, x: np.ndarray, when: Optional[float]) -> Trial:
        params = self.space.to_python(self.space.decode_numpy(x))
        return Trial(number=number, params=params, x=np.asarray(x), datetime_start=when or time.time(), _study=self)

    def _log(self, record: dict) -> None:
        if self._journal is not None:
            self._journal.append(record)

    # ------------------------------------------------------------ optimize
    def optimize(
        self,
        fn: Callable[[dict[str, Any]], float],
        n_trials: int,
        batch_size: int = 1,
        executor: Optional[cf.Executor] = None,
        progress: Optional[bool] = None,
        catch: tuple[type[BaseException], ...] = (Exception,),
        timeout: Optional[float] = None,
        callbacks: Optional[Sequence[Callable[["Study", Trial], None]]] = None,
        trial_timeout: Optional[float] = None,
    ) -> None:
        """Runs ``n_trials`` more trials of ``fn(params) -> value``.

        Args:
            fn: the objective; gets a dict of parameter values, and the ``Trial``
                too if it takes two arguments (``fn(params, trial)``: report
                intermediate values and raise ``TrialPruned`` when
                ``trial.should_prune()``; in-process or thread executors only).
                It must be picklable when ``executor`` is a process pool.
            n_trials: number of trials to run.
            batch_size: trials asked, and evaluated concurrently, per round.
            executor: any ``concurrent.futures.Executor`` (a process pool, or
                ``dask.distributed``'s client executor); ``None`` runs in this process.
            progress: show a tqdm progress bar; ``None`` shows one when tqdm is
                installed and the output is a terminal.
            catch: exception types recorded as failed trials; others propagate.
            timeout: seconds after which no new trial starts (those under way
                finish and are told), as in Optuna; ``None``: no limit.
            callbacks: functions called as ``callback(study, trial)`` after each
                trial is told (call ``study.stop()`` from one to end early).
            trial_timeout: seconds one trial may run; a trial past it is
                recorded as failed (``TrialTimeout``) and the search goes on.
                Without an executor the objective is interrupted (SIGALRM: the
                main thread of a Unix process); on an executor a trial is
                submitted when a worker is free and its clock starts then, and
                a worker past its time is abandoned, not stopped (it stays busy
                until the objective returns). ``None``: no limit.
        """
        if not callable(fn):  # else every trial would fail with a TypeError, recorded as the objective's failure
            raise ValueError(f"Study.optimize: fn must be the objective, a function fn(params) -> value, got fn={fn!r}")
        n_trials = positive_int("Study.optimize", "n_trials", n_trials)
        batch_size = positive_int("Study.optimize", "batch_size", batch_size)
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float))
                                    or not timeout > 0):
            raise ValueError(f"Study.optimize: timeout must be a number of seconds > 0 or None, got timeout={timeout!r}")
        trial_timeout = check_trial_timeout("Study.optimize", trial_timeout, executor)
        callbacks = list(callbacks or [])
        if not all(callable(c) for c in callbacks):
            raise ValueError(f"Study.optimize: callbacks must be functions callback(study, trial), got {callbacks!r}")
        deadline = None if timeout is None else time.monotonic() + float(timeout)
        with_trial = takes_trial(fn)
        if with_trial and isinstance(executor, cf.ProcessPoolExecutor):
            raise ValueError("Study.optimize: fn(params, trial) needs the trial in this process; use threads, not processes")
        self.reserve(n_trials)
        bar = progress_bar(n_trials, progress)
        done = 0
        self._stop = False
        try:
            while done < n_trials and not self._stop and (deadline is None or time.monotonic() < deadline):
                try:
                    batch = self.ask(min(batch_size, n_trials - done))
                except SpaceExhausted as e:
                    logger.info("stopping: %s", e)
                    break
                broken = None
                for trial, outcome in evaluate(fn, batch, executor, catch, with_trial, trial_timeout):
                    if isinstance(outcome, InfrastructureFault):
                        # a dead worker, a broken pool, a cancelled future: not the objective's failure;
                        # the trial runs again (the next ask hands it out first)
                        trial.infrastructure_faults += 1
                        if trial.infrastructure_faults <= MAX_INFRASTRUCTURE_RETRIES:
                            logger.warning("trial %d: %s; it will run again", trial.number, outcome.error)
                            self._requeued.append(trial)
                            broken = broken or (outcome.error if outcome.executor_broken else None)
                            continue
                        outcome = RuntimeError(f"its worker died {trial.infrastructure_faults} times "
                                               f"(last: {outcome.error})")
                    if not isinstance(outcome, BaseException) and not real_scalar(outcome):
                        # as Optuna does: a failed trial, and the search goes on
                        outcome = TypeError(f"the objective returned {outcome!r}; it must return one number")
                    self.tell(trial, outcome)
                    done += 1
                    for callback in callbacks:
                        callback(self, trial)
                    if bar is not None:
                        bar.update(1)
                        if self._has_complete():
                            bar.set_postfix(best=self.best_value)
                if broken is not None:
                    waiting = sorted(t.number for t in self._requeued)
                    raise RuntimeError(f"Study.optimize: the executor broke ({broken}); trials {waiting} were not "
                                       f"told and run again first at the next ask or optimize: pass a working "
                                       f"executor (nothing was recorded as failed)")
        finally:
            if bar is not None:
                bar.close()

    # ------------------------------------------------------------ results
    def _has_complete(self) -> bool:
        return any(t.state is TrialState.COMPLETE for t in self.trials)

    @property
    def best_trial(self) -> Trial:
        """The complete trial with the best value."""
        complete = [t for t in self.trials if t.state is TrialState.COMPLETE]
        if not complete:
            raise ValueError("Study: no trial has completed yet")
        return min(complete, key=lambda t: self._sign * t.value)

    @property
    def best_params(self) -> dict[str, Any]:
        return dict(self.best_trial.params)

    @property
    def best_value(self) -> float:
        return self.best_trial.value

    @property
    def state(self) -> Any:
        """The strategy state (a pytree), for inspection."""
        return self._state

    def trials_dataframe(self) -> Any:
        """All trials as a ``pandas.DataFrame`` (requires pandas)."""
        try:
            import pandas as pd
        except ImportError as e:
            raise ImportError("trials_dataframe needs pandas: pip install pandas") from e
        rows = []
        for t in self.trials:
            row = {"number": t.number, "value": t.value, "state": t.state.value, "duration": t.duration}
            row.update({f"params_{k}": v for k, v in t.params.items()})
            row["error"] = t.error
            rows.append(row)
        return pd.DataFrame(rows)

    def __enter__(self) -> "Study":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Closes the journal file (the study stays usable in memory)."""
        if self._journal is not None:
            self._journal.close()
            self._journal = None


def _same_params(a: dict, b: dict) -> bool:
    """Parameters equal as journaled (floats to 1e-9 relative: JSON keeps 17 digits)."""
    if set(a) != set(b):
        return False
    for name, value in a.items():
        other = b[name]
        if isinstance(value, float) and isinstance(other, (int, float)) and not isinstance(other, bool):
            if not math.isclose(value, other, rel_tol=1e-9, abs_tol=1e-300):
                return False
        elif value != other or type(value) is bool and type(other) is not bool:
            return False
    return True


def _check_new_storage(space: Space, storage: str) -> None:
    """Raises the ``ValueError`` of a ``Study`` that may not journal to ``storage`` (an unsafe space, a file in use)."""
    import os

    _check_journal_safe(space)
    if os.path.exists(storage) and os.path.getsize(storage) > 0:
        first = journal.head(storage)
        what = "holds a study" if first is not None and first.get("op") == "create" else "is not empty"
        raise ValueError(f"Study: storage={storage!r} already exists and {what}; resume a study with "
                         f"Study.load, or pass a new path (nothing was written to the file)")


def _check_journal_safe(space: Space) -> None:
    """Categorical choices must come back from the journal (JSON) as they went in, as Optuna requires too."""
    for name, param in space.params.items():
        for choice in getattr(param, "choices", ()):
            if choice is not None and type(choice) not in (bool, int, float, str):
                raise ValueError(
                    f"Study: choice {choice!r} of parameter {name!r} cannot be stored in the journal and would come "
                    f"back changed after Study.load; use None, bool, int, float or str choices (a name or an index) "
                    f"and map them to objects in your objective"
                )


def create_study(
    space: Space,
    strategy: Optional[Strategy] = None,
    *,
    storage: Optional[str] = None,
    load_if_exists: bool = False,
    direction: str = "minimize",
    seed: int = 0,
    pruner: Any = None,
) -> Study:
    """A new ``Study``, or, with ``load_if_exists``, the one journaled at ``storage`` resumed (as Optuna's).

    Args:
        space, strategy, direction, seed, pruner: as for ``Study``.
        storage: path of the journal (``None``: nothing on disk).
        load_if_exists: resume the study in ``storage`` when the file holds one
            (its space and direction must be the ones given); otherwise an
            existing study there is an error, as with ``Study``.

    Example:
        >>> import os, tempfile, jaxhpo
        >>> path = os.path.join(tempfile.mkdtemp(), "s.jsonl")
        >>> space = jaxhpo.Space({"x": jaxhpo.Float(0.0, 1.0)})
        >>> for _ in range(2):   # a script run twice: the second run continues the first
        ...     with jaxhpo.create_study(space, jaxhpo.strategies.random(), storage=path, load_if_exists=True) as s:
        ...         s.optimize(lambda p: p["x"], n_trials=3, progress=False)
        >>> len(s.trials)
        6
    """
    import os

    if not isinstance(load_if_exists, bool):
        raise ValueError(f"create_study: load_if_exists must be True or False, got load_if_exists={load_if_exists!r}")
    if load_if_exists and storage is not None and os.path.exists(storage) and os.path.getsize(storage) > 0:
        # the study record first: a study of another space is refused before anything is replayed or compiled
        head = journal.head(storage)
        if _journaled_elsewhere(head, space, direction):
            raise ValueError(f"create_study: {storage!r} holds a study of another space or direction "
                             f"({head['space']}, {head.get('direction')!r}); pass those, or a new path")
        return Study.load(storage, strategy, pruner)  # an unreadable study record: Study.load's own error
    return Study(space, strategy, direction, storage, seed, pruner)


def _journaled_elsewhere(head: Optional[dict], space: Space, direction: str) -> bool:
    """Whether the study record ``head`` (``journal.head``) is of another space or direction than these."""
    if head is None or head.get("op") != "create":
        return False
    try:
        theirs = Space.from_dict(head["space"])
    except Exception:  # noqa: BLE001 - a record this cannot read: Study.load says what is wrong
        return False
    return theirs != space or head.get("direction") != direction


def _outcome(value: float, pruned: bool) -> TrialState:
    if pruned:
        return TrialState.PRUNED
    return TrialState.COMPLETE if math.isfinite(value) else TrialState.FAILED
