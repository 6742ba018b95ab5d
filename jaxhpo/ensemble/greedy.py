"""Greedy ensemble selection (Caruana et al., 2004), vectorized: every candidate scored in one call.

Start from the best ``init_size`` members; at each of ``size`` steps, add
(with replacement) the member whose addition gives the best validation
score. All candidate additions are scored at once, so a step costs one
``[members, examples]`` (log loss, MSE) or ``[members, examples, classes]``
(accuracy) array operation; the whole selection is one ``lax.scan``.

Example:
    >>> import jax, jax.numpy as jnp
    >>> from jaxhpo import ensemble
    >>> probs = jax.nn.softmax(jax.random.normal(jax.random.key(0), (8, 50, 3)), -1)
    >>> y = jnp.argmax(probs[3], -1)
    >>> ens = ensemble.greedy_selection(probs, y, size=10, init_size=1)
    >>> int(ens.counts.argmax())
    3
"""

from __future__ import annotations

from typing import Any, Optional

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from jaxhpo.ensemble._inputs import check_inputs_look_right, check_predictions, log_probs, true_class_probs
from jaxhpo.ensemble.combine import WeightedEnsemble

Array = jax.Array

METRICS = ("log_loss", "accuracy", "mse")


@struct.dataclass
class GreedyEnsemble(WeightedEnsemble):
    """A ``WeightedEnsemble`` whose weights are selection counts / total; keeps the trace.

    Attributes:
        counts: ``[members]`` times each member was selected.
        trace: ``[size]`` validation score after each addition.
    """

    counts: Array = None
    trace: Array = None


def _scores(metric: str, total: Array, k: Array, cand: Array, y: Array) -> Array:
    """Score of ``(total + cand_m) / (k + 1)`` for every candidate ``m`` (lower is better)."""
    mix = (total[None] + cand) / (k + 1.0)
    if metric == "log_loss":  # total, cand: probabilities of the true class
        return -jnp.mean(jnp.log(jnp.maximum(mix, 1e-15)), axis=1)
    if metric == "accuracy":  # full probabilities
        return -jnp.mean(jnp.argmax(mix, axis=-1) == y[None], axis=1)
    return jnp.mean((mix - y[None]) ** 2, axis=1)


def _greedy(preds: Array, y: Array, init_size: int, size: int, metric: str, inputs: str):
    if metric == "log_loss":
        cand = true_class_probs(preds, y, inputs)
    elif metric == "accuracy":
        cand = jnp.exp(log_probs(preds, inputs))
    else:
        cand = preds
    m = cand.shape[0]
    zero = jnp.zeros(cand.shape[1:], cand.dtype)
    single = _scores(metric, zero, jnp.float32(0.0), cand, y)
    order = jnp.argsort(single, stable=True)
    counts = jnp.zeros((m,), jnp.int32).at[order[:init_size]].add(1)
    total = jnp.sum(cand[order[:init_size]], axis=0)

    def step(carry, _):
        counts, total = carry
        k = jnp.sum(counts).astype(cand.dtype)
        s = _scores(metric, total, k, cand, y)
        best = jnp.argmin(s)
        return (counts.at[best].add(1), total + cand[best]), s[best]

    (counts, _), trace = jax.lax.scan(step, (counts, total), None, length=size)
    return counts, trace


_greedy_jit = jax.jit(_greedy, static_argnums=(2, 3, 4, 5))


def greedy_selection(
    preds: Any,
    y: Any,
    *,
    size: int = 50,
    init_size: Optional[int] = None,
    metric: str = "log_loss",
    inputs: str = "probs",
) -> GreedyEnsemble:
    """Caruana's greedy selection with replacement, initialized with the best ``init_size`` members.

    Args:
        preds: ``[members, examples, classes]`` probabilities (or logits with
            ``inputs="logits"``) or ``[members, examples]`` regression predictions.
        y: labels or targets.
        size: members added after the initial ones.
        init_size: the best single members to start from (``<= members``; default ``min(5, members)``).
        metric: ``"log_loss"`` or ``"accuracy"`` (classification), ``"mse"`` (regression).
        inputs: ``"probs"`` or ``"logits"`` (averaging is always of probabilities).
    """
    arr, task = check_predictions(preds, y)
    m = arr.shape[0]
    init_size = min(5, m) if init_size is None else init_size
    if not isinstance(size, (int, np.integer)) or size < 0:
        raise ValueError(f"size must be an int >= 0, got size={size!r}")
    if not isinstance(init_size, (int, np.integer)) or not 1 <= init_size <= m:
        raise ValueError(f"init_size must be an int in [1, members={m}], got init_size={init_size!r}")
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    if (task == "regression") != (metric == "mse"):
        raise ValueError(f"metric={metric!r} does not fit a {task} problem")
    y = jnp.asarray(y)
    if task == "classification":
        check_inputs_look_right(arr, inputs)
        y = y.astype(jnp.int32)
    else:
        y = y.astype(jnp.float32)
    counts, trace = _greedy_jit(arr, y, int(init_size), int(size), metric, inputs)
    if size == 0:
        trace = jnp.zeros((0,), jnp.float32)
    weights = counts.astype(jnp.float32) / jnp.sum(counts)
    return GreedyEnsemble(weights, jnp.ones(m), jnp.zeros(()), task, inputs, counts, trace)
