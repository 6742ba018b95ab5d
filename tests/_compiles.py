"""Counts programs built (with ``jax.monitoring``), for tests that promise none.

JAX records ``backend_compile_duration`` for every program it builds, whether
XLA compiles it or it comes from the persistent cache (which also records a
``cache_hits`` event); so ``programs`` counts both and ``compiles`` only XLA's.
"""

import contextlib

import jax

_counts = {"programs": 0, "cache_hits": 0}
_names: list = []  # the name of every program built, in order ("jit(f)" -> "f")


def _on_duration(event, duration, fun_name="?", **_):
    if event == "/jax/core/compile/backend_compile_duration":
        _counts["programs"] += 1
        _names.append(str(fun_name).removeprefix("jit(").removesuffix(")"))


def _on_event(event, **_):
    if event == "/jax/compilation_cache/cache_hits":
        _counts["cache_hits"] += 1


jax.monitoring.register_event_duration_secs_listener(_on_duration)
jax.monitoring.register_event_listener(_on_event)


def programs_built():
    """Programs built in this process so far: compiled by XLA or loaded from the persistent cache."""
    return _counts["programs"]


class Count:
    programs = 0  # built: compiled by XLA or loaded from the persistent cache
    cache_hits = 0
    names: list = []  # their names, in order

    @property
    def named(self):
        """The names of the programs built, without JAX's ``stage`` programs (one per host array put on a device)."""
        return sorted(n for n in self.names if n != "stage")

    @property
    def compiles(self):
        """Programs XLA compiled (not loaded from the cache)."""
        return self.programs - self.cache_hits


@contextlib.contextmanager
def counting():
    """``with counting() as c:`` then ``c.programs`` / ``c.compiles`` for what ran inside."""
    count = Count()
    start = dict(_counts)
    first = len(_names)
    try:
        yield count
    finally:
        count.names = _names[first:]
        count.programs = _counts["programs"] - start["programs"]
        count.cache_hits = _counts["cache_hits"] - start["cache_hits"]


def optimization_levels(monkeypatch, module_prefix):
    """A list that fills, as programs whose module name starts with ``module_prefix`` (``"jit_study_ask_"``)
    are compiled, with the LLVM optimization level each compile was given (from any thread)."""
    levels = []
    compile_ = jax.stages.Lowered.compile

    def spy(self, compiler_options=None, **kwargs):
        if f"@{module_prefix}" in self.as_text()[:300]:
            levels.append((compiler_options or {}).get("xla_backend_optimization_level"))
        return compile_(self, compiler_options, **kwargs)

    monkeypatch.setattr(jax.stages.Lowered, "compile", spy)
    return levels
