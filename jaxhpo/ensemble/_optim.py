"""Fixed-step Optax minimization loops (``lax.scan``) shared by the ensemble fits."""

from __future__ import annotations

from typing import Any, Callable

import jax
import optax


def minimize_lbfgs(loss: Callable[[Any], jax.Array], params: Any, steps: int) -> tuple[Any, jax.Array]:
    """``steps`` iterations of ``optax.lbfgs`` (zoom line search) from ``params``; returns ``(params, losses)``."""
    opt = optax.lbfgs()
    value_and_grad = optax.value_and_grad_from_state(loss)

    def step(carry, _):
        p, s = carry
        value, g = value_and_grad(p, state=s)
        u, s = opt.update(g, s, p, value=value, grad=g, value_fn=loss)
        return (optax.apply_updates(p, u), s), value

    (params, _), trace = jax.lax.scan(step, (params, opt.init(params)), None, length=steps)
    return params, trace


def minimize_first_order(loss: Callable[[Any], jax.Array], params: Any, steps: int,
                         opt: optax.GradientTransformation) -> tuple[Any, jax.Array]:
    """``steps`` iterations of a first-order Optax optimizer (Adam...) from ``params``."""

    def step(carry, _):
        p, s = carry
        value, g = jax.value_and_grad(loss)(p)
        u, s = opt.update(g, s, p)
        return (optax.apply_updates(p, u), s), value

    (params, _), trace = jax.lax.scan(step, (params, opt.init(params)), None, length=steps)
    return params, trace
