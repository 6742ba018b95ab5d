"""Optax minimization loops shared by the ensemble fits: a fixed number of steps (``lax.scan``, with the
loss at every step), or a traced number (``lax.fori_loop``: fits of several lengths share one compiled loop)."""

from __future__ import annotations

from typing import Any, Callable, Optional

import jax
import optax


def _run(step: Callable, carry: Any, steps: int, limit: Optional[jax.Array]) -> tuple[Any, Optional[jax.Array]]:
    if limit is None:
        return jax.lax.scan(step, carry, None, length=steps)
    return jax.lax.fori_loop(0, limit, lambda _, c: step(c, None)[0], carry), None


def minimize_lbfgs(loss: Callable[[Any], jax.Array], params: Any, steps: int,
                   limit: Optional[jax.Array] = None) -> tuple[Any, Optional[jax.Array]]:
    """``steps`` iterations of ``optax.lbfgs`` (zoom line search) from ``params``; returns ``(params, losses)``.

    With ``limit`` (an int array, may be traced) it runs ``limit`` iterations instead and returns
    ``(params, None)``.
    """
    opt = optax.lbfgs()
    value_and_grad = optax.value_and_grad_from_state(loss)

    def step(carry, _):
        p, s = carry
        value, g = value_and_grad(p, state=s)
        u, s = opt.update(g, s, p, value=value, grad=g, value_fn=loss)
        return (optax.apply_updates(p, u), s), value

    (params, _), trace = _run(step, (params, opt.init(params)), steps, limit)
    return params, trace


def minimize_first_order(loss: Callable[[Any], jax.Array], params: Any, steps: int,
                         opt: optax.GradientTransformation,
                         limit: Optional[jax.Array] = None) -> tuple[Any, Optional[jax.Array]]:
    """``steps`` iterations of a first-order Optax optimizer (Adam...) from ``params``; ``limit`` as above."""

    def step(carry, _):
        p, s = carry
        value, g = jax.value_and_grad(loss)(p)
        u, s = opt.update(g, s, p)
        return (optax.apply_updates(p, u), s), value

    (params, _), trace = _run(step, (params, opt.init(params)), steps, limit)
    return params, trace
