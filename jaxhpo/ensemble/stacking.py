"""Stacking: a meta-learner trained with Optax on out-of-fold member predictions.

The meta-learner must never see a prediction made by a model that trained
on the same row, or it learns to trust memorization. Give ``fit_stacking``
out-of-fold predictions: ``population.cross_validate(...).oof_predictions``
or ``jaxhpo.ensemble.cross_val_predictions(estimators, X, y)`` for
scikit-learn models; at prediction time give it the predictions of the
members refit on all the training data.

Meta-learners: ``"logistic"`` (multinomial logistic regression, L2, fit by
``optax.lbfgs``), ``"ridge"`` (least squares with L2 on one-hot targets or
regression targets, ``optax.lbfgs``), ``"mlp"`` (one hidden layer, weight
decay, ``optax.adamw``). Features are the members' log-probabilities,
standardized (default), or their raw probabilities (``features="probs"``,
what scikit-learn's ``StackingClassifier`` gives its final estimator) for
classification, and the standardized predictions for regression.

Many similar members (a population of networks) next to a few different
models can swamp the meta-learner with correlated features; ``groups``
averages the members of each group into one before it (a fixed mean, fit on
nothing, so no row leaks), e.g. ``groups=[0] * 64 + [1, 2, 3]`` stacks the
population's mean with three other models.

Example:
    >>> import jax, jax.numpy as jnp
    >>> from jaxhpo import ensemble
    >>> logits = jax.random.normal(jax.random.key(0), (3, 200, 2)); y = jnp.argmax(logits[1], -1)
    >>> meta = ensemble.fit_stacking(jax.nn.softmax(logits, -1), y)
    >>> float((meta.predict(jax.nn.softmax(logits, -1)) == y).mean()) > 0.95
    True
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from jaxhpo import compile_options
from jaxhpo.ensemble._optim import FULL, minimize_first_order, minimize_lbfgs
from jaxhpo.ensemble._inputs import check_inputs_look_right, check_predictions, fitted_predictions, log_probs
from jaxhpo.ensemble._rowwise import member_sum, row_matmul
from jaxhpo.keys import key_from_seed

Array = jax.Array

META = ("logistic", "ridge", "mlp")


@struct.dataclass
class StackingEnsemble:
    """A fitted meta-learner over member predictions, as a pytree.

    Attributes:
        params: the meta-learner's parameters.
        mu, sigma: feature standardization.
        meta: ``"logistic"``, ``"ridge"`` or ``"mlp"`` (static).
        task: ``"classification"`` or ``"regression"`` (static).
        inputs: ``"probs"`` or ``"logits"`` (static).
        features: ``"log_probs"`` or ``"probs"`` (static).
        groups: group id per member, or None (static).
    """

    params: Any
    mu: Array
    sigma: Array
    meta: str = struct.field(pytree_node=False, default="logistic")
    task: str = struct.field(pytree_node=False, default="classification")
    inputs: str = struct.field(pytree_node=False, default="probs")
    features: str = struct.field(pytree_node=False, default="log_probs")
    groups: tuple[int, ...] | None = struct.field(pytree_node=False, default=None)

    def meta_features(self, preds: Array) -> Array:
        """The standardized meta-learner inputs ``[examples, features]`` for member predictions."""
        return _meta_features(self, self._checked(preds))

    def decision(self, preds: Array) -> Array:
        return _decision(self, self._checked(preds))

    def predict_proba(self, preds: Array) -> Array:
        if self.task != "classification":
            raise ValueError("predict_proba is for classification ensembles; use predict")
        return _predict_proba(self, self._checked(preds))

    def predict(self, preds: Array) -> Array:
        return _predict(self, self._checked(preds))

    def _checked(self, preds: Any) -> Array:
        """``preds`` checked against the shape the meta-learner was fitted on."""
        features = np.shape(self.mu)[-1]
        classes = None
        if self.task == "classification":  # the meta-learner's outputs are the classes
            classes = np.shape(self.params["w2" if self.meta == "mlp" else "w"])[-1]
            blocks = features // classes
        else:
            blocks = features
        # one block of features per member, or per group of members (groups: one id per member)
        members = len(self.groups) if self.groups is not None else blocks
        return fitted_predictions(preds, members=members, task=self.task, classes=classes)


# Jitted where defined, the ensemble a pytree argument (its meta, task, inputs, features and groups are static
# fields): a prediction is one program per shape, not an eager op each.
@jax.jit
def _meta_features(ens: StackingEnsemble, preds: Array) -> Array:
    raw = _raw_features(preds, ens.task, ens.inputs, ens.features, ens.groups)
    return (raw - ens.mu) / ens.sigma


@jax.jit
def _decision(ens: StackingEnsemble, preds: Array) -> Array:
    return _forward(ens.meta, ens.params, _meta_features(ens, preds), rowwise=True)


@jax.jit
def _predict_proba(ens: StackingEnsemble, preds: Array) -> Array:
    out = _decision(ens, preds)
    if ens.meta == "ridge":  # least squares on one-hot targets: scores, not probabilities
        return jax.nn.softmax(out * 4.0, axis=-1)
    return jax.nn.softmax(out, axis=-1)


@jax.jit
def _predict(ens: StackingEnsemble, preds: Array) -> Array:
    if ens.task == "classification":
        return jnp.argmax(_decision(ens, preds), axis=-1)
    return _decision(ens, preds)[:, 0] * ens.params["y_scale"] + ens.params["y_shift"]


FEATURES = ("log_probs", "probs")


def _pool(values: Array, groups: tuple[int, ...] | None) -> Array:
    """Means over the members of each group (groups in order of first appearance)."""
    if groups is None:
        return values
    ids = list(dict.fromkeys(groups))
    weights = np.zeros((len(ids), len(groups)), np.float32)
    for j, g in enumerate(groups):
        weights[ids.index(g), j] = 1.0
    weights /= weights.sum(axis=1, keepdims=True)
    return member_sum(jnp.asarray(weights), values)


def _raw_features(preds: Array, task: str, inputs: str, features: str = "log_probs",
                  groups: tuple[int, ...] | None = None) -> Array:
    if task == "classification":
        if groups is None and features == "log_probs":
            f = log_probs(preds, inputs)  # [m, n, c]
        else:
            probs = _pool(jnp.exp(log_probs(preds, inputs)), groups)
            f = probs if features == "probs" else jnp.log(jnp.clip(probs, 1e-12, None))
        return jnp.transpose(f, (1, 0, 2)).reshape(f.shape[1], -1)
    return _pool(preds, groups).T


def _forward(meta: str, params: Any, x: Array, rowwise: bool = False) -> Array:
    """The meta-learner's outputs; ``rowwise`` (prediction) sums so that no row depends on the others."""
    matmul = row_matmul if rowwise else functools.partial(jnp.matmul, precision=FULL)
    if meta == "mlp":
        h = jax.nn.relu(matmul(x, params["w1"]) + params["b1"])
        return matmul(h, params["w2"]) + params["b2"]
    return matmul(x, params["w"]) + params["b"]


def _penalty(meta: str, params: Any) -> Array:
    if meta == "mlp":
        return jnp.sum(params["w1"] ** 2) + jnp.sum(params["w2"] ** 2)
    return jnp.sum(params["w"] ** 2)


def _fit(meta, x, targets, y_int, l2, steps, hidden, key, classification, row_w):
    """The meta-learner fit on the rows ``row_w`` weighs, with L2 penalty ``l2``, for ``steps`` iterations
    (an int array: fits of every length share one compiled loop)."""
    n, f = x.shape
    out = targets.shape[1]
    if meta == "mlp":
        k1, k2 = jax.random.split(key)
        params = {"w1": jax.random.normal(k1, (f, hidden)) / jnp.sqrt(f), "b1": jnp.zeros(hidden),
                  "w2": jax.random.normal(k2, (hidden, out)) / jnp.sqrt(hidden), "b2": jnp.zeros(out)}
    else:
        params = {"w": jnp.zeros((f, out)), "b": jnp.zeros(out)}

    row_w = row_w / jnp.sum(row_w)

    def loss(p):
        z = _forward(meta, p, x)
        if meta == "ridge" or not classification:
            data = jnp.sum(row_w * jnp.sum((z - targets) ** 2, axis=-1))
        else:
            data = jnp.sum(row_w * optax.softmax_cross_entropy_with_integer_labels(z, y_int))
        return data + l2 * _penalty(meta, p)

    if meta == "mlp":
        return minimize_first_order(loss, params, steps, optax.adam(0.01))[0]
    return minimize_lbfgs(loss, params, steps)[0]


L2_GRID = (1e-4, 1e-3, 1e-2, 1e-1)


def _held_out_loss(meta, params, x, targets, y_int, classification, held):
    z = _forward(meta, params, x)
    if classification and meta != "ridge":
        per = optax.softmax_cross_entropy_with_integer_labels(z, y_int)
    elif classification:
        per = optax.softmax_cross_entropy_with_integer_labels(4.0 * z, y_int)
    else:
        per = jnp.sum((z - targets) ** 2, axis=-1)
    return jnp.sum(held * per) / jnp.maximum(jnp.sum(held), 1.0)


def _select_and_fit(meta, x, targets, y_int, l2, auto, steps, hidden, key, classification, folds=3):
    """Fits the meta-learner on every row; with ``auto``, first chooses its L2 penalty from ``L2_GRID``.

    The choice is K-fold cross-validation (``folds`` fits of ``steps // 2`` iterations per value, the
    lowest mean held-out loss wins), as ``LogisticRegressionCV`` does. Every fit, the final one included,
    is one pass of a single loop over tasks, so one compiled fit serves them all (and a fixed ``l2``
    runs the last task only): the program compiles once, whether ``l2`` is given or chosen.

    Returns:
        ``(params, l2, losses)``: the fit, the penalty it used, and the ``[grid, folds]`` held-out
        losses (``inf`` where not computed).
    """
    n = x.shape[0]
    fold = jax.random.permutation(jax.random.fold_in(key, 99), n) % folds
    grid = jnp.asarray(L2_GRID, jnp.float32)
    num_cv = grid.shape[0] * folds

    def chosen(losses):
        mean = losses.reshape(grid.shape[0], folds).mean(axis=1)
        return grid[jnp.argmin(jnp.where(jnp.isfinite(mean), mean, jnp.inf))]

    def task(i, carry):
        losses, _, _ = carry
        cv = i < num_cv
        train = jnp.where(cv, (fold != i % folds).astype(jnp.float32), 1.0)
        penalty = jnp.where(cv, grid[jnp.minimum(i // folds, grid.shape[0] - 1)],
                            jnp.where(auto, chosen(losses), l2))
        limit = jnp.where(cv, jnp.maximum(steps // 2, 1), steps)
        params = _fit(meta, x, targets, y_int, penalty, limit, hidden, key, classification, train)
        held = _held_out_loss(meta, params, x, targets, y_int, classification, 1.0 - train)
        losses = losses.at[jnp.minimum(i, num_cv - 1)].set(jnp.where(cv, held, losses[jnp.minimum(i, num_cv - 1)]))
        return losses, params, penalty

    shapes = jax.eval_shape(lambda: _fit(meta, x, targets, y_int, l2, steps, hidden, key, classification,
                                         jnp.ones(n, jnp.float32)))
    carry = (jnp.full((num_cv,), jnp.inf, jnp.float32), jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes),
             jnp.asarray(l2, jnp.float32))
    losses, params, penalty = jax.lax.fori_loop(jnp.where(auto, 0, num_cv), num_cv + 1, task, carry)
    return params, penalty, losses.reshape(grid.shape[0], folds)


# a top-level program (fit_stacking checks its inputs on the host), compiled with jaxhpo's options: 3.6-3.9
# instead of 4.3-5.4 CPU-s of compile for the flagship's pooled stacking with l2="auto", the same run time, the
# fitted weights equal to 3e-6 (L-BFGS's rounding; fresh processes, two each)
_select_and_fit_jit = compile_options.jit(_select_and_fit, static_argnums=(0, 7, 9, 10))


def fit_stacking(
    oof_preds: Any,
    y: Any,
    *,
    meta: str = "logistic",
    l2: float | str = 1e-2,
    inputs: str = "probs",
    features: str = "log_probs",
    groups: Any = None,
    steps: int | None = None,
    hidden: int = 32,
    seed: int = 0,
) -> StackingEnsemble:
    """Fits a meta-learner on out-of-fold predictions.

    Args:
        oof_preds: ``[members, examples, classes]`` or ``[members, examples]``
            out-of-fold predictions on the training rows.
        y: ``[examples]`` labels or targets.
        meta: ``"logistic"`` (classification), ``"ridge"`` or ``"mlp"``.
        l2: L2 penalty on the meta-learner's weights, or ``"auto"``: chosen from
            ``L2_GRID`` by 3-fold cross-validation on the given rows (12 fits of half the
            steps, about 6 times the cost of one fit), as ``LogisticRegressionCV`` does; the same
            compiled program serves a given and a chosen ``l2``.
        inputs: ``"probs"`` or ``"logits"``.
        features: classification meta-features: ``"log_probs"`` (standardized
            log-probabilities, default) or ``"probs"`` (raw probabilities, as
            scikit-learn's ``StackingClassifier``; not standardized).
        groups: optional ``[members]`` group ids; members of a group are
            averaged (probabilities, or predictions for regression) into one
            meta-feature block. Use it for a population of similar networks
            stacked with a few other models.
        steps: optimizer steps (default 100 L-BFGS, 1000 Adam for the MLP).
        hidden: hidden units of the ``"mlp"`` meta-learner.
        seed: initialization seed of the ``"mlp"``.
    """
    arr, task = check_predictions(oof_preds, y, name="oof_preds")
    if meta not in META:
        raise ValueError(f"meta must be one of {META}, got meta={meta!r}")
    if task == "regression" and meta == "logistic":
        raise ValueError("meta='logistic' needs classification predictions; use 'ridge' or 'mlp' for regression")
    if not (l2 == "auto" or (isinstance(l2, (int, float)) and np.isfinite(l2) and l2 >= 0)):
        raise ValueError(f"l2 must be 'auto' or a finite number >= 0, got l2={l2!r}")
    if features not in FEATURES:
        raise ValueError(f"features must be one of {FEATURES}, got features={features!r}")
    groups = _check_groups(groups, arr.shape[0])
    if task == "classification":
        check_inputs_look_right(arr, inputs)
    classification = task == "classification"
    x, mu, sigma, targets, y_int, shift, scale = _fit_inputs(arr, np.asarray(y), task, inputs, features, groups)
    default_steps = 1000 if meta == "mlp" else 100
    key = key_from_seed(seed)  # one program (jax.random.key eagerly: two)
    steps = int(steps or default_steps)
    auto = l2 == "auto"
    params, _, _ = _select_and_fit_jit(meta, x, targets, y_int, np.float32(0.0 if auto else l2), np.bool_(auto),
                                       np.int32(steps), int(hidden), key, classification)
    if not classification:
        params = {**params, "y_shift": shift, "y_scale": scale}
    return StackingEnsemble(params, mu, sigma, meta, task, inputs, features, groups)


@functools.partial(jax.jit, static_argnums=(2, 3, 4, 5))
def _fit_inputs(arr: Array, y: Array, task: str, inputs: str, features: str, groups: tuple[int, ...] | None):
    """The standardized features with their ``mu`` and ``sigma``, the targets, int labels and the target scaling."""
    raw = _raw_features(arr, task, inputs, features, groups)
    if task == "classification" and features == "probs":
        mu, sigma = jnp.zeros(raw.shape[1]), jnp.ones(raw.shape[1])
    else:
        mu, sigma = jnp.mean(raw, axis=0), jnp.maximum(jnp.std(raw, axis=0), 1e-6)
    x = (raw - mu) / sigma
    if task == "classification":
        y_int = y.astype(jnp.int32)
        targets = jax.nn.one_hot(y_int, arr.shape[2])
        shift, scale = jnp.zeros(()), jnp.ones(())
    else:
        y_int = jnp.zeros(y.shape, jnp.int32)
        shift, scale = jnp.mean(y), jnp.maximum(jnp.std(y), 1e-12)
        targets = ((y - shift) / scale)[:, None].astype(jnp.float32)
    return x, mu, sigma, targets, y_int, shift, scale


def _check_groups(groups: Any, members: int) -> tuple[int, ...] | None:
    if groups is None:
        return None
    ids = np.asarray(groups)
    if ids.ndim != 1 or ids.shape[0] != members or not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"groups must be [members]={members} integer ids, got groups with shape {ids.shape} "
                         f"and dtype {ids.dtype}")
    return tuple(int(g) for g in ids)
