"""Tests for jaxhpo.programs: ahead-of-time compiles on a background thread."""

import threading

import jax
import jax.numpy as jnp
import pytest

from jaxhpo.programs import Program


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
