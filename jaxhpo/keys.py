"""PRNG keys from integer seeds, made inside programs instead of by eager ops.

``jax.random.key(seed)`` run eagerly compiles small programs on their first
call in a process (a conversion, the seeding, then one for ``fold_in``):
a tenth of a second each before a cold first result. These helpers give the
same keys, bit for bit, from one program or from inside the caller's.

Example:
    >>> import jax
    >>> same = jax.random.key_data(key_from_seed(7)) == jax.random.key_data(jax.random.key(7))
    >>> bool(same.all())
    True
    >>> same = jax.random.key_data(folded_key(7, 2)) == jax.random.key_data(jax.random.fold_in(jax.random.key(7), 2))
    >>> bool(same.all())
    True
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxhpo._checks import int_seed


def seed_array(seed: int) -> jax.Array:
    """``seed`` as the array ``jax.random.key(seed)`` makes its key from; programs make the key.

    ``jax.random.key`` run eagerly compiles two small programs (0.13-0.15 s
    before a cold first trial); inside the study's programs it is free, and
    from this array (converted as ``jax.random.key`` converts a Python int) it
    gives the same key bit for bit.

    Example:
        >>> import jax
        >>> key = jax.jit(jax.random.key)(seed_array(7))
        >>> bool((jax.random.key_data(key) == jax.random.key_data(jax.random.key(7))).all())
        True
    """
    dtype = jax.dtypes.canonicalize_dtype(np.int64)  # int32 unless 64-bit mode is on
    if np.iinfo(dtype).min <= seed <= np.iinfo(dtype).max:
        return jax.device_put(np.asarray(seed, dtype))  # what jnp.asarray gives, without its conversion program
    return jnp.asarray(np.int64(seed))  # wraps as jax.random.key(seed) does


@jax.jit
def _key(seed: jax.Array) -> jax.Array:
    return jax.random.key(seed)


@jax.jit
def _folded(seed: jax.Array, number: jax.Array) -> jax.Array:
    return jax.random.fold_in(jax.random.key(seed), number)


def key_from_seed(seed: int) -> jax.Array:
    """``jax.random.key(seed)``, from one program.

    Raises:
        ValueError: when ``seed`` is not an integer (``jax.random.key`` refuses those too).
    """
    return _key(seed_array(int_seed("", seed)))


def folded_key(seed: int, number: int) -> jax.Array:
    """``jax.random.fold_in(jax.random.key(seed), number)``, from one program.

    Raises:
        ValueError: when ``seed`` is not an integer.
    """
    return _folded(seed_array(int_seed("", seed)), np.int32(number))
