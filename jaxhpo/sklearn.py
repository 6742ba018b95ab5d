"""scikit-learn compatible estimators: ``SearchCV`` (any strategy) and fusion of any models.

``SearchCV`` is scikit-learn's ``BaseSearchCV`` driven by a jaxhpo strategy: cross-validated scores per trial
in ``cv_results_``, ``best_params_``, ``best_score_``, ``best_estimator_``
refit on all the data, and ``predict`` / ``predict_proba`` / ``score``
delegated to it; the trials come from any jaxhpo strategy (``bayes()`` by
default) through a ``Study``. ``FusionClassifier`` and ``FusionRegressor``
fuse scikit-learn models with ``jaxhpo.ensemble`` on out-of-fold
predictions (one module of about 440 lines: the three estimators share the
conversions from scikit-learn's conventions). Needs scikit-learn (``pip install 'jaxhpo[sklearn]'``).

Example:
    >>> from sklearn.datasets import load_iris
    >>> from sklearn.linear_model import LogisticRegression
    >>> import jaxhpo
    >>> from jaxhpo.sklearn import SearchCV
    >>> X, y = load_iris(return_X_y=True)
    >>> search = SearchCV(LogisticRegression(max_iter=500), {"C": jaxhpo.Float(1e-3, 1e2, log=True)},
    ...                   strategy=jaxhpo.strategies.sobol(), n_trials=6, cv=3).fit(X, y)
    >>> bool(search.best_score_ > 0.9)
    True
"""

from __future__ import annotations

import copy
import threading
import warnings
from typing import Any, Optional, Sequence

import numpy as np

try:
    from sklearn.base import BaseEstimator, ClassifierMixin, MetaEstimatorMixin, RegressorMixin, clone, is_classifier
    from sklearn.exceptions import FitFailedWarning
    from sklearn.model_selection import _search as _sklearn_search
    from sklearn.model_selection._search import BaseSearchCV
    from sklearn.preprocessing import LabelEncoder
    from sklearn.utils import Bunch
    from sklearn.utils.metaestimators import _BaseComposition
    from sklearn.utils.multiclass import check_classification_targets
    from sklearn.utils.validation import check_is_fitted, validate_data
except ImportError as e:  # pragma: no cover - exercised only without scikit-learn
    raise ImportError("jaxhpo.sklearn needs scikit-learn: pip install 'jaxhpo[sklearn]'") from e

from jaxhpo import ensemble
from jaxhpo.space import Space
from jaxhpo._checks import positive_int
from jaxhpo.progress import progress_bar
from jaxhpo.strategies.base import SpaceExhausted
from jaxhpo.study import Study

__all__ = ["FusionClassifier", "FusionRegressor", "SearchCV"]


# scikit-learn raises "All the N fits failed" per call of evaluate_candidates. RandomizedSearchCV makes one
# call for every candidate; SearchCV makes one per batch of trials, so a single misconfigured candidate would
# end the whole search. While a SearchCV runs its trials, a batch whose fits all failed is warned about (its
# scores are error_score, as RandomizedSearchCV records them) and the error is raised only when every fit of
# the search failed. Other searches, and other threads, get scikit-learn's function unchanged.
_searching = threading.local()
_sklearn_fit_failures = _sklearn_search._warn_or_raise_about_fit_failures


def _fit_failures_per_search(results: list, error_score: Any) -> None:
    outs = getattr(_searching, "outs", None)
    if outs is None:
        return _sklearn_fit_failures(results, error_score)
    outs.extend(results)
    errors = [r["fit_error"] for r in results if r["fit_error"] is not None]
    if errors and len(errors) == len(results):
        warnings.warn(f"\nAll the {len(results)} fits of this batch of candidates failed; their score is "
                      f"error_score={error_score} and the search goes on. The first error:\n{errors[0]}",
                      FitFailedWarning)
        return None
    return _sklearn_fit_failures(results, error_score)


_sklearn_search._warn_or_raise_about_fit_failures = _fit_failures_per_search


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


class SearchCV(BaseSearchCV):
    """Hyperparameter search over any estimator with any jaxhpo strategy, on scikit-learn's ``BaseSearchCV``.

    It is ``RandomizedSearchCV`` with a jaxhpo strategy choosing the settings:
    the same ``cv_results_`` (split and mean scores, fit and score times,
    ranks, train scores on request), multi-metric ``scoring``, ``refit`` as a
    bool, a metric name or a callable, ``error_score``, ``n_jobs`` and
    ``verbose``, the same ``best_*`` attributes and delegated methods
    (scikit-optimize's ``BayesSearchCV`` is built the same way).

    Args:
        estimator: a scikit-learn estimator (cloned for every fit).
        space: a ``jaxhpo.Space`` or a dict whose names are the estimator's parameters
            (``"svc__C"`` for pipelines) and whose values are jaxhpo parameters, lists of
            values (categorical) or frozen ``scipy.stats`` distributions as
            ``RandomizedSearchCV`` takes them (``loguniform(a, b)`` becomes
            ``Float(a, b, log=True)``, ``uniform(loc, scale)`` ``Float(loc, loc + scale)``,
            ``randint(a, b)`` ``Int(a, b - 1)``).
        strategy: any jaxhpo strategy; ``None`` means ``Study``'s default (``bayes()``).
        n_trials: number of parameter settings tried.
        n_iter: the same number under ``RandomizedSearchCV``'s name; when given it is used
            (giving both with different values is an error).
        cv: folds or a splitter, as ``GridSearchCV`` takes.
        scoring: a scorer name, a callable, or a list/dict of them (multi-metric); the
            strategy maximizes the ``refit`` metric when ``refit`` names one, else the
            first metric.
        n_jobs: fits run in parallel (joblib; every fold of a batch of ``batch_size``
            settings at once; ``-1``: all cores).
        refit: refit the best setting on all the data: True, a metric name (multi-metric),
            a callable choosing ``best_index_`` from ``cv_results_``, or False.
        random_state: seed of the study (and of nothing else).
        batch_size: settings asked from the strategy and evaluated per round.
        error_score: the score of a fold whose fit raised (``"raise"`` to raise); a setting
            whose score is not finite is a failed trial to the strategy.
        return_train_score: add ``split*_train_score`` and ``mean_train_score``.
        verbose: scikit-learn's verbosity.
        progress: show a progress bar over trials.

    Attributes:
        best_params_, best_score_, best_index_, best_estimator_, cv_results_, n_splits_,
        refit_time_, scorer_, multimetric_ (as ``RandomizedSearchCV``); ``study_``, the
        ``jaxhpo.Study`` that chose the settings (for ``jaxhpo.plots``, ``export_study``;
        not pickled with the estimator); ``trials_`` (its trials, as dicts).
    """

    def __init__(self, estimator: Any, space: Any, strategy: Any = None, n_trials: int = 20, cv: Any = 5,
                 scoring: Any = None, n_jobs: Optional[int] = None, refit: Any = True,
                 random_state: Optional[int] = None, batch_size: int = 1, error_score: Any = np.nan,
                 progress: bool = False, n_iter: Optional[int] = None, return_train_score: bool = False,
                 verbose: int = 0, pre_dispatch: Any = "2*n_jobs") -> None:
        super().__init__(estimator=estimator, scoring=scoring, n_jobs=n_jobs, refit=refit, cv=cv, verbose=verbose,
                         pre_dispatch=pre_dispatch, error_score=error_score, return_train_score=return_train_score)
        self.space = space
        self.strategy = strategy
        self.n_trials = n_trials
        self.random_state = random_state
        self.batch_size = batch_size
        self.progress = progress
        self.n_iter = n_iter

    def __sklearn_tags__(self):
        from sklearn.utils import get_tags

        tags = super().__sklearn_tags__()  # BaseSearchCV's, with the estimator's input and target tags too
        sub = get_tags(self.estimator)
        tags.input_tags = copy.deepcopy(sub.input_tags)
        tags.target_tags = copy.deepcopy(sub.target_tags)
        return tags

    def _budget(self) -> int:
        n_trials = positive_int("SearchCV", "n_trials", self.n_trials)
        if self.n_iter is None:
            return n_trials
        n_iter = positive_int("SearchCV", "n_iter", self.n_iter)
        if n_trials != 20 and n_trials != n_iter:
            raise ValueError(f"SearchCV: n_trials={self.n_trials} and n_iter={self.n_iter} disagree; they "
                             f"name the same number, give one")
        return n_iter

    def fit(self, X: Any, y: Any = None, **params: Any) -> "SearchCV":
        """Runs the trials (cross-validated, ``batch_size`` at a time), then refits as ``refit`` says.

        Args:
            X: training data.
            y: targets.
            **params: passed to the estimator's ``fit`` (and routed as scikit-learn routes them).
        """
        self._space = _as_space(self.space)
        self._n_trials = self._budget()
        self._batch_size = positive_int("SearchCV", "batch_size", self.batch_size)
        from sklearn.utils import get_tags

        if y is None and get_tags(self.estimator).target_tags.required:
            raise ValueError(f"SearchCV: {type(self.estimator).__name__} requires y to be passed, but the target y "
                             f"is None")
        names = self.estimator.get_params()
        unknown = [name for name in self._space.names if name not in names]
        if unknown:
            raise ValueError(f"SearchCV: {unknown} are not parameters of {type(self.estimator).__name__}; its "
                             f"parameters are {sorted(names)}")
        super().fit(X, y, **params)
        trials = self.study_.trials
        self.trials_ = [{"number": t.number, "params": dict(t.params), "value": t.value, "state": t.state.value}
                        for t in trials]
        return self

    def __getstate__(self) -> dict:
        # the study holds compiled programs, which do not pickle; its trials stay in trials_
        state = dict(super().__getstate__())  # a copy: object.__getstate__ hands back __dict__ itself
        state.pop("study_", None)
        return state

    def _objective_key(self, results: dict) -> str:
        if isinstance(self.refit, str):
            return f"mean_test_{self.refit}"
        if "mean_test_score" in results:
            return "mean_test_score"
        return next(k for k in results if k.startswith("mean_test_"))  # the first metric of a multi-metric scoring

    def _run_search(self, evaluate_candidates: Any) -> None:
        """Asks the strategy for settings, has scikit-learn evaluate them, tells the strategy their scores."""
        seed = 0 if self.random_state is None else int(self.random_state)
        study = Study(self._space, self.strategy, direction="maximize", seed=seed)
        study.reserve(self._n_trials)
        self.study_ = study
        bar = progress_bar(self._n_trials, self.progress)
        done = 0
        outer = getattr(_searching, "outs", None)  # a SearchCV inside another one's fits, in this thread
        _searching.outs = []  # every fit's result, to raise as scikit-learn does if all of them failed
        try:
            while done < self._n_trials:
                try:
                    trials = study.ask(min(self._batch_size, self._n_trials - done))
                except SpaceExhausted:
                    break  # a finite space is fully evaluated
                results = evaluate_candidates([dict(t.params) for t in trials])
                scores = np.asarray(results[self._objective_key(results)], np.float64)[-len(trials):]
                for trial, score in zip(trials, scores):
                    study.tell(trial, float(score))  # NaN (every fold failed): a failed trial
                done += len(trials)
                if bar is not None:
                    bar.update(len(trials))
            outs = _searching.outs
        finally:
            _searching.outs = outer
            if bar is not None:
                bar.close()
        if outs and all(r["fit_error"] is not None for r in outs):
            _sklearn_fit_failures(outs, self.error_score)  # scikit-learn's "All the N fits failed" error


# ----------------------------------------------------------------------------- fusion

CLASSIFIER_METHODS = ("weights", "stacking", "greedy", "vote")


def _estimator_list(estimators: Any) -> list:
    """The ``(name, estimator)`` pairs to fit: members set to ``"drop"`` left out (as ``StackingClassifier``)."""
    if not isinstance(estimators, (list, tuple)) or not estimators:
        raise ValueError(f"estimators must be a non-empty list of (name, estimator) pairs, got {estimators!r}")
    out = []
    for item in estimators:
        if not (isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str)):
            raise ValueError(f"estimators must hold (name, estimator) pairs, got {item!r}")
        if not (isinstance(item[1], str) and item[1] == "drop"):
            out.append(item)
    if not out:
        raise ValueError(f"estimators: every member is 'drop' ({[name for name, _ in estimators]}); keep at "
                         f"least one")
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
        named = _estimator_list(self.estimators)
        names, members = [name for name, _ in named], [m for _, m in named]
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
        self.named_estimators_ = Bunch(**dict(zip(names, fitted)))
        return oof


class FusionClassifier(ClassifierMixin, _Fusion):
    """Fuses classifiers on their out-of-fold probabilities with ``jaxhpo.ensemble``.

    Args:
        estimators: ``[(name, classifier), ...]``, each with ``predict_proba``; a member set to
            ``"drop"`` (``set_params(name="drop")``) is left out of the fit.
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
        estimators: ``[(name, regressor), ...]``; a member set to ``"drop"`` is left out of the fit.
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

