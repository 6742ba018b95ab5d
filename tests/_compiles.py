"""Counts XLA compiles (and persistent-cache hits) with ``jax.monitoring``, for tests that promise none."""

import contextlib

import jax

_counts = {"compiles": 0, "cache_hits": 0}


def _on_duration(event, duration, **_):
    if event == "/jax/core/compile/backend_compile_duration":
        _counts["compiles"] += 1


def _on_event(event, **_):
    if event == "/jax/compilation_cache/cache_hits":
        _counts["cache_hits"] += 1


jax.monitoring.register_event_duration_secs_listener(_on_duration)
jax.monitoring.register_event_listener(_on_event)


def programs_built():
    """Programs built in this process so far: compiled by XLA or loaded from the persistent cache."""
    return _counts["compiles"] + _counts["cache_hits"]


class Count:
    compiles = 0
    cache_hits = 0

    @property
    def programs(self):
        """Programs built: compiled by XLA or loaded from the persistent cache."""
        return self.compiles + self.cache_hits


@contextlib.contextmanager
def counting():
    """``with counting() as c:`` then ``c.compiles`` / ``c.programs`` for what ran inside."""
    count = Count()
    start = dict(_counts)
    try:
        yield count
    finally:
        count.compiles = _counts["compiles"] - start["compiles"]
        count.cache_hits = _counts["cache_hits"] - start["cache_hits"]
