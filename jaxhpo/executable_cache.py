"""Compiled executables of jaxhpo's own programs, kept on disk and loaded without tracing.

JAX's persistent compilation cache saves the XLA compile, but its key is a
hash of the lowered program: a second process must still trace and lower the
program to find it. For the 6-d ``bayes()`` ask program that is about 2 s of
the 2.4 s a warm ``Study`` spends before its first GP suggestion. This cache
keys an executable by what determines it without tracing: the program's
name, the jaxhpo strategy that defines it (its factory call), the argument
shapes, dtypes and tree structure and the XLA options of its compile (the
caller's ``signature``), the versions of jax, jaxlib and of jaxhpo's own
source, the backend and devices, and the JAX settings that change tracing. A hit is a deserialized executable
(``jax.experimental.serialize_executable``), about 0.35 s for that program.

It lives in ``executables/`` under the directory of JAX's persistent cache
(``jaxhpo.compile_cache``) and is off whenever that cache is off. Only
programs whose whole definition is jaxhpo's code are stored (a strategy made
by a jaxhpo factory, never a user's function, whose source could change
under the same name). Entries are written atomically; an unreadable entry is
ignored and rewritten.

Example:
    >>> from jaxhpo import executable_cache
    >>> executable_cache.program_key("ask", object()) is None   # not a jaxhpo strategy: not cached
    True
"""

from __future__ import annotations

import functools
import hashlib
import os
import pickle
import tempfile
import threading
from typing import Any, Callable, Optional

import jax

from jaxhpo import compile_cache, lapack

_FORMAT = 3  # 2: entries name the devices their executable runs on; 3: and whether it calls LAPACK
HIT_EVENT = "/jaxhpo/executable_cache/hits"  # a jax.monitoring event for each executable loaded
_TRACING_SETTINGS = (
    "jax_enable_x64",
    "jax_default_matmul_precision",
    "jax_default_prng_impl",
    "jax_threefry_partitionable",
    "jax_numpy_dtype_promotion",
    "jax_numpy_rank_promotion",
)


def program_key(name: str, strategy: Any) -> Optional[str]:
    """The identity of jaxhpo program ``name`` built from ``strategy``; None when it may not be cached."""
    recipe = getattr(strategy, "recipe", None)
    if recipe is None or not str(recipe[0]).startswith("jaxhpo."):
        return None
    return f"{name}:{strategy!r}"


@functools.lru_cache(maxsize=1)
def _environment() -> str:
    import jaxlib

    package = os.path.dirname(os.path.abspath(__file__))
    source = hashlib.sha256()
    for folder, dirs, files in sorted(os.walk(package)):
        dirs.sort()
        for name in sorted(f for f in files if f.endswith(".py")):
            with open(os.path.join(folder, name), "rb") as f:
                source.update(name.encode() + b"\0" + f.read())
    devices = [(d.platform, d.device_kind, d.id) for d in jax.devices()]
    backend = jax.devices()[0].client
    return repr((_FORMAT, jax.__version__, jaxlib.__version__, backend.platform, backend.platform_version, devices,
                 source.hexdigest()))


def tracing_settings() -> tuple:
    """The JAX settings that change what a function traces to (x64, default matmul precision, PRNG
    implementation, promotion rules), as a tuple of their current values: a compiled program is
    reused only under the same values."""
    return tuple(getattr(jax.config, name, None) for name in _TRACING_SETTINGS)


def _settings() -> str:
    return repr(list(zip(_TRACING_SETTINGS, tracing_settings())))


def _path(key: str, signature: Any) -> Optional[str]:
    directory = compile_cache.cache_dir()
    if directory is None:
        return None
    digest = hashlib.sha256(repr((key, signature, _environment(), _settings())).encode()).hexdigest()
    return os.path.join(directory, "executables", f"{key.split(':', 1)[0]}-{digest[:40]}.bin")


def stored(key: Optional[str], signature: Any) -> bool:
    """Whether an executable for ``(key, signature)`` is stored (``load_or_compile`` would load it)."""
    path = None if key is None else _path(key, signature)
    return path is not None and os.path.exists(path)


def load_or_compile(key: Optional[str], signature: Any, compile_fn: Callable[[], Any]) -> Any:
    """The executable stored for ``(key, signature)``, else ``compile_fn()`` (stored for next time).

    Args:
        key: the program's identity from ``program_key``; None compiles without the cache.
        signature: a ``repr``-stable description of the arguments (tree structure, static values,
            shapes, dtypes, shardings) and of the compile's XLA options.
        compile_fn: returns a ``jax.stages.Compiled`` for those arguments.
    """
    path = None if key is None else _path(key, signature)
    if path is not None and os.path.exists(path):
        try:
            from jax.experimental.serialize_executable import deserialize_and_load

            with open(path, "rb") as f:
                payload, in_tree, out_tree, device_ids, calls_lapack = pickle.load(f)
            # the devices it was compiled for: by default JAX would load it for every device of the
            # backend, and with several (GPUs, CPU cores as devices) it then expects one shard per device
            by_id = {d.id: d for d in jax.devices()}
            devices = [by_id[i] for i in device_ids]
            if calls_lapack:  # what lowering would have set up: without it, calls through null pointers
                lapack.initialize()
            compiled = deserialize_and_load(payload, in_tree, out_tree, execution_devices=devices)
            jax.monitoring.record_event(HIT_EVENT)
            return compiled
        except Exception as e:  # noqa: BLE001 - a damaged or foreign entry: compile and write it again
            import logging

            logging.getLogger("jaxhpo").debug("executable cache: %s unreadable (%s); compiling", path, e)
    if path is None:
        return compile_fn()
    # an executable JAX loaded from its own persistent cache does not serialize whole (its next load
    # fails with "Function ... not found"): store only what XLA compiled here. (``program_name``
    # gives each cached program a name of its own, so that JAX's cache misses where ours does,
    # after an upgrade of jaxhpo, say)
    hits = _persistent_cache_hits()
    compiled = compile_fn()
    if _persistent_cache_hits() == hits:
        _store(path, compiled)
    return compiled


def program_name(name: str, key: Optional[str]) -> str:
    """A function name for program ``name`` that changes whenever its executable-cache identity does.

    The name is part of what JAX's persistent cache hashes; with it, JAX's
    cache never serves a program this cache has no entry for (except an
    entry deleted by hand), so the compile happens here and can be stored.
    """
    if key is None:
        return name
    return f"{name}_{hashlib.sha256((key + _environment()).encode()).hexdigest()[:12]}"


_hits = threading.local()


@functools.lru_cache(maxsize=1)
def _listen_for_cache_hits() -> None:
    def on_event(event: str, **_: Any) -> None:
        if event == "/jax/compilation_cache/cache_hits":
            _hits.count = getattr(_hits, "count", 0) + 1

    jax.monitoring.register_event_listener(on_event)


def _persistent_cache_hits() -> int:
    """How many programs this thread has loaded from JAX's persistent cache (the event fires in the compiling thread)."""
    _listen_for_cache_hits()
    return getattr(_hits, "count", 0)


def _store(path: str, compiled: Any) -> None:
    try:
        from jax.experimental.serialize_executable import serialize

        device_ids = [d.id for d in compiled.runtime_executable().local_devices()]
        calls_lapack = 'custom_call_target="lapack_' in compiled.as_text()  # the CPU LAPACK kernels
        data = pickle.dumps((*serialize(compiled), device_ids, calls_lapack))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)  # atomic: readers see the whole entry or none
    except Exception:  # noqa: BLE001 - a cache that cannot write is no cache, never an error
        pass
