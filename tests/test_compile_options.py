"""jaxhpo's XLA options: only those the running XLA knows reach a compile."""

import pickle

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxhpo
from jaxhpo import compile_options
from jaxhpo.study_programs import study_programs

UNKNOWN = "xla_option_of_another_release"  # as JAX 0.11 no longer knows xla_cpu_use_fusion_emitters


def _negate(x):
    return -x


def test_supported_keeps_the_known_options_and_leaves_out_unknown_ones():
    known = compile_options.supported(compile_options.COMPILER_OPTIONS)
    assert known == compile_options.COMPILER_OPTIONS  # this jaxlib knows them all
    mixed = compile_options.supported({**compile_options.COMPILER_OPTIONS, UNKNOWN: True})
    assert mixed == compile_options.COMPILER_OPTIONS
    with pytest.raises(jax.errors.JaxRuntimeError, match="No such compile option"):  # what it saves us from
        jax.jit(lambda x: x + 1, compiler_options={UNKNOWN: True})(1.0)


def test_jit_with_an_option_xla_does_not_know_compiles_lowers_and_pickles():
    fn = compile_options.jit(lambda x, n: x * n, {"xla_backend_optimization_level": 1, UNKNOWN: 3},
                             static_argnums=(1,))
    np.testing.assert_array_equal(fn(jnp.arange(3.0), 2), [0.0, 2.0, 4.0])
    assert fn.lower(jnp.arange(3.0), 2).compile()(jnp.arange(3.0)).tolist() == [0.0, 2.0, 4.0]
    again = pickle.loads(pickle.dumps(compile_options.jit(_negate, {UNKNOWN: 1})))
    assert again(jnp.float32(2)) == -2.0


def test_a_study_runs_when_its_options_include_one_xla_does_not_know(monkeypatch):
    # jaxhpo's own option sets grown by an option this XLA lacks: every program of a Study
    # (init, initial design, the GP) still compiles, and gives the trials it gives without it
    space = jaxhpo.Space({"x": jaxhpo.Float(-2.0, 2.0), "n": jaxhpo.Int(1, 4)})
    fn = lambda p: (p["x"] - 0.5) ** 2 + 0.1 * p["n"]  # noqa: E731
    before = jaxhpo.compile_cache.cache_dir()
    try:
        jaxhpo.compile_cache.set_cache_dir(None)  # compile, do not load
        plain = jaxhpo.Study(space, seed=3)
        plain.optimize(fn, n_trials=12, progress=False)
        for options in (compile_options.COMPILER_OPTIONS, compile_options.SMALL_PROGRAM_OPTIONS):
            monkeypatch.setitem(options, UNKNOWN, True)
        study_programs.cache_clear()  # programs made anew, with the grown option sets
        grown = jaxhpo.Study(space, seed=3)
        assert UNKNOWN in grown._tell_fn._options  # what its programs are made to compile with
        grown.optimize(fn, n_trials=12, progress=False)
    finally:
        jaxhpo.compile_cache.set_cache_dir(before)
        study_programs.cache_clear()
    assert [t.params for t in grown.trials] == [t.params for t in plain.trials]
