"""Optax minimization loops shared by the ensemble fits: a Python int of steps (``lax.scan``, with the
loss at every step), or an int array (``lax.fori_loop``: fits of several lengths share one compiled loop)."""

from __future__ import annotations

from typing import Any, Callable, Optional, Union

import jax
import optax

Steps = Union[int, jax.Array]


def _run(step: Callable, carry: Any, steps: Steps) -> tuple[Any, Optional[jax.Array]]:
    if not isinstance(steps, jax.Array):  # a Python or NumPy int
        return jax.lax.scan(step, carry, None, length=int(steps))
    return jax.lax.fori_loop(0, steps, lambda _, c: step(c, None)[0], carry), None


def minimize_lbfgs(loss: Callable[[Any], jax.Array], params: Any, steps: Steps) -> tuple[Any, Optional[jax.Array]]:
    """``steps`` iterations of ``optax.lbfgs`` (zoom line search) from ``params``; returns ``(params, losses)``.

    ``steps`` is an int, or an int array (may be traced: one compiled loop for every count), for which
    the losses are not kept (``None``).
    """
    opt = optax.lbfgs()
    value_and_grad = optax.value_and_grad_from_state(loss)

    def step(carry, _):
        p, s = carry
        value, g = value_and_grad(p, state=s)
        u, s = opt.update(g, s, p, value=value, grad=g, value_fn=loss)
        return (optax.apply_updates(p, u), s), value

    (params, _), trace = _run(step, (params, opt.init(params)), steps)
    return params, trace


def minimize_first_order(loss: Callable[[Any], jax.Array], params: Any, steps: Steps,
                         opt: optax.GradientTransformation) -> tuple[Any, Optional[jax.Array]]:
    """``steps`` iterations of a first-order Optax optimizer (Adam...) from ``params``; ``steps`` as above."""

    def step(carry, _):
        p, s = carry
        value, g = jax.value_and_grad(loss)(p)
        u, s = opt.update(g, s, p)
        return (optax.apply_updates(p, u), s), value

    (params, _), trace = _run(step, (params, opt.init(params)), steps)
    return params, trace
