import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression

from jaxhpo import ensemble


def random_probs(key, m, n, c, scale=1.0):
    return np.asarray(jax.nn.softmax(scale * jax.random.normal(jax.random.key(key), (m, n, c)), -1))


def test_learned_weights_recover_a_true_mixture():
    probs = random_probs(0, 3, 20000, 4, scale=2.0)
    true_w = np.array([0.6, 0.3, 0.1])
    mix = np.einsum("m,mnc->nc", true_w, probs)
    rng = np.random.default_rng(0)
    y = (rng.random((20000, 1)) > np.cumsum(mix, 1)).sum(1)
    ens = ensemble.fit_weights(probs, y, steps=500)
    w = np.asarray(ens.weights)
    assert np.all(w >= 0) and abs(w.sum() - 1) < 1e-5
    np.testing.assert_allclose(w, true_w, atol=0.04)
    # the learned mixture has a lower log loss than any member and than the plain mean
    def nll(p):
        return -np.mean(np.log(p[np.arange(len(y)), y]))
    fused = nll(np.asarray(ens.predict_proba(probs)))
    assert fused < min(nll(p) for p in probs) and fused <= nll(probs.mean(0)) + 1e-6


def test_regularization_sparsity_and_temperature():
    probs = random_probs(1, 6, 500, 3)
    y = np.argmax(probs[0] + 0.5 * probs[1], -1)
    free = np.asarray(ensemble.fit_weights(probs, y).weights)
    flat = np.asarray(ensemble.fit_weights(probs, y, l2_uniform=100.0).weights)
    sparse = np.asarray(ensemble.fit_weights(probs, y, sparsity=0.5, steps=600).weights)
    assert np.abs(flat - 1 / 6).max() < np.abs(free - 1 / 6).max() and np.abs(flat - 1 / 6).max() < 0.02
    entropy = lambda w: -np.sum(w * np.log(w + 1e-12))  # noqa: E731
    assert entropy(sparse) < entropy(free)
    # an overconfident member (calibrated logits times 4): its fitted temperature undoes the 4
    calibrated = random_probs(9, 2, 5000, 3)
    rng = np.random.default_rng(1)
    labels = (rng.random((5000, 1)) > np.cumsum(calibrated[0], 1)).sum(1)
    logits = np.log(calibrated) * 4.0
    plain = ensemble.fit_weights(logits, labels, inputs="logits")
    warm = ensemble.fit_weights(logits, labels, inputs="logits", temperature=True, steps=600)
    nll = lambda e: -np.mean(np.log(np.asarray(e.predict_proba(logits))[np.arange(5000), labels]))  # noqa: E731
    assert nll(warm) < nll(plain) - 0.1
    assert float(warm.weights[0]) > 0.9 and 3.2 < float(warm.temperature[0]) < 4.8


def test_linear_fusion_of_regressors():
    rng = np.random.default_rng(0)
    target = rng.normal(size=400)
    f = np.stack([target + 0.3 * rng.normal(size=400), target + 0.6 * rng.normal(size=400),
                  rng.normal(size=400)]).astype(np.float32)
    ens = ensemble.fit_weights(f, target, constraint="nonneg", intercept=True)
    w = np.asarray(ens.weights)
    # least squares with the same constraint, closed form for the unconstrained active set
    a = np.c_[f[:2].T, np.ones(400)]
    ref = np.linalg.lstsq(a, target, rcond=None)[0]
    np.testing.assert_allclose(w[:2], ref[:2], atol=2e-3)
    assert w[2] < 5e-3 and abs(float(ens.intercept) - ref[2]) < 2e-3
    simplex = np.asarray(ensemble.fit_weights(f, target).weights)
    assert abs(simplex.sum() - 1) < 1e-5 and simplex[0] > simplex[1] > simplex[2]
    np.testing.assert_allclose(ens.predict(f), w @ f + float(ens.intercept), rtol=1e-5)


def greedy_reference(probs, y, size, init_size, metric):
    """Caruana's selection as one would write it in plain Python."""
    m = probs.shape[0]

    def score(p):
        if metric == "log_loss":
            return -np.mean(np.log(np.maximum(p[np.arange(len(y)), y], 1e-15)))
        if metric == "accuracy":
            return -np.mean(np.argmax(p, -1) == y)
        return np.mean((p - y) ** 2)

    single = [score(probs[i]) for i in range(m)]
    chosen = list(np.argsort(single, kind="stable")[:init_size])
    for _ in range(size):
        scores = [score(np.mean(probs[chosen + [i]], axis=0)) for i in range(m)]
        chosen.append(int(np.argmin(scores)))
    return np.bincount(chosen, minlength=m)


@pytest.mark.parametrize("metric", ["log_loss", "accuracy"])
def test_greedy_equals_reference(metric):
    probs = random_probs(2, 7, 60, 3).astype(np.float64)
    y = np.argmax(probs[1] + probs[4] + 0.3 * random_probs(3, 1, 60, 3)[0], -1)
    ens = ensemble.greedy_selection(probs, y, size=12, init_size=2, metric=metric)
    np.testing.assert_array_equal(ens.counts, greedy_reference(probs, y, 12, 2, metric))
    np.testing.assert_allclose(ens.weights, ens.counts / ens.counts.sum(), rtol=1e-6)


def test_greedy_regression_equals_reference():
    rng = np.random.default_rng(1)
    y = rng.normal(size=50)
    preds = np.stack([y + s * rng.normal(size=50) for s in (0.2, 0.5, 1.0, 0.4)])
    ens = ensemble.greedy_selection(preds, y, size=8, init_size=1, metric="mse")
    np.testing.assert_array_equal(ens.counts, greedy_reference(preds, y, 8, 1, "mse"))


def test_stacking_logistic_matches_sklearn():
    probs = random_probs(4, 3, 300, 3)
    y = np.argmax(probs[0] + 0.7 * probs[2] + 0.2 * random_probs(5, 1, 300, 3)[0], -1)
    l2 = 1e-2
    meta = ensemble.fit_stacking(probs, y, l2=l2, steps=300)
    feats = np.asarray(meta.meta_features(probs))
    ref = LogisticRegression(C=1.0 / (2 * l2 * 300), max_iter=5000, tol=1e-10).fit(feats, y)
    np.testing.assert_allclose(meta.predict_proba(probs), ref.predict_proba(feats), atol=2e-3)
    for kind in ("ridge", "mlp"):
        other = ensemble.fit_stacking(probs, y, meta=kind)
        assert float(np.mean(np.asarray(other.predict(probs)) == y)) > 0.8
        np.testing.assert_allclose(np.asarray(other.predict_proba(probs)).sum(-1), 1.0, rtol=1e-5)


class Spy(ClassifierMixin, BaseEstimator):
    """Remembers which rows (id in column 0) it trained on and which it predicted."""

    log: list = []

    def fit(self, X, y):
        self.classes_ = np.unique(y)
        self.trained_ = set(X[:, 0].astype(int).tolist())
        self.majority_ = np.bincount(y).argmax()
        return self

    def predict_proba(self, X):
        Spy.log.append((self.trained_, set(X[:, 0].astype(int).tolist())))
        p = np.full((X.shape[0], len(self.classes_)), 0.1)
        p[:, self.majority_] = 1.0
        return p / p.sum(1, keepdims=True)


def test_stacking_inputs_are_out_of_fold_only():
    Spy.log = []
    X = np.c_[np.arange(60), np.random.default_rng(0).normal(size=(60, 2))]
    y = np.arange(60) % 2
    oof, fitted = ensemble.cross_val_predictions([Spy(), LogisticRegression()], X, y, cv=4)
    assert oof.shape == (2, 60, 2)
    assert len(Spy.log) == 4
    predicted = set()
    for trained, rows in Spy.log:
        assert not trained & rows  # no row predicted by a model that trained on it
        predicted |= rows
    assert predicted == set(range(60))
    assert fitted[0].trained_ == set(range(60))  # refit on everything for test-time predictions
    # serial fusion passes on out-of-fold outputs too
    Spy.log = []
    ensemble.SerialFusion([Spy(), LogisticRegression()], cv=3).fit(X, y)
    assert len(Spy.log) == 3 and all(not t & r for t, r in Spy.log)


def test_voting_mean_median():
    probs = random_probs(6, 5, 30, 3)
    np.testing.assert_allclose(ensemble.vote(probs), probs.mean(0), rtol=1e-5)
    hard = np.asarray(ensemble.vote(probs, kind="hard"))
    labels = probs.argmax(-1)
    np.testing.assert_allclose(hard, np.stack([np.bincount(labels[:, i], minlength=3) / 5 for i in range(30)]))
    w = np.array([5.0, 0, 0, 0, 0])
    np.testing.assert_allclose(ensemble.vote(probs, kind="hard", weights=w).argmax(-1), labels[0])
    np.testing.assert_allclose(np.asarray(ensemble.median(probs)).sum(-1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(ensemble.mean(probs), probs.mean(0), rtol=1e-6)
    top = ensemble.top_k(probs, labels[3], 2)
    assert 3 in top.selected and len(top.selected) == 2


def test_save_load_every_kind(tmp_path):
    probs = random_probs(7, 4, 50, 3)
    y = probs[0].argmax(-1)
    for i, model in enumerate([ensemble.fit_weights(probs, y, temperature=True),
                               ensemble.greedy_selection(probs, y, size=4),
                               ensemble.fit_stacking(probs, y, meta="mlp", steps=50)]):
        path = str(tmp_path / f"m{i}.npz")
        ensemble.save(path, model)
        back = ensemble.load(path)
        assert type(back) is type(model)
        np.testing.assert_allclose(back.predict_proba(probs), model.predict_proba(probs), rtol=1e-6)
    # fitted ensembles are pytrees: jit over them
    ens = ensemble.fit_weights(probs, y)
    np.testing.assert_allclose(jax.jit(lambda e, p: e.predict_proba(p))(ens, probs), ens.predict_proba(probs),
                               rtol=1e-6)


def test_bad_shapes_and_labels():
    probs = random_probs(8, 3, 20, 2)
    with pytest.raises(ValueError, match="members, examples"):
        ensemble.fit_weights(probs[0, :, 0], np.zeros(20, int))
    with pytest.raises(ValueError, match=r"labels must be \[examples\]=20"):
        ensemble.fit_weights(probs, np.zeros(19, int))
    with pytest.raises(ValueError, match="labels must lie in"):
        ensemble.greedy_selection(probs, np.full(20, 2))
    with pytest.raises(ValueError, match="not probabilities"):
        ensemble.fit_weights(np.log(probs), np.zeros(20, int))
    with pytest.raises(ValueError, match="non-finite"):
        ensemble.fit_stacking(np.where(probs > 0.5, np.nan, probs), np.zeros(20, int))
    with pytest.raises(ValueError, match="init_size"):
        ensemble.greedy_selection(probs, np.zeros(20, int), init_size=4)
    with pytest.raises(ValueError, match="meta"):
        ensemble.fit_stacking(probs, np.zeros(20, int), meta="forest")
    with pytest.raises(ValueError, match=r"seed must be an int, got seed=1\.5"):  # not rounded to 1
        ensemble.fit_stacking(probs, np.zeros(20, int), meta="mlp", seed=1.5)
    with pytest.raises(ValueError, match="metric"):
        ensemble.greedy_selection(probs, np.zeros(20, int), metric="mse")


def test_predicting_from_predictions_unlike_those_fitted_on_is_an_error():
    """A fitted ensemble's weights broadcast over whatever it is given: one member instead of four, or one
    member's 2-d predictions, used to give a result of the right shape and the wrong values. Each kind refuses
    them, and NaN, naming the argument and the shape it was fitted on."""
    probs = random_probs(2, 4, 30, 3)
    y = np.argmax(probs[1], -1)
    targets = probs[0, :, 0]
    regression = probs[:, :, 0]
    fitted = [ensemble.fit_weights(probs, y), ensemble.greedy_selection(probs, y, size=3),
              ensemble.fit_stacking(probs, y), ensemble.fit_stacking(probs, y, meta="mlp", steps=5),
              ensemble.fit_stacking(probs, y, features="probs", groups=[0, 0, 1, 2])]
    for ens in fitted:
        assert np.asarray(ens.predict_proba(probs)).shape == (30, 3)  # as fitted: fine
        for bad in (probs[:1], probs[0], probs[:, :, :2]):
            if bad.shape[-1] == 2 and not isinstance(ens, ensemble.StackingEnsemble):
                continue  # a weighted mixture does not know its classes: any count mixes
            with pytest.raises(ValueError, match=rf"preds must be \[members, examples, classes\] with the 4 members"
                                                 rf".*got shape {re.escape(str(bad.shape))}"):
                ens.predict_proba(bad)
            with pytest.raises(ValueError, match="preds must be"):
                ens.predict(bad)
        with pytest.raises(ValueError, match=r"preds has non-finite values \(members \[2\]\)"):
            ens.predict_proba(np.where(np.arange(4)[:, None, None] == 2, np.nan, probs))
    for ens in (ensemble.fit_weights(regression, targets), ensemble.fit_stacking(regression, targets, meta="ridge")):
        assert np.asarray(ens.predict(regression)).shape == (30,)
        for bad in (regression[:1], probs):
            with pytest.raises(ValueError, match=rf"preds must be \[members, examples\] with the 4 members.*"
                                                 rf"got shape {re.escape(str(bad.shape))}"):
                ens.predict(bad)
    # inside a caller's jit the shape is still checked (values are tracers there)
    ens = fitted[0]
    np.testing.assert_allclose(jax.jit(ens.predict_proba)(probs), ens.predict_proba(probs), rtol=1e-6)
    with pytest.raises(ValueError, match="with the 4 members"):
        jax.jit(ens.predict_proba)(probs[:2])


def test_bagged_greedy_averages_bags_of_the_reference():
    probs = random_probs(10, 6, 40, 3).astype(np.float64)
    y = np.argmax(probs[2] + 0.5 * probs[5], -1)
    ens = ensemble.greedy_selection(probs, y, size=6, init_size=1, bags=4, bag_fraction=0.5, seed=3)
    w = np.asarray(ens.weights)
    assert abs(w.sum() - 1) < 1e-5 and np.all(w >= 0)
    # each bag is the plain selection restricted to its members
    rng = np.random.default_rng(3)
    expected = np.zeros(6)
    for _ in range(4):
        members = np.sort(rng.choice(6, 3, replace=False))
        counts = greedy_reference(probs[members], y, 6, 1, "log_loss")
        expected[members] += counts / counts.sum() / 4
    np.testing.assert_allclose(w, expected, atol=1e-6)
    with pytest.raises(ValueError, match="bags"):
        ensemble.greedy_selection(probs, y, bags=0)


def test_stacking_chooses_l2_by_cross_validation():
    from jaxhpo.ensemble.stacking import L2_GRID, _select_and_fit_jit

    probs = random_probs(11, 4, 300, 3)
    y = np.argmax(probs[0] + 0.3 * random_probs(12, 1, 300, 3)[0], -1)
    meta = ensemble.fit_stacking(probs, y, l2="auto")
    assert float(np.mean(np.asarray(meta.predict(probs)) == y)) > 0.9
    x = np.asarray(meta.meta_features(probs))
    _, l2, losses = _select_and_fit_jit("logistic", x, jax.nn.one_hot(y, 3), jnp.asarray(y), jnp.float32(0.0),
                                        jnp.asarray(True), jnp.int32(100), 32, jax.random.key(0), True)
    losses = np.asarray(losses)
    assert losses.shape == (len(L2_GRID), 3) and np.all(np.isfinite(losses))
    assert float(l2) == pytest.approx(L2_GRID[int(np.argmin(losses.mean(axis=1)))])
    # the chosen penalty gives the fit a user gets by passing it, from the same compiled program
    programs = _select_and_fit_jit._cache_size()
    fixed = ensemble.fit_stacking(probs, y, l2=float(l2))
    np.testing.assert_allclose(np.asarray(fixed.predict_proba(probs)), np.asarray(meta.predict_proba(probs)),
                               rtol=1e-5, atol=1e-6)
    ensemble.fit_stacking(probs, y, l2=0.3, steps=40)
    assert _select_and_fit_jit._cache_size() == programs  # one program: l2 chosen or given, any steps


def test_stacking_on_probabilities_matches_sklearn_stacking_features():
    # features="probs": the final estimator of scikit-learn's StackingClassifier sees raw probabilities
    probs = random_probs(13, 3, 300, 3)
    y = np.argmax(probs[0] + 0.7 * probs[2] + 0.2 * random_probs(14, 1, 300, 3)[0], -1)
    l2 = 1e-3
    meta = ensemble.fit_stacking(probs, y, l2=l2, features="probs", steps=300)
    flat = np.transpose(probs, (1, 0, 2)).reshape(300, -1)
    np.testing.assert_allclose(meta.meta_features(probs), flat, rtol=1e-6)  # not standardized
    ref = LogisticRegression(C=1.0 / (2 * l2 * 300), max_iter=5000, tol=1e-10).fit(flat, y)
    np.testing.assert_allclose(meta.predict_proba(probs), ref.predict_proba(flat), atol=2e-3)


@pytest.mark.parametrize("features", ["log_probs", "probs"])
def test_stacking_groups_average_members_first(features, tmp_path):
    probs = random_probs(15, 5, 200, 3)
    y = np.argmax(probs[0] + probs[3], -1)
    groups = [7, 7, 7, 2, 5]  # three similar members pooled, two others alone
    pooled = np.stack([probs[:3].mean(0), probs[3], probs[4]])
    grouped = ensemble.fit_stacking(probs, y, features=features, groups=groups)
    direct = ensemble.fit_stacking(pooled, y, features=features)
    np.testing.assert_allclose(grouped.meta_features(probs), direct.meta_features(pooled), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(grouped.predict_proba(probs), direct.predict_proba(pooled), atol=1e-5)
    # a different grouping changes the model: the groups are used, not ignored
    other = ensemble.fit_stacking(probs, y, features=features, groups=[0, 1, 2, 2, 2])
    assert not np.allclose(other.predict_proba(probs), grouped.predict_proba(probs), atol=1e-3)
    path = str(tmp_path / "grouped.npz")
    ensemble.save(path, grouped)
    back = ensemble.load(path)
    assert back.groups == tuple(groups) and back.features == features
    np.testing.assert_allclose(back.predict_proba(probs), grouped.predict_proba(probs), rtol=1e-6)
    # regression: group means of the predictions
    preds = np.random.default_rng(0).normal(size=(5, 80)).astype(np.float32)
    target = preds[0] + preds[4]
    reg = ensemble.fit_stacking(preds, target, meta="ridge", groups=groups, l2=0.0)
    ref = ensemble.fit_stacking(np.stack([preds[:3].mean(0), preds[3], preds[4]]), target, meta="ridge", l2=0.0)
    np.testing.assert_allclose(reg.predict(preds), ref.predict(np.stack([preds[:3].mean(0), preds[3], preds[4]])),
                               atol=1e-4)


def test_stacking_bad_groups_and_features():
    probs = random_probs(16, 3, 20, 2)
    y = np.zeros(20, int)
    with pytest.raises(ValueError, match=r"groups must be \[members\]=3"):
        ensemble.fit_stacking(probs, y, groups=[0, 1])
    with pytest.raises(ValueError, match="groups must be"):
        ensemble.fit_stacking(probs, y, groups=[0.5, 1.0, 2.0])
    with pytest.raises(ValueError, match="features must be one of"):
        ensemble.fit_stacking(probs, y, features="logits")


def test_nan_targets_logits_past_any_row_and_ragged_members_are_errors():
    rng = np.random.default_rng(0)
    preds = rng.normal(size=(3, 50))
    y = rng.normal(size=50)
    y[7] = np.nan
    # regression targets with NaN gave NaN weights without a word
    with pytest.raises(ValueError, match=r"labels have 1 non-finite values \(examples \[7\]\)"):
        ensemble.fit_weights(preds, y)
    with pytest.raises(ValueError, match=r"non-finite values \(examples \[7\]\)"):
        ensemble.fit_stacking(preds, y, meta="ridge")
    with pytest.raises(ValueError, match="non-finite values"):
        ensemble.greedy_selection(preds, y, metric="mse")
    # logits that start after row 256 (only a sample of rows used to be checked)
    probs = random_probs(9, 3, 400, 3).copy()
    probs[:, 300:] = rng.normal(size=(3, 100, 3))
    labels = rng.integers(0, 3, 400)
    for fit in (ensemble.fit_weights, ensemble.greedy_selection):
        with pytest.raises(ValueError, match="member 0, example 300 is not.*inputs='logits'"):
            fit(probs, labels)
    # ragged member lists: which shapes, and what to do
    with pytest.raises(ValueError, match=r"members have shapes \[\(4, 3\), \(5, 3\)\]"):
        ensemble.fit_weights([np.full((4, 3), 1 / 3), np.full((5, 3), 1 / 3)], np.zeros(4, int))


def test_predictions_do_not_depend_on_row_order_or_batch():
    """Each row's prediction is bit-identical when the rows are shuffled or predicted in a chunk
    (scikit-learn's check_methods_sample_order_invariance; XLA's vectorized dot/reduce broke it
    in the last float32 bit, depending on where a row fell in the batch)."""
    m, n, c = 7, 67, 3
    probs = random_probs(5, m, n, c)
    y = np.argmax(probs[0] + probs[3], -1)
    reg = np.asarray(jax.random.normal(jax.random.key(6), (m, n)))
    y_reg = reg[0] + 0.5 * reg[2]
    fitted = {
        "uniform": (ensemble.uniform(probs), probs),
        "weights": (ensemble.fit_weights(probs, y), probs),
        "greedy": (ensemble.greedy_selection(probs, y, size=9), probs),
        "logistic": (ensemble.fit_stacking(probs, y), probs),
        "mlp": (ensemble.fit_stacking(probs, y, meta="mlp"), probs),
        "pooled": (ensemble.fit_stacking(probs, y, groups=[0, 0, 0, 1, 1, 2, 3]), probs),
        "weights-reg": (ensemble.fit_weights(reg, y_reg, constraint="nonneg", intercept=True), reg),
        "greedy-reg": (ensemble.greedy_selection(reg, y_reg, size=9, metric="mse"), reg),
        "ridge-reg": (ensemble.fit_stacking(reg, y_reg, meta="ridge"), reg),
    }
    order = np.random.default_rng(0).permutation(n)
    for name, (ens, preds) in fitted.items():
        method = ens.predict_proba if preds.ndim == 3 else ens.predict
        whole = np.asarray(method(preds))
        shuffled = np.asarray(method(preds[:, order]))
        chunk = np.asarray(method(preds[:, 3:13]))
        np.testing.assert_array_equal(shuffled, whole[order], err_msg=name)
        np.testing.assert_array_equal(chunk, whole[3:13], err_msg=name)
    soft = np.asarray(ensemble.vote(probs))
    np.testing.assert_array_equal(np.asarray(ensemble.vote(probs[:, order])), soft[order])


def test_fitting_and_predicting_on_new_shapes_build_one_program_each():
    # each step is jitted where defined (op by op, these four calls built 37 programs), and host
    # arrays go to the device without a "stage" program per shape (jnp.asarray compiles one)
    from _compiles import counting

    rng = np.random.default_rng(11)
    y = rng.integers(0, 4, 29)
    val = rng.dirichlet(np.ones(4), size=(9, 29)).astype(np.float32)
    test = rng.dirichlet(np.ones(4), size=(9, 17)).astype(np.float64)  # converted on the host
    with counting() as count:
        greedy = ensemble.greedy_selection(val, y, size=7, bags=3)
    assert count.names == ["_bagged"]  # the bagged selection and its weights
    with counting() as count:
        probs = greedy.predict_proba(test)
    assert count.names == ["_mixture"]
    members = np.exp(np.log(np.clip(test, 1e-12, None)))
    members = members / members.sum(-1, keepdims=True)
    np.testing.assert_allclose(probs, np.einsum("m,mnc->nc", np.asarray(greedy.weights), members), rtol=1e-5, atol=1e-7)
    with counting() as count:
        stack = ensemble.fit_stacking(val, y, l2=0.5, features="probs", groups=[0] * 5 + [1, 2, 3, 4])
    # its inputs and its fit, and the seed's key (built once per process: another test may have)
    assert sorted(set(count.names) - {"_key"}) == ["_fit_inputs", "_select_and_fit"] and len(count.names) <= 3
    with counting() as count:
        stacked = stack.predict_proba(test)
        labels = stack.predict(test)
    assert sorted(count.names) == ["_predict", "_predict_proba"]
    np.testing.assert_allclose(np.asarray(stacked).sum(-1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(np.asarray(labels), np.asarray(stacked).argmax(-1))


def test_fits_never_answer_with_an_iterate_where_the_loss_is_nan():
    # a loss that is NaN past x = 2.5 (as a fit's rounding can make it): the fit stops at its best
    # finite point rather than handing NaN weights on (an H200's TF32 products gave NaN there)
    import optax

    from jaxhpo.ensemble._optim import minimize_first_order, minimize_lbfgs

    loss = lambda p: jnp.where(p["x"] < 2.5, (p["x"] - 3.0) ** 2, jnp.nan)  # noqa: E731
    start = {"x": jnp.float32(0.0)}
    for params, trace in (minimize_lbfgs(loss, start, 20), minimize_first_order(loss, start, 20, optax.sgd(0.1)),
                          minimize_lbfgs(loss, start, jnp.int32(20))):
        x = float(params["x"])
        assert np.isfinite(x) and 0.0 < x < 2.5, x
        if trace is not None:
            assert float(loss(params)) == np.nanmin(np.asarray(trace)[np.isfinite(trace)].tolist() + [float(loss(params))])
    nowhere = lambda p: jnp.nan * p["x"]  # noqa: E731
    assert float(minimize_lbfgs(nowhere, {"x": jnp.float32(1.5)}, 5)[0]["x"]) == 1.5  # the start, as given
