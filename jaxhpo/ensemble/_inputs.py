"""Validation and normalization of stacked member predictions."""

from __future__ import annotations

import functools
from typing import Any, Optional

import jax
import jax.numpy as jnp
import numpy as np

from jaxhpo._arrays import device_array

Array = jax.Array

INPUTS = ("probs", "logits")
TASKS = ("classification", "regression")


def check_predictions(preds: Any, y: Optional[Any] = None, *, name: str = "preds") -> tuple[Array, str]:
    """Checks ``[members, examples, classes]`` or ``[members, examples]`` predictions (and labels).

    Returns:
        ``(preds as float32 array, task)``: 3-d means classification, 2-d regression.
    """
    try:
        arr = np.asarray(preds, dtype=float) if isinstance(preds, (list, tuple)) else np.asarray(preds)
    except ValueError as e:  # ragged member lists
        shapes = [np.shape(p) for p in preds]
        raise ValueError(f"{name} must stack into one array [members, examples, ...]: the members have shapes "
                         f"{shapes[:10]}; give every member its predictions for the same examples") from e
    if arr.ndim not in (2, 3):
        raise ValueError(
            f"{name} must be [members, examples, classes] (classification) or [members, examples] "
            f"(regression), got shape {arr.shape}"
        )
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError(f"{name} must have at least one member and one example, got shape {arr.shape}")
    bad = _non_finite_members(arr)
    if bad:
        raise ValueError(f"{name} has non-finite values (members {bad[:10]})")
    task = "classification" if arr.ndim == 3 else "regression"
    if y is not None:
        y_arr = np.asarray(y)
        if y_arr.ndim != 1 or y_arr.shape[0] != arr.shape[1]:
            raise ValueError(f"labels must be [examples]={arr.shape[1]}, got shape {y_arr.shape}")
        if np.issubdtype(y_arr.dtype, np.number) and not np.all(np.isfinite(y_arr)):
            bad = np.flatnonzero(~np.isfinite(y_arr))
            raise ValueError(f"labels have {bad.size} non-finite values (examples {bad.tolist()[:10]}); drop those "
                             f"examples or impute their targets before fitting")
        if task == "classification":
            if not np.issubdtype(y_arr.dtype, np.integer):
                if not np.all(np.equal(np.mod(y_arr, 1), 0)):
                    raise ValueError(f"classification labels must be integers 0..{arr.shape[2] - 1}, got {y_arr[:5]}...")
            if y_arr.min() < 0 or y_arr.max() >= arr.shape[2]:
                raise ValueError(
                    f"labels must lie in [0, classes={arr.shape[2]}), got min {y_arr.min()} and max {y_arr.max()}"
                )
    return device_array(arr, np.float32), task


def _non_finite_members(arr: np.ndarray) -> list[int]:
    """The members (first axis) with a NaN or inf anywhere in their predictions."""
    return np.flatnonzero(~np.isfinite(arr.reshape(arr.shape[0], -1)).all(axis=1)).tolist()


def fitted_predictions(preds: Any, *, members: int, task: str, classes: Optional[int] = None,
                       name: str = "preds") -> Array:
    """``preds`` for an ensemble fitted on ``members`` members, checked, as float32 on the device.

    What a fitted ensemble predicts from must have the shape it was fitted on:
    ``[members, examples, classes]`` (classification) or ``[members, examples]``
    (regression), with as many members (and, when known, classes); otherwise the
    weights broadcast over the wrong axis and the result is silently wrong. Values
    must be finite, as ``check_predictions`` requires for fitting (tracers, inside
    your ``jit``, and arrays spread over several processes are checked for shape
    only).

    Raises:
        ValueError: naming ``name``, the shape expected and the shape given, or the
            members with non-finite values.
    """
    shape = tuple(np.shape(preds))
    if task == "classification":
        layout, ok = "[members, examples, classes]", len(shape) == 3 and (classes is None or shape[2] == classes)
    else:
        layout, ok = "[members, examples]", len(shape) == 2
    if not ok or shape[0] != members or shape[1] < 1:
        what = f"{members} members" + (f" and {classes} classes" if classes is not None else "")
        raise ValueError(f"{name} must be {layout} with the {what} the ensemble was fitted on, got shape {shape}; "
                         f"give every member's predictions, in the order used for fitting")
    if not isinstance(preds, jax.core.Tracer) and getattr(preds, "is_fully_addressable", True):
        bad = _non_finite_members(np.asarray(preds))  # (an array over several processes: shape only)
        if bad:
            raise ValueError(f"{name} has non-finite values (members {bad[:10]}); an ensemble cannot predict "
                             f"from NaN or inf")
    return device_array(preds, np.float32)


@functools.partial(jax.jit, static_argnames="inputs")  # one program, not an eager op each (on a new shape)
def log_probs(preds: Array, inputs: str) -> Array:
    """Log-probabilities from probabilities (clipped, renormalized) or logits."""
    if inputs not in INPUTS:
        raise ValueError(f"inputs must be one of {INPUTS}, got {inputs!r}")
    if inputs == "logits":
        return jax.nn.log_softmax(preds, axis=-1)
    p = jnp.clip(preds, 1e-12, None)
    return jnp.log(p / jnp.sum(p, axis=-1, keepdims=True))


def check_inputs_look_right(preds: np.ndarray, inputs: str) -> None:
    """Catches probabilities passed as logits and the reverse."""
    if inputs == "probs":
        arr = np.asarray(preds)
        bad = (arr.min(-1) < -1e-6) | (np.abs(arr.sum(-1) - 1.0) > 1e-3)  # every row: logits may start anywhere
        if bad.any():
            member, example = np.argwhere(bad)[0]
            raise ValueError(f"inputs='probs' but the predictions are not probabilities (rows must be >= 0 and sum "
                             f"to 1; member {member}, example {example} is not); pass inputs='logits'")


@functools.partial(jax.jit, static_argnames="inputs")
def true_class_probs(preds: Array, y: Array, inputs: str) -> Array:
    """``[members, examples]`` probability of the true class, without a log over the whole tensor."""
    y = jnp.asarray(y, jnp.int32)
    picked = jnp.take_along_axis(preds, y[None, :, None], axis=-1)[..., 0]
    if inputs == "probs":
        return jnp.clip(picked, 1e-12, None) / jnp.sum(jnp.clip(preds, 1e-12, None), axis=-1)
    return jnp.exp(picked - jax.nn.logsumexp(preds, axis=-1))
