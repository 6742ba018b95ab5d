"""Tests for jaxhpo.executable_cache: a study's programs load in a later process without tracing."""

import json
import os
import shutil
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import pytest

import jaxhpo
from jaxhpo import executable_cache

# A fresh process runs a small bayes() study and reports its suggestions, how many programs were traced
# (jaxpr_trace_duration events: a program loaded from the executable cache is never traced) and what
# the executable cache holds.
SCRIPT = textwrap.dedent(
    """
    import json, os, jax, jaxhpo
    traced = []
    jax.monitoring.register_event_duration_secs_listener(
        lambda e, d, **k: traced.append(e) if e.endswith("jaxpr_trace_duration") else None)
    space = jaxhpo.Space({"x": jaxhpo.Float(-2.0, 2.0), "y": jaxhpo.Float(-2.0, 2.0)})
    study = jaxhpo.Study(space, jaxhpo.strategies.bayes(num_initial=3, refine_steps=3), seed=0)
    study.optimize(lambda p: (p["x"] - 0.5) ** 2 + (p["y"] + 0.25) ** 2, n_trials=6, progress=False)
    folder = os.path.join(jaxhpo.compile_cache.cache_dir(), "executables")
    print(json.dumps({"params": [t.params for t in study.trials], "traced": len(traced),
                      "entries": sorted(os.listdir(folder)) if os.path.isdir(folder) else []}))
    """
)


def _run(cache_home, devices=None):
    env = {k: v for k, v in os.environ.items() if k not in ("JAXHPO_CACHE_DIR", "XDG_CACHE_HOME")}
    env.update(XDG_CACHE_HOME=str(cache_home), OPENBLAS_NUM_THREADS="1")
    if devices is not None:  # as population.use_cpu_cores() or a machine with several GPUs
        env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={devices}".strip()
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_a_second_process_loads_the_study_programs_without_tracing_and_gets_the_same_trials(tmp_path):
    cold = _run(tmp_path)
    kinds = {name.split("-")[1] for name in cold["entries"]}
    assert {"ask", "design", "init", "tell"} <= kinds, cold["entries"]
    warm = _run(tmp_path)
    assert warm["params"] == cold["params"]
    assert warm["traced"] < cold["traced"] - 4, (cold["traced"], warm["traced"])  # the study's programs
    # JAX's own cache still holds the programs, ours not: an executable JAX loaded from its cache does not
    # serialize whole (stored, its next load failed with "Function ... not found"), so it is not stored
    shutil.rmtree(tmp_path / "jaxhpo" / "xla" / "executables")
    for _ in range(2):
        again = _run(tmp_path)
        assert again["params"] == cold["params"]


def test_programs_stored_on_a_machine_with_several_devices_load_and_run_there(tmp_path):
    # a loaded executable used to be set up for every device of the backend and failed on its first call
    # ("Expected args to execute_sharded_on_local_devices to have 2 shards, got: [1]")
    cold = _run(tmp_path, devices=2)
    assert cold["entries"]
    warm = _run(tmp_path, devices=2)
    assert warm["params"] == cold["params"] and warm["traced"] < cold["traced"] - 4


def test_a_damaged_entry_is_compiled_again_and_rewritten(tmp_path):
    jaxhpo.compile_cache.set_cache_dir(str(tmp_path))
    try:
        fn = jax.jit(lambda x: jnp.cumsum(x) * 2)
        compile_fn = lambda: fn.lower(jnp.ones(5)).compile()  # noqa: E731
        key = executable_cache.program_key("test", jaxhpo.strategies.random())
        executable_cache.load_or_compile(key, "sig", compile_fn)
        [entry] = os.listdir(tmp_path / "executables")
        (tmp_path / "executables" / entry).write_bytes(b"not an executable")
        compiled = executable_cache.load_or_compile(key, "sig", compile_fn)
        assert compiled(jnp.arange(5.0)).tolist() == [0.0, 2.0, 6.0, 12.0, 20.0]
        assert (tmp_path / "executables" / entry).stat().st_size > 1000  # rewritten
        loaded = executable_cache.load_or_compile(key, "sig", lambda: pytest.fail("compiled although stored"))
        assert loaded(jnp.arange(5.0)).tolist() == [0.0, 2.0, 6.0, 12.0, 20.0]
    finally:
        jaxhpo.compile_cache.set_cache_dir(jaxhpo.compile_cache.default_dir())


def test_only_programs_made_of_jaxhpo_code_are_stored():
    assert executable_cache.program_key("ask", jaxhpo.strategies.bayes()) == "ask:bayes()"
    custom = jaxhpo.strategies.random()._replace(recipe=("my_module", "mine", (), ()))
    assert executable_cache.program_key("ask", custom) is None  # its source could change under one name
    assert executable_cache.program_key("ask", jaxhpo.strategies.random()._replace(recipe=None)) is None


# A fresh process loads (or, the first time, compiles and stores) a program without LAPACK, notes whether
# SciPy got imported, then one that calls LAPACK (a Cholesky solve) and runs it.
LAPACK_SCRIPT = textwrap.dedent(
    """
    import json, sys, jax, jax.numpy as jnp, jaxhpo
    from jaxhpo import executable_cache
    jax.config.update("jax_enable_x64", True)
    jaxhpo.compile_cache.ensure()  # as a Study or minimize does
    key = executable_cache.program_key("test", jaxhpo.strategies.random())
    plain = jax.jit(lambda x: jnp.cumsum(x) * 2)
    first = executable_cache.load_or_compile(key + "plain", "sig", lambda: plain.lower(jnp.ones(4)).compile())
    out = {"plain": first(jnp.arange(4.0)).tolist(), "scipy_after_plain": "scipy.linalg" in sys.modules}
    solve = jax.jit(lambda a, b: jax.scipy.linalg.cho_solve(jax.scipy.linalg.cho_factor(a), b))
    a, b = jnp.array([[4.0, 1.0], [1.0, 3.0]]), jnp.array([1.0, 2.0])
    second = executable_cache.load_or_compile(key + "chol", "sig", lambda: solve.lower(a, b).compile())
    out["solve"] = second(a, b).tolist()
    print(json.dumps(out))
    """
)


def test_scipy_lapack_is_set_up_only_for_a_loaded_program_that_calls_lapack(tmp_path):
    # setting up jaxlib's LAPACK kernels imports SciPy (0.3 s, most of a warm first trial): a loaded
    # program that does not call LAPACK must not pay it; one that does must find the kernels set up
    env = {k: v for k, v in os.environ.items() if k != "XDG_CACHE_HOME"}
    env.update(JAXHPO_CACHE_DIR=str(tmp_path), OPENBLAS_NUM_THREADS="1")
    runs = []
    for _ in range(2):  # the first stores both programs, the second loads them
        out = subprocess.run([sys.executable, "-c", LAPACK_SCRIPT], env=env, capture_output=True, text=True,
                             timeout=300)
        assert out.returncode == 0, out.stderr[-3000:]
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    assert len(os.listdir(tmp_path / "executables")) == 2
    cold, warm = runs
    assert warm["plain"] == cold["plain"] == [0.0, 2.0, 6.0, 12.0]
    assert warm["solve"] == pytest.approx([1.0 / 11.0, 7.0 / 11.0]) and warm["solve"] == cold["solve"]
    assert not warm["scipy_after_plain"], runs
