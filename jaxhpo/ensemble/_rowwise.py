"""Sums whose rounding does not depend on where a row sits in the batch.

XLA's CPU dot and reduce kernels vectorize over the rows they are given, so a
row's float32 result can change in the last bit with the batch's size or
order (a row in a vector lane vs the scalar tail). scikit-learn checks that
``predict`` is invariant to sample order and to batching, and so do users who
compare predictions made in chunks; prediction paths therefore add their
terms one at a time, in the same order for every row, with a ``lax.scan``.

Example:
    >>> import jax.numpy as jnp
    >>> w = jnp.array([0.25, 0.75]); v = jnp.arange(6.0).reshape(2, 3)
    >>> member_sum(w, v).tolist()
    [2.25, 3.25, 4.25]
    >>> row_matmul(v.T, w[:, None]).tolist()
    [[2.25], [3.25], [4.25]]
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

Array = jax.Array


@jax.jit  # compiled once per shape: called eagerly, a bare ``lax.scan`` of a new ``step`` compiles every call
def member_sum(weights: Array, values: Array) -> Array:
    """``sum_m weights[..., m] * values[m]``, summed over members in order.

    Args:
        weights: ``[members]`` or ``[groups, members]``.
        values: ``[members, ...]``, e.g. ``[members, examples]`` or ``[members, examples, classes]``.

    Returns:
        ``values.shape[1:]`` (or ``[groups, *values.shape[1:]]``); each element is the same
        whatever the other rows are.
    """
    weights, values = jnp.asarray(weights), jnp.asarray(values)
    dtype = jnp.result_type(weights, values)
    lead = weights.shape[:-1]
    pad = (slice(None),) * len(lead) + (None,) * (values.ndim - 1)

    def step(acc, wv):
        w, v = wv
        return acc + w[pad] * v, None

    init = jnp.zeros(lead + values.shape[1:], dtype)
    return jax.lax.scan(step, init, (jnp.moveaxis(weights, -1, 0), values))[0]


def row_matmul(x: Array, w: Array) -> Array:
    """``x @ w`` for ``x [rows, features]``, ``w [features, out]``, summed over features in order."""
    return member_sum(jnp.asarray(w).T, jnp.moveaxis(jnp.asarray(x), 1, 0)).T
