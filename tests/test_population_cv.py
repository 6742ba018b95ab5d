import jax
import numpy as np
import pytest

from jaxhpo import population
from jaxhpo.population.cv import fold_views, kfold


def mlp(h):
    return population.MLP(hidden=(16,), outputs=2, activations=(jax.nn.relu,))


def test_kfold_is_a_stratified_partition():
    y = np.array([0] * 30 + [1] * 12)
    fold = kfold(42, 3, y, seed=1)
    assert sorted(np.unique(fold)) == [0, 1, 2]
    for k in range(3):
        assert np.sum((fold == k) & (y == 1)) == 4 and np.sum((fold == k) & (y == 0)) == 10
    tr, ntr, ev, nev = map(np.asarray, fold_views(fold))
    for k in range(3):
        assert set(tr[k, : ntr[k]]) == set(np.flatnonzero(fold != k))
        assert set(ev[k, : nev[k]]) == set(np.flatnonzero(fold == k))
    with pytest.raises(ValueError, match="folds"):
        kfold(10, 1)


def test_out_of_fold_predictions_never_see_their_rows():
    # labels are pure noise: a model that memorizes its training rows scores high on them,
    # but its out-of-fold accuracy must stay near chance -- leakage would push it up.
    rng = np.random.default_rng(0)
    x = rng.normal(size=(90, 20)).astype(np.float32)
    y = rng.integers(0, 2, 90).astype(np.int32)
    hp = {"learning_rate": np.array([3e-2], np.float32)}
    cv = population.cross_validate(mlp, hp, x, y, folds=3, key=jax.random.key(0), epochs=60, batch_size=32, mesh=None)
    assert cv.oof_predictions.shape == (1, 90, 2) and cv.val_loss.shape == (1, 3, 60)
    oof_acc = np.mean(np.argmax(cv.oof_predictions[0], -1) == y)
    assert oof_acc < 0.7
    # the same members scored on their own training rows: memorized
    res = population.train(mlp, hp, x, y, x, y, key=jax.random.key(0), epochs=60, batch_size=32, mesh=None)
    assert float(res.val_accuracy[0, -1]) > 0.9


def test_cross_validate_equals_training_each_fold_alone():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(40, 4)).astype(np.float32)
    y = (x[:, 0] + 0.2 * rng.normal(size=40) > 0).astype(np.int32)
    hp = {"learning_rate": np.array([1e-2, 3e-2], np.float32)}
    fold = kfold(40, 4, y, seed=0)
    cv = population.cross_validate(mlp, hp, x, y, folds=fold, key=jax.random.key(0), epochs=3, batch_size=8,
                                   mesh=None, mode="vmap")
    assert np.all(np.bincount(fold) == 10)  # equal folds: every task's index arrays are unpadded
    start = population.Population(mlp, x, y, x, y, views=fold_views(fold), batch_size=8, mesh=None).init(
        hp, jax.random.key(0))
    for k in range(4):
        tr, te = fold != k, fold == k
        alone = population.Population(mlp, x[tr], y[tr], x[te], y[te], batch_size=8, mesh=None)
        st, (_, vl, _), preds = alone.run(population.select(start, [1 * 4 + k]), 3)
        np.testing.assert_allclose(vl[0], cv.val_loss[1, k], rtol=1e-5)
        np.testing.assert_allclose(preds[0], cv.oof_predictions[1, te], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(cv.mean_val_loss, np.asarray(cv.val_loss).mean(1), rtol=1e-6)
