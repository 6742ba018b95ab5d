"""K-fold cross-validation of a whole population: members x folds in one compiled call.

Each (member, fold) pair is one task of ``Population``: it trains on the
rows outside its fold and is evaluated on the rows inside it, so the
validation predictions of the K folds put together are out-of-fold
predictions for every row, the input stacking needs.

Example:
    >>> import jax, jax.numpy as jnp, optax
    >>> from jaxhpo import population
    >>> x = jax.random.normal(jax.random.key(0), (60, 3)); y = (x[:, 0] > 0).astype(jnp.int32)
    >>> cv = population.cross_validate(lambda h: population.MLP(hidden=(8,), outputs=2),
    ...     {"learning_rate": jnp.array([1e-2, 3e-2])}, x, y, folds=3, epochs=2, batch_size=16,
    ...     key=jax.random.key(0))
    >>> cv.oof_predictions.shape, cv.val_loss.shape
    ((2, 60, 2), (2, 3, 2))
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, NamedTuple, Optional, Union

import jax
import jax.numpy as jnp
import numpy as np

from jaxhpo.population.population import Population, PopulationState

Array = jax.Array


class CVResult(NamedTuple):
    """What ``cross_validate`` returns.

    Attributes:
        state: the final state of every (member, fold) task, member-major.
        train_loss: ``[members, folds, epochs]``.
        val_loss: ``[members, folds, epochs]`` loss on each fold's held-out rows.
        val_accuracy: ``[members, folds, epochs]`` (NaN for regression).
        oof_predictions: ``[members, n, ...]``: each row predicted by the model
            that did not train on it (probabilities for classification).
        fold: ``[n]`` the fold of each row.
        hparams: per-member hyperparameters.
    """

    state: PopulationState
    train_loss: Array
    val_loss: Array
    val_accuracy: Array
    oof_predictions: Array
    fold: np.ndarray
    hparams: dict[str, Array]

    @property
    def mean_val_loss(self) -> Array:
        """``[members, epochs]`` validation loss averaged over folds."""
        return jnp.mean(self.val_loss, axis=1)


def kfold(n: int, folds: int, y: Optional[Any] = None, seed: int = 0) -> np.ndarray:
    """Fold index of each of ``n`` rows, shuffled; stratified by class when ``y`` is given.

    Each class's rows are dealt round-robin to the folds after a shuffle, so
    fold sizes differ by at most one per class (as ``StratifiedKFold``).
    """
    if not isinstance(folds, (int, np.integer)) or not 2 <= folds <= n:
        raise ValueError(f"folds must be an int in [2, n={n}], got folds={folds!r}")
    rng = np.random.default_rng(seed)
    fold = np.empty(n, np.int32)
    if y is None:
        fold[rng.permutation(n)] = np.arange(n) % folds
        return fold
    y = np.asarray(y)
    offset = 0
    for c in np.unique(y):
        rows = np.flatnonzero(y == c)
        fold[rng.permutation(rows)] = (np.arange(rows.size) + offset) % folds
        offset += rows.size
    return fold


def fold_views(fold: np.ndarray) -> tuple:
    """``(train_idx [K, n_max], n_train [K], eval_idx [K, m_max], n_eval [K])``, padded with row 0."""
    fold = np.asarray(fold)
    ks = np.unique(fold)
    trains = [np.flatnonzero(fold != k) for k in ks]
    evals = [np.flatnonzero(fold == k) for k in ks]

    def pad(parts):
        width = max(p.size for p in parts)
        out = np.zeros((len(parts), width), np.int32)
        for i, p in enumerate(parts):
            out[i, : p.size] = p
        return jnp.asarray(out), jnp.asarray([p.size for p in parts], jnp.int32)

    return (*pad(trains), *pad(evals))


def cross_validate(
    model_fn: Callable[[dict], Any],
    hparams: Mapping[str, Any],
    x: Any,
    y: Any,
    *,
    key: Array,
    folds: Union[int, Any] = 5,
    stratify: Optional[bool] = None,
    seed: int = 0,
    epochs: Optional[int] = None,
    **options: Any,
) -> CVResult:
    """Cross-validates every member with K folds in one compiled call.

    Args:
        model_fn, hparams, key, epochs, options: as ``population.train``.
        x, y: all the data; the folds split it.
        folds: the number of folds, or an explicit ``[n]`` array of fold ids
            (for instance from a scikit-learn splitter).
        stratify: stratify the folds by label (default: for classification).
        seed: seed of the fold assignment.

    Returns:
        A ``CVResult`` with out-of-fold predictions.
    """
    x, y = jnp.asarray(x), jnp.asarray(y)
    n = x.shape[0]
    if y.shape[0] != n:
        raise ValueError(f"x and y differ in length: {n} != {y.shape[0]}")
    if isinstance(folds, (int, np.integer)):
        if stratify is None:
            stratify = jnp.issubdtype(y.dtype, jnp.integer)
        fold = kfold(n, int(folds), np.asarray(y) if stratify else None, seed)
    else:
        fold = np.asarray(folds)
        if fold.shape != (n,):
            raise ValueError(f"folds must be an int or an [n]={n} array of fold ids, got shape {fold.shape}")
        if np.unique(fold).size < 2:
            raise ValueError(f"folds must hold at least 2 distinct fold ids, got {np.unique(fold)}")
    views = fold_views(fold)
    k = views[0].shape[0]
    if epochs is not None:
        options["max_epochs"] = epochs
    pop = Population(model_fn, x, y, x, y, views=views, **options)
    state, (train_loss, val_loss, val_acc), preds = pop.fit(hparams, key)
    members = state.epoch.shape[0] // k
    preds = np.asarray(preds).reshape((members, k) + preds.shape[1:])
    oof = np.zeros((members, n) + preds.shape[3:], preds.dtype)
    eval_idx, n_eval = np.asarray(views[2]), np.asarray(views[3])
    for j in range(k):
        rows = eval_idx[j, : n_eval[j]]
        oof[:, rows] = preds[:, j, : n_eval[j]]
    shape = lambda a: a.reshape((members, k) + a.shape[1:])  # noqa: E731
    hp = {name: v[::k] for name, v in state.hparams.items()}
    return CVResult(state, shape(train_loss), shape(val_loss), shape(val_acc), jnp.asarray(oof), fold, hp)
