"""Population training over 2 JAX processes (``jax.distributed`` on localhost) gives what one process gives."""

import json
import os
import socket
import subprocess
import sys
import textwrap

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

WORKER = textwrap.dedent(
    """
    import json, sys
    port, n, i, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    import jax
    if n > 1:
        jax.distributed.initialize(f"localhost:{port}", num_processes=n, process_id=i)
    import numpy as np, jaxhpo
    from jaxhpo import population
    assert jax.device_count() == n and jax.local_device_count() == 1, jax.devices()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(48, 4)).astype(np.float32); y = (x[:, 0] + 0.3 * x[:, 1] > 0).astype(np.int32)
    mlp = lambda h: population.MLP(hidden=(8,), outputs=2, activations=(jax.nn.relu,))
    hp = {"learning_rate": np.logspace(-3, -1, 4).astype(np.float32), "epochs": np.array([2, 3, 1, 3])}
    res = {}
    r = population.train(mlp, hp, x[:32], y[:32], x[32:], y[32:], key=jax.random.key(0), batch_size=8)
    res["train"] = np.asarray(r.val_loss).tolist()
    res["train_params"] = np.asarray(jax.tree.leaves(r.state.params)[0]).tolist()
    r = population.train(mlp, hp, x[:32], y[:32], x[32:], y[32:], key=jax.random.key(0), batch_size=8, mode="vmap")
    res["train_vmap"] = np.asarray(r.val_loss).tolist()  # vmap mode: no reordering of tasks on the way back
    cv = population.cross_validate(mlp, hp, x, y, key=jax.random.key(1), folds=3, batch_size=8)
    res["cross_validate"] = np.asarray(cv.oof_predictions).tolist()
    pop = population.Population(mlp, x[:32], y[:32], x[32:], y[32:], batch_size=8, max_epochs=4)
    sh = population.successive_halving(pop, {"learning_rate": np.logspace(-3, -1, 6).astype(np.float32)},
                                       key=jax.random.key(2), min_epochs=1, eta=2)
    res["successive_halving"] = [np.asarray(sh.val_loss).tolist(), int(sh.best)]
    space = jaxhpo.Space({"learning_rate": jaxhpo.Float(1e-3, 1e-1, log=True)})
    s = population.search(space, jaxhpo.strategies.random(), mlp, x[:32], y[:32], x[32:], y[32:], rounds=2,
                          batch_size=4, epochs=2, progress=False)
    res["search"] = [np.asarray(s.val_loss).tolist(), np.asarray(s.val_predictions).tolist()]
    json.dump(res, open(out + f".{i}", "w"))
    """
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def test_two_processes_train_cross_validate_halve_and_search_like_one(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    # one CPU device per process: the suite's compile flags (tests/conftest.py), without a device count
    flags = " ".join(f for f in os.environ.get("XLA_FLAGS", "").split() if "device_count" not in f)
    env = dict(os.environ, XLA_FLAGS=flags, JAX_PLATFORMS="cpu", OPENBLAS_NUM_THREADS="1")
    out = str(tmp_path / "res")
    one = subprocess.run([sys.executable, str(script), "0", "1", "0", out + "_one"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=600)
    assert one.returncode == 0, one.stderr[-3000:]
    port = str(_free_port())
    procs = [subprocess.Popen([sys.executable, str(script), port, "2", str(i), out + "_two"], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    try:
        results = [p.communicate(timeout=600) for p in procs]
    finally:
        for p in procs:
            p.kill()
    for p, (_, err) in zip(procs, results):
        assert p.returncode == 0, err[-3000:]
    reference = json.load(open(out + "_one.0"))
    for i in range(2):  # every process reads the whole population's results, equal to one process's
        got = json.load(open(out + f"_two.{i}"))
        assert set(got) == set(reference)
        for name in reference:
            np.testing.assert_allclose(np.asarray(got[name][0] if name in ("successive_halving", "search") else got[name]),
                                       np.asarray(reference[name][0] if name in ("successive_halving", "search")
                                                  else reference[name]), rtol=1e-5, atol=1e-6, err_msg=name)
        assert got["successive_halving"][1] == reference["successive_halving"][1]
        np.testing.assert_allclose(got["search"][1], reference["search"][1], rtol=1e-5, atol=1e-6)
