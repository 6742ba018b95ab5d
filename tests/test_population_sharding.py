import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import jax, numpy as np
    from jax.sharding import Mesh
    from jaxhpo import population
    assert jax.device_count() == 4, jax.devices()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 4)).astype(np.float32); y = (x[:, 0] > 0).astype(np.int32)
    hp = {"learning_rate": np.logspace(-3, -1, 6).astype(np.float32)}   # 6 members on 4 devices: padded
    mlp = lambda h: population.MLP(hidden=(8,), outputs=2)
    one = population.train(mlp, hp, x, y, x, y, key=jax.random.key(0), epochs=3, batch_size=8, mesh=None)
    mesh = Mesh(np.array(jax.devices()), ("members",))
    for mode in ("map",):
        many = population.train(mlp, hp, x, y, x, y, key=jax.random.key(0), epochs=3, batch_size=8,
                                mesh=mesh, mode=mode)
        np.testing.assert_allclose(many.val_loss, one.val_loss, rtol=1e-5)
        np.testing.assert_allclose(many.val_predictions, one.val_predictions, rtol=1e-4, atol=1e-6)
    auto = population.train(mlp, hp, x, y, x, y, key=jax.random.key(0), epochs=3, batch_size=8)
    np.testing.assert_allclose(auto.val_loss, one.val_loss, rtol=1e-5)
    # members of unequal cost are dealt to the devices by cost; the results come back in member order
    hp_mixed = dict(hp, epochs=np.array([1, 6, 2, 6, 1, 3]), batch_size=np.array([4, 4, 16, 8, 16, 4]))
    pop = population.Population(mlp, x, y, x, y, mesh=mesh, mode="map")
    cfg = pop._config(hp_mixed)
    order = pop._balanced_order(cfg, hp_mixed, np.zeros(6, np.int32), 6, np.full(6, 40))
    assert sorted(order) == list(range(6)) and list(order) != list(range(6))
    one = population.train(mlp, hp_mixed, x, y, x, y, key=jax.random.key(0), mesh=None)
    many = population.train(mlp, hp_mixed, x, y, x, y, key=jax.random.key(0), mesh=mesh, mode="map")
    np.testing.assert_allclose(np.nan_to_num(many.val_loss, nan=-1.0), np.nan_to_num(one.val_loss, nan=-1.0), rtol=1e-5)
    np.testing.assert_allclose(many.val_predictions, one.val_predictions, rtol=1e-4, atol=1e-6)
    np.testing.assert_array_equal(many.state.epoch, one.state.epoch)
    print("SHARDED_OK")
    """
)


def test_sharded_population_equals_one_device():
    flags = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count=4".strip()  # + the suite's
    env = dict(os.environ, XLA_FLAGS=flags, JAX_PLATFORMS="cpu")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, cwd=root, capture_output=True, text=True,
                         timeout=600)
    assert "SHARDED_OK" in out.stdout, out.stderr[-3000:]
