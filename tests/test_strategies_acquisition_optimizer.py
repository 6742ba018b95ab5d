"""The acquisition optimizer alone: any score function, snapped configurations, nothing seen twice."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxhpo
from jaxhpo.gp import acquisition as acq
from jaxhpo.gp.kernels import Layout, same_points, snap
from jaxhpo.strategies import acquisition_optimizer as optimizer

MIXED = jaxhpo.Space({"x": jaxhpo.Float(0.0, 1.0), "n": jaxhpo.Int(1, 5), "c": jaxhpo.Categorical(["a", "b", "c"])})
SMALL_DISCRETE = jaxhpo.Space({"n": jaxhpo.Int(1, 3), "c": jaxhpo.Categorical(["a", "b"])})  # 6 configurations


@pytest.fixture(autouse=True)
def _inside_the_precision_boundary():
    """These functions run inside bayes()'s float64 boundary; the tests call them there too."""
    with jax.enable_x64(True):
        yield


def _target(layout):
    return snap(jnp.array([[0.7, 0.6, 0.9]]), layout)[0]  # x=0.7, n=the bin at 0.6, c="c"


def _run(layout, score, seen_x, seen_m, repeats=False, key=0):
    top, top_ok = jnp.full((2, layout.dim), 0.5), jnp.array([True, False])
    return optimizer.maximize(jax.random.key(key), score, top, top_ok, layout, seen_x, seen_m, count=128,
                              refine_starts=4, refine_steps=25, repeats=repeats)


def test_maximize_finds_the_best_configuration_of_any_score_function():
    layout = Layout.from_space(MIXED)
    target = _target(layout)
    score = lambda x: -jnp.sum((x - target) ** 2, axis=-1)  # noqa: E731
    x = _run(layout, score, jnp.zeros((1, 3)), jnp.array([False]))
    assert np.allclose(np.asarray(snap(x[None], layout)[0]), np.asarray(x), atol=1e-6)  # a configuration, snapped
    assert abs(float(x[0]) - 0.7) < 0.02 and np.allclose(np.asarray(x[1:]), np.asarray(target[1:]), atol=1e-6)


def test_maximize_never_returns_a_seen_configuration_unless_repeats():
    layout = Layout.from_space(MIXED)
    target = _target(layout)
    score = lambda x: -jnp.sum((x[..., 1:] - target[1:]) ** 2, axis=-1)  # noqa: E731 (x does not matter)
    seen = target[None]
    x = _run(layout, score, seen, jnp.array([True]))
    assert not bool(same_points(x[None], seen)[0, 0])  # the best configuration is taken: another one
    again = _run(layout, score, seen, jnp.array([True]), repeats=True)
    assert np.allclose(np.asarray(again[1:]), np.asarray(target[1:]), atol=1e-6)


def test_maximize_enumerates_a_small_space_and_says_when_it_is_exhausted():
    layout = Layout.from_space(SMALL_DISCRETE)
    configs = jnp.asarray(layout.configurations())
    score = lambda x: -jnp.sum(x, axis=-1)  # noqa: E731
    taken = []
    for i in range(configs.shape[0]):
        seen = jnp.concatenate([configs, jnp.zeros((1, 2))])
        mask = jnp.asarray([any(bool(same_points(c[None], t[None])[0, 0]) for t in taken) for c in configs] + [False])
        x = _run(layout, score, seen, mask, key=i)
        assert np.all(np.isfinite(np.asarray(x))) and not any(bool(same_points(x[None], t[None])[0, 0]) for t in taken)
        taken.append(x)
    seen = jnp.concatenate([configs, jnp.zeros((1, 2))])
    exhausted = _run(layout, score, seen, jnp.asarray([True] * configs.shape[0] + [False]))
    assert np.all(np.isnan(np.asarray(exhausted)))


def test_maximize_on_a_space_of_one_configuration_takes_it_then_says_it_is_exhausted():
    # one configuration: the enumerated candidates are one row, which plays the global and the local one
    layout = Layout.from_space(jaxhpo.Space({"k": jaxhpo.Int(3, 3), "c": jaxhpo.Categorical(["x"])}))
    score = lambda x: -jnp.sum(x, axis=-1)  # noqa: E731
    seen = jnp.asarray(layout.configurations())
    first = _run(layout, score, seen, jnp.array([False]))
    np.testing.assert_array_equal(np.asarray(first), np.asarray(seen[0]))
    assert np.all(np.isnan(np.asarray(_run(layout, score, seen, jnp.array([True])))))


def test_thompson_picks_are_distinct_configurations():
    layout = Layout.from_space(SMALL_DISCRETE)
    joint = lambda x: (jnp.zeros(x.shape[0]), jnp.eye(x.shape[0]))  # noqa: E731
    top, top_ok = jnp.full((1, 2), 0.5), jnp.array([True])
    picks = optimizer.thompson_picks(jax.random.key(0), joint, jnp.float64(1.0), top, top_ok, 6, layout,
                                     jnp.zeros((1, 2)), jnp.array([False]), count=64, repeats=False)
    same = np.asarray(same_points(picks, picks))
    assert np.array_equal(same, np.eye(6, dtype=bool))  # six picks, six configurations: the whole space


def test_acquisitions_share_one_signature_with_their_parameters_bound():
    mean, var, best = jnp.array([0.0, 1.0]), jnp.array([1.0, 4.0]), jnp.array(0.5)
    for name in ("log_ei", "ei", "pi", "log_pi", "ucb"):
        assert acq.make(name, beta=1.0)(mean, var, best).shape == (2,)
    np.testing.assert_allclose(np.asarray(acq.make("ucb", beta=9.0)(mean, var, best)), [3.0, 5.0])
    np.testing.assert_allclose(np.asarray(acq.make("pi")(mean, var, best)), np.asarray(acq.log_pi(mean, var, best)))
    try:
        acq.make("expected")
    except ValueError as e:
        assert "acquisition must be one of" in str(e) and "'expected'" in str(e)
    else:
        raise AssertionError("an unknown acquisition was accepted")


def test_refine_moves_every_start_as_if_it_were_alone_and_holds_categories():
    # rows are refined together (one batched ascent): each must end where it would on its own
    layout = Layout.from_space(jaxhpo.Space({"x": jaxhpo.Float(0.0, 1.0), "y": jaxhpo.Float(0.0, 1.0),
                                             "c": jaxhpo.Categorical(["a", "b"])}))
    centre = jnp.array([0.7, 0.2, 0.0])
    score = lambda x: -jnp.sum((x - centre) ** 2, axis=-1) + jnp.sin(7 * x[..., 0])  # noqa: E731
    with jax.enable_x64(True):
        starts = jnp.array([[0.1, 0.9, 0.25], [0.5, 0.5, 0.75], [0.95, 0.05, 0.25]], jnp.float64)
        together, scores = optimizer.refine(score, starts, layout, 15)
        together, scores = np.asarray(together), np.asarray(scores)
        alone = np.concatenate([np.asarray(optimizer.refine(score, starts[i:i + 1], layout, 15)[0]) for i in range(3)])
        before, after = np.asarray(score(starts)), np.asarray(score(jnp.asarray(together)))
    np.testing.assert_allclose(together, alone, rtol=0, atol=1e-12)
    np.testing.assert_allclose(scores, after, rtol=1e-12)  # the scores it returns are those of the points
    np.testing.assert_array_equal(together[:, 2], np.asarray(starts[:, 2]))  # the categorical coordinate is held
    assert np.all(after > before)  # each start climbed


def test_refine_keeps_the_best_point_of_each_path_snapped_and_scored():
    # an integer coordinate: the point returned is the best seen along the path, snapped to its
    # bin, and the score returned is that of the snapped point (what will be evaluated)
    layout = Layout.from_space(jaxhpo.Space({"x": jaxhpo.Float(0.0, 1.0), "n": jaxhpo.Int(0, 4)}))
    score = lambda x: -jnp.sum((x - jnp.array([0.3, 0.55])) ** 2, axis=-1)  # noqa: E731
    with jax.enable_x64(True):
        starts = jnp.array([[0.9, 0.1], [0.2, 0.95]], jnp.float64)
        x, scores = optimizer.refine(score, starts, layout, 30)
        snapped = snap(x, layout)
        np.testing.assert_array_equal(np.asarray(x), np.asarray(snapped))
        np.testing.assert_allclose(np.asarray(scores), np.asarray(score(x)), rtol=1e-12)
        # no step taken: the starts themselves, snapped, and their scores
        x0, s0 = optimizer.refine(score, starts, layout, 0)
        np.testing.assert_array_equal(np.asarray(x0), np.asarray(snap(starts, layout)))
        np.testing.assert_allclose(np.asarray(s0), np.asarray(score(snap(starts, layout))), rtol=1e-12)
    assert np.all(np.abs(np.asarray(x)[:, 0] - 0.3) < 0.5 * np.abs(np.asarray(starts)[:, 0] - 0.3))  # climbed
