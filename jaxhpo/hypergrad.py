"""Gradient-based hyperparameter optimization: differentiate a validation loss through training.

``unrolled_loss`` trains a model with an Optax optimizer built from the
hyperparameters, in a ``lax.scan`` over minibatches (each step under
``jax.checkpoint`` so memory stays bounded by the parameters, not the
activations of every step), and returns the validation loss of the final
parameters: a differentiable function of continuous hyperparameters (log
learning rate, log weight decay, momentum...). With ``truncate=T`` only the
last ``T`` steps are differentiated (truncated backpropagation).

``search`` runs the outer loop: each outer step is one training run whose
hypergradient updates the hyperparameters with an Optax optimizer, from
several starting points vmapped together.

Example:
    >>> import jax, jax.numpy as jnp, optax
    >>> from jaxhpo import hypergrad
    >>> x = jax.random.normal(jax.random.key(0), (64, 3)); y = x @ jnp.array([1.0, -2.0, 0.5])
    >>> batches = (x.reshape(8, 8, 3), y.reshape(8, 8))
    >>> loss = lambda p, b, h: jnp.mean((b[0] @ p - b[1]) ** 2)
    >>> val = lambda p: jnp.mean((x @ p - y) ** 2)
    >>> f = lambda h: hypergrad.unrolled_loss(h, init_params=jnp.zeros(3), inner_loss=loss, val_loss=val,
    ...     optimizer=lambda h: optax.sgd(jnp.exp(h["log_lr"])), batches=batches)
    >>> g = jax.grad(f)({"log_lr": jnp.log(0.01)})
    >>> bool(g["log_lr"] < 0)   # a larger step size would lower the validation loss
    True
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax

Array = jax.Array


def unrolled_loss(
    hparams: Mapping[str, Array],
    *,
    init_params: Any,
    inner_loss: Callable[[Any, Any, Mapping[str, Array]], Array],
    val_loss: Callable[[Any], Array],
    optimizer: Callable[[Mapping[str, Array]], optax.GradientTransformation],
    batches: Any,
    truncate: Optional[int] = None,
    checkpoint: bool = True,
) -> Array:
    """Validation loss after training with ``optimizer(hparams)`` on ``batches``; differentiable in ``hparams``.

    Args:
        hparams: dict of scalar hyperparameters (what is differentiated).
        init_params: the model's initial parameters.
        inner_loss: ``(params, batch, hparams) -> training loss`` (weight decay and
            similar regularizers read ``hparams`` here).
        val_loss: ``params -> validation loss``.
        optimizer: ``hparams -> optax.GradientTransformation``, e.g.
            ``lambda h: optax.sgd(jnp.exp(h["log_lr"]), momentum=0.9)``.
        batches: a pytree whose leaves have a leading ``[steps]`` axis.
        truncate: differentiate through the last ``truncate`` steps only.
        checkpoint: rematerialize each step in the backward pass (bounded memory).
    """
    opt = optimizer(hparams)
    steps = jax.tree.leaves(batches)[0].shape[0]

    def step(carry, batch):
        params, state = carry
        grads = jax.grad(inner_loss)(params, batch, hparams)
        updates, state = opt.update(grads, state, params)
        return (optax.apply_updates(params, updates), state), None

    if checkpoint:
        step = jax.checkpoint(step)
    carry = (init_params, opt.init(init_params))
    if truncate is not None and 0 < truncate < steps:
        head = jax.tree.map(lambda a: a[: steps - truncate], batches)
        tail = jax.tree.map(lambda a: a[steps - truncate:], batches)
        carry, _ = jax.lax.scan(step, carry, head)
        carry = jax.lax.stop_gradient(carry)
        carry, _ = jax.lax.scan(step, carry, tail)
    else:
        carry, _ = jax.lax.scan(step, carry, batches)
    return val_loss(carry[0])


class HypergradResult(NamedTuple):
    """What ``search`` returns.

    Attributes:
        hparams: trajectory, each ``[outer_steps, starts]`` (the values each run trained with).
        val_loss: ``[outer_steps, starts]`` validation loss of each run.
        best_hparams: the hyperparameters of the lowest validation loss seen.
        best_val_loss: that loss.
    """

    hparams: dict[str, Array]
    val_loss: Array
    best_hparams: dict[str, Array]
    best_val_loss: Array


def search(
    hparams0: Mapping[str, Any],
    *,
    init_params: Callable[[Array], Any],
    inner_loss: Callable[[Any, Any, Mapping[str, Array]], Array],
    val_loss: Callable[[Any], Array],
    optimizer: Callable[[Mapping[str, Array]], optax.GradientTransformation],
    batches: Callable[[Array], Any],
    outer_steps: int,
    key: Array,
    outer_optimizer: Optional[optax.GradientTransformation] = None,
    bounds: Optional[Mapping[str, tuple[float, float]]] = None,
    truncate: Optional[int] = None,
    checkpoint: bool = True,
) -> HypergradResult:
    """Hypergradient descent on the validation loss, from several starts vmapped together.

    Args:
        hparams0: starting hyperparameters, each ``[starts]``.
        init_params: ``key -> initial parameters`` (a fresh initialization per run).
        inner_loss, val_loss, optimizer, truncate, checkpoint: as ``unrolled_loss``.
        batches: ``key -> batches`` (the run's shuffled minibatches, leading ``[steps]`` axis).
        outer_steps: training runs per start.
        key: PRNG key.
        outer_optimizer: Optax optimizer for the hyperparameters (default ``adam(0.1)``).
        bounds: ``{name: (low, high)}`` box the hyperparameters are clipped to.

    Returns:
        A ``HypergradResult``; runs are ``outer_steps * starts``.
    """
    if not isinstance(outer_steps, (int, np.integer)) or outer_steps < 1:
        raise ValueError(f"outer_steps must be a positive int, got outer_steps={outer_steps!r}")
    h0 = {k: jnp.asarray(v, jnp.float32) for k, v in hparams0.items()}
    shapes = {v.shape for v in h0.values()}
    if len(shapes) != 1 or len(next(iter(shapes))) != 1:
        raise ValueError(f"hparams0 values must all be 1-d arrays of the same length (starts), got {shapes}")
    bounds = dict(bounds or {})
    for name, (lo, hi) in bounds.items():
        if name not in h0:
            raise ValueError(f"bounds: {name!r} is not a hyperparameter (have {sorted(h0)})")
        if not lo < hi:
            raise ValueError(f"bounds[{name!r}] must be (low, high) with low < high, got {(lo, hi)!r}")
    outer = outer_optimizer or optax.adam(0.1)

    def clip(h):
        return {k: jnp.clip(v, *bounds[k]) if k in bounds else v for k, v in h.items()}

    def one_start(h, k_start):
        def outer_step(carry, t):
            h, state = carry
            k = jax.random.fold_in(k_start, t)
            k_init, k_data = jax.random.split(k)
            loss_fn = lambda hh: unrolled_loss(  # noqa: E731
                hh, init_params=init_params(k_init), inner_loss=inner_loss, val_loss=val_loss,
                optimizer=optimizer, batches=batches(k_data), truncate=truncate, checkpoint=checkpoint)
            value, grads = jax.value_and_grad(loss_fn)(h)
            grads = jax.tree.map(lambda g: jnp.where(jnp.isfinite(g), g, 0.0), grads)
            updates, state = outer.update(grads, state, h)
            new = clip(optax.apply_updates(h, updates))
            return (new, state), (h, value)

        _, (traj, values) = jax.lax.scan(outer_step, (clip(h), outer.init(h)), jnp.arange(outer_steps))
        return traj, values

    starts = next(iter(shapes))[0]
    traj, values = jax.jit(jax.vmap(one_start, in_axes=(0, 0), out_axes=1))(h0, jax.random.split(key, starts))
    safe = jnp.where(jnp.isfinite(values), values, jnp.inf)
    flat = int(jnp.argmin(safe.reshape(-1)))
    t, s = divmod(flat, starts)
    best = {k: v[t, s] for k, v in traj.items()}
    return HypergradResult(traj, values, best, safe[t, s])
