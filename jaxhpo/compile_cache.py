"""JAX's persistent compilation cache for jaxhpo's programs, on by default.

The GP program of ``bayes()`` takes seconds to compile; with the cache a
second process loads it from disk instead. The drivers (``Study``,
``minimize``, ``population``) call ``ensure()`` before they compile, which
points JAX's cache (``jax_compilation_cache_dir``) at, in this order:

* the directory you set with ``set_cache_dir(path)``, or none after
  ``set_cache_dir(None)``;
* ``$JAXHPO_CACHE_DIR`` (``off``, ``0`` or an empty value turn it off);
* ``$XDG_CACHE_HOME/jaxhpo/xla``, else ``~/.cache/jaxhpo/xla``.

A cache directory you configured in JAX yourself is left alone (jaxhpo then
uses yours, with your settings). In its own directory jaxhpo lowers
``jax_persistent_cache_min_compile_time_secs`` from JAX's 1 s to 0.05 s
(unless you changed it), so that the small programs a study starts with are
stored too; programs of yours that take as long and are compiled after
jaxhpo set the directory are stored there as well. JAX writes entries
atomically, so several processes may share one directory.

Example:
    >>> import jaxhpo
    >>> jaxhpo.compile_cache.set_cache_dir(None)   # off for this process
    >>> jaxhpo.compile_cache.cache_dir() is None
    True
    >>> jaxhpo.compile_cache.set_cache_dir(jaxhpo.compile_cache.default_dir())  # back to the default
"""

from __future__ import annotations

import os
import threading
from typing import Optional, Union

ENV = "JAXHPO_CACHE_DIR"
_OFF = ("", "0", "off", "false", "no", "none")
_UNSET = object()
_JAX_DEFAULT_MIN_SECS = 1.0  # JAX's default jax_persistent_cache_min_compile_time_secs
MIN_COMPILE_SECS = 0.05  # what jaxhpo sets it to in its own cache directory, unless you set another
_lock = threading.Lock()
_chosen: object = _UNSET  # what set_cache_dir asked for
_ours: Optional[str] = None  # the directory jaxhpo put into JAX's config, if any


def default_dir() -> Optional[str]:
    """The directory the environment asks for: ``$JAXHPO_CACHE_DIR``, else the XDG cache; None when off."""
    value = os.environ.get(ENV)
    if value is not None:
        return None if value.strip().lower() in _OFF else os.path.abspath(os.path.expanduser(value))
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(os.path.abspath(base), "jaxhpo", "xla")


def set_cache_dir(path: Union[str, os.PathLike, None]) -> None:
    """Moves jaxhpo's compilation cache to ``path``, or turns it off with ``None``.

    Args:
        path: a directory (created when needed) or ``None``.

    Raises:
        ValueError: when ``path`` is neither a path nor ``None``.
    """
    global _chosen
    if path is not None and not isinstance(path, (str, os.PathLike)):
        raise ValueError(f"set_cache_dir: path must be a directory path or None, got path={path!r}")
    with _lock:
        _chosen = None if path is None else os.path.abspath(os.fspath(path))
    ensure()


def cache_dir() -> Optional[str]:
    """The directory JAX's persistent cache uses now (jaxhpo's or yours), or None."""
    import jax

    return jax.config.jax_compilation_cache_dir or None


def ensure() -> Optional[str]:
    """Points JAX's persistent cache at jaxhpo's directory unless you configured your own; returns the directory."""
    global _ours
    import jax
    from jax._src import compilation_cache

    with _lock:
        current = jax.config.jax_compilation_cache_dir or None
        if current is not None and current != _ours:
            return current  # the user's own setting
        wanted = default_dir() if _chosen is _UNSET else _chosen
        if wanted == current:
            return current
        if wanted is not None:
            try:
                os.makedirs(wanted, exist_ok=True)
            except OSError:
                wanted = None  # an unwritable cache is no cache, never an error
        jax.config.update("jax_compilation_cache_dir", wanted)
        if wanted is not None and jax.config.jax_persistent_cache_min_compile_time_secs == _JAX_DEFAULT_MIN_SECS:
            # in jaxhpo's own directory, keep the small programs too (a study's init, tell and
            # initial design compile in 0.05-0.4 s each: together most of a warm first trial)
            jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_SECS)
        compilation_cache.reset_cache()  # so the new directory (or none) is used from the next compile
        _ours = wanted
        return wanted
