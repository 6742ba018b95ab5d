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

from jaxhpo import compile_options
from jaxhpo.ensemble._inputs import check_inputs_look_right, check_predictions, log_probs, true_class_probs
from jaxhpo.ensemble.combine import WeightedEnsemble

Array = jax.Array

METRICS = ("log_loss", "accuracy", "mse")


@struct.dataclass
class GreedyEnsemble(WeightedEnsemble):
    """A ``WeightedEnsemble`` whose weights are selection counts / total (averaged over bags); keeps the trace.

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


def _candidates(preds: Array, y: Array, metric: str, inputs: str) -> Array:
    if metric == "log_loss":
        return true_class_probs(preds, y, inputs)
    if metric == "accuracy":
        return jnp.exp(log_probs(preds, inputs))
    return preds


def _greedy(preds: Array, y: Array, init_size: int, size: int, metric: str, inputs: str):
    """``(weights, counts, trace)`` of one selection over all members."""
    cand = _candidates(preds, y, metric, inputs)
    counts, trace = _select(cand, y, init_size, size, metric, jnp.ones(cand.shape[0], bool))
    return counts.astype(jnp.float32) / jnp.sum(counts), counts, trace


def _bagged(preds: Array, y: Array, init_size: int, size: int, metric: str, inputs: str, masks: Array):
    """``(weights, counts, trace)`` of one selection per bag ``masks[b]``: weights and traces averaged, counts summed."""
    cand = _candidates(preds, y, metric, inputs)
    counts_b, trace_b = jax.vmap(lambda mask: _select(cand, y, init_size, size, metric, mask))(masks)
    weights = jnp.mean(counts_b / jnp.sum(counts_b, axis=1, keepdims=True), axis=0)
    return weights, jnp.sum(counts_b, axis=0), jnp.mean(trace_b, axis=0)


def _select(cand: Array, y: Array, init_size: int, size: int, metric: str, allowed: Array):
    m = cand.shape[0]
    zero = jnp.zeros(cand.shape[1:], cand.dtype)
    single = jnp.where(allowed, _scores(metric, zero, jnp.float32(0.0), cand, y), jnp.inf)
    order = jnp.argsort(single, stable=True)
    counts = jnp.zeros((m,), jnp.int32).at[order[:init_size]].add(1)
    total = jnp.sum(cand[order[:init_size]], axis=0)

    def step(carry, _):
        counts, total = carry
        k = jnp.sum(counts).astype(cand.dtype)
        s = jnp.where(allowed, _scores(metric, total, k, cand, y), jnp.inf)
        best = jnp.argmin(s)
        return (counts.at[best].add(1), total + cand[best]), s[best]

    (counts, _), trace = jax.lax.scan(step, (counts, total), None, length=size)
    return counts, trace


# top-level programs (greedy_selection checks its inputs on the host, so it never runs under your jit), compiled
# with jaxhpo's options: the same weights, bit for bit, and 0.5-0.7 instead of 0.9 CPU-s of compile for 24 members'
# bagged selection (20 bags, 360 examples, 10 classes; fresh processes)
_greedy_jit = compile_options.jit(_greedy, static_argnums=(2, 3, 4, 5))
_bagged_jit = compile_options.jit(_bagged, static_argnums=(2, 3, 4, 5))


def greedy_selection(
    preds: Any,
    y: Any,
    *,
    size: int = 50,
    init_size: Optional[int] = None,
    metric: str = "log_loss",
    inputs: str = "probs",
    bags: int = 1,
    bag_fraction: float = 0.5,
    seed: int = 0,
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
        bags: with ``bags > 1``, Caruana's bagged selection: run the selection on
            ``bags`` random subsets of ``bag_fraction`` of the members (vmapped, one
            call) and average the weights; less prone to overfit small validation sets.
        bag_fraction: share of members per bag.
        seed: seed of the bags.
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
    if task == "classification":  # labels converted on the host: an eager conversion compiles a program
        check_inputs_look_right(arr, inputs)
        y = np.asarray(y).astype(np.int32)
    else:
        y = np.asarray(y).astype(np.float32)
    if not isinstance(bags, (int, np.integer)) or bags < 1:
        raise ValueError(f"bags must be a positive int, got bags={bags!r}")
    if not 0.0 < bag_fraction <= 1.0:
        raise ValueError(f"bag_fraction must be in (0, 1], got bag_fraction={bag_fraction!r}")
    if bags == 1:
        weights, counts, trace = _greedy_jit(arr, y, int(init_size), int(size), metric, inputs)
    else:
        per_bag = max(int(round(bag_fraction * m)), init_size)
        rng = np.random.default_rng(seed)
        masks = np.zeros((bags, m), bool)
        for b in range(bags):
            masks[b, rng.choice(m, per_bag, replace=False)] = True
        weights, counts, trace = _bagged_jit(arr, y, int(init_size), int(size), metric, inputs, masks)
    if size == 0:
        trace = jax.device_put(np.zeros((0,), np.float32))
    # constants made on the host and put on the device: ``jnp.ones`` (and ``jnp.asarray`` of a host array, in
    # JAX 0.10) compile a program per shape, ``device_put`` none
    return GreedyEnsemble(weights, jax.device_put(np.ones(m, np.float32)), jax.device_put(np.float32(0.0)), task,
                          inputs, counts, trace)
