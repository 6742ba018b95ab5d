import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxhpo import population
from jaxhpo.population.models import Conv3x3, _random_shift


@pytest.mark.usefixtures("full_float32_products")
@pytest.mark.parametrize("shape", [(2, 8, 8, 1), (3, 5, 7, 4)])
def test_patch_convolution_equals_xla_convolution(shape):
    x = jax.random.normal(jax.random.key(0), shape)
    fast, ref = Conv3x3(6, conv="patches"), Conv3x3(6, conv="lax")
    v = ref.init(jax.random.key(1), x)
    v = jax.tree.map(lambda a: a + 0.1 * jax.random.normal(jax.random.key(2), a.shape), v)  # a nonzero bias too
    np.testing.assert_allclose(fast.apply(v, x), ref.apply(v, x), rtol=1e-5, atol=1e-5)


def test_lenet_masks_inactive_channels_and_units():
    net = population.LeNet(image_shape=(8, 8, 1), channels=(4, 8), hidden=16, outputs=3, width=jnp.array(0.5))
    x = jax.random.normal(jax.random.key(0), (5, 64))
    v = net.init(jax.random.key(1), x)
    out = net.apply(v, x)
    # weights that only touch masked channels/units (the upper half of each layer) do not change the output
    p = jax.tree.map(np.array, v["params"])
    p["Conv3x3_0"]["kernel"][..., 2:] += 5.0
    p["Conv3x3_1"]["kernel"][..., 4:] += 5.0
    p["Dense_0"]["kernel"][:, 8:] += 5.0
    np.testing.assert_allclose(net.apply({"params": p}, x), out, rtol=1e-6)
    p["Dense_0"]["kernel"][:, :8] += 5.0  # an active unit does
    assert not np.allclose(net.apply({"params": p}, x), out)
    images = x.reshape(5, 8, 8, 1)
    np.testing.assert_allclose(net.apply(v, images), out, rtol=1e-6)  # image-shaped input, same function


def test_random_shift_moves_each_image_by_one_pixel_or_not_at_all():
    x = jax.random.uniform(jax.random.key(0), (64, 6, 6, 1)) + 1.0  # no zeros inside the images
    moved = np.asarray(_random_shift(jax.random.key(1), x, 1.0))
    xp = np.pad(np.asarray(x), ((0, 0), (1, 1), (1, 1), (0, 0)))
    directions = set()
    for n in range(x.shape[0]):
        match = [(i, j) for i in range(3) for j in range(3) if np.array_equal(moved[n], xp[n, i:i + 6, j:j + 6])]
        assert len(match) == 1 and match[0] != (1, 1), n
        directions.add(match[0])
    assert len(directions) == 8  # all eight directions occur
    np.testing.assert_array_equal(_random_shift(jax.random.key(1), x, 0.0), x)


def test_lenet_bad_input():
    net = population.LeNet(image_shape=(8, 8, 1))
    with pytest.raises(ValueError, match=r"neither \[\.\.\., 64\]"):
        net.init(jax.random.key(0), jnp.ones((2, 50)))
    with pytest.raises(ValueError, match="pool must be one of"):
        population.LeNet(pool="min").init(jax.random.key(0), jnp.ones((2, 64)))
    with pytest.raises(ValueError, match="conv must be one of"):
        Conv3x3(4, conv="fft").init(jax.random.key(0), jnp.ones((1, 4, 4, 1)))
