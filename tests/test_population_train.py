import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxhpo import population

N_TRAIN, N_VAL, D, C = 48, 24, 5, 3


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(D, C))
    x = rng.normal(size=(N_TRAIN + N_VAL, D)).astype(np.float32)
    y = np.argmax(x @ w + 0.3 * rng.normal(size=(N_TRAIN + N_VAL, C)), axis=1).astype(np.int32)
    return x[:N_TRAIN], y[:N_TRAIN], x[N_TRAIN:], y[N_TRAIN:]


def mlp(h):
    return population.MLP(hidden=(8,), outputs=C, activations=(jax.nn.relu,))


HP = {"learning_rate": np.array([3e-3, 1e-2, 3e-2], np.float32), "weight_decay": np.array([0.0, 1e-3, 1e-2], np.float32)}


def one(hp, i):
    return {k: v[i : i + 1] for k, v in hp.items()}


@pytest.mark.parametrize("mode", ["vmap", "map", "chunks"])
def test_population_equals_members_trained_alone(data, mode):
    res = population.train(mlp, HP, *data, key=jax.random.key(0), epochs=3, batch_size=16, mode=mode,
                           chunk_size=2, mesh=None)
    assert res.val_loss.shape == (3, 3) and res.val_predictions.shape == (3, N_VAL, C)
    np.testing.assert_allclose(res.val_predictions.sum(-1), 1.0, rtol=1e-5)
    # each member alone (a population of one, run sequentially) from the same initial state
    pop = population.Population(mlp, *data, batch_size=16, mode="map", mesh=None)
    start = pop.init(HP, jax.random.key(0))
    for i in range(3):
        st, (tl, vl, va), preds = pop.run(population.select(start, [i]), 3)
        np.testing.assert_allclose(vl[0], res.val_loss[i], rtol=2e-5, atol=1e-6)
        np.testing.assert_allclose(preds[0], res.val_predictions[i], rtol=1e-4, atol=1e-6)


@pytest.mark.usefixtures("full_float32_products")
def test_full_batch_training_matches_plain_optax_loop(data):
    x, y, xv, yv = data
    pop = population.Population(mlp, *data, batch_size=N_TRAIN, mode="vmap", mesh=None)
    state = pop.init(HP, jax.random.key(1))
    params0 = jax.tree.map(lambda a: a[2], state.params)
    state, (tl, vl, _), _ = pop.run(state, 5)
    module = mlp({})
    opt = optax.adamw(learning_rate=3e-2, weight_decay=1e-2)
    p, o = params0, opt.init(params0)

    def loss(p, x, y):
        return optax.softmax_cross_entropy_with_integer_labels(module.apply({"params": p}, x), y).mean()

    for _ in range(5):  # one step per epoch: the whole batch, order irrelevant
        g = jax.grad(loss)(p, x, y)
        u, o = opt.update(g, o, p)
        p = optax.apply_updates(p, u)
    np.testing.assert_allclose(vl[2, -1], loss(p, xv, yv), rtol=1e-5)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a[2], b, rtol=1e-4, atol=1e-6), state.params, p)


@pytest.mark.usefixtures("full_float32_products")
def test_member_epochs_and_batch_size_are_respected(data):
    hp = {"learning_rate": np.array([1e-2, 1e-2], np.float32), "epochs": np.array([2, 4]),
          "batch_size": np.array([8, 24])}
    res = population.train(mlp, hp, *data, key=jax.random.key(2), mode="vmap", mesh=None)
    assert res.train_loss.shape == (2, 4)
    assert np.all(np.isnan(res.train_loss[0, 2:])) and np.all(np.isfinite(res.train_loss[1]))
    # the stopped member's validation loss stays where it stopped
    np.testing.assert_allclose(res.val_loss[0, 1:], res.val_loss[0, 1], rtol=1e-6)
    np.testing.assert_array_equal(res.state.epoch, [2, 4])
    # member 0 inside the padded population (batch 24 lanes) equals member 0 trained alone (8 lanes, 2 epochs)
    alone = population.Population(mlp, *data, mode="vmap", mesh=None)
    st = alone.init(one(hp, 0) | {"epochs": np.array([2]), "batch_size": np.array([8])}, jax.random.key(0))
    full = population.Population(mlp, *data, mode="vmap", mesh=None).init(hp, jax.random.key(2))
    st = population.select(full, [0])
    st, (tl, vl, _), _ = alone.run(st, 2)
    np.testing.assert_allclose(vl[0], res.val_loss[0, :2], rtol=1e-5)
    np.testing.assert_allclose(tl[0], res.train_loss[0, :2], rtol=1e-5)


@pytest.mark.parametrize("mode", ["vmap", "map"])
def test_validation_freq_scores_fewer_epochs_and_changes_nothing_else(data, mode):
    # members of 7, 5 and 2 epochs scored every 3rd epoch: epochs 3 and 6, each member's last, and the
    # run's last; the training, the final scores and predictions are those of scoring every epoch
    hp = {"learning_rate": np.array([1e-2, 3e-2, 1e-2], np.float32), "epochs": np.array([7, 5, 2]),
          "batch_size": np.array([8, 16, 12])}
    from _compiles import counting

    every = population.train(mlp, hp, *data, key=jax.random.key(3), mode=mode, mesh=None)
    with counting() as count:  # the frequency is an argument of the training program, not a new program
        some = population.train(mlp, hp, *data, key=jax.random.key(3), mode=mode, mesh=None, validation_freq=3)
    assert "run_all" not in count.named, count.named
    for a, b in zip(jax.tree.leaves((every.state.params, every.state.opt_state, every.state.epoch)),
                    jax.tree.leaves((some.state.params, some.state.opt_state, some.state.epoch))):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    np.testing.assert_array_equal(np.asarray(some.train_loss), np.asarray(every.train_loss))
    np.testing.assert_array_equal(np.asarray(some.val_predictions), np.asarray(every.val_predictions))
    scored = np.array([[0, 0, 1, 0, 0, 1, 1],    # 7 epochs: 3, 6 and 7
                       [0, 0, 1, 0, 1, 1, 1],    # 5 epochs: 3 and 5, then its final score repeated
                       [0, 1, 1, 1, 1, 1, 1]],   # 2 epochs: 2, repeated
                      bool)
    for name in ("val_loss", "val_accuracy"):
        got, want = np.asarray(getattr(some, name)), np.asarray(getattr(every, name))
        np.testing.assert_array_equal(got[scored], want[scored])
        assert np.all(np.isnan(got[~scored])), name
    np.testing.assert_array_equal(np.asarray(some.final_val_loss), np.asarray(every.final_val_loss))
    # in rungs (successive halving's run(state, k)): each run's last epoch is scored whatever the frequency
    pop = population.Population(mlp, *data, mode=mode, mesh=None, validation_freq=5)
    state = pop.init(HP, jax.random.key(4))
    state, (_, vl, _), preds = pop.run(state, 2)
    assert np.all(np.isnan(np.asarray(vl)[:, 0])) and np.all(np.isfinite(np.asarray(vl)[:, 1]))
    again = population.predict(mlp, state, data[2])
    np.testing.assert_allclose(np.asarray(preds), np.asarray(again), rtol=1e-5, atol=1e-6)
    for bad in (0, 1.5, "2"):
        with pytest.raises(ValueError, match="validation_freq"):
            population.Population(mlp, *data, validation_freq=bad)


def test_mlp_width_mask_activation_switch_and_dropout():
    x = jax.random.normal(jax.random.key(0), (4, 3))
    masked = population.MLP(hidden=(8,), outputs=2, width=jnp.array(3))
    v = masked.init(jax.random.key(1), x)
    out = masked.apply(v, x)
    # weights of units past the width do not matter
    k = v["params"]["Dense_0"]["kernel"]
    v2 = {"params": {**v["params"], "Dense_0": {**v["params"]["Dense_0"], "kernel": k.at[:, 3:].set(7.0)}}}
    np.testing.assert_allclose(masked.apply(v2, x), out, rtol=1e-6)
    # activation index 1 of (relu, gelu) is gelu
    switch = population.MLP(hidden=(8,), outputs=2, activations=(jax.nn.relu, jax.nn.gelu), activation=jnp.array(1))
    only = population.MLP(hidden=(8,), outputs=2, activations=(jax.nn.gelu,))
    np.testing.assert_allclose(switch.apply(v, x), only.apply(v, x), rtol=1e-6)
    drop = population.MLP(hidden=(8,), outputs=2, dropout=jnp.array(0.5))
    a = drop.apply(v, x, train=True, rngs={"dropout": jax.random.key(0)})
    b = drop.apply(v, x, train=True, rngs={"dropout": jax.random.key(1)})
    assert not np.allclose(a, b)
    np.testing.assert_allclose(drop.apply(v, x), population.MLP(hidden=(8,), outputs=2).apply(v, x), rtol=1e-6)


def test_regression_and_custom_loss(data):
    x, y, xv, yv = data
    t, tv = x[:, 0] * 2.0, xv[:, 0] * 2.0
    hp = {"learning_rate": np.array([1e-2, 3e-2], np.float32)}
    res = population.train(lambda h: population.MLP(hidden=(8,), outputs=1), hp, x, t, xv, tv, loss="mse",
                           key=jax.random.key(0), epochs=30, batch_size=16, mesh=None)
    assert res.val_predictions.shape == (2, N_VAL, 1)
    assert np.all(np.isnan(res.val_accuracy))
    assert float(res.val_loss[:, -1].min()) < 0.5 * float(np.var(tv))
    np.testing.assert_allclose(res.val_loss[:, -1], ((res.val_predictions[..., 0] - tv) ** 2).mean(1), rtol=1e-4)


def test_label_smoothing_and_inject_hyperparams_state(data):
    hp = {"learning_rate": np.array([1e-2, 1e-2], np.float32), "label_smoothing": np.array([0.0, 0.3], np.float32)}
    res = population.train(mlp, hp, *data, key=jax.random.key(0), epochs=2, batch_size=16, optimizer=optax.sgd,
                           mesh=None)
    assert not np.allclose(res.train_loss[0], res.train_loss[1])
    np.testing.assert_allclose(res.state.opt_state.hyperparams["learning_rate"], [1e-2, 1e-2])


def test_bad_inputs(data):
    x, y, xv, yv = data
    with pytest.raises(ValueError, match="differ in length"):
        population.train(mlp, HP, x, y[:-1], xv, yv, key=jax.random.key(0))
    with pytest.raises(ValueError, match="same length"):
        population.train(mlp, {"learning_rate": np.ones(2), "weight_decay": np.ones(3)}, *data, key=jax.random.key(0))
    with pytest.raises(ValueError, match="1-d"):
        population.train(mlp, {"learning_rate": np.ones((2, 2))}, *data, key=jax.random.key(0))
    with pytest.raises(ValueError, match="mode"):
        population.train(mlp, HP, *data, key=jax.random.key(0), mode="threads")
    with pytest.raises(ValueError, match="loss"):
        population.train(mlp, HP, *data, key=jax.random.key(0), loss="hinge")
    with pytest.raises(ValueError, match="batch_size"):
        population.train(mlp, HP, *data, key=jax.random.key(0), batch_size=0)
    with pytest.raises(ValueError, match="'epochs'"):
        population.train(mlp, {"learning_rate": np.ones(2), "epochs": np.array([0, 2])}, *data, key=jax.random.key(0))
    with pytest.raises(ValueError, match="optimizer_args"):
        population.train(mlp, HP, *data, key=jax.random.key(0), optimizer_args={"lr": "learning_rate"})


def test_a_hyperparameter_nobody_takes_is_an_error_listing_what_is_taken(data):
    key = jax.random.key(0)
    with pytest.raises(ValueError, match=r"hparams \['weight_decy'\] are taken by nothing.*adamw takes \[.*'weight_decay'"):
        population.train(mlp, {"learning_rate": np.ones(2) * 1e-2, "weight_decy": np.ones(2)}, *data, key=key)
    with pytest.raises(ValueError, match=r"\['weight_decay'\] are taken by nothing.*adam takes"):
        population.train(mlp, HP, *data, key=key, optimizer=optax.adam)
    # what the model reads, the loss reads and the reserved names are all taken
    model = lambda h: population.MLP(hidden=(8,), outputs=C, width=h["width"])  # noqa: E731
    hp = dict(HP, width=np.array([4, 8, 6]), label_smoothing=np.full(3, 0.1, np.float32), epochs=np.array([1, 1, 2]))
    res = population.train(model, hp, *data, key=key, mode="map", mesh=None)
    assert res.val_loss.shape == (3, 2)


def test_bad_data_is_an_error_naming_the_argument(data):
    x, y, xv, yv = data
    key = jax.random.key(0)
    with pytest.raises(ValueError, match=r"y_train/y_val hold class ids up to 7 but the model has 3 outputs"):
        population.train(mlp, HP, x, np.where(y == 0, 7, y), xv, yv, key=key)
    with pytest.raises(ValueError, match=r"y_train must hold integer class ids .*one-hot"):
        population.train(mlp, HP, x, np.eye(C, dtype=np.float32)[y], xv, yv, key=key)
    with pytest.raises(ValueError, match=r"y_train must be numeric, got dtype <U.*LabelEncoder"):
        population.train(mlp, HP, x, np.array(["a", "b", "c"])[y], xv, yv, key=key)
    with pytest.raises(ValueError, match=r"y_val holds negative class ids"):
        population.train(mlp, HP, x, y, xv, yv - 1, key=key)
    x_nan = x.copy()
    x_nan[3, 2] = np.nan
    with pytest.raises(ValueError, match=r"x_train holds 1 NaN or infinite values"):
        population.train(mlp, HP, x_nan, y, xv, yv, key=key)
    with pytest.raises(ValueError, match=r"x_val rows have shape \(4,\), x_train rows \(5,\)"):
        population.train(mlp, HP, x, y, xv[:, :4], yv, key=key)


@pytest.mark.usefixtures("full_float32_products")
def test_predict_reproduces_validation_predictions(data):
    res = population.train(mlp, HP, *data, key=jax.random.key(3), epochs=2, batch_size=16, mesh=None)
    preds = population.predict(mlp, res.state, data[2], batch_size=10)
    np.testing.assert_allclose(preds, res.val_predictions, rtol=1e-4, atol=1e-6)


def test_nnx_modules_train_as_members(data):
    from flax import nnx

    class Net(nnx.Module):
        def __init__(self, din, dout, scale, *, rngs: nnx.Rngs):
            self.l1 = nnx.Linear(din, 8, rngs=rngs)
            self.l2 = nnx.Linear(8, dout, rngs=rngs)
            self.scale = scale

        def __call__(self, x):
            return self.l2(jax.nn.relu(self.l1(x))) * self.scale

    hp = {"learning_rate": np.array([3e-2, 3e-2], np.float32), "scale": np.array([1.0, 0.0], np.float32)}
    res = population.train(lambda h: population.nnx_model(Net, D, C, h["scale"]), hp, *data, key=jax.random.key(0),
                           epochs=4, batch_size=16, mesh=None)
    assert float(res.val_loss[0, -1]) < float(res.val_loss[0, 0])
    # scale 0 zeroes the outputs: that member stays at the uniform prediction, log(C)
    np.testing.assert_allclose(res.val_loss[1], np.log(C), rtol=1e-5)


def _images():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(60, 16)).astype(np.float32)
    y = (x[:, :8].sum(1) > 0).astype(np.int32) + (x[:, 5] > 1).astype(np.int32)
    return x[:40], y[:40], x[40:], y[40:]


def cnn(h):
    return population.LeNet(image_shape=(4, 4, 1), channels=(4,), hidden=8, outputs=3, width=h["width"],
                            activation=h["activation"])


CNN_HP = {"learning_rate": np.array([1e-2, 3e-3, 2e-2], np.float32), "width": np.array([1.0, 0.5, 0.75], np.float32),
          "activation": np.array([0, 1, 2]), "batch_size": np.array([4, 12, 16]), "epochs": np.array([3, 2, 3])}


@pytest.mark.usefixtures("full_float32_products")
def test_cnn_population_equals_members_trained_alone():
    data = _images()
    pop = population.Population(cnn, *data, mode="map", mesh=None)
    start = pop.init(CNN_HP, jax.random.key(0))
    state, (_, vl, _), preds = pop.run(start, 3)
    assert np.isfinite(vl).all() and not np.allclose(preds[0], preds[1])
    for i in range(3):  # alone: its own Population, whose only batch size is the member's
        alone = population.Population(cnn, *data, mode="map", mesh=None)
        st, (_, vl_i, _), p_i = alone.run(population.select(start, [i]), 3)
        np.testing.assert_allclose(vl_i[0], vl[i], rtol=2e-5, atol=1e-6)
        np.testing.assert_allclose(p_i[0], preds[i], rtol=1e-4, atol=1e-6)
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a[0], b[i], rtol=1e-4, atol=1e-6), st.params, state.params)


@pytest.mark.usefixtures("full_float32_products")
def test_map_mode_sums_gradients_over_small_chunks_with_the_same_result():
    from jaxhpo.population.program import chunk_rows
    from jaxhpo.population.program import lane_sizes as _lane_sizes

    assert _lane_sizes("map", 4, 16) == (4,) and _lane_sizes("map", 5, 100) == (8, 64)
    assert _lane_sizes("vmap", 4, 16) == (16,) and _lane_sizes("chunks", 4, 16) == (16,)
    assert chunk_rows([4, 12, 16, 3], (4,)) == [[4], [4, 4, 4], [4, 4, 4, 4], [4]]
    assert chunk_rows([100, 7], (8, 64)) == [[64, 8, 8, 8, 8, 8], [8]]
    # map: members of batch 12 and 16 step through 3 and 4 chunks of 4 rows; vmap: one 16-row chunk each
    data = _images()
    res_map = population.train(cnn, CNN_HP, *data, key=jax.random.key(1), mode="map", mesh=None)
    res_vmap = population.train(cnn, CNN_HP, *data, key=jax.random.key(1), mode="vmap", mesh=None)
    np.testing.assert_allclose(res_map.val_loss, res_vmap.val_loss, rtol=2e-5, atol=1e-6)
    np.testing.assert_allclose(res_map.val_predictions, res_vmap.val_predictions, rtol=1e-4, atol=1e-6)


def test_model_fn_is_probed_once_per_population_not_at_every_init_or_run():
    calls = {"outside": 0}

    def model_fn(h):
        if not isinstance(h["learning_rate"], jax.core.Tracer):
            calls["outside"] += 1  # a probe with concrete values (inside the program h is traced)
        return population.MLP(hidden=(4,), outputs=2)

    x = jax.random.normal(jax.random.key(0), (32, 3))
    y = (x[:, 0] > 0).astype(jnp.int32)
    pop = population.Population(model_fn, x, y, x, y, batch_size=8, max_epochs=1, mesh=None)
    state = pop.init({"learning_rate": jnp.array([1e-3, 1e-2])}, jax.random.key(1))
    for _ in range(3):
        state, _, _ = pop.run(state, 1)
    assert calls["outside"] == 1


def test_take_rows_gathers_a_whole_tree_in_one_program_and_leaves_numpy_trees_to_numpy():
    from _compiles import counting

    from jaxhpo.population.population import take_rows

    rng = np.random.default_rng(1)
    tree = {"w": jnp.asarray(rng.normal(size=(7, 3, 2)), jnp.float32), "b": jnp.asarray(rng.normal(size=(7, 5))),
            "n": jnp.arange(7, dtype=jnp.int32), "k": jax.random.split(jax.random.key(0), 7)}
    index = np.array([6, 0, 3, 3, 1])
    with counting() as count:
        rows = take_rows(tree, index)
    assert count.programs == 1  # one gather for four leaf shapes (leaf by leaf: one program each)
    for name in ("w", "b", "n"):
        np.testing.assert_array_equal(np.asarray(rows[name]), np.asarray(tree[name])[index])
    np.testing.assert_array_equal(jax.random.key_data(rows["k"]), np.asarray(jax.random.key_data(tree["k"]))[index])
    numpy_tree = {"a": np.arange(14.0).reshape(7, 2)}  # results gathered from other processes stay NumPy
    out = take_rows(numpy_tree, index)
    assert isinstance(out["a"], np.ndarray) and np.array_equal(out["a"], numpy_tree["a"][index])


def test_the_training_program_evaluates_the_model_in_one_place():
    # the final parameters' predictions are the last evaluation of the epoch loop, carried out of it:
    # the training program traces (and compiles) the model three times, not a fourth evaluation after
    import flax.linen as nn

    traced = []

    class Counted(nn.Module):
        @nn.compact
        def __call__(self, x, train: bool = False):
            traced.append(train)
            return nn.Dense(3)(nn.relu(nn.Dense(8)(x)))

    rng = np.random.default_rng(5)
    x = rng.normal(size=(40, 5)).astype(np.float32)
    y = rng.integers(0, 3, 40)
    pop = population.Population(lambda h: Counted(), x[:30], y[:30], x[30:], y[30:], batch_size=8, max_epochs=3)
    hp = {"learning_rate": np.array([1e-2, 3e-2]), "epochs": np.array([1, 3])}
    state = pop.init(hp, jax.random.key(0))
    before = len(traced)
    state, (_, val_loss, _), preds = pop.run(state, 3)
    assert sorted(traced[before:]) == [False, False, True]  # the carry's shapes, the evaluation, the gradient
    # the carried predictions are those of the final parameters, also for the member that stopped at epoch 1
    again = population.predict(lambda h: Counted(), state, x[30:])
    np.testing.assert_allclose(np.asarray(preds), np.asarray(again), rtol=1e-5, atol=1e-6)
    assert np.asarray(val_loss).shape == (2, 3)


def test_a_population_builds_its_programs_and_no_eager_ops():
    # new shapes (7 features), so nothing here is built already: the label check, the task keys, the
    # initialization, the training and the prediction, nothing else (op by op, label checks, slices, views
    # and the initial epoch counts were programs of their own: 37 instead of 14, stage programs included)
    from _compiles import counting

    rng = np.random.default_rng(3)
    x = rng.normal(size=(40, 7)).astype(np.float32)
    y = rng.integers(0, C, 40).astype(np.int32)
    key = jax.random.key(0)
    with counting() as count:
        pop = population.Population(mlp, x[:30], y[:30], x[30:], y[30:], batch_size=8, mode="map", mesh=None,
                                    max_epochs=2)
        state, (_, val_loss, _), preds = pop.fit(HP, key)
        again = population.predict(mlp, state, x[30:])
    # (the task keys may be built already, by another population of the same shapes; "_empty" is
    # compile_options' probe of which XLA options this jaxlib takes, once per process and option set)
    assert {"<lambda>", "run_all", "_predict_chunk_fn"} <= set(count.named)
    assert set(count.named) <= {"_task_keys", "<lambda>", "run_all", "_predict_chunk_fn", "_empty"}  # host labels: by NumPy
    assert len(count.named) == len(set(count.named))
    assert np.all(np.isfinite(np.asarray(val_loss))) and val_loss.shape == (3, 2)
    np.testing.assert_allclose(np.asarray(again), np.asarray(preds), rtol=1e-5, atol=1e-6)
    # predict still composes with your jit (where jaxhpo's compiler options must not be passed)
    inside = jax.jit(lambda s, xx: population.predict(mlp, s, xx))(state, x[30:])
    np.testing.assert_allclose(np.asarray(inside), np.asarray(again), rtol=1e-6, atol=1e-7)


def test_device_data_is_checked_for_nan_in_one_program_per_shape():
    from _compiles import counting
    from jaxhpo.population.inputs import checked_data

    rng = np.random.default_rng(4)
    x_train, x_val = (jnp.asarray(rng.normal(size=(n, 9)).astype(np.float32)) for n in (33, 11))  # new shapes
    y_train, y_val = (jnp.asarray(rng.integers(0, C, n).astype(np.int32)) for n in (33, 11))
    bad = x_val.at[2, 3].set(jnp.nan).at[5, 0].set(jnp.inf)
    with counting() as count:
        checked_data(x_train, y_train, x_val, y_val)
        with pytest.raises(ValueError, match="x_val holds 2 NaN or infinite values"):
            checked_data(x_train, y_train, bad, y_val)
    assert count.named == ["_nonfinite_count", "_nonfinite_count"]  # one per shape, not three eager ops each


def test_map_mode_chunks_are_sized_to_the_models_work_per_row():
    from jaxhpo.population.program import product_flops

    a, b = jnp.ones((5, 3)), jnp.ones((3, 4))
    assert product_flops(jax.make_jaxpr(lambda a, b: a @ b)(a, b)) == 2 * 5 * 3 * 4
    branches = jax.make_jaxpr(lambda i, a, b: jax.lax.switch(i, [lambda: a @ b, lambda: (a @ b) @ (b.T @ b)]))(0, a, b)
    assert product_flops(branches) == 2 * 5 * 3 * 4 + 2 * 4 * 3 * 4 + 2 * 5 * 4 * 4  # the costlier branch
    scanned = jax.make_jaxpr(lambda a, b: jax.lax.scan(lambda c, _: (c @ b @ b.T, None), a, length=7)[0])(a, b)
    assert product_flops(scanned) == 7 * 2 * (2 * 5 * 3 * 4)

    def init_flops(model):  # as Population counts them: the initialization's jaxpr on one row
        row = jnp.ones((1, 64))
        return product_flops(jax.make_jaxpr(lambda x: model.init(jax.random.key(0), x))(row))

    assert init_flops(population.MLP(hidden=(32,), outputs=10)) == 2 * (64 * 32 + 32 * 10)
    conv = dict(image_shape=(8, 8, 1), channels=(16, 32), hidden=128, outputs=10)
    assert init_flops(population.LeNet(**conv, conv="patches")) == init_flops(population.LeNet(**conv, conv="lax"))

    x = np.random.default_rng(0).random((64, 64), dtype=np.float32)
    y = np.arange(64, dtype=np.int32) % 10
    hp = {"learning_rate": np.full(2, 1e-3, np.float32), "batch_size": np.array([16, 128], np.int32)}
    lenet = population.Population(lambda h: population.LeNet(**conv), x, y, x, y, mode="map", mesh=None)
    mlp = population.Population(lambda h: population.MLP(hidden=(32,), outputs=10), x, y, x, y, mode="map", mesh=None)
    assert lenet._config(hp).lane_sizes == (8,)  # ~201,000 flops a row: 8 rows already hold a chunk's work
    assert mlp._config(hp).lane_sizes == (16,)  # ~5,000: the chunk holding the smallest batch, as without estimate
    vmapped = population.Population(lenet.model_fn, x, y, x, y, mode="vmap", mesh=None)
    assert vmapped._config(hp).lane_sizes == (128,)
