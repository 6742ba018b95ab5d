"""Tests for jaxhpo.space: round trips, grids, errors."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import jaxhpo
from jaxhpo import Categorical, Float, Int, Space


@settings(max_examples=60, deadline=None)
@given(
    low=st.floats(-1e3, 1e3),
    width=st.floats(1e-2, 1e3),
    frac=st.floats(0.0, 1.0),
    log=st.booleans(),
)
def test_float_round_trip(low, width, frac, log):
    if log:
        low = abs(low) + 1e-3
    high = low + width
    value = math.exp(math.log(low) + frac * (math.log(high) - math.log(low))) if log else low + frac * width
    value = min(max(value, low), high)
    space = Space({"a": Float(low, high, log=log)})
    u = space.encode({"a": np.float64(value)}, dtype=jnp.float32)
    assert 0.0 <= float(u[0]) <= 1.0
    back = float(space.decode(u)["a"])
    assert back == pytest.approx(value, rel=1e-4, abs=1e-4 * width)


@settings(max_examples=60, deadline=None)
@given(low=st.integers(-50, 50), span=st.integers(1, 500), log=st.booleans(), data=st.data())
def test_int_round_trip(low, span, log, data):
    if log:
        low = abs(low) + 1
    high = low + span
    value = data.draw(st.integers(low, high))
    space = Space({"n": Int(low, high, log=log)})
    decoded = space.decode(space.encode({"n": value}))
    assert decoded["n"].dtype == jnp.int32
    assert int(decoded["n"]) == value


@settings(max_examples=30, deadline=None)
@given(k=st.integers(1, 12), data=st.data())
def test_categorical_round_trip(k, data):
    choices = [f"c{i}" for i in range(k)]
    space = Space({"c": Categorical(choices)})
    i = data.draw(st.integers(0, k - 1))
    decoded = space.decode(space.encode({"c": i}))
    assert space.to_python(decoded) == {"c": choices[i]}
    assert space.from_python({"c": choices[i]})["c"] == i


def test_uniform_cube_gives_uniform_discrete_values():
    space = Space({"n": Int(1, 4), "c": Categorical(["a", "b", "c"]), "m": Int(1, 1000, log=True)})
    params = space.decode(jax.random.uniform(jax.random.key(0), (60000, 3)))
    assert np.bincount(np.asarray(params["n"]) - 1) / 60000 == pytest.approx([0.25] * 4, abs=0.01)
    assert np.bincount(np.asarray(params["c"])) / 60000 == pytest.approx([1 / 3] * 3, abs=0.01)
    m = np.asarray(params["m"])
    assert m.min() == 1 and m.max() == 1000
    # log scale: bins of equal width in log over [0.5, 1000.5]
    expected = (math.log(31.5) - math.log(0.5)) / (math.log(1000.5) - math.log(0.5))
    assert np.mean(m <= 31) == pytest.approx(expected, abs=0.01)


def test_decode_is_jittable_and_vmappable():
    space = Space({"lr": Float(1e-4, 1.0, log=True), "n": Int(2, 9), "c": Categorical([1, 2])})
    u = jax.random.uniform(jax.random.key(1), (5, 7, 3))
    eager = space.decode(u)
    jitted = jax.jit(space.decode)(u)
    vmapped = jax.vmap(space.decode)(u)
    for name in space.names:  # XLA may fuse exp differently: equal up to an ulp
        np.testing.assert_allclose(eager[name], jitted[name], rtol=2e-6)
        np.testing.assert_allclose(eager[name], vmapped[name], rtol=2e-6)
    np.testing.assert_array_equal(eager["n"], jitted["n"])
    assert eager["lr"].shape == (5, 7)
    back = jax.jit(space.encode)(eager)
    np.testing.assert_allclose(space.decode(back)["lr"], eager["lr"], rtol=1e-5)


def test_grid_covers_every_combination_once():
    space = Space({"x": Float(0.0, 1.0), "n": Int(1, 3), "c": Categorical(["a", "b"]), "lr": Float(1e-3, 1, log=True)})
    points = space.grid(resolution=4)
    assert points.shape == (4 * 3 * 2 * 4, 4) == (space.grid_size(4), 4)
    decoded = space.decode(points)
    combos = {tuple(space.to_python(decoded, i).values()) for i in range(len(points))}
    assert len(combos) == len(points)
    xs = sorted({c[0] for c in combos})
    assert xs == pytest.approx([0, 1 / 3, 2 / 3, 1], abs=1e-6)
    lrs = sorted({c[3] for c in combos})
    assert lrs == pytest.approx([1e-3, 1e-2, 1e-1, 1], rel=1e-5)
    assert {c[1] for c in combos} == {1, 2, 3}
    assert {c[2] for c in combos} == {"a", "b"}


def test_grid_thins_wide_integers_to_distinct_values():
    space = Space({"n": Int(1, 100)})
    values = np.asarray(space.decode(space.grid(5))["n"])
    assert list(values) == [1, 26, 50, 75, 100]


def test_sample_stays_in_bounds():
    space = Space({"x": Float(-3.0, -1.0), "n": Int(5, 7)})
    p = space.sample(jax.random.key(0), 1000)
    assert float(p["x"].min()) >= -3.0 and float(p["x"].max()) <= -1.0
    assert set(np.asarray(p["n"]).tolist()) == {5, 6, 7}


def test_to_dict_round_trip():
    space = Space({"x": Float(0.5, 2, log=True), "n": Int(1, 8), "c": Categorical(["a", 3, None])})
    assert Space.from_dict(space.to_dict()) == space
    assert hash(Space.from_dict(space.to_dict())) == hash(space)


@pytest.mark.parametrize(
    "make, words",
    [
        (lambda: Float(1.0, 1.0), ["low", "high", "1.0"]),
        (lambda: Float(2.0, 1.0), ["low=2.0", "high=1.0"]),
        (lambda: Float(0.0, 1.0, log=True), ["log", "low=0.0"]),
        (lambda: Float(-1.0, 1.0, log=True), ["log", "-1.0"]),
        (lambda: Float(0.0, float("inf")), ["high", "inf"]),
        (lambda: Float(float("nan"), 1.0), ["low", "nan"]),
        (lambda: Float("a", 1.0), ["low", "'a'"]),
        (lambda: Int(3, 2), ["low must not exceed high", "low=3", "high=2"]),
        (lambda: Int(1.5, 3), ["low", "1.5"]),
        (lambda: Int(0, 10, log=True), ["log", "low=0"]),
        (lambda: Categorical([]), ["empty"]),
        (lambda: Categorical(["a", "b", "a"]), ["duplicate", "'a'"]),
        (lambda: Categorical("abc"), ["list", "'abc'"]),
        (lambda: Space({}), ["empty"]),
        (lambda: Space({"x": (0, 1)}), ["'x'", "(0, 1)"]),
        (lambda: Space({"": Float(0, 1)}), ["names", "''"]),
    ],
)
def test_bad_spaces_raise_clear_errors(make, words):
    with pytest.raises(ValueError) as info:
        make()
    for word in words:
        assert word in str(info.value)


def test_bad_values_raise_naming_parameter_and_value():
    space = Space({"lr": Float(1e-4, 1e-1, log=True), "n": Int(1, 4), "act": Categorical(["relu", "tanh"])})
    good = {"lr": 1e-3, "n": 2, "act": "relu"}
    space.validate(good)
    cases = [
        ({**good, "lr": 5.0}, ["'lr'", "5.0"]),
        ({**good, "lr": float("nan")}, ["'lr'", "nan"]),
        ({**good, "n": 9}, ["'n'", "9"]),
        ({**good, "n": 2.5}, ["'n'", "2.5"]),
        ({**good, "act": "gelu"}, ["'act'", "'gelu'"]),
        ({**good, "extra": 1}, ["unknown", "'extra'"]),
        ({"lr": 1e-3, "n": 2}, ["missing", "'act'"]),
    ]
    for params, words in cases:
        with pytest.raises(ValueError) as info:
            space.validate(params)
        for word in words:
            assert word in str(info.value), (params, str(info.value))
    with pytest.raises(ValueError, match="'act'.*index 5"):
        space.encode({"lr": 1e-3, "n": 2, "act": 5})
    with pytest.raises(ValueError, match="shape"):
        space.decode(jnp.zeros((4, 2)))
    with pytest.raises(ValueError, match="resolution"):
        space.grid(0)


@pytest.mark.parametrize("kind", [jaxhpo.Float, jaxhpo.Int])
def test_log_must_be_a_bool_not_a_truthy_string(kind):
    with pytest.raises(ValueError, match="log must be True or False, got log='False'"):
        kind(1, 10, log="False")
    assert kind(1, 10, log=np.bool_(True)).log is True


@pytest.mark.parametrize("param, u, expected", [
    (jaxhpo.Int(0, 2**40), 0.5, 2**39),
    (jaxhpo.Float(-1e308, 1e308), 0.5, 0.0),
    (jaxhpo.Float(-1e308, 1e308), 1.0, 1e308),
    (jaxhpo.Float(0, 1e39), 1.0, 1e39),
    (jaxhpo.Float(1e-300, 1e300, log=True), 0.0, 1e-300),
    (jaxhpo.Float(1e-300, 1e300, log=True), 1.0, 1e300),
])
def test_wide_ranges_decode_exactly_in_float64(param, u, expected):
    space = jaxhpo.Space({"p": param})
    value = space.decode_numpy(np.array([u]))["p"]
    assert np.isfinite(value) and value == pytest.approx(expected, rel=1e-9, abs=1e-300)
    with jax.enable_x64(True):
        value = space.decode(jnp.array([u], jnp.float64))["p"]
        assert np.isfinite(value) and float(value) == pytest.approx(expected, rel=1e-9, abs=1e-300)


@pytest.mark.parametrize("param", [jaxhpo.Int(0, 2**40), jaxhpo.Float(0, 1e39), jaxhpo.Float(-1e308, 1e308),
                                   jaxhpo.Float(1e-300, 1e300, log=True)])
def test_a_range_float32_cannot_hold_is_a_clear_error_not_a_wrong_value(param):
    space = jaxhpo.Space({"p": param})
    with pytest.raises(ValueError, match=r"parameter 'p' .*enable 64-bit JAX"):
        space.decode(jnp.array([0.5], jnp.float32))


def test_a_study_over_wide_ranges_hands_out_exact_values():
    space = jaxhpo.Space({"n": jaxhpo.Int(0, 2**40), "x": jaxhpo.Float(1e-300, 1e300, log=True)})
    study = jaxhpo.Study(space, jaxhpo.strategies.random(), seed=0)
    for t in study.ask(8):
        assert isinstance(t.params["n"], int) and 0 <= t.params["n"] <= 2**40
        assert 1e-300 <= t.params["x"] <= 1e300 and np.isfinite(t.params["x"])
    assert max(t.params["n"] for t in study.trials) > 2**31  # past int32: not clipped to 2147483647


def test_equal_spaces_hash_equal_and_choices_of_another_type_make_another_space():
    ints, floats = Space({"c": Categorical([1, 2])}), Space({"c": Categorical([1.0, 2.0])})
    assert ints != floats  # the objective receives 1 or 1.0: not the same space
    assert ints == Space({"c": Categorical([1, 2])}) and hash(ints) == hash(Space({"c": Categorical([1, 2])}))
    assert Space({"x": Float(0, 1)}) == Space({"x": Float(0.0, 1.0)})
    assert hash(Space({"x": Float(0, 1)})) == hash(Space({"x": Float(0.0, 1.0)}))
    assert len({ints, floats, Space({"c": Categorical([1, 2])})}) == 2


def test_an_eager_decode_is_one_program_and_equals_the_decode_inside_a_jit():
    from _compiles import counting

    space = jaxhpo.Space({"lr": jaxhpo.Float(1e-4, 1e-1, log=True), "n": jaxhpo.Int(2, 37),
                          "act": jaxhpo.Categorical(["relu", "tanh", "gelu"]), "p": jaxhpo.Float(0.0, 0.5)})
    u = jax.random.uniform(jax.random.key(7), (11, 4))
    with counting() as count:
        eager = space.decode(u)
    assert count.programs == 1  # not one per clip, exp and cast
    inside = jax.jit(space.decode)(u)
    for name in space.names:
        np.testing.assert_array_equal(np.asarray(eager[name]), np.asarray(inside[name]))
    with pytest.raises(ValueError, match=r"shape \[\.\.\., 4\]"):
        space.decode(jnp.zeros((3, 5)))


def test_a_linear_range_past_exps_limit_decodes_without_a_warning():
    # a linear coordinate's value must not go through exp (exp(1000) overflows): no RuntimeWarning to the user
    import warnings

    space = jaxhpo.Space({"n": jaxhpo.Int(10, 1000), "lr": jaxhpo.Float(1e-3, 1.0, log=True),
                          "big": jaxhpo.Float(0.0, 1e6)})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        values = space.decode_numpy(np.array([[0.9, 0.5, 1.0]]))
    assert values["n"].tolist() == [901] and values["big"].tolist() == [1e6]
    np.testing.assert_allclose(values["lr"], [10 ** -1.5], rtol=1e-12)


def test_an_int_whose_low_equals_its_high_is_that_value_fixed():
    # as Optuna's suggest_int(name, 3, 3) and Ray's randint(3, 4): a parameter held at one value
    space = Space({"k": Int(3, 3), "l": Int(2, 2, log=True), "x": Float(0.0, 1.0)})
    u = np.array([[0.0, 0.0, 0.2], [1.0, 1.0, 0.7], [0.5, 0.4, 1.0]])
    decoded = space.decode_numpy(u)
    assert decoded["k"].tolist() == [3, 3, 3] and decoded["l"].tolist() == [2, 2, 2]
    np.testing.assert_array_equal(np.asarray(space.decode(jnp.asarray(u, jnp.float32))["k"]), [3, 3, 3])
    back = space.encode_numpy({"k": np.array([3]), "l": np.array([2]), "x": np.array([0.25])})
    assert np.all(np.isfinite(back)) and space.decode_numpy(back)["k"].tolist() == [3]
    assert space.grid_size(3) == 3 and space.to_python(space.decode_numpy(u[0]))["k"] == 3
    with pytest.raises(ValueError, match="'k'.*4"):
        space.validate({"k": 4, "l": 2, "x": 0.5})
