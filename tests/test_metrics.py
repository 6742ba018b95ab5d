import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn import metrics as skm

from jaxhpo import metrics


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 200)
    p = np.where(rng.random(200) < 0.6, y, rng.integers(0, 4, 200))
    probs = rng.dirichlet(np.ones(4), 200)
    w = rng.random(200)
    return y, p, probs, w


@pytest.mark.parametrize("average", ["micro", "macro", "weighted"])
def test_prf_multiclass_match_sklearn(data, average):
    y, p, _, w = data
    for fn, ref in ((metrics.precision, skm.precision_score), (metrics.recall, skm.recall_score),
                    (metrics.f1, skm.f1_score)):
        got = jax.jit(lambda a, b, c: fn(a, b, num_classes=4, average=average, sample_weight=c))(y, p, w)
        want = ref(y, p, average=average, sample_weight=w, zero_division=0)
        np.testing.assert_allclose(got, want, rtol=1e-5)


def test_binary_and_absent_class_match_sklearn():
    y = np.array([0, 1, 1, 0, 1, 0, 0])
    p = np.array([0, 1, 0, 0, 1, 1, 0])
    for fn, ref in ((metrics.precision, skm.precision_score), (metrics.recall, skm.recall_score),
                    (metrics.f1, skm.f1_score)):
        np.testing.assert_allclose(fn(y, p), ref(y, p), rtol=1e-6)
    # class 2 never occurs nor is predicted: contributes 0 to the macro mean, as zero_division=0
    np.testing.assert_allclose(metrics.f1(y, p, num_classes=3, average="macro"),
                               skm.f1_score(y, p, labels=[0, 1, 2], average="macro", zero_division=0), rtol=1e-6)


def test_accuracy_logloss_mse_confusion(data):
    y, p, probs, w = data
    np.testing.assert_allclose(metrics.accuracy(y, p), skm.accuracy_score(y, p), rtol=1e-6)
    np.testing.assert_allclose(metrics.accuracy(y, p, w), skm.accuracy_score(y, p, sample_weight=w), rtol=1e-5)
    np.testing.assert_allclose(metrics.log_loss(y, probs), skm.log_loss(y, probs), rtol=1e-5)
    np.testing.assert_allclose(metrics.log_loss(y, probs, w), skm.log_loss(y, probs, sample_weight=w), rtol=1e-5)
    logits = np.log(probs) + 3.0
    np.testing.assert_allclose(metrics.log_loss_from_logits(y, logits), skm.log_loss(y, probs), rtol=1e-5)
    yb = (y > 1).astype(int)
    np.testing.assert_allclose(metrics.log_loss(yb, probs[:, 0]), skm.log_loss(yb, probs[:, 0]), rtol=1e-5)
    np.testing.assert_allclose(metrics.mse(probs[:, 0], probs[:, 1]), skm.mean_squared_error(probs[:, 0], probs[:, 1]),
                               rtol=1e-5)
    np.testing.assert_array_equal(metrics.confusion_matrix(y, p, 4), skm.confusion_matrix(y, p))


def test_metrics_vmap_over_members(data):
    y, _, probs, _ = data
    stacked = jnp.stack([probs, probs[::-1]])
    got = jax.vmap(lambda q: metrics.log_loss(y, q))(stacked)
    np.testing.assert_allclose(got, [skm.log_loss(y, probs), skm.log_loss(y, probs[::-1])], rtol=1e-5)


def test_bad_average_and_binary_on_multiclass():
    with pytest.raises(ValueError, match="average"):
        metrics.f1(jnp.zeros(3, int), jnp.zeros(3, int), average="samples")
    with pytest.raises(ValueError, match="num_classes=3"):
        metrics.f1(jnp.zeros(3, int), jnp.zeros(3, int), num_classes=3, average="binary")


def test_a_column_of_labels_is_taken_as_scikit_learn_takes_it_and_other_shapes_are_errors(data):
    """[n] against [n, 1] used to broadcast to [n, n]: mse(y, y[:, None]) was 2.5 for y = 0..3, not 0, and
    the confusion matrix counted n * n pairs. A column counts as [n], as in scikit-learn; other mismatches
    raise, naming the metric and both shapes (checked when traced, so inside a jit too)."""
    y, p, probs, w = data
    column = p[:, None]
    np.testing.assert_allclose(metrics.accuracy(y, column), skm.accuracy_score(y, p), rtol=1e-6)
    np.testing.assert_array_equal(metrics.confusion_matrix(y[:, None], column, 4), skm.confusion_matrix(y, p))
    np.testing.assert_allclose(metrics.f1(y, column, num_classes=4, average="macro"),
                               skm.f1_score(y, p, average="macro"), rtol=1e-5)
    np.testing.assert_allclose(metrics.log_loss(y[:, None], probs), skm.log_loss(y, probs), rtol=1e-5)
    np.testing.assert_allclose(metrics.mse(probs[:, 0], probs[:, 1:2]),
                               skm.mean_squared_error(probs[:, 0], probs[:, 1]), rtol=1e-5)
    assert float(metrics.mse(np.arange(4.0), np.arange(4.0)[:, None])) == 0.0
    np.testing.assert_allclose(metrics.mse(probs[:, :2], probs[:, 2:]), skm.mean_squared_error(probs[:, :2], probs[:, 2:]),
                               rtol=1e-5)  # two outputs
    bad = [
        (lambda: metrics.accuracy(y, p[:-1]), r"metrics.accuracy: y_true and y_pred must be \[n\] labels of one "
                                              r"length, got shapes \(200,\) and \(199,\)"),
        (lambda: metrics.accuracy(y, probs), r"metrics.accuracy: .* got shapes \(200,\) and \(200, 4\)"),
        (lambda: metrics.f1(y, p[:-1], num_classes=4, average="macro"), r"metrics.f1: .*\(199,\)"),
        (lambda: metrics.confusion_matrix(y, p[:, None].repeat(2, 1), 4), r"metrics.confusion_matrix: .*\(200, 2\)"),
        (lambda: metrics.log_loss(y[:-1], probs), r"metrics.log_loss: y_true must be \[n\] labels and probs"),
        (lambda: metrics.log_loss_from_logits(y, probs[:, 0]), r"metrics.log_loss_from_logits: .*\(200,\)"),
        (lambda: metrics.mse(probs[:, 0], probs[:-1, 0]), r"metrics.mse: y_true and y_pred must have one shape"),
        (lambda: metrics.mse(probs[:, :2], probs), r"metrics.mse: .*\(200, 2\) and \(200, 4\)"),
        (lambda: metrics.accuracy(y, p, w[:-1]), r"metrics.accuracy: sample_weight must be \[n\]=\(200,\)"),
        (lambda: jax.jit(metrics.accuracy)(y, p[:-1]), r"metrics.accuracy: y_true and y_pred"),
    ]
    for call, message in bad:
        with pytest.raises(ValueError, match=message):
            call()


def test_an_eager_metric_is_one_program_and_equals_the_metric_inside_a_jit():
    # jitted where defined: called eagerly on a new shape, one program (op by op, log_loss and accuracy built 12)
    from _compiles import counting

    rng = np.random.default_rng(7)
    y = rng.integers(0, 5, 37)
    probs = rng.dirichlet(np.ones(5), 37)
    with counting() as count:
        loss = metrics.log_loss(y, probs)
    assert count.named == ["log_loss"]
    with counting() as count:
        acc = metrics.accuracy(y, probs.argmax(-1))
    assert count.named == ["accuracy"]
    np.testing.assert_allclose(loss, skm.log_loss(y, probs), rtol=1e-5)
    assert float(acc) == pytest.approx(skm.accuracy_score(y, probs.argmax(-1)))
    assert float(jax.jit(metrics.log_loss)(y, probs)) == float(loss)
    with pytest.raises(ValueError, match="average must be one of"):
        metrics.f1(y, probs.argmax(-1), num_classes=5, average="samples")
