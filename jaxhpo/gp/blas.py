"""Keeps CPU BLAS/LAPACK from oversubscribing cores during GP work.

jaxlib's CPU Cholesky and triangular solves (``jaxhpo.gp.linalg``) run on
the OpenBLAS bundled with SciPy, which starts one thread per core. The
matrices of a GP over a few hundred points are too small to gain from
threads, and on a busy machine those threads fight for cores. Measured on a
busy 2-core machine (``jaxhpo.gp.linalg.cholesky_and_inverse``, float64):
200x200 24 ms with OpenBLAS's default threads against 6 ms with one, 1000x1000
258 ms against 92 ms.

``limit_blas_threads`` limits BLAS threads inside a block; ``minimize``
and ``Study`` wrap the programs they run in it, so the library behaves well
by default. ``JAXHPO_BLAS_THREADS`` sets the limit (default 1; ``0`` leaves
BLAS alone). Under your own ``jit``, run and block inside the context:

Example:
    >>> with limit_blas_threads():
    ...     pass  # e.g. jax.block_until_ready(my_jitted_search(key))
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import sys
from typing import Callable, Iterator

_SETTERS = ("openblas_set_num_threads", "scipy_openblas_set_num_threads64_", "scipy_openblas_set_num_threads")
_GETTERS = ("openblas_get_num_threads", "scipy_openblas_get_num_threads64_", "scipy_openblas_get_num_threads")


@functools.lru_cache(maxsize=1)
def _openblas_handles() -> tuple[tuple[Callable, Callable], ...]:
    """(get, set) pairs of every OpenBLAS loaded in this process (Linux, without threadpoolctl)."""
    try:
        with open("/proc/self/maps") as fh:
            paths = {line.split()[-1] for line in fh if "openblas" in line.lower() and "/" in line}
    except OSError:
        return ()
    handles = []
    for path in sorted(paths):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for get_name, set_name in zip(_GETTERS, _SETTERS):
            if hasattr(lib, get_name) and hasattr(lib, set_name):
                handles.append((getattr(lib, get_name), getattr(lib, set_name)))
                break
    return tuple(handles)


def _threadpoolctl_handles() -> tuple[tuple[Callable, Callable], ...] | None:
    """(get, set) pairs of the BLAS libraries threadpoolctl finds; None without threadpoolctl.

    Looked up again only when modules were imported since (a new one may have
    loaded a BLAS): ``ThreadpoolController.limit`` inspects every library at
    each call (about 0.7 ms), too slow around an ask that takes a few ms.
    """
    return _threadpoolctl_lookup(len(sys.modules))


@functools.lru_cache(maxsize=1)
def _threadpoolctl_lookup(modules: int) -> tuple[tuple[Callable, Callable], ...] | None:
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return None
    libraries = ThreadpoolController().select(user_api="blas").lib_controllers
    return tuple((lib.get_num_threads, lib.set_num_threads) for lib in libraries)


@contextlib.contextmanager
def limit_blas_threads(threads: int | None = None) -> Iterator[None]:
    """Limits BLAS threads inside the block (threadpoolctl if installed, else OpenBLAS directly)."""
    if threads is None:
        threads = int(os.environ.get("JAXHPO_BLAS_THREADS", "1"))
    if threads <= 0:
        yield
        return
    handles = _threadpoolctl_handles()
    if handles is None:
        handles = _openblas_handles()
    before = [get() for get, _ in handles]
    for (_, set_), n in zip(handles, before):
        if n != threads:
            set_(threads)
    try:
        yield
    finally:
        for (_, set_), n in zip(handles, before):
            if n != threads:
                set_(n)
