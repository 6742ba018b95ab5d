"""Tests for jaxhpo.programs: ahead-of-time compiles on a background thread."""

import threading
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxhpo
from jaxhpo import programs as programs_module
from jaxhpo.programs import Program, StagedProgram


def test_prepared_program_equals_jit_and_compiles_once_per_signature():
    fn = jax.jit(lambda x, n: jnp.cumsum(x) ** n, static_argnums=1)
    program = Program(fn, static_argnums=(1,))
    program.prepare(jnp.ones(5), 2)
    program.prepare(jnp.zeros(5), 2)  # same signature: nothing new
    assert program.num_compiles == 1
    x = jnp.arange(5.0)
    assert jnp.array_equal(program(x, 2), fn(x, 2))
    assert program.ready(x, 2)
    program(x, 3)  # another static value: a second program
    program(jnp.arange(6.0), 2)  # another shape: a third
    assert program.num_compiles == 3


def test_prepare_returns_before_the_compile_ends():
    started, release = threading.Event(), threading.Event()

    def slow(x):
        started.set()
        release.wait(10)  # tracing blocks until the test lets it go
        return x + 1

    program = Program(jax.jit(slow))
    program.prepare(jnp.ones(3))
    assert started.wait(10)
    assert not program.ready(jnp.ones(3))  # prepare came back while the compile is still under way
    release.set()
    assert jnp.array_equal(program(jnp.ones(3)), jnp.full(3, 2.0))
    assert program.ready(jnp.ones(3))


def test_a_failed_compile_raises_where_the_program_runs():
    def bad(x):
        raise TypeError("no such program")

    program = Program(jax.jit(bad))
    program.prepare(jnp.ones(2))
    with pytest.raises(TypeError, match="no such program"):
        program(jnp.ones(2))


def test_staged_program_compiles_its_stages_side_by_side_and_runs_them_in_order():
    traced, release = [], threading.Event()

    def stage(name, fn):
        def run(key, state, num):
            traced.append(name)
            release.wait(10)  # tracing blocks until the test lets it go
            return fn(key, state, num)
        return Program(jax.jit(run, static_argnums=2), static_argnums=(2,))

    fit = stage("fit", lambda key, state, num: state * 2)
    propose = stage("propose", lambda key, state, num: (state + num + key, state))
    both = StagedProgram(fit, propose)
    both.prepare(1, jnp.ones(2), 3)
    # both stages compiling at once, on two threads; they trace one at a time (XLA then runs in parallel)
    assert fit.compiling == 1 and propose.compiling == 1 and both.compiling == 1
    time.sleep(0.3)
    assert len(traced) == 1 and not both.ready(1, jnp.ones(2), 3)
    release.set()
    x, state = both(1, jnp.arange(2.0), 3)  # second(first(state)): (2 * state + 3 + 1, 2 * state)
    assert x.tolist() == [4.0, 6.0] and state.tolist() == [0.0, 2.0]
    assert sorted(traced) == ["fit", "propose"]
    assert both.num_compiles == 1 and both.num_runs == 1


def test_a_foreground_compile_does_not_wait_for_background_tracing():
    started, release = threading.Event(), threading.Event()

    def slow(x):
        started.set()
        release.wait(20)
        return x + 1

    background = Program(jax.jit(slow))
    background.prepare(jnp.ones(3))  # holds the background tracing turn until released
    assert started.wait(10)
    done = []
    worker = threading.Thread(target=lambda: done.append(Program(jax.jit(lambda x: x * 3))(jnp.ones(2))))
    worker.start()
    worker.join(10)
    release.set()
    assert done and done[0].tolist() == [3.0, 3.0]  # ran while the background trace was still blocked


def test_lower_here_traces_in_the_callers_thread_and_leaves_xla_to_a_thread():
    tracing_threads = []

    def double(x):
        tracing_threads.append(threading.current_thread())
        return 2 * x

    program = Program(jax.jit(double))
    program.prepare(jnp.ones(3), lower_here=True)
    assert tracing_threads == [threading.current_thread()]  # traced here, before prepare returned
    assert program.num_compiles == 1
    assert program(jnp.arange(3.0)).tolist() == [0.0, 2.0, 4.0]
    assert program.num_compiles == 1 and len(tracing_threads) == 1  # the call ran what was prepared


def test_lower_here_leaves_a_stored_executable_to_load_when_called(monkeypatch):
    from jaxhpo import executable_cache

    monkeypatch.setattr(executable_cache, "stored", lambda key, signature: True)
    program = Program(jax.jit(lambda x: x + 1), cache_key="test-stored")
    assert program.prepare(jnp.ones(2), lower_here=True) is False  # nothing to overlap
    assert program.num_compiles == 0


def test_output_shapes_prepare_the_signature_a_later_call_on_the_outputs_has():
    make = Program(jax.jit(lambda x: (jnp.cumsum(x), jnp.sum(x) > 0, 1.0)))
    use = Program(jax.jit(lambda out: out[0] * out[1] + out[2]))
    shapes = make.output_shapes(jnp.ones(3))
    assert make.num_compiles == 0  # traced, not compiled
    use.prepare(shapes, lower_here=True)
    assert use(make(jnp.ones(3))).tolist() == [2.0, 3.0, 4.0]
    assert use.num_compiles == 1  # the real outputs matched the prepared signature (weak types, placement)


def test_a_change_of_jax_settings_compiles_again_as_jit_does():
    # jax.jit traces again under another default matmul precision (the product's precision attribute
    # changes): so does a Program, which would otherwise keep running the program compiled before
    fn = jax.jit(lambda a: a @ a)
    program = Program(fn)
    x = jnp.ones((3, 3))
    program(x)
    before = jax.config.jax_default_matmul_precision
    try:
        jax.config.update("jax_default_matmul_precision", "highest")
        assert "HIGHEST" in fn.lower(x).as_text()  # what jit compiles now
        assert not program.ready(x)
        program(x)
        assert program.num_compiles == 2
        assert "highest" in program._future((x,), background=False).result().as_text().lower()
    finally:
        jax.config.update("jax_default_matmul_precision", before)
    assert program.ready(x) and program.num_compiles == 2  # back: the first program again


def test_options_may_be_a_function_of_the_arguments_and_reach_the_compile(monkeypatch):
    # a program whose XLA options follow the shapes (as a study's ask follows its buffer)
    passed = []
    monkeypatch.setattr(programs_module, "supported", lambda options: passed.append(dict(options)) or dict(options))
    options = lambda args: {"xla_backend_optimization_level": 0 if args[0].shape[0] <= 4 else 1}  # noqa: E731
    program = Program(jax.jit(lambda x: jnp.cumsum(x) * 2), compiler_options=options)
    for n in (3, 8, 3):
        np.testing.assert_array_equal(program(jnp.arange(float(n))), jnp.cumsum(jnp.arange(float(n))) * 2)
    assert [p["xla_backend_optimization_level"] for p in passed] == [0, 1]  # one compile per signature
    assert program.options(jnp.ones(2)) == {"xla_backend_optimization_level": 0}
    assert Program(jax.jit(lambda x: x)).options(jnp.ones(2)) == jaxhpo.compile_options.COMPILER_OPTIONS


def test_background_tracing_runs_with_a_short_switch_interval_and_puts_the_callers_back():
    import sys

    from jaxhpo import switch_interval

    seen = []

    def traced(x):
        seen.append((threading.current_thread().name, sys.getswitchinterval()))
        return x * 2

    before = sys.getswitchinterval()
    assert before > switch_interval.INTERVAL  # CPython's default, 5 ms
    program = Program(jax.jit(traced))
    program.prepare(jnp.ones(3))
    assert program(jnp.ones(3)).tolist() == [2.0, 2.0, 2.0]  # waits for the background compile
    [(thread, interval)] = seen
    assert thread == "jaxhpo-compile" and interval <= switch_interval.INTERVAL
    assert sys.getswitchinterval() == before  # restored once traced, before XLA compiles
    Program(jax.jit(traced))(jnp.ones(4))  # a foreground compile leaves the interval alone
    assert seen[-1] == ("MainThread", before)
