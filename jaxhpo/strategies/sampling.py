"""Model-free samplers: uniform random, scrambled Sobol and Latin hypercube.

Each sampler is a ``Strategy`` whose ``tell`` only records the observation.

Example:
    >>> import jax, jaxhpo
    >>> space = jaxhpo.Space({"x": jaxhpo.Float(0, 1), "y": jaxhpo.Float(0, 1)})
    >>> s = jaxhpo.strategies.sobol()
    >>> state = s.init(jax.random.key(0), space, 16)
    >>> x, state = s.ask(jax.random.key(1), state, 8)
    >>> x.shape
    (8, 2)
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxhpo.space import Space
from jaxhpo.strategies._sobol_data import DIRECTION_NUMBERS
from jaxhpo.strategies.base import History, Strategy, history_init, tell_history, factory

Array = jax.Array

_BITS = 32


class RandomState(NamedTuple):
    history: History


@factory
def random() -> Strategy:
    """Uniform random search over the unit cube.

    Example:
        >>> strategy = random()
    """

    def init(key: Array, space: Space, capacity: int) -> RandomState:
        del key
        return RandomState(history_init(capacity, space.dim))

    def ask(key: Array, state: RandomState, num: int = 1) -> tuple[Array, RandomState]:
        x = jax.random.uniform(key, (num, state.history.x.shape[-1]), state.history.x.dtype)
        return x, state

    return Strategy(init, ask, tell_history)


# --------------------------------------------------------------------- Sobol
@lru_cache(maxsize=None)
def sobol_directions(dim: int) -> np.ndarray:
    """Unscrambled Sobol direction numbers ``[dim, 32]`` (uint32, bit 31 most significant).

    Raises:
        ValueError: if ``dim`` exceeds the 256 tabulated dimensions.
    """
    if not 1 <= dim <= len(DIRECTION_NUMBERS):
        raise ValueError(f"sobol: dim must be in [1, {len(DIRECTION_NUMBERS)}], got dim={dim!r}")
    table = np.zeros((dim, _BITS), dtype=np.uint64)
    table[0] = [1 << (_BITS - 1 - j) for j in range(_BITS)]
    for d in range(1, dim):
        poly, init = DIRECTION_NUMBERS[d]
        degree = poly.bit_length() - 1
        m = list(init)
        for j in range(degree, _BITS):
            value = m[j - degree] ^ (m[j - degree] << degree)
            for k in range(1, degree):
                if (poly >> (degree - k)) & 1:
                    value ^= m[j - k] << k
            m.append(value)
        table[d] = [m[j] << (_BITS - 1 - j) for j in range(_BITS)]
    return table.astype(np.uint32)


def scrambled_sobol(key: Array, dim: int) -> tuple[Array, Array]:
    """Scrambled direction numbers ``[dim, 32]`` and a digital shift ``[dim]`` from one draw of ``key``."""
    words = jax.random.bits(key, (dim, _BITS + 1), jnp.uint32)
    return _scramble_directions(words[:, :_BITS], jnp.asarray(sobol_directions(dim))), words[:, _BITS]


def _scramble_directions(words: Array, directions: Array) -> Array:
    """Linear matrix scrambling (Matousek): random lower-triangular bit matrices per dimension.

    Row ``i`` of each matrix is a 32-bit word (bit ``31 - b`` holds column
    ``b``): random below the diagonal, 1 on it. Bit ``i`` of a scrambled
    direction number is the parity of the row ANDed with the number, so the
    whole product is bitwise operations on ``[dim, 32, 32]`` words (one
    random uint32 word ``words[dim, 32]`` per row: this compiles in a tenth
    of what a draw per bit and an integer matrix product took).
    """
    rows = jnp.arange(_BITS, dtype=jnp.uint32)
    position = jnp.uint32(_BITS - 1) - rows  # bit position of column (or row) i
    # columns b < i sit at positions above 31 - i: all ones shifted left by 32 - i (none for row 0)
    below = jnp.where(rows == 0, jnp.uint32(0), jnp.uint32(0xFFFFFFFF) << (jnp.uint32(_BITS) - rows))
    lower = (words & below) | (jnp.uint32(1) << position)  # [dim, row]: the random words masked below the diagonal
    parity = jax.lax.population_count(lower[:, None, :] & directions[:, :, None]) & jnp.uint32(1)  # [dim, col, row]
    return jnp.sum(parity << position, axis=-1, dtype=jnp.uint32)


def sobol_points(directions: Array, shift: Array, index: Array) -> Array:
    """Sobol points (gray-code order) for integer ``index[n]``, as ``[n, dim]`` floats in [0, 1)."""
    n = jnp.asarray(index).astype(jnp.uint32)
    gray = n ^ (n >> 1)
    bit = (gray[:, None] >> jnp.arange(_BITS, dtype=jnp.uint32)) & 1  # [n, 32]
    terms = jnp.where(bit[:, None, :] == 1, directions[None], jnp.uint32(0))  # [n, dim, 32]
    value = jax.lax.reduce(terms, jnp.uint32(0), jax.lax.bitwise_xor, (2,)) ^ shift
    return (value >> 8).astype(jnp.result_type(float)) * (2.0**-24)


class SobolState(NamedTuple):
    history: History
    directions: Array  # [d, 32] uint32, scrambled
    shift: Array  # [d] uint32 digital shift
    index: Array  # next sequence index


@factory
def sobol(scramble: bool = True) -> Strategy:
    """Quasi-random search along a Sobol sequence.

    With ``scramble=True`` (default) each study gets its own linear matrix
    scrambling and digital shift (Owen-style randomization, as in SciPy), so
    points are uniform, independent across keys, and keep their low
    discrepancy. Batches that are powers of two keep the balance properties best.

    Args:
        scramble: randomize the sequence with the ``init`` key.
    """

    def init(key: Array, space: Space, capacity: int) -> SobolState:
        directions = jnp.asarray(sobol_directions(space.dim))
        shift = jnp.zeros((space.dim,), jnp.uint32)
        if scramble:
            directions, shift = scrambled_sobol(key, space.dim)
        return SobolState(history_init(capacity, space.dim), directions, shift, jnp.zeros((), jnp.int32))

    def ask(key: Array, state: SobolState, num: int = 1) -> tuple[Array, SobolState]:
        del key
        x = sobol_points(state.directions, state.shift, state.index + jnp.arange(num))
        return x.astype(state.history.x.dtype), state._replace(index=state.index + num)

    return Strategy(init, ask, tell_history)


# ------------------------------------------------------- Latin hypercube
class LHSState(NamedTuple):
    history: History
    key: Array
    index: Array


@factory
def lhs(num_samples: int | None = None) -> Strategy:
    """Latin hypercube sampling.

    The design has ``num_samples`` strata per dimension (default: the
    ``capacity`` given to ``init``, i.e. the whole budget of a ``minimize``
    run), and points are handed out in order, so any prefix is a random
    subset of one Latin hypercube and the full budget is exactly one. Past the
    end, a fresh independent design starts.

    Args:
        num_samples: strata per dimension; ``None`` uses the capacity.
    """
    if num_samples is not None and (int(num_samples) != num_samples or num_samples < 1):
        raise ValueError(f"lhs: num_samples must be a positive integer, got num_samples={num_samples!r}")

    def init(key: Array, space: Space, capacity: int) -> LHSState:
        return LHSState(history_init(capacity, space.dim), key, jnp.zeros((), jnp.int32))

    def ask(key: Array, state: LHSState, num: int = 1) -> tuple[Array, LHSState]:
        del key
        history = state.history
        n = int(num_samples or history.capacity)
        dim = history.x.shape[-1]

        index = state.index + jnp.arange(num)
        first = state.index // n
        cycles = first + jnp.arange(1 if num == 1 else num // n + 2)  # every cycle this batch can touch

        def permutations(cycle: Array) -> Array:
            # one batched sort of random keys: a uniform random permutation per dimension
            return jnp.argsort(jax.random.bits(jax.random.fold_in(state.key, cycle), (dim, n), jnp.uint32), axis=-1)

        perms = jax.vmap(permutations)(cycles)  # [cycles, d, n]
        k_jitter = jax.random.split(state.key)[1]  # cycles use fold_in; jitter its own stream
        jitter = jax.vmap(lambda i: jax.random.uniform(jax.random.fold_in(k_jitter, i), (dim,), history.x.dtype))(index)
        strata = perms[index // n - first, :, index % n]  # [num, d]
        x = (strata + jitter) / n
        return x, state._replace(index=state.index + num)

    return Strategy(init, ask, tell_history)
