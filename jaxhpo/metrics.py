"""Classification and regression metrics as ``jnp`` functions (jit- and vmap-able).

Each takes labels first and predictions second, like ``sklearn.metrics``.
Each is jitted where it is defined: called eagerly it runs as one compiled
program per shape (not an eager op at a time); inside your ``jit`` it is
inlined.
Class-wise metrics take ``num_classes`` statically so shapes never depend
on the data; a class that never occurs and is never predicted contributes
0 (scikit-learn's ``zero_division=0``).

Example:
    >>> import jax.numpy as jnp
    >>> from jaxhpo import metrics
    >>> y = jnp.array([0, 1, 1, 2]); p = jnp.array([0, 1, 2, 2])
    >>> float(metrics.accuracy(y, p))
    0.75
    >>> round(float(metrics.f1(y, p, num_classes=3, average="macro")), 4)
    0.7778
"""

from __future__ import annotations

import functools
from typing import Optional

import jax
import jax.numpy as jnp

Array = jax.Array

AVERAGES = ("binary", "micro", "macro", "weighted")


def _weights(n: int, sample_weight: Optional[Array], dtype=jnp.float32, metric: str = "metric") -> Array:
    if sample_weight is None:
        return jnp.ones((n,), dtype)
    if jnp.shape(sample_weight) != (n,):
        raise ValueError(f"metrics.{metric}: sample_weight must be [n]=({n},), one weight per example, got shape "
                         f"{jnp.shape(sample_weight)}")
    return jnp.asarray(sample_weight, dtype)


def _vector(a: Array) -> Array:
    """A ``[n, 1]`` column as ``[n]`` (as scikit-learn takes it); other shapes as they are."""
    a = jnp.asarray(a)
    return a[:, 0] if a.ndim == 2 and a.shape[1] == 1 else a


def _labels(metric: str, y_true: Array, y_pred: Array) -> tuple[Array, Array]:
    """``y_true`` and ``y_pred`` as ``[n]`` labels of one length.

    Shapes are checked when the metric is traced (free at run time): ``[n]``
    against ``[n, 1]`` would otherwise broadcast to ``[n, n]`` and give a
    wrong number without an error.
    """
    t, p = _vector(y_true), _vector(y_pred)
    if t.ndim != 1 or p.shape != t.shape:
        raise ValueError(f"metrics.{metric}: y_true and y_pred must be [n] labels of one length, got shapes "
                         f"{jnp.shape(y_true)} and {jnp.shape(y_pred)}")
    return t, p


def _rows(metric: str, y_true: Array, scores: Array, name: str) -> tuple[Array, Array]:
    """``y_true`` as ``[n]`` labels and ``scores`` with ``n`` rows (``[n, classes]``, or ``[n]`` when ``name``
    is ``probs``)."""
    t, s = _vector(y_true), jnp.asarray(scores)
    if t.ndim != 1 or s.ndim not in ((1, 2) if name == "probs" else (2,)) or s.shape[0] != t.shape[0]:
        want = "[n, classes] (or [n] for class 1 of two)" if name == "probs" else "[n, classes]"
        raise ValueError(f"metrics.{metric}: y_true must be [n] labels and {name} {want} with as many rows, got "
                         f"shapes {jnp.shape(y_true)} and {jnp.shape(scores)}")
    return t, s


@jax.jit
def accuracy(y_true: Array, y_pred: Array, sample_weight: Optional[Array] = None) -> Array:
    """Fraction of predicted labels equal to the true ones.

    Args:
        y_true: ``[n]`` integer labels.
        y_pred: ``[n]`` integer labels (use ``argmax`` of scores first).
        sample_weight: optional ``[n]`` weights (0 masks an example out).
    """
    y_true, y_pred = _labels("accuracy", y_true, y_pred)
    w = _weights(y_true.shape[0], sample_weight, metric="accuracy")
    return jnp.sum(w * (y_true == y_pred)) / jnp.maximum(jnp.sum(w), 1e-12)


@functools.partial(jax.jit, static_argnames="num_classes")
def confusion_matrix(y_true: Array, y_pred: Array, num_classes: int, sample_weight: Optional[Array] = None) -> Array:
    """``[num_classes, num_classes]`` counts, rows true, columns predicted (as scikit-learn)."""
    y_true, y_pred = _labels("confusion_matrix", y_true, y_pred)
    w = _weights(y_true.shape[0], sample_weight, metric="confusion_matrix")
    flat = jnp.clip(y_true, 0, num_classes - 1) * num_classes + jnp.clip(y_pred, 0, num_classes - 1)
    return jnp.zeros((num_classes * num_classes,), w.dtype).at[flat].add(w).reshape(num_classes, num_classes)


def _safe_div(a: Array, b: Array) -> Array:
    return jnp.where(b > 0, a / jnp.where(b > 0, b, 1.0), 0.0)


def _prf(y_true, y_pred, num_classes, average, pos_label, sample_weight, metric):
    y_true, y_pred = _labels(metric, y_true, y_pred)
    if average not in AVERAGES:
        raise ValueError(f"average must be one of {AVERAGES}, got {average!r}")
    if average == "binary" and num_classes != 2:
        raise ValueError(f"average='binary' needs num_classes=2, got num_classes={num_classes}")
    cm = confusion_matrix(y_true, y_pred, num_classes, sample_weight)
    tp = jnp.diag(cm)
    pred = cm.sum(axis=0)
    true = cm.sum(axis=1)
    if average == "micro":
        tp, pred, true = tp.sum(), pred.sum(), true.sum()
    precision = _safe_div(tp, pred)
    recall = _safe_div(tp, true)
    f1 = _safe_div(2 * tp, pred + true)
    if average == "binary":
        return precision[pos_label], recall[pos_label], f1[pos_label]
    if average == "micro":
        return precision, recall, f1
    if average == "macro":
        return precision.mean(), recall.mean(), f1.mean()
    support = true / jnp.maximum(true.sum(), 1e-12)
    return (precision * support).sum(), (recall * support).sum(), (f1 * support).sum()


@functools.partial(jax.jit, static_argnames=("num_classes", "average", "pos_label"))
def precision(y_true: Array, y_pred: Array, num_classes: int = 2, average: str = "binary",
              pos_label: int = 1, sample_weight: Optional[Array] = None) -> Array:
    """Precision ``tp / (tp + fp)``; ``average`` is binary, micro, macro or weighted."""
    return _prf(y_true, y_pred, num_classes, average, pos_label, sample_weight, "precision")[0]


@functools.partial(jax.jit, static_argnames=("num_classes", "average", "pos_label"))
def recall(y_true: Array, y_pred: Array, num_classes: int = 2, average: str = "binary",
           pos_label: int = 1, sample_weight: Optional[Array] = None) -> Array:
    """Recall ``tp / (tp + fn)``; ``average`` is binary, micro, macro or weighted."""
    return _prf(y_true, y_pred, num_classes, average, pos_label, sample_weight, "recall")[1]


@functools.partial(jax.jit, static_argnames=("num_classes", "average", "pos_label"))
def f1(y_true: Array, y_pred: Array, num_classes: int = 2, average: str = "binary",
       pos_label: int = 1, sample_weight: Optional[Array] = None) -> Array:
    """F1 ``2 tp / (2 tp + fp + fn)``; ``average`` is binary, micro, macro or weighted."""
    return _prf(y_true, y_pred, num_classes, average, pos_label, sample_weight, "f1")[2]


@functools.partial(jax.jit, static_argnames="eps")
def log_loss(y_true: Array, probs: Array, sample_weight: Optional[Array] = None, eps: float = 1e-15) -> Array:
    """Mean negative log-likelihood of the true class.

    Args:
        y_true: ``[n]`` integer labels.
        probs: ``[n, classes]`` probabilities (rows are renormalized, then clipped
            to ``[eps, 1 - eps]`` as scikit-learn does), or ``[n]`` probabilities
            of class 1 for binary problems.
    """
    y_true, probs = _rows("log_loss", y_true, probs, "probs")
    if probs.ndim == 1:
        probs = jnp.stack([1.0 - probs, probs], axis=-1)
    probs = probs / jnp.sum(probs, axis=-1, keepdims=True)
    p = jnp.take_along_axis(probs, y_true[:, None].astype(jnp.int32), axis=-1)[:, 0]
    p = jnp.clip(p, eps, 1.0 - eps)
    w = _weights(y_true.shape[0], sample_weight, p.dtype, metric="log_loss")
    return -jnp.sum(w * jnp.log(p)) / jnp.maximum(jnp.sum(w), 1e-12)


@jax.jit
def log_loss_from_logits(y_true: Array, logits: Array, sample_weight: Optional[Array] = None) -> Array:
    """``log_loss`` computed stably from unnormalized log-probabilities ``[n, classes]``."""
    y_true, logits = _rows("log_loss_from_logits", y_true, logits, "logits")
    logp = jax.nn.log_softmax(logits, axis=-1)
    nll = -jnp.take_along_axis(logp, y_true[:, None].astype(jnp.int32), axis=-1)[:, 0]
    w = _weights(y_true.shape[0], sample_weight, nll.dtype, metric="log_loss_from_logits")
    return jnp.sum(w * nll) / jnp.maximum(jnp.sum(w), 1e-12)


@jax.jit
def mse(y_true: Array, y_pred: Array, sample_weight: Optional[Array] = None) -> Array:
    """Mean squared error over ``[n]`` or ``[n, outputs]`` targets (a ``[n, 1]`` column counts as ``[n]``)."""
    t, p = jnp.asarray(y_true), jnp.asarray(y_pred)
    if t.shape != p.shape:
        t, p = _vector(t), _vector(p)
    if t.shape != p.shape or t.ndim == 0:
        raise ValueError(f"metrics.mse: y_true and y_pred must have one shape, [n] or [n, outputs], got shapes "
                         f"{jnp.shape(y_true)} and {jnp.shape(y_pred)}")
    d = p - t
    w = _weights(d.shape[0], sample_weight, d.dtype, metric="mse")
    if d.ndim > 1:
        d2 = jnp.mean(d**2, axis=tuple(range(1, d.ndim)))
    else:
        d2 = d**2
    return jnp.sum(w * d2) / jnp.maximum(jnp.sum(w), 1e-12)
