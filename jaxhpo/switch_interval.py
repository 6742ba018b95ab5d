"""A short GIL switch interval while jaxhpo traces programs on background threads.

Tracing and lowering a program is Python work that holds the GIL for
hundreds of milliseconds. CPython hands the GIL to a waiting thread only
every ``sys.getswitchinterval()`` seconds (5 ms by default), so while a
program is traced behind your trials, the thread running them waits up to
5 ms each time it takes the GIL back (after every call into XLA or NumPy
that released it): a 60-trial study told by hand, whose bigger buffer's
program is traced from trial 32 on, ran 2.7 s instead of 2.1 s (2-core CPU,
``benchmarks/README.md``, bench_latency, session 32). ``responsive`` sets
the interval to ``INTERVAL`` (0.1 ms) while jaxhpo traces on a thread
(``jaxhpo.programs``) and puts yours back when the last trace ends; an
interval you set in the meantime, or one already shorter, is left as it is.

Example:
    >>> import sys
    >>> from jaxhpo.switch_interval import INTERVAL, responsive
    >>> before = sys.getswitchinterval()
    >>> with responsive():
    ...     sys.getswitchinterval() <= INTERVAL
    True
    >>> sys.getswitchinterval() == before
    True
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from typing import Iterator, Optional

INTERVAL = 1e-4  # seconds: the interval while jaxhpo traces on a thread

_lock = threading.Lock()
_active = 0  # blocks running under ``responsive``, on any thread
_saved: Optional[float] = None  # the interval to put back when the last one ends; None: leave it


@contextlib.contextmanager
def responsive() -> Iterator[None]:
    """Runs its block with the GIL's switch interval at most ``INTERVAL``; nests across threads."""
    global _active, _saved
    with _lock:
        if _active == 0:
            current = sys.getswitchinterval()
            _saved = current if current > INTERVAL else None
            if _saved is not None:
                sys.setswitchinterval(INTERVAL)
        _active += 1
    try:
        yield
    finally:
        with _lock:
            _active -= 1
            if _active == 0 and _saved is not None:
                if _ours():  # not changed by someone else since
                    sys.setswitchinterval(_saved)
                _saved = None


def _ours() -> bool:
    """Whether the interval is still the one ``responsive`` set (CPython keeps it in whole microseconds)."""
    return abs(sys.getswitchinterval() - INTERVAL) < 1e-6


def _reset_in_child() -> None:
    """After a fork: the child has none of the parent's threads, so none of their traces either."""
    global _lock, _active, _saved
    _lock = threading.Lock()  # a fork while another thread held it would leave it locked for good
    if _active and _saved is not None and _ours():
        sys.setswitchinterval(_saved)
    _active, _saved = 0, None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_in_child)
