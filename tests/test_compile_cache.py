"""Tests for jaxhpo.compile_cache: JAX's persistent compilation cache on by default, movable, off on request."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

# A fresh process compiles a small program (the cache threshold lowered to 0 s so it is stored) and
# reports where the cache lives, what it holds, and how many compiles were served from it.
SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    import jax, jax.numpy as jnp
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    if len(sys.argv) > 1:
        jax.config.update("jax_compilation_cache_dir", sys.argv[1])
    import jaxhpo
    hits, loaded = [], []  # programs from JAX's cache; a Study's own programs from jaxhpo's executables
    jax.monitoring.register_event_listener(lambda e, **k: hits.append(e) if e.endswith("cache_hits") else None)
    jax.monitoring.register_event_listener(
        lambda e, **k: loaded.append(e) if e == jaxhpo.executable_cache.HIT_EVENT else None)
    study = jaxhpo.Study(jaxhpo.Space({"x": jaxhpo.Float(0.0, 1.0)}), jaxhpo.strategies.random(), seed=0)
    study.optimize(lambda p: p["x"] ** 2, n_trials=3, progress=False)
    mine = float(jax.jit(lambda x: jnp.sin(x) * 3)(0.5))  # a user's program, after jaxhpo set the cache up
    where = jaxhpo.compile_cache.cache_dir()
    files = sorted(os.listdir(where)) if where and os.path.isdir(where) else []
    print(json.dumps({"dir": where, "files": len(files), "hits": len(hits), "loaded": len(loaded),
                      "values": [t.value for t in study.trials] + [mine]}))
    """
)


def _run(tmp_path, env_extra, *args):
    env = {k: v for k, v in os.environ.items() if k not in ("JAXHPO_CACHE_DIR", "XDG_CACHE_HOME")}
    env.update(env_extra)
    out = subprocess.run([sys.executable, "-c", SCRIPT, *args], env=env, capture_output=True, text=True,
                         timeout=300, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_default_cache_under_xdg_and_a_second_process_hits_it(tmp_path):
    env = {"XDG_CACHE_HOME": str(tmp_path / "xdg")}
    first = _run(tmp_path, env)
    assert first["dir"] == str(tmp_path / "xdg" / "jaxhpo" / "xla")
    assert first["files"] > 0
    assert first["hits"] == 0 and first["loaded"] == 0
    second = _run(tmp_path, env)
    assert second["hits"] > 0  # the user's program
    assert second["loaded"] >= 3  # the study's init, ask and tell, loaded without tracing
    assert second["values"] == first["values"]  # the cache changes when programs compile, not what they give


def test_env_var_moves_or_turns_off_the_cache(tmp_path):
    moved = _run(tmp_path, {"JAXHPO_CACHE_DIR": str(tmp_path / "elsewhere"), "XDG_CACHE_HOME": str(tmp_path / "x")})
    assert moved["dir"] == str(tmp_path / "elsewhere") and moved["files"] > 0
    off = _run(tmp_path, {"JAXHPO_CACHE_DIR": "off", "XDG_CACHE_HOME": str(tmp_path / "x")})
    assert off["dir"] is None
    assert not (tmp_path / "x" / "jaxhpo").exists()
    assert off["values"] == moved["values"]


def test_a_cache_the_user_configured_is_left_alone(tmp_path):
    mine = tmp_path / "mine"
    out = _run(tmp_path, {"XDG_CACHE_HOME": str(tmp_path / "x")}, str(mine))
    assert out["dir"] == str(mine) and out["files"] > 0
    assert not (tmp_path / "x" / "jaxhpo").exists()


def test_set_cache_dir_validates_and_switches(tmp_path):
    import jaxhpo

    before = jaxhpo.compile_cache.cache_dir()
    try:
        with pytest.raises(ValueError, match="path must be a directory path or None, got path=3"):
            jaxhpo.compile_cache.set_cache_dir(3)
        jaxhpo.compile_cache.set_cache_dir(tmp_path / "c")
        assert jaxhpo.compile_cache.cache_dir() == str(tmp_path / "c")
        jaxhpo.compile_cache.set_cache_dir(None)
        assert jaxhpo.compile_cache.cache_dir() is None
    finally:
        jaxhpo.compile_cache.set_cache_dir(before)
