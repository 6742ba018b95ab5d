import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.model_selection import GridSearchCV
from sklearn.naive_bayes import GaussianNB
from sklearn.tree import DecisionTreeClassifier
from sklearn.utils.estimator_checks import parametrize_with_checks

import jaxhpo
from jaxhpo.sklearn import FusionClassifier, FusionRegressor, SearchCV

FAST = jaxhpo.strategies.sobol()


@parametrize_with_checks([
    SearchCV(LogisticRegression(max_iter=200), {"C": jaxhpo.Float(0.01, 10.0, log=True)}, strategy=FAST,
             n_trials=3, cv=2),
    SearchCV(Ridge(), {"alpha": jaxhpo.Float(0.01, 10.0, log=True)}, strategy=FAST, n_trials=3, cv=2),
    FusionClassifier([("lr", LogisticRegression(max_iter=200)), ("nb", GaussianNB())], cv=2),
    FusionRegressor([("lin", LinearRegression()), ("ridge", Ridge())], cv=2),
])
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def test_searchcv_matches_gridsearch_conventions():
    X, y = load_iris(return_X_y=True)
    space = {"C": jaxhpo.Float(1e-3, 1e2, log=True), "fit_intercept": jaxhpo.Categorical([True, False])}
    search = SearchCV(LogisticRegression(max_iter=1000), space, strategy=jaxhpo.strategies.grid(resolution=3),
                      n_trials=6, cv=3).fit(X, y)
    # the grid strategy over the same points gives the GridSearchCV answer
    grid = GridSearchCV(LogisticRegression(max_iter=1000),
                        {"C": [p["C"] for p in search.cv_results_["params"][::2]], "fit_intercept": [True, False]},
                        cv=3).fit(X, y)
    assert search.best_score_ == pytest.approx(grid.best_score_)
    assert search.best_params_["C"] == pytest.approx(grid.best_params_["C"])
    r = search.cv_results_
    assert len(r["params"]) == 6 and r["rank_test_score"][search.best_index_] == 1
    np.testing.assert_allclose(r["mean_test_score"], np.mean([r[f"split{k}_test_score"] for k in range(3)], 0))
    assert search.score(X, y) == pytest.approx(search.best_estimator_.score(X, y))
    assert search.predict_proba(X).shape == (150, 3)


def test_searchcv_bad_space_and_failing_trials():
    X, y = load_iris(return_X_y=True)
    with pytest.raises(ValueError, match="not parameters"):
        SearchCV(LogisticRegression(), {"gamma": jaxhpo.Float(0.1, 1.0)}, strategy=FAST, n_trials=2).fit(X, y)
    # a negative max_depth is invalid for a tree: every trial fails, and the estimator's own error surfaces
    with pytest.raises(ValueError, match="max_depth"):
        SearchCV(DecisionTreeClassifier(), {"max_depth": jaxhpo.Int(-3, -1)}, strategy=FAST, n_trials=2,
                 cv=2).fit(X, y)


def test_searchcv_error_score_scores_a_failing_fit_and_the_search_goes_on():
    import warnings

    X, y = load_iris(return_X_y=True)
    space = {"max_depth": jaxhpo.Categorical([-1, 2, 3])}  # max_depth=-1 is invalid: that fit raises
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scikit-learn warns of the failed fits, as for RandomizedSearchCV
        search = SearchCV(DecisionTreeClassifier(random_state=0), space, strategy=jaxhpo.strategies.grid(),
                          n_trials=3, cv=2, error_score=-1.0).fit(X, y)
    r = search.cv_results_
    failed = [i for i, p in enumerate(r["params"]) if p["max_depth"] == -1]
    assert len(failed) == 1 and r["mean_test_score"][failed[0]] == -1.0
    assert search.best_params_["max_depth"] in (2, 3) and search.best_score_ > 0.6
    with pytest.raises(ValueError, match="max_depth"):
        SearchCV(DecisionTreeClassifier(), space, strategy=jaxhpo.strategies.grid(), n_trials=3, cv=2,
                 error_score="raise").fit(X, y)


def test_fusion_classifier_methods_and_regressor():
    X, y = load_breast_cancer(return_X_y=True)
    members = [("lr", LogisticRegression(max_iter=3000)), ("nb", GaussianNB()),
               ("tree", DecisionTreeClassifier(max_depth=3, random_state=0))]
    for method in ("weights", "stacking", "greedy", "vote"):
        clf = FusionClassifier(members, method=method, cv=3, random_state=0).fit(X[::2], y[::2])
        assert clf.score(X[1::2], y[1::2]) > 0.9
        np.testing.assert_allclose(clf.predict_proba(X[1::2]).sum(1), 1.0, rtol=1e-6)
    Xr, yr = load_diabetes(return_X_y=True)
    reg = FusionRegressor([("lin", LinearRegression()), ("ridge", Ridge(alpha=10.0))], cv=3).fit(Xr, yr)
    assert reg.score(Xr, yr) > 0.45
    with pytest.raises(ValueError, match="method"):
        FusionClassifier(members, method="blend").fit(X, y)


def test_fusion_members_parameters_are_nested_as_in_stacking():
    from sklearn.model_selection import GridSearchCV
    from sklearn.tree import DecisionTreeClassifier
    from sklearn.utils import estimator_checks

    X, y = load_iris(return_X_y=True)
    fusion = FusionClassifier([("lr", LogisticRegression(max_iter=500)), ("dt", DecisionTreeClassifier())], cv=3)
    params = fusion.get_params(deep=True)
    assert params["dt__max_depth"] is None and "lr__C" in params and params["dt"] is fusion.estimators[1][1]
    fusion.set_params(dt__max_depth=2, lr__C=0.5)
    assert fusion.estimators[1][1].max_depth == 2 and fusion.estimators[0][1].C == 0.5
    fusion.set_params(dt=DecisionTreeClassifier(max_depth=1))
    assert fusion.get_params()["dt__max_depth"] == 1
    fitted = clone(fusion).fit(X, y)
    assert list(fitted.named_estimators_) == ["lr", "dt"] and fitted.named_estimators_.dt.max_depth == 1
    assert fitted.named_estimators_.lr is fitted.estimators_[0]
    dropped = clone(fusion).set_params(dt="drop").fit(X, y)  # as StackingClassifier: "drop" leaves a member out
    assert list(dropped.named_estimators_) == ["lr"] and len(dropped.estimators_) == 1
    assert dropped.score(X, y) > 0.9
    with pytest.raises(ValueError, match="every member is 'drop'"):
        clone(fusion).set_params(dt="drop", lr="drop").fit(X, y)
    # an unseeded tree inside: scikit-learn's set_random_state seeds the fusion, which seeds its members,
    # so two fits give the same model (check_fit_idempotent)
    fusion.set_params(dt=DecisionTreeClassifier(max_features=2), dt__max_depth=3)
    estimator_checks.set_random_state(fusion, 3)
    first = fusion.fit(X, y).predict_proba(X)
    np.testing.assert_array_equal(fusion.fit(X, y).predict_proba(X), first)
    assert fusion.estimators_[1].random_state == 4 and fusion.get_params()["dt__random_state"] is None  # not mutated
    grid = GridSearchCV(fusion, {"dt__max_depth": [1, 3]}, cv=3).fit(X, y)
    assert grid.best_params_["dt__max_depth"] in (1, 3) and len(grid.cv_results_["params"]) == 2
    with pytest.raises(ValueError, match="Invalid parameter 'knn'"):
        fusion.set_params(knn__n_neighbors=3)


def test_searchcv_takes_what_a_randomizedsearchcv_user_writes():
    from scipy import stats

    from jaxhpo.sklearn import _as_space

    space = _as_space({"C": stats.loguniform(1e-3, 1e2), "l1_ratio": stats.uniform(0.2, 0.5),
                       "max_iter": stats.randint(100, 300), "solver": ["lbfgs", "saga"]})
    assert space.params["C"] == jaxhpo.Float(1e-3, 1e2, log=True)
    assert space.params["l1_ratio"] == jaxhpo.Float(0.2, 0.7)
    assert space.params["max_iter"] == jaxhpo.Int(100, 299)  # randint's high is exclusive
    assert space.params["solver"] == jaxhpo.Categorical(["lbfgs", "saga"])
    X, y = load_iris(return_X_y=True)
    search = SearchCV(LogisticRegression(max_iter=300), {"C": stats.loguniform(1e-2, 1e2)}, strategy=FAST,
                      n_trials=3, cv=2).fit(X, y)
    assert 1e-2 <= search.best_params_["C"] <= 1e2
    with pytest.raises(ValueError, match=r"space\['C'\] is scipy.stats.norm, which has no jaxhpo equivalent"):
        _as_space({"C": stats.norm(0, 1)})
    with pytest.raises(ValueError, match=r"\['Cee'\] are not parameters of LogisticRegression; its parameters are "
                                         r"\[.*'C'.*\]"):
        SearchCV(LogisticRegression(), {"Cee": jaxhpo.Float(0.1, 1.0)}, strategy=FAST, n_trials=2).fit(X, y)


def test_searchcv_takes_n_iter_and_n_jobs_as_randomizedsearchcv_does():
    from scipy import stats

    X, y = load_iris(return_X_y=True)
    # written as for RandomizedSearchCV, the default strategy (bayes) included
    search = SearchCV(LogisticRegression(max_iter=300), {"C": stats.loguniform(0.01, 10.0)}, n_iter=20, n_jobs=2,
                      cv=3, random_state=0).fit(X, y)
    assert len(search.cv_results_["params"]) == 20 and search.best_score_ > 0.9
    assert all(0.01 <= p["C"] <= 10.0 for p in search.cv_results_["params"])
    with pytest.raises(ValueError, match="n_trials=5 and n_iter=4 disagree"):
        SearchCV(LogisticRegression(), {"C": jaxhpo.Float(0.1, 1.0)}, n_trials=5, n_iter=4).fit(X, y)
    with pytest.raises(ValueError, match="n_iter must be a positive int"):
        SearchCV(LogisticRegression(), {"C": jaxhpo.Float(0.1, 1.0)}, n_iter=0).fit(X, y)


def test_searchcv_results_are_randomizedsearchcv_s():
    from scipy import stats
    from sklearn.model_selection import RandomizedSearchCV

    X, y = load_iris(return_X_y=True)
    kwargs = dict(cv=3, return_train_score=True, n_jobs=2)  # n_jobs=2: fits in joblib's worker processes
    ours = SearchCV(LogisticRegression(max_iter=300), {"C": stats.loguniform(1e-2, 1e2)}, strategy=FAST, n_iter=5,
                    random_state=0, **kwargs).fit(X, y)
    theirs = RandomizedSearchCV(LogisticRegression(max_iter=300), {"C": stats.loguniform(1e-2, 1e2)}, n_iter=5,
                                random_state=0, **kwargs).fit(X, y)
    assert set(ours.cv_results_) == set(theirs.cv_results_)  # every key, timings and train scores included
    r = ours.cv_results_
    assert np.all(np.isfinite([r[f"split{k}_test_score"] for k in range(3)]))  # split scores survive processes
    assert np.all(r["mean_fit_time"] > 0) and np.all(r["mean_train_score"] >= r["mean_test_score"] - 0.1)
    # the study was told exactly the mean scores scikit-learn computed
    assert [t.value for t in ours.study_.trials] == list(r["mean_test_score"])
    assert [t.params for t in ours.study_.trials] == list(r["params"])


def test_searchcv_multi_metric_and_refit_callable():
    X, y = load_iris(return_X_y=True)
    space = {"C": jaxhpo.Float(1e-3, 1e2, log=True)}
    search = SearchCV(LogisticRegression(max_iter=300), space, strategy=FAST, n_trials=4, cv=3,
                      scoring={"acc": "accuracy", "nll": "neg_log_loss"}, refit="nll").fit(X, y)
    r = search.cv_results_
    assert {"mean_test_acc", "mean_test_nll", "rank_test_acc", "rank_test_nll"} <= set(r)
    assert [t.value for t in search.study_.trials] == list(r["mean_test_nll"])  # the refit metric is maximized
    assert search.best_index_ == int(np.argmax(r["mean_test_nll"]))

    def simplest_within_a_point(results):  # the smallest C whose accuracy is within 0.01 of the best
        acc = results["mean_test_acc"]
        ok = np.flatnonzero(acc >= acc.max() - 0.01)
        return int(ok[np.argmin([results["params"][i]["C"] for i in ok])])

    chosen = SearchCV(LogisticRegression(max_iter=300), space, strategy=FAST, n_trials=4, cv=3,
                      scoring={"acc": "accuracy", "nll": "neg_log_loss"}, refit=simplest_within_a_point).fit(X, y)
    assert chosen.best_index_ == simplest_within_a_point(chosen.cv_results_)
    assert chosen.best_estimator_.C == chosen.cv_results_["params"][chosen.best_index_]["C"]
    assert [t.value for t in chosen.study_.trials] == list(chosen.cv_results_["mean_test_acc"])  # first metric


def test_fusion_with_unseeded_randomized_members_passes_every_check_three_times_in_a_row():
    # unseeded trees used to fail check_fit_idempotent and check_classifier_data_not_an_array in 1-2 runs of 3:
    # scikit-learn's set_random_state seeds the fusion, which now seeds the members left unseeded
    import warnings

    from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor
    from sklearn.utils.estimator_checks import check_estimator

    estimators = [
        FusionClassifier([("lr", LogisticRegression(max_iter=200)), ("dt", DecisionTreeClassifier(max_features=1))],
                         cv=2),
        FusionRegressor([("ridge", Ridge()), ("dt", DecisionTreeRegressor(max_features=1))], cv=2),
    ]
    for round_ in range(3):
        for estimator in estimators:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                report = check_estimator(estimator, on_fail=None)
            failed = [(r["check_name"], str(r["exception"])[:300]) for r in report if r["status"] == "failed"]
            assert not failed, (round_, type(estimator).__name__, failed)
            assert sum(r["status"] == "passed" for r in report) > 40


@pytest.mark.parametrize("method", ["weights", "stacking", "greedy", "vote"])
def test_predicting_again_builds_no_program(method):
    # a fitted fusion's predictions sum members in order with a scan; called eagerly, a bare scan of a
    # new closure compiled on every call (about 0.1 s each: check_estimator's rounds compiled it 96 times)
    from _compiles import counting

    X, y = load_iris(return_X_y=True)
    fusion = FusionClassifier([("lr", LogisticRegression(max_iter=500)), ("nb", GaussianNB())], method=method,
                              cv=2, random_state=0).fit(X, y)
    first = fusion.predict_proba(X[:40])
    with counting() as count:
        again = fusion.predict_proba(X[40:80])
        fusion.predict(X[80:120])
    assert count.programs == 0, f"{count.programs} programs built for predictions of an already seen shape"
    assert first.shape == again.shape == (40, 3)
    regression = FusionRegressor([("lin", LinearRegression()), ("ridge", Ridge())], cv=2).fit(X, y.astype(float))
    regression.predict(X[:40])
    with counting() as count:
        regression.predict(X[40:80])
    assert count.programs == 0
