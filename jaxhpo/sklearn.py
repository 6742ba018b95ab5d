"""scikit-learn compatible estimators: ``SearchCV`` (any strategy) and fusion of any models.

``SearchCV`` behaves like ``GridSearchCV``: cross-validated scores per trial
in ``cv_results_``, ``best_params_``, ``best_score_``, ``best_estimator_``
refit on all the data, and ``predict`` / ``predict_proba`` / ``score``
delegated to it; the trials come from any jaxhpo strategy (``bayes()`` by
default) through a ``Study``. ``FusionClassifier`` and ``FusionRegressor``
fuse scikit-learn models with ``jaxhpo.ensemble`` on out-of-fold
predictions. Needs scikit-learn (``pip install 'jaxhpo[sklearn]'``).

Example:
    >>> from sklearn.datasets import load_iris
    >>> from sklearn.linear_model import LogisticRegression
    >>> import jaxhpo
    >>> from jaxhpo.sklearn import SearchCV
    >>> X, y = load_iris(return_X_y=True)
    >>> search = SearchCV(LogisticRegression(max_iter=500), {"C": jaxhpo.Float(1e-3, 1e2, log=True)},
    ...                   strategy=jaxhpo.strategies.sobol(), n_trials=6, cv=3).fit(X, y)
    >>> search.best_score_ > 0.9
    True
"""

from __future__ import annotations

import copy
import time
from typing import Any, Optional, Sequence

import numpy as np

try:
    from sklearn.base import BaseEstimator, ClassifierMixin, MetaEstimatorMixin, RegressorMixin, clone, is_classifier
    from sklearn.metrics import check_scoring
    from sklearn.model_selection import check_cv, cross_validate
    from sklearn.preprocessing import LabelEncoder
    from sklearn.utils.metaestimators import _BaseComposition, available_if
    from sklearn.utils.multiclass import check_classification_targets
    from sklearn.utils.validation import check_is_fitted, validate_data
except ImportError as e:  # pragma: no cover - exercised only without scikit-learn
    raise ImportError("jaxhpo.sklearn needs scikit-learn: pip install 'jaxhpo[sklearn]'") from e

from jaxhpo import ensemble
from jaxhpo.space import Space
from jaxhpo.study import Study, TrialState

__all__ = ["FusionClassifier", "FusionRegressor", "SearchCV"]


def _from_sklearn(name: str, value: Any) -> Any:
    """A jaxhpo parameter for what a ``RandomizedSearchCV`` user writes: a list of values, or a frozen
    ``scipy.stats`` distribution (``loguniform``, ``uniform``, ``randint``); jaxhpo parameters pass through."""
    from jaxhpo.space import Categorical, Float, Int

    if isinstance(value, (Float, Int, Categorical)):
        return value
    if isinstance(value, (list, tuple)):
        return Categorical(list(value))
    dist = getattr(getattr(value, "dist", None), "name", None)
    if dist is not None and hasattr(value, "support"):
        low, high = (float(b) for b in value.support())
        if dist in ("loguniform", "reciprocal"):
            return Float(low, high, log=True)
        if dist == "uniform":
            return Float(low, high)
        if dist == "randint":
            return Int(int(low), int(high))
        raise ValueError(f"SearchCV: space[{name!r}] is scipy.stats.{dist}, which has no jaxhpo equivalent; "
                         f"use jaxhpo.Float(low, high, log=...) (loguniform and uniform convert), jaxhpo.Int "
                         f"(randint converts) or a list of values")
    raise ValueError(f"SearchCV: space[{name!r}] must be jaxhpo.Float, Int or Categorical, a list of values or a "
                     f"scipy.stats loguniform/uniform/randint, got {value!r}")


def _as_space(space: Any) -> Space:
    if isinstance(space, Space):
        return space
    if isinstance(space, dict) and space:
        return Space({name: _from_sklearn(name, value) for name, value in space.items()})
    raise ValueError(f"space must be a jaxhpo.Space or a dict of parameters, got space={space!r}")


def _key(params: dict) -> tuple:
    return tuple(sorted((k, repr(v)) for k, v in params.items()))


def _estimator_has(attr: str):
    def check(self) -> bool:
        if hasattr(self, "best_estimator_"):
            return hasattr(self.best_estimator_, attr)
        return hasattr(self.estimator, attr)

    return check


class SearchCV(MetaEstimatorMixin, BaseEstimator):
    """Hyperparameter search over any estimator with any jaxhpo strategy, in the manner of ``GridSearchCV``.

    Args:
        estimator: a scikit-learn estimator (cloned for every fit).
        space: a ``jaxhpo.Space`` or a dict whose names are the estimator's parameters
            (``"svc__C"`` for pipelines) and whose values are jaxhpo parameters, lists of
            values (categorical) or frozen ``scipy.stats`` distributions as
            ``RandomizedSearchCV`` takes them (``loguniform(a, b)`` becomes
            ``Float(a, b, log=True)``, ``uniform(loc, scale)`` ``Float(loc, loc + scale)``,
            ``randint(a, b)`` ``Int(a, b - 1)``).
        strategy: any jaxhpo strategy; ``None`` means ``bayes()``.
        n_trials: number of parameter settings tried.
        n_iter: the same number under ``RandomizedSearchCV``'s name; when given it is used
            (giving both with different values is an error).
        n_jobs: folds of a setting fit in parallel (joblib, as ``cross_validate`` takes it;
            ``-1``: all cores).
        cv: folds or a splitter, as ``cross_validate`` takes.
        scoring: scikit-learn scoring (``None``: the estimator's ``score``); higher is better.
        executor: a ``concurrent.futures.Executor`` for trials (``batch_size`` at a time).
        refit: refit the best setting on all the data.
        random_state: seed of the study (and of nothing else).
        batch_size: trials asked and evaluated per round.
        error_score: the score of a fold whose fit raised (``"raise"`` to raise).
        progress: show a progress bar.

    Attributes:
        best_params_, best_score_, best_index_, best_estimator_, cv_results_,
        n_splits_, refit_time_, scorer_, trials_ (the study's trials, as dicts).
    """

    def __init__(self, estimator: Any, space: Any, strategy: Any = None, n_trials: int = 20, cv: Any = 5,
                 scoring: Any = None, executor: Any = None, refit: bool = True, random_state: Optional[int] = None,
                 batch_size: int = 1, error_score: Any = np.nan, progress: bool = False,
                 n_iter: Optional[int] = None, n_jobs: Optional[int] = None) -> None:
        self.estimator = estimator
        self.space = space
        self.strategy = strategy
        self.n_trials = n_trials
        self.cv = cv
        self.scoring = scoring
        self.executor = executor
        self.refit = refit
        self.random_state = random_state
        self.batch_size = batch_size
        self.error_score = error_score
        self.progress = progress
        self.n_iter = n_iter
        self.n_jobs = n_jobs

    @property
    def _estimator_type(self) -> Optional[str]:
        return getattr(self.estimator, "_estimator_type", None)

    def __sklearn_tags__(self):
        from sklearn.utils import get_tags

        tags = super().__sklearn_tags__()
        sub = get_tags(self.estimator)
        tags.estimator_type = sub.estimator_type
        tags.classifier_tags = sub.classifier_tags
        tags.regressor_tags = sub.regressor_tags
        tags.input_tags = copy.deepcopy(sub.input_tags)
        tags.target_tags = copy.deepcopy(sub.target_tags)
        return tags

    def fit(self, X: Any, y: Any = None, **fit_params: Any) -> "SearchCV":
        """Runs ``n_trials`` cross-validated trials, then refits the best one."""
        space = _as_space(self.space)
        if not isinstance(self.n_trials, (int, np.integer)) or self.n_trials < 1:
            raise ValueError(f"SearchCV: n_trials must be a positive int, got n_trials={self.n_trials!r}")
        n_trials = int(self.n_trials)
        if self.n_iter is not None:
            if not isinstance(self.n_iter, (int, np.integer)) or isinstance(self.n_iter, bool) or self.n_iter < 1:
                raise ValueError(f"SearchCV: n_iter must be a positive int, got n_iter={self.n_iter!r}")
            if self.n_trials != 20 and self.n_trials != self.n_iter:
                raise ValueError(f"SearchCV: n_trials={self.n_trials} and n_iter={self.n_iter} disagree; they "
                                 f"name the same number, give one")
            n_trials = int(self.n_iter)
        params = self.estimator.get_params()
        unknown = [name for name in space.names if name not in params]
        if unknown:
            raise ValueError(f"SearchCV: {unknown} are not parameters of {type(self.estimator).__name__}; its "
                             f"parameters are {sorted(params)}")
        cv = check_cv(self.cv, y, classifier=is_classifier(self.estimator))
        scorer = check_scoring(self.estimator, self.scoring)
        seed = 0 if self.random_state is None else int(self.random_state)
        study = Study(space, self.strategy, direction="maximize", seed=seed)
        records: dict = {}
        error_score = self.error_score

        def scored(p: dict) -> float:
            est = clone(self.estimator).set_params(**p)
            out = cross_validate(est, X, y, cv=cv, scoring=scorer, params=fit_params or None,
                                 error_score=error_score, return_train_score=False, n_jobs=self.n_jobs)
            scores = np.asarray(out["test_score"], np.float64)
            records[_key(p)] = scores  # per-split scores (kept when trials run in this process)
            return float(np.mean(scores))

        study.optimize(scored, n_trials=n_trials, batch_size=int(self.batch_size), executor=self.executor,
                       progress=self.progress, catch=(Exception,) if error_score != "raise" else ())
        trials = study.trials
        n_splits = cv.get_n_splits(X, y)
        split_scores = np.full((len(trials), n_splits), np.nan)
        for i, t in enumerate(trials):
            if _key(t.params) in records:
                split_scores[i] = records[_key(t.params)]
        means = np.array([t.value if t.state is TrialState.COMPLETE else np.nan for t in trials], np.float64)
        if not np.any(np.isfinite(means)):
            # surface the estimator's own error (its type and message), as a plain fit would
            clone(self.estimator).set_params(**trials[0].params).fit(X, y, **fit_params)
            errors = [t.error for t in trials if t.error]
            raise ValueError(f"SearchCV: all {len(trials)} trials failed; first error: {errors[0] if errors else None}")
        results: dict[str, Any] = {"params": [dict(t.params) for t in trials]}
        for name in space.names:
            results[f"param_{name}"] = np.ma.MaskedArray(np.array([t.params[name] for t in trials], dtype=object),
                                                         mask=False)
        for k in range(n_splits):
            results[f"split{k}_test_score"] = split_scores[:, k]
        results["mean_test_score"] = means
        results["std_test_score"] = np.nanstd(split_scores, axis=1) if np.isfinite(split_scores).any() else means * 0
        order = np.argsort(np.where(np.isfinite(means), -means, np.inf), kind="stable")
        rank = np.empty(len(trials), np.int32)
        rank[order] = np.arange(1, len(trials) + 1)
        results["rank_test_score"] = rank
        results["state"] = np.array([t.state.value for t in trials])
        self.cv_results_ = results
        self.best_index_ = int(order[0])
        self.best_params_ = dict(trials[self.best_index_].params)
        self.best_score_ = float(means[self.best_index_])
        self.n_splits_ = n_splits
        self.scorer_ = scorer
        self.trials_ = [{"number": t.number, "params": dict(t.params), "value": t.value, "state": t.state.value}
                        for t in trials]
        if self.refit:
            start = time.perf_counter()
            self.best_estimator_ = clone(self.estimator).set_params(**self.best_params_)
            self.best_estimator_.fit(X, y, **fit_params)
            self.refit_time_ = time.perf_counter() - start
            if hasattr(self.best_estimator_, "n_features_in_"):
                self.n_features_in_ = self.best_estimator_.n_features_in_
            if hasattr(self.best_estimator_, "feature_names_in_"):
                self.feature_names_in_ = self.best_estimator_.feature_names_in_
        return self

    def _check_refit(self) -> None:
        check_is_fitted(self)
        if not self.refit:
            raise AttributeError("SearchCV was created with refit=False; no best_estimator_ to predict with")

    @property
    def classes_(self) -> np.ndarray:
        self._check_refit()
        return self.best_estimator_.classes_

    @available_if(_estimator_has("predict"))
    def predict(self, X: Any) -> np.ndarray:
        self._check_refit()
        return self.best_estimator_.predict(X)

    @available_if(_estimator_has("predict_proba"))
    def predict_proba(self, X: Any) -> np.ndarray:
        self._check_refit()
        return self.best_estimator_.predict_proba(X)

    @available_if(_estimator_has("predict_log_proba"))
    def predict_log_proba(self, X: Any) -> np.ndarray:
        self._check_refit()
        return self.best_estimator_.predict_log_proba(X)

    @available_if(_estimator_has("decision_function"))
    def decision_function(self, X: Any) -> np.ndarray:
        self._check_refit()
        return self.best_estimator_.decision_function(X)

    @available_if(_estimator_has("transform"))
    def transform(self, X: Any) -> np.ndarray:
        self._check_refit()
        return self.best_estimator_.transform(X)

    @available_if(_estimator_has("score"))
    def score(self, X: Any, y: Any = None) -> float:
        """The scorer on ``X, y`` with the best estimator (as ``GridSearchCV``)."""
        self._check_refit()
        return float(self.scorer_(self.best_estimator_, X, y))


# ----------------------------------------------------------------------------- fusion

CLASSIFIER_METHODS = ("weights", "stacking", "greedy", "vote")


def _estimator_list(estimators: Any) -> list:
    if not isinstance(estimators, (list, tuple)) or not estimators:
        raise ValueError(f"estimators must be a non-empty list of (name, estimator) pairs, got {estimators!r}")
    out = []
    for item in estimators:
        if not (isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str)):
            raise ValueError(f"estimators must hold (name, estimator) pairs, got {item!r}")
        out.append(item[1])
    return out


def _seeded(estimator: Any, seed: int) -> Any:
    """A clone of ``estimator`` whose unset ``random_state`` parameters (nested ones too) are ``seed``."""
    estimator = clone(estimator)
    unset = {k: seed for k, v in estimator.get_params(deep=True).items()
             if (k == "random_state" or k.endswith("__random_state")) and v is None}
    return estimator.set_params(**unset) if unset else estimator


class _Fusion(MetaEstimatorMixin, _BaseComposition):
    """Members' parameters are the fusion's, as in ``StackingClassifier``: ``get_params(deep=True)``
    lists ``name__param`` for every member, ``set_params(name__param=...)`` or ``set_params(name=estimator)``
    changes one, so ``GridSearchCV``/``SearchCV`` tune members and ``set_random_state`` seeds them."""

    def get_params(self, deep: bool = True) -> dict:
        return self._get_params("estimators", deep=deep)

    def set_params(self, **params: Any) -> "_Fusion":
        self._set_params("estimators", **params)
        return self

    def _fit_members(self, X: np.ndarray, y: np.ndarray, classification: bool):
        members = _estimator_list(self.estimators)
        if self.method not in CLASSIFIER_METHODS:
            raise ValueError(f"method must be one of {CLASSIFIER_METHODS}, got method={self.method!r}")
        cv = self.cv
        if isinstance(cv, (int, np.integer)):  # no more folds than the rarest class (or the rows) allows
            cv = int(cv)
            if classification:
                cv = min(cv, int(np.bincount(y).min()))
            cv = min(cv, X.shape[0])
            if cv < 2:
                raise ValueError(f"{type(self).__name__}: needs at least 2 samples per class for cross-validation")
        seed = 0 if self.random_state is None else self.random_state
        if self.random_state is not None:  # members left unseeded get seeds derived from the fusion's
            members = [_seeded(m, int(self.random_state) + i) for i, m in enumerate(members)]
        oof, fitted = ensemble.cross_val_predictions(members, X, y, cv=cv, random_state=seed)
        self.estimators_ = fitted
        return oof


class FusionClassifier(ClassifierMixin, _Fusion):
    """Fuses classifiers on their out-of-fold probabilities with ``jaxhpo.ensemble``.

    Args:
        estimators: ``[(name, classifier), ...]``, each with ``predict_proba``.
        method: ``"weights"`` (Optax-learned simplex weights), ``"stacking"``
            (logistic meta-learner), ``"greedy"`` (Caruana selection) or ``"vote"`` (soft voting).
        cv: folds (or a splitter) for the out-of-fold predictions.
        random_state: seed of the default splitter.

    Example:
        >>> from sklearn.datasets import load_iris
        >>> from sklearn.linear_model import LogisticRegression
        >>> from sklearn.naive_bayes import GaussianNB
        >>> X, y = load_iris(return_X_y=True)
        >>> clf = FusionClassifier([("lr", LogisticRegression(max_iter=500)), ("nb", GaussianNB())]).fit(X, y)
        >>> clf.score(X, y) > 0.9
        True
    """

    def __init__(self, estimators: Sequence = (), method: str = "weights", cv: Any = 5,
                 random_state: Optional[int] = None) -> None:
        self.estimators = estimators
        self.method = method
        self.cv = cv
        self.random_state = random_state

    def fit(self, X: Any, y: Any) -> "FusionClassifier":
        X, y = validate_data(self, X, y, accept_sparse=False, dtype=np.float64)
        check_classification_targets(y)
        self._encoder = LabelEncoder().fit(y)
        self.classes_ = self._encoder.classes_
        if X.shape[0] < 2:
            raise ValueError(f"FusionClassifier needs several samples per class, got n_samples={X.shape[0]}")
        if self.classes_.size < 2:
            raise ValueError(f"FusionClassifier needs at least 2 classes, got {self.classes_.size}")
        y_enc = self._encoder.transform(y)
        oof = self._fit_members(X, y_enc, classification=True)
        if self.method == "weights":
            self.fusion_ = ensemble.fit_weights(oof, y_enc)
        elif self.method == "stacking":
            self.fusion_ = ensemble.fit_stacking(oof, y_enc)
        elif self.method == "greedy":
            self.fusion_ = ensemble.greedy_selection(oof, y_enc, size=25)
        else:
            self.fusion_ = ensemble.uniform(oof)
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=np.float64)
        preds = ensemble.model_predictions(self.estimators_, X)
        p = np.asarray(self.fusion_.predict_proba(preds), np.float64)
        return p / p.sum(axis=1, keepdims=True)

    def predict(self, X: Any) -> np.ndarray:
        check_is_fitted(self)
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


class FusionRegressor(RegressorMixin, _Fusion):
    """Fuses regressors on their out-of-fold predictions with ``jaxhpo.ensemble``.

    Args:
        estimators: ``[(name, regressor), ...]``.
        method: ``"weights"`` (non-negative weights and an intercept, fit by Optax
            L-BFGS on cross-validated predictions: linear fusion), ``"stacking"``
            (ridge meta-learner), ``"greedy"`` (Caruana selection on MSE) or ``"vote"`` (mean).
        cv: folds (or a splitter) for the out-of-fold predictions.
        random_state: seed of the default splitter.

    Example:
        >>> from sklearn.datasets import load_diabetes
        >>> from sklearn.linear_model import LinearRegression
        >>> from sklearn.tree import DecisionTreeRegressor
        >>> X, y = load_diabetes(return_X_y=True)
        >>> reg = FusionRegressor([("lin", LinearRegression()), ("tree", DecisionTreeRegressor(max_depth=3))]).fit(X, y)
        >>> reg.score(X, y) > 0.4
        True
    """

    def __init__(self, estimators: Sequence = (), method: str = "weights", cv: Any = 5,
                 random_state: Optional[int] = None) -> None:
        self.estimators = estimators
        self.method = method
        self.cv = cv
        self.random_state = random_state

    def fit(self, X: Any, y: Any) -> "FusionRegressor":
        X, y = validate_data(self, X, y, accept_sparse=False, dtype=np.float64, y_numeric=True)
        y = np.asarray(y, np.float64)
        if y.ndim != 1:
            raise ValueError(f"FusionRegressor supports a single target, got y of shape {y.shape}")
        if X.shape[0] < 2:
            raise ValueError(f"FusionRegressor needs several samples, got n_samples={X.shape[0]}")
        oof = self._fit_members(X, y, classification=False)
        if self.method == "weights":
            self.fusion_ = ensemble.fit_weights(oof, y, constraint="nonneg", intercept=True)
        elif self.method == "stacking":
            self.fusion_ = ensemble.fit_stacking(oof, y, meta="ridge")
        elif self.method == "greedy":
            self.fusion_ = ensemble.greedy_selection(oof, y, size=25, metric="mse")
        else:
            self.fusion_ = ensemble.uniform(oof)
        return self

    def predict(self, X: Any) -> np.ndarray:
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=np.float64)
        preds = ensemble.model_predictions(self.estimators_, X)
        return np.asarray(self.fusion_.predict(preds), np.float64)

