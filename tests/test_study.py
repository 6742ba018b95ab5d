"""Tests for Study: ask/tell, failures, journal and crash recovery, executors."""

import concurrent.futures as cf
import json
import multiprocessing
import os
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest

import jaxhpo
from jaxhpo import journal
from jaxhpo.study import TrialState
from jaxhpo.study_programs import study_programs

import _objectives
from _compiles import optimization_levels

SPACE = jaxhpo.Space(
    {"x": jaxhpo.Float(-5.0, 5.0), "kind": jaxhpo.Categorical(["a", "b"]), "n": jaxhpo.Int(0, 2)}
)


def test_ask_tell_and_best():
    study = jaxhpo.Study(SPACE, jaxhpo.strategies.sobol(), seed=1)
    trials = study.ask(4)
    assert [t.number for t in trials] == [0, 1, 2, 3]
    for t in trials:
        SPACE.validate(t.params)
        study.tell(t, _objectives.quadratic(t.params))
    study.optimize(_objectives.quadratic, n_trials=28, batch_size=4, progress=False)
    assert len(study.trials) == 32
    values = [t.value for t in study.trials]
    assert study.best_value == min(values)
    assert study.best_params == study.trials[int(np.argmin(values))].params
    # 32 Sobol points (a power of two) put one x in each 32nd of its range, whatever the seed
    xs = np.array([t.params["x"] for t in study.trials])
    assert sorted(np.floor((xs + 5.0) / 10.0 * 32).astype(int)) == list(range(32))
    with pytest.raises(ValueError, match="already told"):
        study.tell(trials[0], 1.0)
    with pytest.raises(ValueError, match="unknown trial"):
        study.tell(99, 1.0)
    with pytest.raises(ValueError, match="value must be a number"):
        study.tell(study.ask()[0], "bad")


def test_maximize_direction():
    study = jaxhpo.Study(SPACE, jaxhpo.strategies.random(), direction="maximize", seed=0)
    study.optimize(lambda p: -_objectives.quadratic(p), n_trials=20, progress=False)
    assert study.best_value == max(t.value for t in study.trials)


def test_failures_are_recorded_and_the_search_goes_on():
    study = jaxhpo.Study(SPACE, jaxhpo.strategies.random(), seed=3)
    study.optimize(_objectives.flaky, n_trials=60, progress=False)
    assert len(study.trials) == 60
    failed = [t for t in study.trials if t.state is TrialState.FAILED]
    raised = [t for t in failed if t.error]
    assert raised and all("RuntimeError: diverged" in t.error for t in raised)
    assert any(t.value is not None and np.isnan(t.value) for t in failed)
    assert any(t.value is not None and np.isinf(t.value) for t in failed)
    for t in study.trials:
        x = t.params["x"]
        assert (t.state is TrialState.FAILED) == (x > 3.0 or x < -2.0)
    assert -2.0 <= study.best_params["x"] <= 3.0
    history = study.state.history
    assert int(history.count) == 60 and int(history.failed.sum()) == len(failed)


def test_bad_arguments():
    with pytest.raises(ValueError, match="direction"):
        jaxhpo.Study(SPACE, direction="up")
    with pytest.raises(ValueError, match="space"):
        jaxhpo.Study({"x": 1})
    study = jaxhpo.Study(SPACE, jaxhpo.strategies.random())
    with pytest.raises(ValueError, match="n_trials"):
        study.optimize(_objectives.quadratic, n_trials=0)
    # an objective that is not a function is refused before any trial, not recorded as failed trials
    with pytest.raises(ValueError, match=r"fn must be the objective, a function fn\(params\) -> value, got fn=3"):
        study.optimize(3, n_trials=2)
    assert study.trials == []
    with pytest.raises(ValueError, match="no trial has completed"):
        study.best_params


def test_trials_dataframe():
    study = jaxhpo.Study(SPACE, jaxhpo.strategies.sobol(), seed=0)
    study.optimize(_objectives.flaky, n_trials=10, progress=False)
    df = study.trials_dataframe()
    assert list(df["number"]) == list(range(10))
    assert {"value", "state", "params_x", "params_kind", "params_n", "error"} <= set(df.columns)


def test_journal_round_trip_and_refuses_to_overwrite(tmp_path):
    path = str(tmp_path / "study.jsonl")
    study = jaxhpo.Study(SPACE, jaxhpo.strategies.sobol(), storage=path, seed=4)
    study.optimize(_objectives.flaky, n_trials=12, batch_size=3, progress=False)
    study.close()
    loaded = jaxhpo.Study.load(path, jaxhpo.strategies.sobol())
    assert [(t.number, t.params, t.state, t.error) for t in loaded.trials] == [
        (t.number, t.params, t.state, t.error) for t in study.trials
    ]
    for a, b in zip(loaded.trials, study.trials):
        assert a.value == b.value or (np.isnan(a.value) and not np.isfinite(b.value))
    # the resumed study continues the same Sobol sequence as an uninterrupted one
    loaded.optimize(_objectives.quadratic, n_trials=4, progress=False)
    study.optimize(_objectives.quadratic, n_trials=4, progress=False)
    assert [t.params for t in loaded.trials] == [t.params for t in study.trials]
    with pytest.raises(ValueError, match="already exists and holds a study"):
        jaxhpo.Study(SPACE, storage=path)


@pytest.mark.skipif(journal.fcntl is None, reason="no flock on this platform")
def test_a_journal_open_for_writing_refuses_a_second_writer(tmp_path):
    # resuming a study whose first process still writes would truncate or interleave its lines
    path = str(tmp_path / "study.jsonl")
    study = jaxhpo.Study(SPACE, jaxhpo.strategies.random(), storage=path, seed=0)
    study.optimize(_objectives.quadratic, n_trials=2, progress=False)
    # a second process (within one process, a newer opening takes the file over: see below)
    code = (f"import jaxhpo; jaxhpo.Study.load({path!r}, jaxhpo.strategies.random())")
    second = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert second.returncode != 0 and "open for writing elsewhere" in second.stderr
    assert "study.jsonl" in second.stderr
    study.optimize(_objectives.quadratic, n_trials=1, progress=False)  # the first writer carries on
    study.close()  # releases the lock
    again = jaxhpo.Study.load(path, jaxhpo.strategies.random())
    assert len(again.trials) == 3
    again.close()


def test_partial_trailing_line_is_ignored(tmp_path):
    path = str(tmp_path / "study.jsonl")
    study = jaxhpo.Study(SPACE, jaxhpo.strategies.random(), storage=path, seed=0)
    study.optimize(_objectives.quadratic, n_trials=3, progress=False)
    study.close()
    with open(path, "a") as f:
        f.write('{"op": "tell", "numb')  # a write cut short by a crash
    loaded = jaxhpo.Study.load(path, jaxhpo.strategies.random())
    assert len(loaded.trials) == 3
    loaded.optimize(_objectives.quadratic, n_trials=1, progress=False)
    loaded.close()
    assert len(journal.read(path)) == len(open(path).read().splitlines())


CRASHING_SCRIPT = textwrap.dedent(
    """
    import sys
    sys.path[:0] = [{tests!r}, {root!r}]
    import jaxhpo, _objectives
    space = jaxhpo.Space.from_dict({space!r})
    study = jaxhpo.Study(space, jaxhpo.strategies.sobol(), storage={path!r}, seed=7)
    study.optimize(_objectives.die_on_fifth_call, n_trials=12, batch_size={batch}, progress=False)
    print("not reached")
    """
)


@pytest.mark.parametrize("batch", [1, 3])
def test_sigkill_in_the_middle_of_optimize_resumes_without_loss(tmp_path, batch):
    path = str(tmp_path / "study.jsonl")
    here = os.path.dirname(os.path.abspath(__file__))
    script = CRASHING_SCRIPT.format(tests=here, root=os.path.dirname(here), space=SPACE.to_dict(), path=path,
                                    batch=batch)
    env = {**os.environ, "JAXHPO_TEST_COUNTER": str(tmp_path / "calls")}
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == -9, proc.stderr  # killed by SIGKILL mid-optimize
    records = journal.read(path)
    told = {r["number"]: r["value"] for r in records if r["op"] == "tell"}
    asked = {t["number"]: t["params"] for r in records if r["op"] == "ask" for t in r["trials"]}
    assert len(told) == 5 and len(asked) > len(told)

    study = jaxhpo.Study.load(path, jaxhpo.strategies.sobol())
    for number, value in told.items():  # every told trial intact
        assert study.trials[number].state is TrialState.COMPLETE
        assert study.trials[number].value == value
    running = [t.number for t in study.trials if t.state is TrialState.RUNNING]
    assert running == sorted(set(asked) - set(told))
    study.optimize(_objectives.quadratic, n_trials=12 - len(told), batch_size=batch, progress=False)
    numbers = [t.number for t in study.trials]
    assert numbers == list(range(12))  # none lost, none duplicated
    assert all(t.state is TrialState.COMPLETE for t in study.trials)
    for number in running:  # the interrupted trials ran again with their own parameters
        assert study.trials[number].params == asked[number]
    # and the whole study is the one an uninterrupted run would have produced
    clean = jaxhpo.Study(SPACE, jaxhpo.strategies.sobol(), seed=7)
    clean.optimize(_objectives.quadratic, n_trials=12, batch_size=batch, progress=False)
    assert [t.params for t in study.trials] == [t.params for t in clean.trials]


def test_process_pool_executor():
    study = jaxhpo.Study(SPACE, jaxhpo.strategies.sobol(), seed=2)
    context = multiprocessing.get_context("spawn")
    with cf.ProcessPoolExecutor(max_workers=2, mp_context=context) as pool:
        study.optimize(_objectives.slow_quadratic, n_trials=16, batch_size=4, executor=pool, progress=False)
    assert len(study.trials) == 16
    for t in study.trials:
        assert t.value == pytest.approx(_objectives.quadratic(t.params))
    sequential = jaxhpo.Study(SPACE, jaxhpo.strategies.sobol(), seed=2)
    sequential.optimize(_objectives.quadratic, n_trials=16, batch_size=4, progress=False)
    assert [t.params for t in study.trials] == [t.params for t in sequential.trials]


def test_executor_failures_are_recorded():
    study = jaxhpo.Study(SPACE, jaxhpo.strategies.random(), seed=3)
    with cf.ThreadPoolExecutor(max_workers=2) as pool:
        study.optimize(_objectives.flaky, n_trials=30, batch_size=5, executor=pool, progress=False)
    assert len(study.trials) == 30
    assert any(t.error and "diverged" in t.error for t in study.trials)


def test_progress_bar_runs(capsys):
    study = jaxhpo.Study(SPACE, jaxhpo.strategies.random(), seed=0)
    study.optimize(_objectives.quadratic, n_trials=3, progress=True)
    assert "trials" in capsys.readouterr().err


SPACE6 = jaxhpo.Space({f"x{i}": jaxhpo.Float(0.0, 1.0) for i in range(6)})


def _sphere(p):
    return sum((v - 0.3) ** 2 for v in p.values())


def test_first_ask_answers_before_the_gp_program_is_ready():
    study = jaxhpo.Study(SPACE6, jaxhpo.strategies.bayes(num_initial=3, refine_steps=3), seed=3)
    base = study._ask_fn.num_compiles  # studies of one strategy share programs
    [trial] = study.ask()
    # the GP program compiles on a thread behind the first trial: asked for, not finished; as two
    # programs (the fit and the proposal, bayes()'s ask_stages), each on its own thread
    assert study._ask_fn.num_compiles == base + 1 and study._ask_fn.compiling == 1
    assert study._ask_fn.first.compiling == 1 and study._ask_fn.second.compiling == 1
    study.tell(trial, _sphere(trial.params))
    study.optimize(_sphere, n_trials=5, progress=False)
    assert study._ask_fn.num_compiles == base + 1  # the GP asks ran the program compiled in the background
    assert len({tuple(t.params.values()) for t in study.trials}) == 6


def test_a_first_asks_programs_compile_while_the_study_is_made(monkeypatch):
    from jaxhpo import executable_cache

    monkeypatch.setattr(executable_cache, "stored", lambda key, signature: False)  # as on a cold machine
    strategy = jaxhpo.strategies.bayes(num_initial=4, refine_steps=2)  # programs no other test shares
    study = jaxhpo.Study(SPACE6, strategy, seed=1)
    # the initial design's programs were compiled beside init, for a first ask of one trial
    assert study._design_fn.num_compiles == 1 and study._in_design.num_compiles == 1
    study.ask()
    assert study._design_fn.num_compiles == 1 and study._in_design.num_compiles == 1  # those ran it
    # (that the design program's trials are the full program's: test_background_compile_gives_the_same_trials_as_without)


def test_background_compile_gives_the_same_trials_as_without():
    strategy = jaxhpo.strategies.bayes(num_initial=3, refine_steps=3)
    # every ask through the one full program (no initial-design program, no stages)
    plain = strategy._replace(design_ask=None, in_design=None, ask_stages=None)
    fast = jaxhpo.Study(SPACE6, strategy, seed=5)
    fast.optimize(_sphere, n_trials=6, progress=False)
    slow = jaxhpo.Study(SPACE6, plain, seed=5)
    slow.optimize(_sphere, n_trials=6, progress=False)
    assert [t.params for t in fast.trials] == [t.params for t in slow.trials]


def test_growing_buffer_is_compiled_ahead():
    # a space of its own: studies of one strategy share programs, and no other test compiled these
    space = jaxhpo.Space({"x": jaxhpo.Float(-5.0, 5.0), "kind": jaxhpo.Categorical(["a", "b"]),
                          "n": jaxhpo.Int(0, 2), "growing": jaxhpo.Float(0.0, 1.0)})
    study = jaxhpo.Study(space, jaxhpo.strategies.sobol(), seed=0)  # no reserve: ask/tell by hand
    assert study.state.history.capacity == jaxhpo.study.INITIAL_CAPACITY == 64
    base = study._ask_fn.num_compiles  # shapes other tests' sobol() studies compiled

    def step():
        [t] = study.ask()
        study.tell(t, _objectives.quadratic(t.params))

    for _ in range(33):
        step()
    assert study._ask_fn.num_compiles == base + 1  # one program for the first 64 trials
    step()  # more than half full: the program for 128 rows is prepared, 30 trials ahead of its use
    assert study._ask_fn.num_compiles == base + 2
    for _ in range(31):  # 65 trials: the 65th tell grew the buffer to the prepared size
        step()
    assert study.state.history.capacity == 128 and study._ask_fn.num_compiles == base + 2


def test_the_ask_compiles_for_compile_speed_on_the_first_buffer_and_for_run_speed_after(monkeypatch):
    levels = optimization_levels(monkeypatch, "jit_study_ask_")  # what reaches XLA, compile by compile
    space = jaxhpo.Space({"x": jaxhpo.Float(-5.0, 5.0), "levels": jaxhpo.Int(0, 9)})  # compiled nowhere else
    before = jaxhpo.compile_cache.cache_dir()
    try:
        jaxhpo.compile_cache.set_cache_dir(None)  # compile, do not load
        study = jaxhpo.Study(space, jaxhpo.strategies.random(), seed=0)
        objective = lambda p: (p["x"] - 1.0) ** 2 + p["levels"]  # noqa: E731
        study.optimize(objective, n_trials=10, progress=False)
        first = 0 if jax.default_backend() == "cpu" else 1  # level 0 is for CPUs only
        assert study.state.history.capacity == 64 and levels == [first]  # the first buffer: LLVM level 0
        study.optimize(objective, n_trials=60, progress=False)
        assert study.state.history.capacity == 128 and levels == [first, 1]  # grown: level 1
        assert all(t.state is TrialState.COMPLETE for t in study.trials)
    finally:
        jaxhpo.compile_cache.set_cache_dir(before)
    # a staged ask (bayes()) chooses the same way for both of its programs
    strategy = jaxhpo.strategies.bayes()
    ask = study_programs(strategy).ask
    for capacity, level in ((64, first), (128, 1), (1024, 1)):
        state = jax.eval_shape(lambda: strategy.init(jax.random.key(0), space, capacity))
        for stage in (ask.first, ask.second):
            assert stage.options(0, 0, state, 1)["xla_backend_optimization_level"] == level


def test_load_replays_a_journal_that_grew_from_a_smaller_first_buffer(tmp_path):
    path = str(tmp_path / "study.jsonl")
    study = jaxhpo.Study(SPACE, jaxhpo.strategies.sobol(), seed=0, storage=path)
    study.optimize(_objectives.quadratic, n_trials=3, progress=False)
    study.close()
    lines = open(path).read().splitlines()
    # as an older jaxhpo wrote it: a 16-row buffer grown to 32 (smaller than today's first buffer)
    lines.insert(1, json.dumps({"op": "grow", "capacity": 32}))
    open(path, "w").write("\n".join(lines) + "\n")
    loaded = jaxhpo.Study.load(path, jaxhpo.strategies.sobol())
    assert [t.params for t in loaded.trials] == [t.params for t in study.trials]
    assert loaded.state.history.capacity == 64 and int(loaded.state.history.count) == 3
    loaded.close()


@pytest.mark.parametrize("make", [lambda: jaxhpo.strategies.bayes(num_initial=4, refine_steps=3),
                                  jaxhpo.strategies.cma_es, jaxhpo.strategies.lhs])
def test_load_replays_without_running_the_strategy_and_continues_as_uninterrupted(tmp_path, make):
    from _compiles import counting

    path = str(tmp_path / "study.jsonl")
    study = jaxhpo.Study(SPACE6, make(), seed=2, storage=path)
    study.optimize(_sphere, n_trials=9, batch_size=3, progress=False)
    study.close()
    reference = jaxhpo.Study(SPACE6, make(), seed=2)  # the same study, never interrupted
    reference.optimize(_sphere, n_trials=9, batch_size=3, progress=False)
    asks_before = reference._ask_fn.num_runs  # studies of one strategy share their programs
    with counting() as c:
        loaded = jaxhpo.Study.load(path, make())
    if make is not jaxhpo.strategies.lhs:  # lhs keeps a PRNG key in its state: its asks are run again
        assert loaded._ask_fn.num_runs == asks_before  # the replay ran no ask
    assert c.programs <= 3  # small programs only (tell, init), whatever the number of asks
    for a, b in zip(jax.tree.leaves(loaded.state), jax.tree.leaves(reference.state)):
        if not jax.dtypes.issubdtype(a.dtype, jax.dtypes.prng_key):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    loaded.optimize(_sphere, n_trials=3, batch_size=3, progress=False)
    reference.optimize(_sphere, n_trials=3, batch_size=3, progress=False)
    assert [t.params for t in loaded.trials] == [t.params for t in reference.trials]
    loaded.close()


def _journaled(tmp_path, n_trials=12):
    path = str(tmp_path / "study.jsonl")
    study = jaxhpo.Study(SPACE, jaxhpo.strategies.sobol(), seed=4, storage=path)
    study.optimize(_objectives.quadratic, n_trials=n_trials, progress=False)
    study.close()
    return path, study


def test_a_damaged_middle_line_is_skipped_and_nothing_is_removed(tmp_path, caplog):
    path, study = _journaled(tmp_path)
    lines = open(path, "rb").read().splitlines(keepends=True)
    tells = [i for i, line in enumerate(lines) if b'"op": "tell"' in line]
    damaged_at = tells[3]  # a tell in the middle: half a line from another tool, and a bad byte
    lines[damaged_at] = lines[damaged_at][: len(lines[damaged_at]) // 2] + b"\xff\n"
    open(path, "wb").write(b"".join(lines))
    size = os.path.getsize(path)
    with caplog.at_level("WARNING", logger="jaxhpo"):
        loaded = jaxhpo.Study.load(path, jaxhpo.strategies.sobol())
    assert f"lines [{damaged_at + 1}]" in caplog.text
    assert os.path.getsize(path) == size  # the file keeps every line, the damaged one included
    told = {t.number: t.value for t in study.trials}
    states = [t.state for t in loaded.trials]
    assert states.count(TrialState.RUNNING) == 1  # the trial whose tell was damaged runs again
    for t in loaded.trials:
        if t.state is not TrialState.RUNNING:
            assert t.value == told[t.number]
    loaded.optimize(_objectives.quadratic, n_trials=2, progress=False)  # it is handed out again first
    assert all(t.state is not TrialState.RUNNING for t in loaded.trials)
    loaded.close()


def test_copied_lines_are_skipped_and_a_duplicated_tell_or_missing_ask_is_a_clear_error(tmp_path, caplog):
    path, study = _journaled(tmp_path)
    lines = open(path).read().splitlines(keepends=True)
    tell = next(i for i, line in enumerate(lines) if '"op": "tell"' in line)
    open(path, "w").write("".join(lines[: tell + 1] + [lines[tell]] + lines[tell + 1 :]))  # a line copied
    with caplog.at_level("WARNING", logger="jaxhpo"):
        loaded = jaxhpo.Study.load(path, jaxhpo.strategies.sobol())
    assert f"lines [{tell + 2}] repeat records read before" in caplog.text
    assert [t.value for t in loaded.trials] == [t.value for t in study.trials]
    loaded.close()
    # a second tell of a trial under its own sequence number (not a copy): refused, with the line named
    record = journal.scan(path).records[tell][1]
    last = journal.scan(path).last_seq
    open(path, "w").write("".join(lines) + journal.seal(record, last + 1) + "\n")
    with pytest.raises(ValueError, match=rf"line {len(lines) + 1}: .*already told .*duplicated tell"):
        jaxhpo.Study.load(path, jaxhpo.strategies.sobol())
    asks = [i for i, line in enumerate(lines) if '"op": "ask"' in line]
    open(path, "w").write("".join(lines[: asks[2]] + lines[asks[2] + 1 :]))
    with pytest.raises(ValueError, match="an ask record is missing or damaged"):
        jaxhpo.Study.load(path, jaxhpo.strategies.sobol())


def test_an_altered_value_fails_its_checksum_and_is_never_loaded(tmp_path, caplog):
    path, study = _journaled(tmp_path)
    lines = open(path).read().splitlines(keepends=True)
    tell = [i for i, line in enumerate(lines) if '"op": "tell"' in line][4]
    number = json.loads(lines[tell])["number"]
    value = json.loads(lines[tell])["value"]
    lines[tell] = lines[tell].replace(f'"value": {json.dumps(value)}', '"value": -1000.0')  # still valid JSON
    assert json.loads(lines[tell])["value"] == -1000.0
    open(path, "w").write("".join(lines))
    with caplog.at_level("WARNING", logger="jaxhpo"):
        loaded = jaxhpo.Study.load(path, jaxhpo.strategies.sobol())
    assert f"lines [{tell + 1}] could not be read (damaged or a wrong checksum)" in caplog.text
    assert loaded.trials[number].state is TrialState.RUNNING  # run again, never told the altered value
    assert all(t.value == study.trials[t.number].value for t in loaded.trials if t.number != number)
    assert -1000.0 not in [t.value for t in loaded.trials]
    loaded.close()


def test_deleted_lines_are_reported_as_missing_records(tmp_path, caplog):
    path, _ = _journaled(tmp_path)
    lines = open(path).read().splitlines(keepends=True)
    last_tell = max(i for i, line in enumerate(lines) if '"op": "tell"' in line)
    open(path, "w").write("".join(lines[:last_tell] + lines[last_tell + 1 :]))
    with caplog.at_level("WARNING", logger="jaxhpo"):
        loaded = jaxhpo.Study.load(path, jaxhpo.strategies.sobol())
    if last_tell + 1 < len(lines):
        assert f"records {last_tell + 1}..{last_tell + 1} are missing" in caplog.text
    assert sum(t.state is TrialState.RUNNING for t in loaded.trials) == 1
    loaded.close()


def test_a_journal_without_sequence_numbers_and_checksums_still_loads(tmp_path):
    path, study = _journaled(tmp_path)
    plain = [journal.dumps(r) + "\n" for _, r in journal.scan(path).records]  # as written before checksums
    open(path, "w").write("".join(plain))
    loaded = jaxhpo.Study.load(path, jaxhpo.strategies.sobol())
    assert [t.value for t in loaded.trials] == [t.value for t in study.trials]
    loaded.optimize(_objectives.quadratic, n_trials=1, progress=False)  # appends sealed lines after plain ones
    loaded.close()
    assert len(jaxhpo.Study.load(path, jaxhpo.strategies.sobol()).trials) == len(study.trials) + 1


def _one_running_trial(tmp_path):
    path = str(tmp_path / "study.jsonl")
    study = jaxhpo.Study(SPACE, jaxhpo.strategies.sobol(), storage=path)
    [trial] = study.ask()
    return path, study, trial


def test_ctrl_c_during_the_journal_write_waits_until_the_tell_is_on_disk_and_in_memory(tmp_path, monkeypatch):
    import signal

    path, study, trial = _one_running_trial(tmp_path)
    real = study._journal.append
    handler = signal.getsignal(signal.SIGINT)  # Python's default, or SIG_IGN in a shell's background job

    def interrupted_midway(record):
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C arrives while the line is being written
        real(record)

    monkeypatch.setattr(study._journal, "append", interrupted_midway)
    with pytest.raises(KeyboardInterrupt):
        study.tell(trial, 2.5)
    assert trial.state is TrialState.COMPLETE and trial.value == 2.5  # in memory ...
    study.close()
    assert jaxhpo.Study.load(path, jaxhpo.strategies.sobol()).trials[0].value == 2.5  # ... and on disk
    assert signal.getsignal(signal.SIGINT) is handler  # the handler is given back


@pytest.mark.parametrize("content", ["a,b,c\n1,2,3\n", "not json at all"])
def test_storage_that_is_not_an_empty_file_is_never_overwritten(tmp_path, content):
    path = tmp_path / "data.csv"
    path.write_text(content)
    with pytest.raises(ValueError, match="already exists and is not empty.*nothing was written"):
        jaxhpo.Study(SPACE, storage=str(path))
    assert path.read_text() == content
    with pytest.raises(ValueError, match="does not start with a study record"):
        jaxhpo.Study.load(str(path))
    assert path.read_text() == content


def test_an_interrupted_journal_write_leaves_the_trial_running_and_retry_works(tmp_path, monkeypatch):
    path, study, trial = _one_running_trial(tmp_path)
    real = study._journal.append

    def interrupted(record):
        raise KeyboardInterrupt

    monkeypatch.setattr(study._journal, "append", interrupted)
    with pytest.raises(KeyboardInterrupt):
        study.tell(trial, 1.5)
    assert trial.state is TrialState.RUNNING  # not complete in memory while missing on disk
    monkeypatch.setattr(study._journal, "append", real)
    study.tell(trial, 1.5)
    study.close()
    assert jaxhpo.Study.load(path, jaxhpo.strategies.sobol()).trials[0].value == 1.5


def test_a_script_that_ends_during_the_background_compile_exits_cleanly(tmp_path):
    script = textwrap.dedent(
        """
        import jaxhpo
        study = jaxhpo.Study(jaxhpo.Space({f"x{i}": jaxhpo.Float(0.0, 1.0) for i in range(6)}), seed=0)
        [trial] = study.ask()   # the GP program now compiles on a thread
        print("asked", trial.number)
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                         env=dict(os.environ, JAXHPO_CACHE_DIR="off"), cwd=tmp_path)
    assert out.returncode == 0 and "asked 0" in out.stdout, out.stderr
    assert "terminate called" not in out.stderr


def test_tell_refuses_a_trial_of_another_study():
    a = jaxhpo.Study(SPACE, jaxhpo.strategies.random(), seed=0)
    b = jaxhpo.Study(SPACE, jaxhpo.strategies.random(), seed=1)
    [ta] = a.ask()
    b.ask()  # b has a trial 0 too: the number alone would match it
    with pytest.raises(ValueError, match="belongs to another study"):
        b.tell(ta, 1.0)
    assert b.trials[0].state is TrialState.RUNNING and a.trials[0].state is TrialState.RUNNING


@pytest.mark.parametrize("bad", [(1.0, 2.0), np.array([0.5]), "0.5", None, True])
def test_an_objective_returning_something_else_than_a_number_fails_its_trial_and_the_search_goes_on(bad):
    study = jaxhpo.Study(SPACE, jaxhpo.strategies.random(), seed=0)
    study.optimize(lambda p: bad, n_trials=3, progress=False)
    assert [t.state for t in study.trials] == [TrialState.FAILED] * 3
    assert "must return one number" in study.trials[0].error


def test_counts_accept_numpy_integers_and_refuse_bools():
    study = jaxhpo.Study(SPACE, jaxhpo.strategies.random(), seed=0)
    assert len(study.ask(np.int64(2))) == 2
    with pytest.raises(ValueError, match="n must be a positive int, got n=True"):
        study.ask(True)
    study.optimize(_objectives.quadratic, n_trials=np.int32(2), progress=False)


def test_loaded_trials_keep_their_start_times(tmp_path):
    path = str(tmp_path / "study.jsonl")
    study = jaxhpo.Study(SPACE, jaxhpo.strategies.random(), seed=0, storage=path)
    study.optimize(_objectives.quadratic, n_trials=3, progress=False)
    study.close()
    loaded = jaxhpo.Study.load(path, jaxhpo.strategies.random())
    assert [t.datetime_start for t in loaded.trials] == pytest.approx([t.datetime_start for t in study.trials])
    assert all(t.duration >= 0 for t in loaded.trials)
    loaded.close()


@pytest.mark.parametrize("choice", [(1, 2), len, b"bytes"])
def test_choices_the_journal_cannot_carry_are_refused_with_the_choice_named(tmp_path, choice):
    space = jaxhpo.Space({"c": jaxhpo.Categorical(["a", choice])})
    path = str(tmp_path / "study.jsonl")
    with pytest.raises(ValueError, match="parameter 'c' cannot be stored in the journal"):
        jaxhpo.Study(space, jaxhpo.strategies.random(), storage=path)
    jaxhpo.Study(space, jaxhpo.strategies.random())  # without a journal: any choice


def test_enqueued_trials_are_evaluated_first_and_exactly_and_survive_load(tmp_path):
    space = jaxhpo.Space({"lr": jaxhpo.Float(1e-5, 1e-1, log=True), "n": jaxhpo.Int(1, 9),
                          "act": jaxhpo.Categorical(["relu", "tanh"])})
    path = str(tmp_path / "study.jsonl")
    study = jaxhpo.Study(space, jaxhpo.strategies.bayes(num_initial=3, refine_steps=2), seed=0, storage=path)
    given = [{"lr": 0.0012345678901234, "n": 7, "act": "tanh"}, {"lr": 3e-5, "n": 1, "act": "relu"}]
    for params in given:
        study.enqueue_trial(params)
    received = []

    def objective(p):
        received.append(dict(p))
        return np.log(p["lr"]) ** 2 / 100 + p["n"]

    study.optimize(objective, n_trials=5, progress=False)
    assert received[:2] == given  # first, and the float64 values exactly as given
    assert [t.params for t in study.trials[:2]] == given
    added = study.add_trial({"lr": 1e-3, "n": 2, "act": "relu"}, 0.5)
    assert added.state is TrialState.COMPLETE and added.number == 5
    study.trials[0].set_user_attr("note", {"source": "paper"})
    study.close()
    loaded = jaxhpo.Study.load(path, jaxhpo.strategies.bayes(num_initial=3, refine_steps=2))
    assert [t.params for t in loaded.trials] == [t.params for t in study.trials]
    assert [t.value for t in loaded.trials] == [t.value for t in study.trials]
    assert loaded.trials[0].user_attrs == {"note": {"source": "paper"}}
    loaded.close()


def test_enqueue_trial_checks_its_params():
    study = jaxhpo.Study(jaxhpo.Space({"x": jaxhpo.Float(0.0, 1.0), "c": jaxhpo.Categorical(["a", "b"])}),
                         jaxhpo.strategies.random())
    with pytest.raises(ValueError, match="is not one of the choices"):
        study.enqueue_trial({"x": 0.5, "c": "z"})
    with pytest.raises(ValueError, match="x"):
        study.enqueue_trial({"x": 2.0, "c": "a"})
    with pytest.raises(ValueError):
        study.enqueue_trial({"c": "a"})


def test_stop_ends_optimize_after_the_current_trial():
    study = jaxhpo.Study(SPACE, jaxhpo.strategies.random(), seed=0)

    def objective(p, trial):
        if trial.number == 3:
            study.stop()
        return _objectives.quadratic(p)

    study.optimize(objective, n_trials=20, progress=False)
    assert len(study.trials) == 4 and all(t.state is TrialState.COMPLETE for t in study.trials)
    study.optimize(_objectives.quadratic, n_trials=2, progress=False)  # a later optimize runs normally
    assert len(study.trials) == 6


def test_a_forked_worker_does_not_keep_the_journal_locked_after_the_study_process_dies(tmp_path):
    path = str(tmp_path / "study.jsonl")
    pid_file = str(tmp_path / "worker.pid")
    script = textwrap.dedent(f"""
        import multiprocessing, os, time
        import jaxhpo
        study = jaxhpo.Study(jaxhpo.Space({{"x": jaxhpo.Float(0.0, 1.0)}}), jaxhpo.strategies.random(),
                             storage={path!r})
        study.optimize(lambda p: p["x"], n_trials=2, progress=False)
        worker = multiprocessing.get_context("fork").Process(target=time.sleep, args=(60,))
        worker.start()
        open({pid_file!r}, "w").write(str(worker.pid))
        os._exit(0)  # the study process dies (as when killed); the forked worker lives on
    """)
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)
    worker = int(open(pid_file).read())
    try:
        os.kill(worker, 0)  # still alive, holding a copy of the journal's descriptor
        loaded = jaxhpo.Study.load(path, jaxhpo.strategies.random())
        assert len(loaded.trials) == 2
        loaded.close()
    finally:
        os.kill(worker, 9)


def test_loading_a_journal_twice_in_one_process_hands_it_to_the_newest_study(tmp_path):
    path = str(tmp_path / "study.jsonl")
    with jaxhpo.Study(SPACE, jaxhpo.strategies.random(), seed=0, storage=path) as study:
        study.optimize(_objectives.quadratic, n_trials=2, progress=False)
    first = jaxhpo.Study.load(path, jaxhpo.strategies.random())  # a notebook cell...
    second = jaxhpo.Study.load(path, jaxhpo.strategies.random())  # ...run again, the first still alive
    with pytest.raises(RuntimeError, match="opened again in this process"):
        first.ask()
    second.optimize(_objectives.quadratic, n_trials=1, progress=False)
    second.close()
    with jaxhpo.Study.load(path, jaxhpo.strategies.random()) as third:
        assert len(third.trials) == 3
    assert third._journal is None  # closed on leaving the block


def test_load_refuses_a_header_edited_after_the_trials(tmp_path):
    path = str(tmp_path / "study.jsonl")
    with jaxhpo.Study(SPACE, jaxhpo.strategies.random(), seed=0, storage=path) as study:
        study.optimize(_objectives.quadratic, n_trials=3, progress=False)
    lines = open(path).read().splitlines()
    header = json.loads(lines[0])
    name = next(iter(header["space"]))
    header["space"][name]["high"] = header["space"][name]["high"] * 2 + 1  # bounds edited by hand
    open(path, "w").write("\n".join([json.dumps(header)] + lines[1:]) + "\n")
    with pytest.raises(ValueError, match=r"line 1 is damaged"):  # its checksum no longer matches
        jaxhpo.Study.load(path, jaxhpo.strategies.random())
    del header["seq"], header["crc"]  # edited, and written back without a checksum (as an old journal)
    open(path, "w").write("\n".join([json.dumps(header)] + lines[1:]) + "\n")
    with pytest.raises(ValueError, match="does not match the trials"):
        jaxhpo.Study.load(path, jaxhpo.strategies.random())


def test_a_dead_pool_worker_sends_its_trials_back_instead_of_failing_them(tmp_path, monkeypatch):
    monkeypatch.setenv("JAXHPO_TEST_MARKER", str(tmp_path / "killed"))
    study = jaxhpo.Study(SPACE, jaxhpo.strategies.random(), seed=3)
    context = multiprocessing.get_context("spawn")
    with pytest.raises(RuntimeError, match="the executor broke"):
        with cf.ProcessPoolExecutor(max_workers=2, mp_context=context) as pool:
            study.optimize(_objectives.kill_worker_once, n_trials=40, batch_size=8, executor=pool, progress=False)
    assert (tmp_path / "killed").exists()  # a worker did die
    assert not [t for t in study.trials if t.state is TrialState.FAILED]  # nobody blamed the objective
    waiting = [t for t in study.trials if t.state is TrialState.RUNNING]
    assert waiting  # the trial that killed its worker, and those the broken pool never ran
    with cf.ProcessPoolExecutor(max_workers=2, mp_context=context) as pool:
        study.optimize(_objectives.kill_worker_once, n_trials=len(waiting), batch_size=8, executor=pool,
                       progress=False)
    assert all(t.state is TrialState.COMPLETE for t in study.trials)
    numbers = [t.number for t in study.trials]
    assert numbers == sorted(set(numbers))  # nothing duplicated
    for t in study.trials:
        assert t.value == pytest.approx(_objectives.quadratic(t.params))


def test_optimize_timeout_and_callbacks():
    import time as _time

    study = jaxhpo.Study(SPACE, jaxhpo.strategies.random(), seed=0)
    seen = []

    def slow(p):
        _time.sleep(0.05)
        return _objectives.quadratic(p)

    study.reserve(1000)
    study.optimize(_objectives.quadratic, n_trials=1, progress=False)  # programs compiled before timing
    start = _time.monotonic()
    study.optimize(slow, n_trials=999, timeout=0.5, callbacks=[lambda s, t: seen.append((s, t.number))],
                   progress=False)
    assert _time.monotonic() - start < 5.0
    assert 4 <= len(study.trials) < 100 and all(t.state is TrialState.COMPLETE for t in study.trials)
    assert seen == [(study, t.number) for t in study.trials[1:]]  # one call per told trial, in order
    with pytest.raises(ValueError, match="timeout must be a number of seconds"):
        study.optimize(slow, n_trials=1, timeout=-1)
    with pytest.raises(ValueError, match="callbacks must be functions"):
        study.optimize(slow, n_trials=1, callbacks=[1])


def test_create_study_resumes_with_load_if_exists_and_checks_the_space(tmp_path):
    path = str(tmp_path / "study.jsonl")
    with jaxhpo.create_study(SPACE, jaxhpo.strategies.sobol(), storage=path, seed=4) as first:
        first.optimize(_objectives.quadratic, n_trials=3, progress=False)
    with jaxhpo.create_study(SPACE, jaxhpo.strategies.sobol(), storage=path, seed=4, load_if_exists=True) as again:
        again.optimize(_objectives.quadratic, n_trials=3, progress=False)
    straight = jaxhpo.Study(SPACE, jaxhpo.strategies.sobol(), seed=4)
    straight.optimize(_objectives.quadratic, n_trials=6, progress=False)
    assert [t.params for t in again.trials] == [t.params for t in straight.trials]  # continued, not restarted
    other = jaxhpo.Space({"y": jaxhpo.Float(0.0, 1.0)})
    with pytest.raises(ValueError, match="holds a study of another space"):
        jaxhpo.create_study(other, storage=path, load_if_exists=True)
    with pytest.raises(ValueError, match="already exists and holds a study"):
        jaxhpo.create_study(SPACE, storage=path)  # without load_if_exists: as Study


def test_a_refused_storage_or_space_is_an_error_before_any_program_is_made(tmp_path, monkeypatch):
    """A storage that holds a study, or a study of another space or direction, is refused at once:
    no strategy program is made, traced or compiled (nothing left compiling behind the error)."""
    import sys

    path = str(tmp_path / "study.jsonl")
    with jaxhpo.Study(SPACE, jaxhpo.strategies.sobol(), storage=path, seed=0) as study:
        study.optimize(_objectives.quadratic, n_trials=2, progress=False)

    def no_programs(*args, **kwargs):
        raise AssertionError("a strategy's programs were made for a study that is refused")

    monkeypatch.setattr(sys.modules["jaxhpo.study"], "study_programs", no_programs)
    with pytest.raises(ValueError, match="already exists and holds a study"):
        jaxhpo.Study(SPACE, storage=path)
    with pytest.raises(ValueError, match="holds a study of another space or direction"):
        jaxhpo.create_study(jaxhpo.Space({"y": jaxhpo.Float(0.0, 1.0)}), storage=path, load_if_exists=True)
    with pytest.raises(ValueError, match="holds a study of another space or direction"):
        jaxhpo.create_study(SPACE, storage=path, load_if_exists=True, direction="maximize")
    assert len(jaxhpo.journal.read(path)) == 1 + 2 * 2  # the file is as the study left it


def test_load_can_leave_running_trials_to_whoever_runs_them(tmp_path):
    path = str(tmp_path / "study.jsonl")
    with jaxhpo.Study(SPACE, jaxhpo.strategies.sobol(), seed=0, storage=path) as study:
        study.optimize(_objectives.quadratic, n_trials=2, progress=False)
        [running] = study.ask()
    with jaxhpo.Study.load(path, jaxhpo.strategies.sobol()) as again:
        assert again.ask()[0].number == running.number  # by default: handed out again
    with jaxhpo.Study.load(path, jaxhpo.strategies.sobol(), rerun_running=False) as kept:
        [fresh] = kept.ask()
        assert fresh.number == running.number + 1 and fresh.params != running.params  # a new point instead
        kept.tell(running.number, 1.5)  # the one who ran it tells it
        assert kept.trials[running.number].value == 1.5


def test_the_objective_receives_float64_values_and_they_are_the_trials_params():
    # Optuna users read trial.params back as the float64 value the trial ran with, never a float32 rounding
    space = jaxhpo.Space({"C": jaxhpo.Float(1e-3, 1e3, log=True), "x": jaxhpo.Float(-1.0, 1.0),
                          "n": jaxhpo.Int(1, 9)})
    study = jaxhpo.Study(space, jaxhpo.strategies.bayes(num_initial=3, refine_steps=2), seed=0)
    received = []

    def objective(p):
        received.append(dict(p))
        return np.log(p["C"]) ** 2 + p["x"] ** 2 + p["n"]

    study.optimize(objective, n_trials=8, progress=False)
    assert received == [t.params for t in study.trials]
    for t, p in zip(study.trials, received):
        assert type(p["C"]) is float and type(p["x"]) is float and type(p["n"]) is int
        exact = space.decode_numpy(np.asarray(t.x, np.float64))
        assert p["C"] == float(exact["C"]) and p["x"] == float(exact["x"])
    # decoded in float32, every log-scale value would be a float32 number (C=79.03902435302734); decoded in
    # float64 from the strategy's point, almost none is (a linear value 2u - 1 of a float32 u may well be)
    as_float32 = [p["C"] for p in received if float(np.float32(p["C"])) == p["C"]]
    assert len(as_float32) <= 1, as_float32


@pytest.mark.parametrize("seed", [0, 7, 2**31 + 5, 2**40 + 3, -3])
def test_the_seed_key_made_inside_the_programs_is_jax_random_key_of_the_seed(seed):
    # a Study no longer runs jax.random.key eagerly (two small compiles before the first trial): its
    # programs make the key from seed_array, and must get the same key, so that a seed's trials stay
    from _compiles import counting

    from jaxhpo.keys import seed_array

    inside = jax.jit(jax.random.key)(seed_array(seed))
    assert np.array_equal(jax.random.key_data(inside), jax.random.key_data(jax.random.key(seed)))
    if abs(seed) < 2**31:  # (a seed out of int32's range needs JAX's own conversion, a small program)
        jax.clear_caches()  # so that a conversion program would be built again here
        with counting() as built:
            seed_array(seed)
        assert built.programs == 0  # no program runs to make it


def test_studies_of_strategies_that_differ_only_in_numeric_settings_compile_the_gp_once():
    # bayes(prior_mean_quantile=0) and (=100) share every program but init with bayes() (Strategy.shared,
    # here the programs of the tests above): each study builds its init alone, and its asks read its
    # own quantile (a state leaf)
    from _compiles import counting

    make = lambda q: jaxhpo.strategies.bayes(num_initial=3, refine_steps=3, prior_mean_quantile=q)  # noqa: E731
    hopeful = jaxhpo.Study(SPACE6, make(0.0), seed=5)
    hopeful.optimize(_sphere, n_trials=8, progress=False)
    with counting() as c:
        wary = jaxhpo.Study(SPACE6, make(100.0), seed=5)
        wary.optimize(_sphere, n_trials=8, progress=False)
    assert len(c.named) == 1 and c.named[0].startswith("study_init"), c.named
    assert study_programs(wary.strategy).ask is study_programs(hopeful.strategy).ask
    assert study_programs(wary.strategy).ask is study_programs(make(90.0).shared).ask
    assert float(wary.state.settings.prior_mean_quantile) == 100.0
    assert float(hopeful.state.settings.prior_mean_quantile) == 0.0
    assert [t.params for t in wary.trials[:3]] == [t.params for t in hopeful.trials[:3]]  # the seed's design
    assert [t.params for t in wary.trials[3:]] != [t.params for t in hopeful.trials[3:]]


def test_a_replay_builds_no_program_once_the_studys_programs_exist(tmp_path):
    # the journaled state changes go back on the device without a program per leaf shape (a warm
    # Study.load compiles nothing)
    from _compiles import counting

    path = str(tmp_path / "study.jsonl")
    study = jaxhpo.Study(SPACE, jaxhpo.strategies.sobol(), seed=6, storage=path)
    study.optimize(_objectives.quadratic, n_trials=5, progress=False)
    study.close()
    jax.clear_caches()  # JAX's own small programs (a host array's conversion, say) built anew if used
    with counting() as c:
        loaded = jaxhpo.Study.load(path, jaxhpo.strategies.sobol())
    assert c.programs == 0, c.names
    assert [t.params for t in loaded.trials] == [t.params for t in study.trials]
    loaded.close()
