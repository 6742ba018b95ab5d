import jax
import numpy as np
import pytest

import jaxhpo
from jaxhpo import population


@pytest.fixture(scope="module")
def pop():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype(np.float32)
    y = (x[:, 0] - x[:, 1] > 0).astype(np.int32)
    return population.Population(lambda h: population.MLP(hidden=(8,), outputs=2, activations=(jax.nn.relu,)),
                                 x[:48], y[:48], x[48:], y[48:], batch_size=16, mesh=None, mode="vmap")


HP9 = {"learning_rate": np.logspace(-4, -0.5, 9).astype(np.float32)}


def test_successive_halving_keeps_the_best_third_and_resumes_exactly(pop):
    sh = population.successive_halving(pop, HP9, key=jax.random.key(0), min_epochs=1, max_epochs=9, eta=3)
    assert [r["epochs"] for r in sh.rungs] == [1, 3, 9]
    assert [len(r["members"]) for r in sh.rungs] == [9, 3, 1]
    first = np.asarray(sh.rungs[0]["val_loss"])
    assert sorted(sh.rungs[1]["members"]) == sorted(np.argsort(first)[:3].tolist())
    assert sorted(sh.epochs.tolist()) == [1] * 6 + [3] * 2 + [9]
    assert sh.best == sh.survivors[0] and sh.epochs[sh.best] == 9
    # the survivor, trained in three rungs, equals that member trained 9 epochs straight
    start = population.select(pop.init(HP9, jax.random.key(0)), [sh.best])
    _, (_, vl, _), _ = pop.run(start, 9)
    np.testing.assert_allclose(sh.val_loss[sh.best], vl[0, -1], rtol=1e-5)


def test_hyperband_brackets(pop):
    space = jaxhpo.Space({"learning_rate": jaxhpo.Float(1e-4, 0.3, log=True)})

    def sample(key, n):
        return space.decode(jax.random.uniform(key, (n, space.dim)))

    hb = population.hyperband(pop, sample, key=jax.random.key(1), max_epochs=9, eta=3)
    # s_max = 2: brackets of 9, 5 (ceil(3/2*3)) and 3 members
    assert hb.val_loss.size == 9 + 5 + 3
    assert {r["bracket"] for r in hb.rungs} == {0, 1, 2}
    assert hb.epochs.max() == 9 and np.isfinite(hb.val_loss[hb.best])
    assert sorted(set(hb.epochs.tolist())) == [1, 3, 9]


def test_pbt_exploits_and_explores_within_bounds(pop):
    hp = {"learning_rate": np.array([1e-4, 2e-4, 3e-2, 5e-2], np.float32)}
    res = population.pbt(pop, hp, key=jax.random.key(2), rounds=3, epochs_per_round=2, fraction=0.25,
                         perturb={"learning_rate": (1e-5, 0.1)})
    assert len(res.rungs) == 3 and res.epochs.tolist() == [6] * 4
    first = res.rungs[0]
    loss = np.asarray(first["val_loss"])
    worst, parent = int(np.argmax(loss)), first["parents"][int(np.argmax(loss))]
    assert parent == int(np.argmin(loss))  # fraction 0.25 of 4: the best replaces the worst
    new = res.rungs[1]["hparams"]["learning_rate"][worst]
    old = first["hparams"]["learning_rate"][parent]
    assert any(np.isclose(new, old * f, rtol=1e-5) for f in (0.8, 1.25))
    assert np.all((res.hparams["learning_rate"] >= 1e-5) & (res.hparams["learning_rate"] <= 0.1))
    # the copy continued from the parent's weights: right after the copy its loss is close to the parent's
    assert res.rungs[1]["val_loss"][worst] < loss[worst]
    with pytest.raises(ValueError, match="perturb"):
        population.pbt(pop, hp, key=jax.random.key(0), rounds=2, perturb={"momentum": (0.1, 0.9)})


def test_search_tells_every_trial(pop, monkeypatch):
    studies = []
    original = jaxhpo.Study.__init__

    def spy(self, *a, **k):
        original(self, *a, **k)
        studies.append(self)

    monkeypatch.setattr(jaxhpo.Study, "__init__", spy)

    def res_capacity():
        return studies[-1].state.history.capacity

    space = jaxhpo.Space({"learning_rate": jaxhpo.Float(1e-4, 0.3, log=True), "epochs": jaxhpo.Int(1, 3)})
    x, y = pop.data["x_fit"], pop.data["y_fit"]
    xv, yv = pop.data["x_eval"], pop.data["y_eval"]
    capacities = []
    res = population.search(space, jaxhpo.strategies.sobol(),
                            lambda h: population.MLP(hidden=(8,), outputs=2, activations=(jax.nn.relu,)),
                            x, y, xv, yv, rounds=2, batch_size=4, sgd_batch_size=16, mesh=None, progress=False,
                            callback=lambda r, _: capacities.append(res_capacity()))
    assert len(res.study.trials) == 8 and res.val_predictions.shape == (8, 16, 2)
    assert len(set(capacities)) == 1 and capacities[0] >= 8  # reserved up front: no growth mid-search
    np.testing.assert_allclose(res.best_value, np.min(res.val_loss), rtol=1e-6)
    # per-member epochs from the space were honoured
    for r in res.rounds:
        np.testing.assert_array_equal(r.state.epoch, r.hparams["epochs"])


def test_search_compiles_training_once_over_rounds(pop):
    from _compiles import programs_built

    space = jaxhpo.Space({"learning_rate": jaxhpo.Float(1e-4, 0.3, log=True), "epochs": jaxhpo.Int(1, 4),
                          "batch_size": jaxhpo.Int(4, 32, log=True)})
    x, y = pop.data["x_fit"], pop.data["y_fit"]
    xv, yv = pop.data["x_eval"], pop.data["y_eval"]
    built = {}
    res = population.search(space, jaxhpo.strategies.random(),
                            lambda h: population.MLP(hidden=(8,), outputs=2, activations=(jax.nn.relu,)),
                            x, y, xv, yv, rounds=3, batch_size=4, mesh=None, progress=False, seed=1,
                            callback=lambda r, _: built.__setitem__(r, programs_built()))
    # every round's largest batch size and epoch count differ, yet rounds 2 and 3 build no program
    maxima = {(int(r.hparams["batch_size"].max()), int(r.hparams["epochs"].max())) for r in res.rounds}
    assert len(maxima) > 1
    assert built[1] == built[0] and built[2] == built[0]
    for r in res.rounds:  # members still train their own epochs
        np.testing.assert_array_equal(r.state.epoch, r.hparams["epochs"])


def test_search_defaults_to_hybrid_batches_and_its_rounds_are_distinct(pop):
    # the measured choice for rounds that are fused (benchmarks/bench_population_rounds.py)
    space = jaxhpo.Space({"learning_rate": jaxhpo.Float(1e-4, 0.3, log=True), "epochs": jaxhpo.Int(1, 3)})
    x, y = pop.data["x_fit"], pop.data["y_fit"]
    res = population.search(space, None, lambda h: population.MLP(hidden=(8,), outputs=2, activations=(jax.nn.relu,)),
                            x, y, pop.data["x_eval"], pop.data["y_eval"], rounds=1, batch_size=4, mesh=None,
                            progress=False, seed=0)
    assert "batch='hybrid'" in repr(res.study.strategy)
    assert len({tuple(sorted(t.params.items())) for t in res.study.trials}) == 4
