"""Optax minimization loops shared by the ensemble fits: a Python int of steps (``lax.scan``, with the
loss at every step), or an int array (``lax.fori_loop``: fits of several lengths share one compiled loop).

Each loop returns its last iterate when the loss there is finite, else the iterate of lowest finite loss
it met: a step that leaves the finite region (L-BFGS's line search on a loss rounded coarsely, as float32
matrix products in TF32 on a GPU are, gave NaN weights there) is never the answer, and no NaN reaches
the user.
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Union

import jax
import jax.numpy as jnp
import optax

from jaxhpo.gp.linesearch import zoom_linesearch

Steps = Union[int, jax.Array]

# The precision of the fits' matrix products: full float32. A GPU's default (TF32, 10 bits of mantissa)
# rounds the loss coarser than the line search's tolerances, and the weights came out NaN on an H200.
FULL = jax.lax.Precision.HIGHEST


def _run(step: Callable, carry: Any, steps: Steps) -> tuple[Any, Optional[jax.Array]]:
    if not isinstance(steps, jax.Array):  # a Python or NumPy int
        return jax.lax.scan(step, carry, None, length=int(steps))
    return jax.lax.fori_loop(0, steps, lambda _, c: step(c, None)[0], carry), None


def _best(params: Any, value: jax.Array, best: tuple[Any, jax.Array]) -> tuple[Any, jax.Array]:
    """``(params, value)`` when ``value`` is finite and below ``best``'s, else ``best``."""
    better = jnp.isfinite(value) & (value < best[1])
    return jax.tree.map(lambda a, b: jnp.where(better, a, b), params, best[0]), jnp.where(better, value, best[1])


def _minimize(loss: Callable, params: Any, steps: Steps, update: Callable, state: Any) -> tuple[Any, Any]:
    """Runs ``update(params, state) -> (value at params, params, state)``; returns the answer and trace.

    The answer is the last iterate when its loss is finite (what the loop was asked for), else the
    iterate of lowest finite loss before it, else ``params`` as given.
    """

    def step(carry, _):
        p, s, best = carry
        value, new_p, s = update(p, s)
        return (new_p, s, _best(p, value, best)), value

    start = (params, jnp.full((), jnp.inf, jax.eval_shape(loss, params).dtype))
    (last, _, (best, best_value)), trace = _run(step, (params, state, start), steps)
    last_ok, some_ok = jnp.isfinite(loss(last)), jnp.isfinite(best_value)
    pick = lambda a, b, p: jnp.where(last_ok, a, jnp.where(some_ok, b, p))  # noqa: E731
    return jax.tree.map(pick, last, best, params), trace


def minimize_lbfgs(loss: Callable[[Any], jax.Array], params: Any, steps: Steps) -> tuple[Any, Optional[jax.Array]]:
    """``steps`` iterations of ``optax.lbfgs`` from ``params``; returns ``(params, losses)``.

    The line search is ``optax.lbfgs()``'s own (a zoom search, a unit first step, at most 20
    evaluations) as ``jaxhpo.gp.linesearch`` writes it: the same steps, with the loss and its
    gradient compiled once per search instead of in both of its phases.

    ``params`` returned are the last iterate, or, where its loss is not finite, the best finite one.

    ``steps`` is an int, or an int array (may be traced: one compiled loop for every count), for which
    the losses are not kept (``None``).
    """
    opt = optax.lbfgs(linesearch=zoom_linesearch(20, initial_guess="one"))
    value_and_grad = optax.value_and_grad_from_state(loss)

    def update(p, s):
        value, g = value_and_grad(p, state=s)
        u, s = opt.update(g, s, p, value=value, grad=g, value_fn=loss)
        return value, optax.apply_updates(p, u), s

    return _minimize(loss, params, steps, update, opt.init(params))


def minimize_first_order(loss: Callable[[Any], jax.Array], params: Any, steps: Steps,
                         opt: optax.GradientTransformation) -> tuple[Any, Optional[jax.Array]]:
    """``steps`` iterations of a first-order Optax optimizer (Adam...) from ``params``; ``steps`` as above."""

    def update(p, s):
        value, g = jax.value_and_grad(loss)(p)
        u, s = opt.update(g, s, p)
        return value, optax.apply_updates(p, u), s

    return _minimize(loss, params, steps, update, opt.init(params))
