"""Losses of population members: per-example values, reading the member's hyperparameters.

A loss is ``(outputs, y, hparams) -> [batch]`` per-example losses; ``Population``
weights and averages them (padded minibatch rows weigh 0).

Example:
    >>> import jax.numpy as jnp
    >>> from jaxhpo.population.losses import cross_entropy
    >>> [round(float(v), 4) for v in cross_entropy(jnp.zeros((2, 4)), jnp.array([0, 3]), {})]  # log 4
    [1.3863, 1.3863]
"""

from __future__ import annotations

from typing import Callable, Mapping

import jax
import jax.numpy as jnp

Array = jax.Array
LossFn = Callable[[Array, Array, dict], Array]


def cross_entropy(outputs: Array, y: Array, hparams: Mapping[str, Array]) -> Array:
    """Per-example softmax cross-entropy; reads ``hparams["label_smoothing"]`` if present."""
    classes = outputs.shape[-1]
    onehot = jax.nn.one_hot(y, classes, dtype=outputs.dtype)
    if "label_smoothing" in hparams:
        s = jnp.asarray(hparams["label_smoothing"], outputs.dtype)
        onehot = onehot * (1.0 - s) + s / classes
    return -jnp.sum(onehot * jax.nn.log_softmax(outputs, axis=-1), axis=-1)


def squared_error(outputs: Array, y: Array, hparams: Mapping[str, Array]) -> Array:
    """Per-example squared error (outputs ``[b, 1]`` or ``[b]`` against ``y [b]``)."""
    outputs = outputs.reshape(y.shape + outputs.shape[y.ndim:])
    d = (outputs - y.reshape(y.shape + (1,) * (outputs.ndim - y.ndim))) ** 2
    return d.reshape(d.shape[0], -1).mean(axis=-1)


LOSSES = {"cross_entropy": cross_entropy, "mse": squared_error}
