"""The fault matrix of issue 16: user mistakes and faults, tried as a new user would, and their outcomes.

Each case is run and classified:

* ``clear error``: the call raised an exception whose message matches what
  the case requires (the argument, the value, what to do instead);
* ``handled``: the call went on as it should (a failed trial recorded and the
  search continued, a damaged journal loaded without losing anything, a
  warning where data would be dropped), checked by the case's assertions;
* ``unclear error``: it raised, but not saying what the case requires;
* ``silent``: it did not raise where it had to;
* ``wrong`` / ``lost``: a handled case whose check failed (a wrong result, or
  a told trial missing after a crash).

Goal: 0 unclear errors, 0 silent wrong results, 0 told trials lost.
``tests/test_fault_matrix.py`` runs every case and fails on any other outcome.

Usage::

    OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/fault_matrix.py   # table + results/fault_matrix.json
"""

from __future__ import annotations

import concurrent.futures as cf
import math
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import warnings
from dataclasses import dataclass
from typing import Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np

import jaxhpo
from jaxhpo import Categorical, Float, Int, Space
from jaxhpo.study import TrialState

GOOD = ("clear error", "handled")
SPACE = Space({"x": Float(-5.0, 5.0), "kind": Categorical(["a", "b"]), "n": Int(0, 2)})
FAST = jaxhpo.strategies.sobol  # model-free: the matrix tests the shell, not the GP


@dataclass
class Case:
    """One fault: ``run()`` either raises (``expect`` is the regex its message must match) or checks itself."""

    area: str
    name: str
    run: Callable[[], Optional[str]]
    expect: Optional[str] = None  # None: the case must not raise (it asserts what "handled" means)


CASES: list[Case] = []


def case(area: str, name: str, expect: Optional[str] = None):
    def register(fn: Callable[[], Optional[str]]) -> Callable[[], Optional[str]]:
        CASES.append(Case(area, name, fn, expect))
        return fn

    return register


def error_case(area: str, name: str, expect: str, fn: Callable[[], object]) -> None:
    CASES.append(Case(area, name, fn, expect))


def quadratic(params: dict) -> float:
    return (params["x"] - 1.0) ** 2 + (params["kind"] == "b") + params["n"]


# ------------------------------------------------------------------ Space
error_case("Space", "Float(1, 0): low above high", r"low.*high|high.*low", lambda: Float(1.0, 0.0))
error_case("Space", "Float(0, 1, log=True): log of 0", r"log.*> ?0|positive", lambda: Float(0.0, 1.0, log=True))
error_case("Space", "Float(1, 10, log='False'): a string flag", r"log must be True or False, got log='False'",
           lambda: Float(1.0, 10.0, log="False"))
error_case("Space", "Float(0, nan)", r"finite|nan", lambda: Float(0.0, float("nan")))
error_case("Space", "Int(0.5, 3): a float bound", r"Int.*integer|int", lambda: Int(0.5, 3))
error_case("Space", "Categorical([]): no choices", r"choice", lambda: Categorical([]))
error_case("Space", "Categorical(['a', 'a']): repeated choices", r"'a'", lambda: Categorical(["a", "a"]))
error_case("Space", "Space({}): no parameters", r"at least one|empty|no param", lambda: Space({}))
error_case("Space", "Space({'x': (0, 1)}): a tuple, not a parameter", r"'x'.*Float|Float.*'x'",
           lambda: Space({"x": (0.0, 1.0)}))
error_case("Space", "encode a choice instead of its index", r"'kind'.*choice indices 0..1, got 'b': give its index 1",
           lambda: SPACE.encode({"x": 0.0, "kind": "b", "n": 1}))
error_case("Space", "encode a categorical value that is not a choice", r"'kind'.*'c'.*not one of the choices",
           lambda: SPACE.encode({"x": 0.0, "kind": "c", "n": 1}))


@case("Space", "Int(0, 2**40): midpoint decoded exactly (float64/int64 under x64)")
def _wide_int():
    with jax.enable_x64(True):
        value = int(Space({"n": Int(0, 2**40)}).decode(jnp.array([0.5], jnp.float64))["n"])
    assert abs(value - 2**39) <= 1, f"midpoint decoded to {value}"
    return f"midpoint {value}"


error_case("Space", "Int(0, 2**40) decoded in float32: a range float32 cannot hold",
           r"'n'.*64-bit", lambda: Space({"n": Int(0, 2**40)}).decode(jnp.array([0.5], jnp.float32)))


@case("Space", "Float(-1e308, 1e308): ends and midpoint finite")
def _wide_float():
    with jax.enable_x64(True):
        space = Space({"v": Float(-1e308, 1e308)})
        values = [float(space.decode(jnp.array([u], jnp.float64))["v"]) for u in (0.0, 0.5, 1.0)]
    assert all(math.isfinite(v) for v in values) and values[0] == -1e308 and values[2] == 1e308, values
    return f"{values}"


# ------------------------------------------------------------------ Study: bad input
def _study() -> jaxhpo.Study:
    return jaxhpo.Study(SPACE, FAST(), seed=0)


error_case("Study", "Study(space=dict)", r"space", lambda: jaxhpo.Study({"x": Float(0.0, 1.0)}))
error_case("Study", "Study(strategy=sobol): the factory, not called", r"did you mean sobol\(\)",
           lambda: jaxhpo.Study(SPACE, jaxhpo.strategies.sobol))
error_case("Study", "ask(True)", r"n.*True", lambda: _study().ask(True))
error_case("Study", "ask(0)", r"n.*0", lambda: _study().ask(0))
error_case("Study", "optimize(n_trials=0)", r"n_trials.*0", lambda: _study().optimize(quadratic, n_trials=0))
error_case("Study", "optimize(timeout=-1)", r"timeout.*-1", lambda: _study().optimize(quadratic, 1, timeout=-1))
error_case("Study", "optimize(trial_timeout='1')", r"trial_timeout.*'1'",
           lambda: _study().optimize(quadratic, 1, trial_timeout="1"))
error_case("Study", "tell(99): a trial never asked", r"unknown trial 99", lambda: _study().tell(99, 1.0))


def _tell_foreign():
    a, b = _study(), _study()
    trial, = a.ask()
    b.ask()
    b.tell(trial, 1.0)


error_case("Study", "tell a trial of another study", r"belongs to another study", _tell_foreign)


def _tell_twice():
    study = _study()
    trial, = study.ask()
    study.tell(trial, 1.0)
    study.tell(trial, 2.0)


error_case("Study", "tell the same trial twice", r"already told", _tell_twice)
error_case("Study", "tell(trial, 'abc')", r"value must be a number.*'abc'",
           lambda: (lambda s: s.tell(s.ask()[0], "abc"))(_study()))
error_case("Study", "enqueue_trial with a misspelled name", r"unknown parameter 'xx'; the space has \['x', 'kind', 'n'\]",
           lambda: _study().enqueue_trial({"xx": 1.0, "kind": "a", "n": 0}))
error_case("Study", "enqueue_trial with a value out of range", r"'x'.*99",
           lambda: _study().enqueue_trial({"x": 99.0, "kind": "a", "n": 0}))
error_case("Study", "a journal with a categorical choice JSON cannot carry (a tuple)", r"\(1, 2\)",
           lambda: jaxhpo.Study(Space({"c": Categorical([(1, 2), "b"])}), FAST(),
                                storage=os.path.join(tempfile.mkdtemp(), "j.jsonl")))


# ------------------------------------------------------------------ Study: the objective misbehaves
def _optimize_with(objective, n_trials=6, **kwargs) -> jaxhpo.Study:
    study = _study()
    study.optimize(objective, n_trials=n_trials, progress=False, **kwargs)
    return study


def _failed_and_went_on(objective, fails_at, error_part, **kwargs):
    study = _optimize_with(objective, **kwargs)
    states = [t.state for t in study.trials]
    assert len(states) == 6, f"the search stopped after {len(states)} trials"
    for i, t in enumerate(study.trials):
        if i in fails_at:
            assert t.state is TrialState.FAILED and error_part in (t.error or f"value {t.value}"), (i, t)
        else:
            assert t.state is TrialState.COMPLETE, (i, t)
    return f"trials {sorted(fails_at)} failed, the other {6 - len(fails_at)} complete"


def _misbehaving(result):
    calls = []

    def objective(params):
        calls.append(1)
        return result if len(calls) == 2 else quadratic(params)

    return objective


for _label, _result, _part in (
    ("raises RuntimeError", RuntimeError("diverged"), "diverged"),
    ("returns NaN", float("nan"), "nan"),
    ("returns inf", float("inf"), "inf"),
    ("returns None", None, "None"),
    ("returns a tuple", (1.0, 2.0), "(1.0, 2.0)"),
    ("returns a shape-(1,) array", np.array([1.0]), "must return one number"),
    ("returns a string", "0.5", "'0.5'"),
):
    def _run(result=_result, part=_part):
        if isinstance(result, BaseException):
            def objective(params, calls=[]):  # noqa: B006 - a counter
                calls.append(1)
                if len(calls) == 2:
                    raise result
                return quadratic(params)
        else:
            objective = _misbehaving(result)
        return _failed_and_went_on(objective, {1}, part)

    CASES.append(Case("Study.optimize", f"the objective {_label} once", _run))


@case("Study.optimize", "the objective hangs (trial_timeout=0.5, in process)")
def _hang_in_process():
    def objective(params, calls=[]):  # noqa: B006
        calls.append(1)
        if len(calls) == 2:
            time.sleep(30)
        return quadratic(params)

    start = time.monotonic()
    out = _failed_and_went_on(objective, {1}, "TrialTimeout", trial_timeout=0.5)
    assert time.monotonic() - start < 10
    return out


@case("Study.optimize", "the objective hangs in a thread pool (trial_timeout=0.5)")
def _hang_in_threads():
    import threading

    release = threading.Event()

    def objective(params):
        if params["n"] == 2:
            release.wait(30)
        return quadratic(params)

    study = _study()
    for n in (0, 2, 1, 0, 1, 0):
        study.enqueue_trial({"x": 0.0, "kind": "a", "n": n})
    with cf.ThreadPoolExecutor(2) as pool:
        try:
            study.optimize(objective, n_trials=6, batch_size=3, executor=pool, trial_timeout=0.5, progress=False)
        finally:
            release.set()
    states = [t.state for t in study.trials]
    assert states.count(TrialState.FAILED) == 1 and study.trials[1].state is TrialState.FAILED, states
    return "trial 1 failed (TrialTimeout), the other 5 complete"


def kill_own_worker_once(params: dict) -> float:
    """Kills its process-pool worker the first time ``n == 2`` (a marker file says it happened)."""
    marker = os.environ["JAXHPO_FAULT_MARKER"]
    if params["n"] == 2 and not os.path.exists(marker):
        open(marker, "w").close()
        os.kill(os.getpid(), signal.SIGKILL)
    return quadratic(params)


@case("Study.optimize", "a process-pool worker is killed mid-trial")
def _worker_killed():
    os.environ["JAXHPO_FAULT_MARKER"] = os.path.join(tempfile.mkdtemp(), "killed")
    study = _study()
    for n in (0, 2, 1, 0):
        study.enqueue_trial({"x": 0.0, "kind": "a", "n": n})
    for _ in range(3):  # a broken pool stops optimize; a fresh pool runs the waiting trials first
        with cf.ProcessPoolExecutor(2, mp_context=__import__("multiprocessing").get_context("spawn")) as pool:
            try:
                study.optimize(kill_own_worker_once, n_trials=4 - sum(t.state is not TrialState.RUNNING
                                                                         for t in study.trials),
                               batch_size=4, executor=pool, progress=False)
                break
            except RuntimeError as e:
                assert "were not told and run again" in str(e), e
    assert os.path.exists(os.environ["JAXHPO_FAULT_MARKER"]), "the worker was not killed"
    states = [t.state for t in study.trials]
    assert states == [TrialState.COMPLETE] * 4, states
    return "the killed worker's trials ran again; 4 of 4 complete, none failed"


# ------------------------------------------------------------------ journals
def _journal_with(n_trials: int) -> tuple[str, list]:
    path = os.path.join(tempfile.mkdtemp(), "study.jsonl")
    study = jaxhpo.Study(SPACE, FAST(), seed=0, storage=path)
    study.optimize(quadratic, n_trials=n_trials, progress=False)
    values = [t.value for t in study.trials]
    study.close()
    return path, values


@case("journal", "a damaged line in the middle (a bad byte)")
def _damaged_middle():
    path, values = _journal_with(12)
    lines = open(path, "rb").read().split(b"\n")
    lines[10] = lines[10][:20] + b"\xff" + lines[10][21:]
    open(path, "wb").write(b"\n".join(lines))
    size = os.path.getsize(path)
    study = jaxhpo.Study.load(path, FAST())
    told = [t.value for t in study.trials if t.state is TrialState.COMPLETE]
    study.close()
    assert os.path.getsize(path) >= size, "the file was truncated"
    assert len(told) >= len(values) - 1, f"{len(told)} of {len(values)} told trials came back"
    return f"{len(told)} of {len(values)} told trials back (the damaged line's one rerun), file kept"


@case("journal", "half a line from another tool appended, then more trials")
def _foreign_half_line():
    path, values = _journal_with(6)
    with open(path, "a") as f:
        f.write('{"some": "other tool", "trunc\n')
    study = jaxhpo.Study.load(path, FAST())
    study.optimize(quadratic, n_trials=3, progress=False)
    study.close()
    again = jaxhpo.Study.load(path, FAST())
    told = [t.state for t in again.trials].count(TrialState.COMPLETE)
    again.close()
    assert told == 9, told
    return "9 of 9 told trials back after the foreign line"


@case("journal", "a torn last line (killed mid-write)")
def _torn_last():
    path, values = _journal_with(6)
    data = open(path, "rb").read()
    open(path, "wb").write(data[:-15])
    study = jaxhpo.Study.load(path, FAST())
    told = [t.state for t in study.trials].count(TrialState.COMPLETE)
    study.close()
    assert told >= 5, told
    return f"{told} of 6 told trials back (the torn tell's trial runs again)"


def _csv_storage():
    path = os.path.join(tempfile.mkdtemp(), "results.csv")
    open(path, "w").write("a,b\n1,2\n")
    try:
        jaxhpo.Study(SPACE, FAST(), storage=path)
    finally:
        assert open(path).read() == "a,b\n1,2\n", "the CSV was changed"


error_case("journal", "Study(storage=) on an existing CSV file", r"results.csv", _csv_storage)


@case("journal", "a duplicated tell line (copied by hand)")
def _duplicated_tell():
    path, values = _journal_with(4)
    lines = open(path).read().splitlines()
    tell = next(i for i, line in enumerate(lines) if '"tell"' in line)
    lines.insert(tell + 1, lines[tell])
    open(path, "w").write("\n".join(lines) + "\n")
    with _captured_log() as log:
        study = jaxhpo.Study.load(path, FAST())
    back = [t.value for t in study.trials]
    study.close()
    assert back == values, (back, values)
    assert f"lines [{tell + 2}] repeat records read before" in log.getvalue(), log.getvalue()
    return f"the copy (line {tell + 2}) reported and skipped; 4 of 4 trials as told"


class _captured_log:
    """Collects the 'jaxhpo' logger's records as text."""

    def __enter__(self):
        import io
        import logging

        self.stream = io.StringIO()
        self.handler = logging.StreamHandler(self.stream)
        logging.getLogger("jaxhpo").addHandler(self.handler)
        return self.stream

    def __exit__(self, *exc):
        import logging

        logging.getLogger("jaxhpo").removeHandler(self.handler)


def _edit_header(path: str, legacy: bool) -> None:
    lines = open(path).read().splitlines()
    if legacy:  # a journal from before checksums: no seq, no crc
        lines = [re.sub(r', "seq": \d+|, "crc": "[0-9a-f]{8}"', "", line) for line in lines]
    assert "-5.0" in lines[0]
    lines[0] = lines[0].replace("-5.0", "-50.0")
    open(path, "w").write("\n".join(lines) + "\n")


error_case("journal", "the header's bounds edited by hand", r"line 1 is damaged.*edit by hand.*restore the first line",
           lambda: (lambda p: (_edit_header(p, False), jaxhpo.Study.load(p, FAST())))(_journal_with(4)[0]))
error_case("journal", "the header's bounds edited in a journal without checksums", r"trial 0",
           lambda: (lambda p: (_edit_header(p, True), jaxhpo.Study.load(p, FAST())))(_journal_with(4)[0]))


def _second_writer():
    path, _ = _journal_with(2)
    first = jaxhpo.Study.load(path, FAST())
    code = f"import jaxhpo; jaxhpo.Study.load({path!r}, jaxhpo.strategies.sobol())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    first.close()
    raise RuntimeError(out.stderr.strip().splitlines()[-1])


error_case("journal", "a second process loads a journal open for writing", r"open for writing", _second_writer)


_KILLED_CHILD = textwrap.dedent("""
    import os, sys, jaxhpo
    sys.path.insert(0, {here!r})
    from fault_matrix import SPACE, quadratic
    path = sys.argv[1]
    study = (jaxhpo.Study.load(path, jaxhpo.strategies.sobol()) if os.path.exists(path)
             else jaxhpo.Study(SPACE, jaxhpo.strategies.sobol(), seed=0, storage=path))
    def told(study, trial):
        print("TOLD", trial.number, repr(trial.value), flush=True)
    study.optimize(quadratic, n_trials=400, callbacks=[told], progress=False)
""")


@case("journal", "SIGKILL at 5 random moments during optimize (resumed each time)")
def _random_sigkills():
    path = os.path.join(tempfile.mkdtemp(), "study.jsonl")
    script = os.path.join(os.path.dirname(path), "child.py")
    open(script, "w").write(_KILLED_CHILD.format(here=os.path.dirname(os.path.abspath(__file__))))
    rng = random.Random(0)
    told: dict = {}
    for _ in range(5):
        child = subprocess.Popen([sys.executable, script, path], stdout=subprocess.PIPE, text=True)
        first = child.stdout.readline()  # after start-up (imports, load): kill while trials run
        time.sleep(rng.uniform(0.0, 0.3))
        child.send_signal(signal.SIGKILL)
        # complete lines only: the kill may cut the child's last print short ("TOLD 7" without its value)
        lines = (first + child.stdout.read()).split("\n")[:-1]
        child.wait()
        for line in lines:
            if line.startswith("TOLD"):
                _, number, value = line.split(maxsplit=2)
                told[int(number)] = float(value)
    study = jaxhpo.Study.load(path, FAST())
    back = {t.number: t.value for t in study.trials if t.state is TrialState.COMPLETE}
    study.close()
    lost = [n for n in told if n not in back or back[n] != told[n]]
    assert not lost, f"LOST: told trials {lost[:10]} missing or changed after the kills"
    return f"{len(told)} trials told before 5 kills, all {len(told)} back intact"


# ------------------------------------------------------------------ minimize
def _minimize(objective=lambda p: p["x"] ** 2, space=Space({"x": Float(-1.0, 1.0)}), strategy=None, **kwargs):
    kwargs.setdefault("num_rounds", 2)
    kwargs.setdefault("key", jax.random.key(0))
    return jaxhpo.minimize(objective, space, strategy or jaxhpo.strategies.random(), **kwargs)


error_case("minimize", "num_rounds=0", r"num_rounds.*0", lambda: _minimize(num_rounds=0))
error_case("minimize", "num_rounds=True", r"num_rounds.*True", lambda: _minimize(num_rounds=True))
error_case("minimize", "key=0", r"key must be a JAX PRNG key.*key=0", lambda: _minimize(key=0))
error_case("minimize", "a batch of keys", r"batch of keys.*jax.vmap",
           lambda: _minimize(key=jax.random.split(jax.random.key(0), 3)))
error_case("minimize", "strategy=random (the factory)", r"did you mean random\(\)",
           lambda: _minimize(strategy=jaxhpo.strategies.random))
error_case("minimize", "the objective returns None", r"None", lambda: _minimize(lambda p: None))
error_case("minimize", "the objective returns a dict", r"dict", lambda: _minimize(lambda p: {"loss": p["x"]}))
error_case("minimize", "the objective returns complex values", r"complex",
           lambda: _minimize(lambda p: p["x"] * 1j))
error_case("minimize", "the objective returns one value for a batch of 2", r"\[batch_size\]|shape",
           lambda: _minimize(lambda p: jnp.sum(p["x"]), batch_size=2))
error_case("minimize", "a grid smaller than the budget", r"grid",
           lambda: _minimize(strategy=jaxhpo.strategies.grid(2), num_rounds=10))


@case("minimize", "num_rounds=np.int64(3): NumPy integers accepted as in Study")
def _numpy_rounds():
    result = _minimize(num_rounds=np.int64(3))
    assert np.asarray(result.best_so_far).shape[0] == 3
    return "3 rounds"


@case("strategies", "a user's jit loop tells more than the state's capacity")
def _capacity():
    space = Space({"x": Float(0.0, 1.0)})
    strategy = jaxhpo.strategies.random()

    @jax.jit
    def loop(key):
        state = strategy.init(key, space, 4)
        for k in jax.random.split(key, 3):
            x, state = strategy.ask(k, state, 2)
            state = strategy.tell(state, x, x[:, 0])
        return state.history

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = loop(jax.random.key(0))
        jax.effects_barrier()
    assert any(issubclass(w.category, jaxhpo.strategies.CapacityWarning) for w in caught), "no warning"
    assert int(history.dropped) == 2
    return "CapacityWarning, History.dropped == 2"


# ------------------------------------------------------------------ population
def _population_data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 5)).astype(np.float32)
    y = rng.integers(0, 3, 40).astype(np.int32)
    return x[:30], y[:30], x[30:], y[30:]


def _train(hp=None, data=None, **kwargs):
    from jaxhpo import population

    x, y, xv, yv = data or _population_data()
    return population.train(lambda h: population.MLP(hidden=(4,), outputs=3), hp or {"learning_rate": np.ones(2)},
                            x, y, xv, yv, key=jax.random.key(0), epochs=1, **kwargs)


def _data_with(**change):
    x, y, xv, yv = _population_data()
    parts = dict(x_train=x, y_train=y, x_val=xv, y_val=yv)
    parts.update(change)
    return tuple(parts.values())


error_case("population", "a misspelled hyperparameter (weight_decy)", r"'weight_decy'.*taken by nothing.*weight_decay",
           lambda: _train({"learning_rate": np.ones(2), "weight_decy": np.ones(2)}))
error_case("population", "labels beyond the model's outputs", r"y_train.*up to 7.*3 outputs",
           lambda: _train(data=_data_with(y_train=np.full(30, 7, np.int32))))
error_case("population", "one-hot labels", r"y_train.*one-hot",
           lambda: _train(data=_data_with(y_train=np.eye(3, dtype=np.float32)[_population_data()[1]])))
error_case("population", "string labels", r"y_train.*LabelEncoder",
           lambda: _train(data=_data_with(y_train=np.array(["a", "b", "c"])[_population_data()[1]])))
error_case("population", "NaN in x_train", r"x_train holds 1 NaN",
           lambda: _train(data=_data_with(x_train=np.where(np.arange(150).reshape(30, 5) == 7, np.nan,
                                                           _population_data()[0]))))
error_case("population", "x_val of another width", r"x_val rows have shape \(4,\)",
           lambda: _train(data=_data_with(x_val=np.zeros((10, 4), np.float32))))
error_case("population", "batch_size=0", r"batch_size", lambda: _train(batch_size=0))

# ------------------------------------------------------------------ ensemble
_probs = np.asarray(jax.nn.softmax(jax.random.normal(jax.random.key(0), (3, 20, 2)), -1))
error_case("ensemble", "1-d predictions", r"members, examples", lambda: jaxhpo.ensemble.fit_weights(_probs[0, :, 0],
                                                                                                  np.zeros(20, int)))
error_case("ensemble", "labels of the wrong length", r"labels must be \[examples\]=20",
           lambda: jaxhpo.ensemble.fit_weights(_probs, np.zeros(19, int)))
error_case("ensemble", "logits passed as probabilities", r"inputs='logits'",
           lambda: jaxhpo.ensemble.fit_weights(np.log(_probs), np.zeros(20, int)))
error_case("ensemble", "NaN regression targets", r"non-finite values \(examples \[3\]\)",
           lambda: jaxhpo.ensemble.fit_weights(np.ones((3, 20)), np.where(np.arange(20) == 3, np.nan, 1.0)))
error_case("ensemble", "ragged member lists", r"members have shapes",
           lambda: jaxhpo.ensemble.fit_weights([np.full((4, 2), 0.5), np.full((5, 2), 0.5)], np.zeros(4, int)))
error_case("ensemble", "greedy init_size larger than the members", r"init_size",
           lambda: jaxhpo.ensemble.greedy_selection(_probs, np.zeros(20, int), init_size=4))


# ------------------------------------------------------------------ SearchCV
def _search(space, **kwargs):
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    from jaxhpo.sklearn import SearchCV

    X, y = load_iris(return_X_y=True)
    return SearchCV(LogisticRegression(max_iter=200), space, strategy=FAST(), n_trials=2, cv=2, **kwargs).fit(X, y)


error_case("SearchCV", "a parameter the estimator does not have", r"\['Cee'\].*its parameters are",
           lambda: _search({"Cee": Float(0.1, 1.0)}))
error_case("SearchCV", "scipy.stats.norm (no jaxhpo equivalent)", r"space\['C'\] is scipy.stats.norm",
           lambda: _search({"C": __import__("scipy.stats", fromlist=["norm"]).norm(0, 1)}))
error_case("SearchCV", "n_iter=0", r"n_iter must be a positive int", lambda: _search({"C": Float(0.1, 1.0)}, n_iter=0))
error_case("SearchCV", "executor= (removed: use n_jobs)", r"executor", lambda: _search({"C": Float(0.1, 1.0)},
                                                                                       executor=None))


# ------------------------------------------------------------------ running the matrix
def run_case(c: Case) -> tuple[str, str]:
    """``(outcome, detail)`` of one case."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            detail = c.run()
    except AssertionError as e:
        return ("lost" if str(e).startswith("LOST") else "wrong"), str(e)[:200]
    except Exception as e:  # noqa: BLE001 - classifying every outcome is the point
        message = f"{type(e).__name__}: {e}"
        if c.expect is None:
            return "unclear error", message[:300]
        clear = isinstance(e, (ValueError, TypeError, RuntimeError)) and re.search(c.expect, str(e), re.S)
        return ("clear error" if clear else "unclear error"), message[:300]
    if c.expect is not None:
        return "silent", f"no error (returned {detail!r})"[:200]
    return "handled", str(detail)


def main() -> None:
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from benchmarks.common import write_results

    rows = []
    for c in CASES:
        start = time.perf_counter()
        outcome, detail = run_case(c)
        rows.append({"area": c.area, "case": c.name, "outcome": outcome, "detail": detail,
                     "seconds": round(time.perf_counter() - start, 2)})
        print(f"{c.area:15s} {c.name[:62]:62s} {outcome:14s} {detail[:90]}", flush=True)
    counts = {k: sum(r["outcome"] == k for r in rows) for k in
              ("clear error", "handled", "unclear error", "silent", "wrong", "lost")}
    print("\n" + ", ".join(f"{v} {k}" for k, v in counts.items()) + f" of {len(rows)} cases")
    write_results("fault_matrix", {"cases": rows, "counts": counts})


if __name__ == "__main__":
    main()
