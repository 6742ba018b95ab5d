"""Cholesky factor and its inverse for GP work, batched safely on CPU.

``cholesky_and_inverse`` calls LAPACK (``potrf`` then ``trsm``) through
``jax.lax.linalg``. Under ``vmap`` on CPU it does not issue one batched
LAPACK call: its batching rule (``jax.custom_batching.custom_vmap``) runs the
batch as a sequential ``lax.map`` of unbatched calls. Two measured reasons:
jaxlib 0.10 runs batched CPU triangular solves through a parallel batch map
on XLA's intra-op thread pool, which was seen to deadlock inside vmapped
L-BFGS line searches on a 2-core machine; and for the small matrices of a GP
a batch gains nothing on CPU. On GPU and TPU the batched call is kept.

jaxlib's CPU LAPACK is SciPy's OpenBLAS, which starts one thread per core;
for matrices of a few hundred rows on a busy machine those threads cost far
more than they give (see ``jaxhpo.gp.blas``). The drivers (``minimize``,
``Study``) therefore run GP programs with BLAS limited to one thread.

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

from jaxhpo import lapack

Array = jax.Array


def _factor(a: Array) -> tuple[Array, Array]:
    lapack.initialize()  # at trace time: before jax's lowering sets LAPACK up by importing scipy.linalg
    chol = jax.lax.linalg.cholesky(a, symmetrize_input=False)  # NaN where not positive definite
    eye = jnp.eye(a.shape[-1], dtype=a.dtype)
    inv = jax.lax.linalg.triangular_solve(chol, eye, left_side=True, lower=True)
    return chol, inv


@jax.custom_batching.custom_vmap
def cholesky_and_inverse(a: Array) -> tuple[Array, Array]:
    """Lower Cholesky factor ``L`` of ``a[n, n]`` and ``L^-1``; NaN where ``a`` is not positive definite."""
    return _factor(a)


@cholesky_and_inverse.def_vmap
def _batched(axis_size: int, in_batched: list[bool], a: Array):
    (batched,) = in_batched
    if not batched:
        out = cholesky_and_inverse(a)
        return out, (False, False)
    if jax.default_backend() == "cpu":
        out = jax.lax.map(cholesky_and_inverse, a)  # unbatched LAPACK calls, one after another
    else:
        out = jax.vmap(_factor)(a)
    return out, (True, True)


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
