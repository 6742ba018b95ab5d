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
    print("SHARDED_OK")
    """
)


def test_sharded_population_equals_one_device():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, cwd=root, capture_output=True, text=True,
                         timeout=600)
    assert "SHARDED_OK" in out.stdout, out.stderr[-3000:]
