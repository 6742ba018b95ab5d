"""Cholesky factor and its inverse in plain ``jnp`` operations (no LAPACK custom calls).

Why not ``jnp.linalg.cholesky`` and ``cho_solve``: on CPU, jaxlib runs batched
triangular solves (what ``vmap`` over GP fits or over whole studies makes of
them) through a parallel batch map on XLA's intra-op thread pool, and with
jaxlib 0.10 that was seen to deadlock inside loops on a 2-core machine (the
process waits forever in ``lapack_dtrsm_ffi`` / ``ParallelBatchMap``). The
recursive block algorithm below is built from matrix products, so it batches
under ``vmap`` like any other ``jnp`` code, differentiates with ``grad``, and
runs on GPU and TPU unchanged. Its cost is that of LAPACK's to a small factor.

Example:
    >>> import jax.numpy as jnp
    >>> a = jnp.array([[4.0, 2.0], [2.0, 3.0]])
    >>> chol, inv = cholesky_and_inverse(a)
    >>> bool(jnp.allclose(chol @ chol.T, a)) and bool(jnp.allclose(inv @ chol, jnp.eye(2)))
    True
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

Array = jax.Array

BLOCK = 32
UNROLL = 8


def _cholesky_small(a: Array) -> Array:
    n = a.shape[-1]
    rows = jnp.arange(n, dtype=jnp.int32)

    def column(chol, j):
        col = a[:, j] - chol @ chol[j, :]  # columns >= j of chol are still zero
        pivot = jnp.sqrt(col[j])
        new = jnp.where(rows > j, col / pivot, jnp.where(rows == j, pivot, 0.0))
        return chol.at[:, j].set(new), None

    # scan over explicit int32 indices (not fori_loop): index dtypes stay fixed
    # when this runs in a local x64 context inside a caller's 32-bit jit
    return jax.lax.scan(column, jnp.zeros_like(a), jnp.arange(n, dtype=jnp.int32), unroll=UNROLL)[0]


def _tri_inverse_small(chol: Array) -> Array:
    n = chol.shape[-1]
    eye = jnp.eye(n, dtype=chol.dtype)

    def row(inv, i):
        return inv.at[i, :].set((eye[i] - chol[i, :] @ inv) / chol[i, i]), None  # rows >= i of inv are zero

    return jax.lax.scan(row, jnp.zeros_like(chol), jnp.arange(n, dtype=jnp.int32), unroll=UNROLL)[0]


def cholesky_and_inverse(a: Array) -> tuple[Array, Array]:
    """Lower Cholesky factor ``L`` of ``a[n, n]`` and ``L^-1``; NaN where ``a`` is not positive definite."""
    n = a.shape[-1]
    if n <= BLOCK:
        chol = _cholesky_small(a)
        return chol, _tri_inverse_small(chol)
    k = max(BLOCK, (n // 2) // BLOCK * BLOCK)
    l11, i11 = cholesky_and_inverse(a[:k, :k])
    l21 = a[k:, :k] @ i11.T
    l22, i22 = cholesky_and_inverse(a[k:, k:] - l21 @ l21.T)
    zeros = jnp.zeros((k, n - k), a.dtype)
    chol = jnp.block([[l11, zeros], [l21, l22]])
    inv = jnp.block([[i11, zeros], [-(i22 @ l21) @ i11, i22]])
    return chol, inv


@jax.custom_vjp
def gaussian_nll_terms(k: Array, y: Array) -> Array:
    """``0.5 * y^T K^-1 y + sum(log diag chol(K))`` with an analytic gradient.

    The gradient with respect to ``K`` is ``0.5 * (K^-1 - a a^T)`` with
    ``a = K^-1 y``, so differentiating a GP likelihood costs one matrix product
    more than evaluating it, instead of a backward pass through the factorization.
    """
    return _nll_forward(k, y)[0]


def _nll_forward(k: Array, y: Array) -> tuple[Array, tuple[Array, Array]]:
    chol, inv = cholesky_and_inverse(k)
    alpha = inv.T @ (inv @ y)
    value = 0.5 * y @ alpha + jnp.sum(jnp.log(jnp.diag(chol)))
    return value, (inv, alpha)


def _nll_backward(residual: tuple[Array, Array], g: Array) -> tuple[Array, Array]:
    inv, alpha = residual
    kinv = inv.T @ inv
    return g * 0.5 * (kinv - jnp.outer(alpha, alpha)), g * alpha


gaussian_nll_terms.defvjp(_nll_forward, _nll_backward)
