"""Fixed combinations and learned weights: mean, median, voting, top-k, Optax-fit weights.

Every fitted combination is a ``WeightedEnsemble``, a pytree:
``predict_proba(preds)`` mixes the members' probabilities with its weights
(after per-member temperatures, if fit), ``predict(preds)`` takes the argmax
(classification) or the weighted mean (regression).

Example:
    >>> import jax, jax.numpy as jnp
    >>> from jaxhpo import ensemble
    >>> logits = jax.random.normal(jax.random.key(0), (4, 100, 3))
    >>> probs = jax.nn.softmax(logits, -1); y = jnp.argmax(logits[0], -1)   # member 0 is right
    >>> ens = ensemble.fit_weights(probs, y)
    >>> int(jnp.argmax(ens.weights))
    0
    >>> ens.predict_proba(probs).shape
    (100, 3)
"""

from __future__ import annotations

import functools
from typing import Any, Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from jaxhpo.ensemble._optim import FULL, minimize_first_order, minimize_lbfgs
from jaxhpo.ensemble._inputs import (check_inputs_look_right, check_predictions, fitted_predictions, log_probs,
                                     true_class_probs)
from jaxhpo.ensemble._rowwise import member_sum

Array = jax.Array

CONSTRAINTS = ("simplex", "nonneg", "free")


@struct.dataclass
class WeightedEnsemble:
    """Weights over members (and optional per-member temperatures and intercept), as a pytree.

    Attributes:
        weights: ``[members]`` (on the simplex for classification).
        temperature: ``[members]`` divides each member's log-probabilities (1 = as is).
        intercept: scalar added to regression predictions.
        task: ``"classification"`` or ``"regression"`` (static).
        inputs: ``"probs"`` or ``"logits"``: what ``predict_proba`` expects (static).
    """

    weights: Array
    temperature: Array
    intercept: Array
    task: str = struct.field(pytree_node=False, default="classification")
    inputs: str = struct.field(pytree_node=False, default="probs")

    def member_probs(self, preds: Array) -> Array:
        return _member_probs(self._checked(preds), self.temperature, self.inputs)

    def predict_proba(self, preds: Array) -> Array:
        """``[examples, classes]`` mixture probabilities (classification)."""
        if self.task != "classification":
            raise ValueError("predict_proba is for classification ensembles; use predict")
        return _mixture(self.weights, self._checked(preds), self.temperature, self.inputs)

    def predict(self, preds: Array) -> Array:
        """Labels (classification) or weighted predictions plus intercept (regression)."""
        if self.task == "classification":
            return jnp.argmax(self.predict_proba(preds), axis=-1)
        return member_sum(self.weights, self._checked(preds)) + self.intercept

    def _checked(self, preds: Any) -> Array:
        return fitted_predictions(preds, members=np.shape(self.weights)[-1], task=self.task)

    @property
    def selected(self) -> np.ndarray:
        """Indices of members with non-zero weight."""
        return np.flatnonzero(np.asarray(self.weights) > 0)


@functools.partial(jax.jit, static_argnames="inputs")  # jitted where defined: one program, not an eager op each
def _member_probs(preds: Array, temperature: Array, inputs: str) -> Array:
    """Each member's probabilities at its temperature, ``[members, examples, classes]``."""
    return jax.nn.softmax(log_probs(preds, inputs) / temperature[:, None, None], axis=-1)


@functools.partial(jax.jit, static_argnames="inputs")
def _mixture(weights: Array, preds: Array, temperature: Array, inputs: str) -> Array:
    """The weighted mixture of the members' probabilities, summed over members in order."""
    return member_sum(weights, _member_probs(preds, temperature, inputs))


def uniform(preds: Any, *, inputs: str = "probs", members: Optional[Any] = None) -> WeightedEnsemble:
    """The plain mean of all members (or of ``members``, a list of indices)."""
    arr, task = check_predictions(preds)
    m = arr.shape[0]
    w = np.zeros(m, np.float32)
    idx = np.arange(m) if members is None else np.asarray(members)
    if idx.size == 0 or idx.min() < 0 or idx.max() >= m:
        raise ValueError(f"members must be indices in [0, {m}), got {members!r}")
    np.add.at(w, idx, 1.0)
    return WeightedEnsemble(jax.device_put(w / w.sum()), jax.device_put(np.ones(m, np.float32)),
                            jax.device_put(np.float32(0.0)), task, inputs)  # device_put: no program per shape


def member_scores(preds: Any, y: Any, *, inputs: str = "probs") -> Array:
    """``[members]`` validation loss of each member alone (log loss, or MSE for regression)."""
    arr, task = check_predictions(preds, y)
    y = jnp.asarray(y)
    if task == "regression":
        return jnp.mean((arr - y[None].astype(arr.dtype)) ** 2, axis=1)
    logp = log_probs(arr, inputs)
    return -jnp.mean(jnp.take_along_axis(logp, y[None, :, None].astype(jnp.int32), axis=-1)[..., 0], axis=1)


def top_k(preds: Any, y: Any, k: int, *, inputs: str = "probs") -> WeightedEnsemble:
    """The mean of the ``k`` members with the lowest validation loss."""
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive int, got k={k!r}")
    scores = np.asarray(member_scores(preds, y, inputs=inputs))
    return uniform(preds, inputs=inputs, members=np.argsort(scores, kind="stable")[:k])


def mean(preds: Any) -> Array:
    """The mean over members: ``[examples, classes]`` or ``[examples]``."""
    arr, _ = check_predictions(preds)
    return jnp.mean(arr, axis=0)


def median(preds: Any) -> Array:
    """The median over members (classification rows renormalized to sum to 1)."""
    arr, task = check_predictions(preds)
    out = jnp.median(arr, axis=0)
    if task == "classification":
        out = out / jnp.maximum(jnp.sum(out, axis=-1, keepdims=True), 1e-12)
    return out


def vote(preds: Any, *, kind: str = "soft", weights: Optional[Any] = None, inputs: str = "probs") -> Array:
    """Hard (majority of argmax labels) or soft (weighted mean probability) voting.

    Returns:
        ``[examples, classes]``: vote shares (hard) or probabilities (soft). Take
        ``argmax`` for labels; hard-vote ties go to the lowest class, as scikit-learn.
    """
    if kind not in ("soft", "hard"):
        raise ValueError(f"kind must be 'soft' or 'hard', got kind={kind!r}")
    arr, task = check_predictions(preds)
    if task != "classification":
        raise ValueError("voting needs classification predictions [members, examples, classes]")
    m, _, c = arr.shape
    w = jnp.ones(m) if weights is None else jnp.asarray(weights, jnp.float32)
    if w.shape != (m,) or bool(jnp.any(w < 0)):
        raise ValueError(f"weights must be [members]={m} non-negative numbers, got {weights!r}")
    w = w / jnp.sum(w)
    if kind == "soft":
        return member_sum(w, jnp.exp(log_probs(arr, inputs)))
    onehot = jax.nn.one_hot(jnp.argmax(arr, axis=-1), c)
    return member_sum(w, onehot)


# ----------------------------------------------------------------------------- learned weights


def _constrain(raw: Array, constraint: str) -> Array:
    if constraint == "simplex":
        return jax.nn.softmax(raw)
    if constraint == "nonneg":
        return raw**2
    return raw


def _fit_classification(preds, y, l2_uniform, sparsity, temperature, steps, learning_rate, inputs):
    m = preds.shape[0]
    if temperature:
        logp = log_probs(preds, inputs)
    else:
        py = true_class_probs(preds, y, inputs)  # [m, n]: all the mixture's log loss needs

    def loss(params):
        w = jax.nn.softmax(params["raw"])
        if temperature:
            t = jnp.exp(params["log_t"])
            scaled = jax.nn.log_softmax(logp / t[:, None, None], axis=-1)
            log_py = jnp.take_along_axis(scaled, y[None, :, None], axis=-1)[..., 0]
            mix = jax.nn.logsumexp(jnp.log(w)[:, None] + log_py, axis=0)
        else:
            mix = jnp.log(jnp.maximum(jnp.matmul(w, py, precision=FULL), 1e-30))
        reg = l2_uniform * m * jnp.sum((w - 1.0 / m) ** 2) + sparsity * -jnp.sum(w * jnp.log(w + 1e-12))
        return -jnp.mean(mix) + reg

    params = {"raw": jnp.zeros(m), "log_t": jnp.zeros(m)}
    params, trace = minimize_first_order(loss, params, steps, optax.adam(learning_rate))
    t = jnp.exp(params["log_t"]) if temperature else jnp.ones(m)
    return jax.nn.softmax(params["raw"]), t, jnp.zeros(()), trace


def _fit_regression(preds, y, l2_uniform, constraint, intercept, steps):
    m = preds.shape[0]
    scale = jnp.maximum(jnp.std(y), 1e-12)

    def loss(params):
        w = _constrain(params["raw"], constraint)
        b = params["b"] if intercept else 0.0
        r = (jnp.matmul(w, preds, precision=FULL) + b - y) / scale
        return jnp.mean(r**2) + l2_uniform * m * jnp.sum((w - 1.0 / m) ** 2)

    init = {"simplex": 0.0, "nonneg": float(np.sqrt(1.0 / m)), "free": 1.0 / m}[constraint]
    params = {"raw": jnp.full((m,), init), "b": jnp.zeros(())}
    params, trace = minimize_lbfgs(loss, params, steps)
    b = params["b"] if intercept else jnp.zeros(())
    return _constrain(params["raw"], constraint), jnp.ones(m), b, trace


_fit_classification_jit = jax.jit(_fit_classification, static_argnums=(4, 5, 7))
_fit_regression_jit = jax.jit(_fit_regression, static_argnums=(3, 4, 5))


def fit_weights(
    preds: Any,
    y: Any,
    *,
    inputs: str = "probs",
    l2_uniform: float = 0.0,
    sparsity: float = 0.0,
    temperature: bool = False,
    constraint: str = "simplex",
    intercept: bool = False,
    steps: Optional[int] = None,
    learning_rate: float = 0.1,
) -> WeightedEnsemble:
    """Learns member weights that minimize validation log loss (classification) or MSE (regression).

    Classification weights live on the simplex (softmax parameterization) and
    are fit by ``optax.adam``; the loss is the log loss of the mixture
    ``sum_m w_m p_m``. Regression weights are fit by ``optax.lbfgs`` (the
    problem is a least-squares one), with ``constraint`` ``"simplex"``,
    ``"nonneg"`` or ``"free"`` and an optional ``intercept``: fit on
    cross-validated predictions, this is the linear fusion of regression models.

    Args:
        preds: ``[members, examples, classes]`` or ``[members, examples]`` validation
            (or out-of-fold) predictions.
        y: ``[examples]`` labels or targets.
        inputs: ``"probs"`` or ``"logits"``.
        l2_uniform: penalty ``l2_uniform * M * ||w - 1/M||^2`` pulling toward the mean.
        sparsity: entropy penalty (> 0 concentrates the weights on few members).
        temperature: also fit one temperature per member (classification).
        constraint: regression only (classification is always on the simplex).
        intercept: regression only.
        steps: optimizer steps (default 300 Adam / 100 L-BFGS).
        learning_rate: Adam's learning rate.
    """
    arr, task = check_predictions(preds, y)
    for name, v in (("l2_uniform", l2_uniform), ("sparsity", sparsity), ("learning_rate", learning_rate)):
        if not np.isfinite(v) or v < 0:
            raise ValueError(f"{name} must be a finite number >= 0, got {name}={v!r}")
    if constraint not in CONSTRAINTS:
        raise ValueError(f"constraint must be one of {CONSTRAINTS}, got {constraint!r}")
    if steps is not None and (not isinstance(steps, (int, np.integer)) or steps < 1):
        raise ValueError(f"steps must be a positive int, got steps={steps!r}")
    if task == "classification":
        check_inputs_look_right(arr, inputs)
        w, t, b, _ = _fit_classification_jit(arr, jnp.asarray(y, jnp.int32), jnp.float32(l2_uniform),
                                             jnp.float32(sparsity), bool(temperature), int(steps or 300),
                                             jnp.float32(learning_rate), inputs)
    else:
        w, t, b, _ = _fit_regression_jit(arr, jnp.asarray(y, jnp.float32), jnp.float32(l2_uniform), constraint,
                                         bool(intercept), int(steps or 100))
    return WeightedEnsemble(w, t, b, task, inputs)
