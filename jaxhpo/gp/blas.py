"""Keeps CPU BLAS/LAPACK from oversubscribing cores during GP work.

jaxlib's CPU Cholesky and triangular solves run on the OpenBLAS bundled
with NumPy/SciPy, which starts one thread per core. The matrices of a GP
over a few hundred points are too small to gain from threads, and on a busy
machine those threads fight for cores: a 500x500 Cholesky was measured 200
times slower on a loaded 2-core machine. jaxhpo's GP therefore does not call
LAPACK at all: ``jaxhpo.gp.linalg`` factorizes with matrix products that XLA
runs itself, so GP work is safe by default whatever the BLAS settings. This
context manager remains for code around it (NumPy/SciPy reference
computations, peers in benchmarks): it limits BLAS threads when
``threadpoolctl`` is installed (``JAXHPO_BLAS_THREADS`` sets the limit, ``0``
leaves BLAS alone).

Example:
    >>> with limit_blas_threads():
    ...     pass
"""

from __future__ import annotations

import contextlib
import os
from typing import Iterator


@contextlib.contextmanager
def limit_blas_threads(threads: int | None = None) -> Iterator[None]:
    """Limits BLAS threads inside the block (no-op without threadpoolctl)."""
    if threads is None:
        threads = int(os.environ.get("JAXHPO_BLAS_THREADS", "1"))
    if threads <= 0:
        yield
        return
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield
        return
    with threadpool_limits(limits=threads, user_api="blas"):
        yield
