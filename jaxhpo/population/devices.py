"""Where a population runs: the default mesh, CPU cores as devices, the execution mode, results on every host.

Example:
    >>> from jaxhpo.population.devices import resolve_mode
    >>> resolve_mode("auto") in ("map", "vmap")
    True
"""

from __future__ import annotations

from typing import Any, Optional

import jax
import jax.numpy as jnp
import numpy as np

MODES = ("auto", "vmap", "map", "chunks")


def host_local(tree: Any) -> Any:
    """``tree`` with every array that spans other processes' devices gathered onto this process.

    With one process (one machine, any number of devices) arrays are returned
    as they are. When JAX runs on several processes (``jax.distributed``;
    several hosts, or several processes on one machine), the population's
    outputs are split over all processes' devices and no process can read
    them with ``np.asarray``; this gathers them (``multihost_utils.process_allgather``),
    so every process holds the whole population's results as NumPy arrays.
    ``Population.init`` and ``Population.run`` return their results through it,
    so everything built on them (``train``, ``cross_validate``, the schedulers,
    ``search``) reads the same results on every process.
    """
    if jax.process_count() == 1:
        return tree
    from jax.experimental import multihost_utils

    def local(a: Any) -> Any:
        if isinstance(a, jax.Array) and not a.is_fully_addressable:
            if jnp.issubdtype(a.dtype, jax.dtypes.prng_key):
                return jax.random.wrap_key_data(multihost_utils.process_allgather(jax.random.key_data(a), tiled=True),
                                                impl=jax.random.key_impl(a))
            return multihost_utils.process_allgather(a, tiled=True)
        return a

    return jax.tree.map(local, tree)


def default_mesh(axis: str = "tasks"):
    """A 1-d mesh over all devices of the default backend, or ``None`` if there is one device."""
    devices = jax.devices()
    if len(devices) < 2:
        return None
    from jax.sharding import Mesh

    return Mesh(np.array(devices), (axis,))


def use_cpu_cores(n: Optional[int] = None) -> int:
    """Exposes ``n`` CPU cores (default: all) as JAX host devices, so a population spreads over them.

    XLA runs one CPU program on one core at a time for networks this small;
    with several host devices, ``mesh="auto"`` trains one share of the
    population per core (measured on 2 cores: 2x). Call it before JAX first
    runs anything (it sets ``XLA_FLAGS``); afterwards it changes nothing and
    returns the device count JAX already has.

    Example:
        >>> from jaxhpo import population
        >>> population.use_cpu_cores() >= 1
        True
    """
    import os

    # JAX has no public "are the backends up" query; XLA_FLAGS only counts before they are, and
    # jax.extend.backend.backends() would start them, so the private check is the only one that observes
    from jax._src import xla_bridge

    if xla_bridge.backends_are_initialized():
        return len(jax.devices())
    n = int(n or os.cpu_count() or 1)
    flags = [f for f in os.environ.get("XLA_FLAGS", "").split() if "xla_force_host_platform_device_count" not in f]
    os.environ["XLA_FLAGS"] = " ".join(flags + [f"--xla_force_host_platform_device_count={n}"])
    return n


def resolve_mode(mode: str) -> str:
    """The execution mode ``"auto"`` stands for on the default backend."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if mode == "auto":
        return "map" if jax.default_backend() == "cpu" else "vmap"
    return mode
