"""Predictions of any models for fusion: out-of-fold helpers for scikit-learn estimators, serial fusion.

``cross_val_predictions`` turns a list of scikit-learn-style estimators into
the ``[members, examples, classes]`` out-of-fold array the fusion methods
take (each row predicted by a clone that did not train on it), plus the
estimators refit on all rows for prediction. ``SerialFusion`` chains
models, each stage seeing the inputs and the previous stages' out-of-fold
outputs. Needs scikit-learn (``pip install jaxhpo[sklearn]``).

Example:
    >>> from sklearn.datasets import load_iris
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.naive_bayes import GaussianNB
    >>> from jaxhpo import ensemble
    >>> X, y = load_iris(return_X_y=True)
    >>> oof, fitted = ensemble.cross_val_predictions([LogisticRegression(max_iter=500), GaussianNB()], X, y, cv=3)
    >>> oof.shape, len(fitted)
    ((2, 150, 3), 2)
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np


def _sklearn():
    try:
        import sklearn  # noqa: F401
    except ImportError as e:  # pragma: no cover - exercised only without sklearn
        raise ImportError("this needs scikit-learn: pip install 'jaxhpo[sklearn]'") from e


def _is_classifier(estimator: Any) -> bool:
    from sklearn.base import is_classifier

    return bool(is_classifier(estimator))


def _splitter(cv: Any, classification: bool, random_state: Optional[int]):
    from sklearn.model_selection import KFold, StratifiedKFold

    if isinstance(cv, (int, np.integer)):
        if cv < 2:
            raise ValueError(f"cv must be >= 2 folds, got cv={cv!r}")
        cls = StratifiedKFold if classification else KFold
        return cls(n_splits=int(cv), shuffle=True, random_state=random_state)
    if not hasattr(cv, "split"):
        raise ValueError(f"cv must be an int or a scikit-learn splitter, got cv={cv!r}")
    return cv


def model_predictions(estimators: Sequence[Any], X: Any) -> np.ndarray:
    """``[members, examples, classes]`` probabilities (classifiers) or ``[members, examples]`` predictions."""
    outs = []
    for est in estimators:
        outs.append(est.predict_proba(X) if _is_classifier(est) else est.predict(X))
    return np.stack(outs).astype(np.float32)


def cross_val_predictions(
    estimators: Sequence[Any],
    X: Any,
    y: Any,
    *,
    cv: Any = 5,
    random_state: Optional[int] = 0,
    refit: bool = True,
) -> tuple[np.ndarray, list]:
    """Out-of-fold predictions of every estimator, and the estimators refit on all rows.

    Args:
        estimators: unfitted scikit-learn estimators (classifiers with
            ``predict_proba``, or regressors); each is cloned per fold.
        X, y: training data.
        cv: number of folds (stratified for classifiers) or a splitter.
        random_state: seed of the default splitter's shuffle.
        refit: also fit a clone of each estimator on all rows.

    Returns:
        ``(oof, fitted)``: ``oof`` is ``[members, n, classes]`` or ``[members, n]``;
        row ``i`` comes from a model fit without row ``i``.
    """
    _sklearn()
    from sklearn.base import clone

    if not estimators:
        raise ValueError("estimators must be a non-empty list")
    kinds = {_is_classifier(e) for e in estimators}
    if len(kinds) != 1:
        raise ValueError("estimators must be all classifiers or all regressors")
    classification = kinds.pop()
    X, y = np.asarray(X), np.asarray(y)
    if X.shape[0] != y.shape[0]:
        raise ValueError(f"X and y differ in length: {X.shape[0]} != {y.shape[0]}")
    splits = list(_splitter(cv, classification, random_state).split(X, y))
    classes = np.unique(y) if classification else None
    oof = None
    for m, est in enumerate(estimators):
        for train, test in splits:
            model = clone(est).fit(X[train], y[train])
            if classification:
                p = np.zeros((test.size, classes.size), np.float32)
                p[:, np.searchsorted(classes, model.classes_)] = model.predict_proba(X[test])
            else:
                p = np.asarray(model.predict(X[test]), np.float32)
            if oof is None:
                oof = np.zeros((len(estimators), X.shape[0]) + p.shape[1:], np.float32)
            oof[m, test] = p
    fitted = [clone(e).fit(X, y) for e in estimators] if refit else []
    return oof, fitted


class SerialFusion:
    """Models in series: stage ``k`` learns from the inputs plus the outputs of stages ``< k``.

    While fitting, the outputs passed on are out-of-fold (a stage never sees
    outputs of a model that trained on the same row); at prediction time the
    stages refit on all rows run in order. The last stage's output is the
    prediction.

    Args:
        stages: scikit-learn estimators, in order.
        cv: folds (or splitter) for the out-of-fold outputs.
        passthrough: give every stage the original inputs too (default True).
        random_state: seed of the default splitter.

    Example:
        >>> from sklearn.datasets import load_iris
        >>> from sklearn.linear_model import LogisticRegression
        >>> from sklearn.naive_bayes import GaussianNB
        >>> X, y = load_iris(return_X_y=True)
        >>> model = SerialFusion([GaussianNB(), LogisticRegression(max_iter=500)], cv=3).fit(X, y)
        >>> model.predict(X[:2]).tolist()
        [0, 0]
    """

    def __init__(self, stages: Sequence[Any], cv: Any = 5, passthrough: bool = True,
                 random_state: Optional[int] = 0) -> None:
        if not stages:
            raise ValueError("stages must be a non-empty list of estimators")
        self.stages, self.cv, self.passthrough, self.random_state = list(stages), cv, passthrough, random_state

    def _outputs(self, model: Any, X: np.ndarray) -> np.ndarray:
        return model_predictions([model], X)[0].reshape(X.shape[0], -1)

    def fit(self, X: Any, y: Any) -> "SerialFusion":
        _sklearn()
        from sklearn.base import clone

        X, y = np.asarray(X, np.float32), np.asarray(y)
        features, self.fitted_ = X, []
        for stage in self.stages[:-1]:
            oof, [fitted] = cross_val_predictions([stage], features, y, cv=self.cv, random_state=self.random_state)
            self.fitted_.append(fitted)
            out = oof[0].reshape(X.shape[0], -1)
            features = np.hstack([features, out]) if self.passthrough else out
        self.fitted_.append(clone(self.stages[-1]).fit(features, y))
        return self

    def _final_features(self, X: Any) -> np.ndarray:
        X = np.asarray(X, np.float32)
        features = X
        for model in self.fitted_[:-1]:
            out = self._outputs(model, features)
            features = np.hstack([features, out]) if self.passthrough else out
        return features

    def predict(self, X: Any) -> np.ndarray:
        return self.fitted_[-1].predict(self._final_features(X))

    def predict_proba(self, X: Any) -> np.ndarray:
        return self.fitted_[-1].predict_proba(self._final_features(X))
