"""Sets up jaxlib's CPU LAPACK kernels in milliseconds instead of a third of a second.

jaxlib's CPU Cholesky and triangular solves call SciPy's LAPACK: the first
time a program using them is lowered (or, for an executable loaded from
``jaxhpo.executable_cache``, before it runs), jaxlib imports
``scipy.linalg.cython_blas`` and ``scipy.linalg.cython_lapack`` to read their
function pointers. Importing them the usual way runs ``scipy.linalg``'s
package ``__init__`` first, about 0.25 s on the 2-core machine: most of a
warm process's wait for its first GP suggestion. ``initialize`` loads the two
extension modules from SciPy's files directly (about 0.02 s), registers them
under their own names in ``sys.modules`` (a later ``import scipy.linalg``
finds them there, as it would after its own import), and lets jaxlib read
them. If anything in that differs from what it expects (no SciPy, another
layout of its files), it falls back to jaxlib's own set-up.

Example:
    >>> initialize()  # idempotent
    >>> import jax.numpy as jnp
    >>> float(jnp.linalg.cholesky(jnp.array([[4.0]]))[0, 0])
    2.0
"""

from __future__ import annotations

import glob
import importlib.machinery
import importlib.util
import os
import sys
import threading

_MODULES = ("cython_blas", "cython_lapack")  # cython_lapack uses cython_blas: load that one first
_lock = threading.Lock()
_done = False


def _load_scipy_extensions() -> bool:
    """Loads SciPy's Cython BLAS/LAPACK modules without ``scipy.linalg``'s ``__init__``; False if it cannot."""
    spec = importlib.util.find_spec("scipy")  # finds the package, does not import it
    if spec is None or spec.origin is None:
        return False
    folder = os.path.join(os.path.dirname(spec.origin), "linalg")
    added = []
    try:
        for name in _MODULES:
            full = f"scipy.linalg.{name}"
            if full in sys.modules:
                continue
            paths = [p for p in glob.glob(os.path.join(folder, f"{name}.*"))
                     if p.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))]
            if len(paths) != 1:
                return False
            loader = importlib.machinery.ExtensionFileLoader(full, paths[0])
            module = importlib.util.module_from_spec(importlib.util.spec_from_file_location(full, paths[0],
                                                                                            loader=loader))
            sys.modules[full] = module
            added.append(full)
            loader.exec_module(module)
        added.clear()
        return True
    except Exception:  # noqa: BLE001 - jaxlib's own set-up follows
        return False
    finally:
        for full in added:  # a failed load leaves nothing behind
            sys.modules.pop(full, None)


def initialize() -> None:
    """Points jaxlib's CPU LAPACK custom calls at SciPy's LAPACK (once per process; thread-safe)."""
    global _done
    if _done:
        return
    with _lock:
        if _done:
            return
        if "scipy.linalg" not in sys.modules:
            _load_scipy_extensions()
        try:
            import numpy as np
            from jaxlib import lapack as jaxlib_lapack

            # jaxlib's own set-up, as its lowering of a Cholesky runs it: it imports the two modules
            # (from sys.modules when loaded above)
            jaxlib_lapack.prepare_lapack_call("potrf", np.dtype(np.float64))
        except Exception:  # noqa: BLE001 - no CPU LAPACK in this jaxlib: nothing to set up
            pass
        _done = True
