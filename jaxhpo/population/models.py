"""Flax modules for populations: shape hyperparameters that may be traced arrays.

A population shares one compiled program, so every member has the same
parameter shapes; what differs per member are values. These modules take
their shape-like hyperparameters (active width, activation, dropout) as
arrays: units beyond a member's width are masked to zero and the activation
is chosen by ``lax.switch``.

Example:
    >>> import jax, jax.numpy as jnp
    >>> from jaxhpo.population import LeNet
    >>> net = LeNet(image_shape=(8, 8, 1), outputs=10, width=jnp.array(0.5), activation=jnp.array(2))
    >>> v = net.init(jax.random.key(0), jnp.ones((3, 64)))
    >>> net.apply(v, jnp.ones((3, 64))).shape
    (3, 10)
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import flax.linen as nn

Array = jax.Array
CONVS = ("auto", "patches", "lax")
POOLS = ("max", "avg")


def _activate(x: Array, activations: Sequence[Callable[[Array], Array]], index: Any) -> Array:
    """``activations[index](x)``; ``index`` may be traced (``lax.switch``)."""
    if len(activations) == 1:
        return activations[0](x)
    index = jnp.clip(jnp.asarray(index, jnp.int32), 0, len(activations) - 1)
    return jax.lax.switch(index, list(activations), x)


def _dropout(module: nn.Module, x: Array, rate: Any) -> Array:
    """Inverted dropout with a rate that may be traced (0 keeps every unit)."""
    if isinstance(rate, (int, float)) and rate == 0:
        return x
    rate = jnp.asarray(rate, x.dtype)
    keep = jax.random.uniform(module.make_rng("dropout"), x.shape) >= rate
    return jnp.where(keep, x / jnp.maximum(1.0 - rate, 1e-6), 0.0)


class MLP(nn.Module):
    """A multilayer perceptron whose shape hyperparameters may be traced arrays.

    Attributes:
        hidden: the largest width of each hidden layer (static).
        outputs: output units (classes, or 1 for regression).
        width: active units per hidden layer (scalar or per-layer; ``None`` = all);
            the rest are masked to zero, so every member shares one shape.
        activation: index into ``activations`` (``lax.switch``).
        activations: the activation functions to choose from.
        dropout: dropout rate (may be traced; 0 disables).
        init_scale: multiplies the default (LeCun normal) kernel initializer.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> m = MLP(hidden=(16, 16), outputs=3, width=jnp.array(8), activation=jnp.array(1))
        >>> v = m.init(jax.random.key(0), jnp.ones((2, 5)))
        >>> m.apply(v, jnp.ones((2, 5))).shape
        (2, 3)
    """

    hidden: Sequence[int] = (128, 128)
    outputs: int = 10
    width: Any = None
    activation: Any = 0
    activations: Sequence[Callable[[Array], Array]] = (nn.relu, nn.gelu, nn.tanh, nn.silu)
    dropout: Any = 0.0
    init_scale: Any = 1.0

    @nn.compact
    def __call__(self, x: Array, train: bool = False) -> Array:
        def init(key, shape, dtype=jnp.float32):
            return nn.initializers.lecun_normal()(key, shape, dtype) * jnp.asarray(self.init_scale, dtype)

        for layer, size in enumerate(self.hidden):
            x = nn.Dense(size, kernel_init=init)(x)
            x = _activate(x, self.activations, self.activation)
            if self.width is not None:
                width = jnp.asarray(self.width)
                width = width[layer] if width.ndim else width
                x = x * (jnp.arange(size) < width).astype(x.dtype)
            if train:
                x = _dropout(self, x, self.dropout)
        return nn.Dense(self.outputs, kernel_init=init)(x)


def conv_patches(x: Array) -> Array:
    """The 3x3 neighbourhoods of every pixel, ``[..., h, w, c] -> [..., h, w, 9 c]`` (zero padding).

    Feature ``(3 i + j) c + k`` is channel ``k`` of the pixel at offset
    ``(i - 1, j - 1)``, the row-major order of a ``[3, 3, c, out]`` kernel, so
    ``conv_patches(x) @ kernel.reshape(9 c, out)`` is the 'SAME' convolution.
    """
    h, w = x.shape[-3], x.shape[-2]
    pad = [(0, 0)] * (x.ndim - 3) + [(1, 1), (1, 1), (0, 0)]
    xp = jnp.pad(x, pad)
    return jnp.concatenate([xp[..., i : i + h, j : j + w, :] for i in range(3) for j in range(3)], axis=-1)


class Conv3x3(nn.Module):
    """A 3x3 'SAME' convolution with a ``[3, 3, in, out]`` kernel, computed two ways.

    Attributes:
        features: output channels.
        conv: ``"patches"`` (3x3 neighbourhoods times the kernel as one matrix
            product; on CPU about five times faster than XLA's convolution for
            small images and channel counts), ``"lax"`` (``lax.conv_general_dilated``,
            what accelerators are built for) or ``"auto"`` (patches on CPU, lax elsewhere).
            Both give the same function of the same parameters.
    """

    features: int
    conv: str = "auto"

    @nn.compact
    def __call__(self, x: Array) -> Array:
        if self.conv not in CONVS:
            raise ValueError(f"conv must be one of {CONVS}, got {self.conv!r}")
        cin = x.shape[-1]
        kernel = self.param("kernel", nn.initializers.lecun_normal(), (3, 3, cin, self.features), jnp.float32)
        bias = self.param("bias", nn.initializers.zeros_init(), (self.features,), jnp.float32)
        kernel, bias = kernel.astype(x.dtype), bias.astype(x.dtype)
        conv = self.conv if self.conv != "auto" else ("patches" if jax.default_backend() == "cpu" else "lax")
        if conv == "patches":
            return conv_patches(x) @ kernel.reshape(9 * cin, self.features) + bias
        lead = x.shape[:-3]
        y = jax.lax.conv_general_dilated(x.reshape((-1,) + x.shape[-3:]), kernel, (1, 1), "SAME",
                                         dimension_numbers=("NHWC", "HWIO", "NHWC"))
        return y.reshape(lead + y.shape[1:]) + bias


def _pool2x2(x: Array, kind: str) -> Array:
    """2x2 pooling with stride 2 (an odd last row or column is dropped)."""
    h, w = x.shape[-3] // 2, x.shape[-2] // 2
    x = x[..., : 2 * h, : 2 * w, :]
    x = x.reshape(x.shape[:-3] + (h, 2, w, 2, x.shape[-1]))
    return x.max(axis=(-4, -2)) if kind == "max" else x.mean(axis=(-4, -2))


def _random_shift(key: Array, x: Array, probability: Any) -> Array:
    """Moves each image of ``x [..., h, w, c]`` one pixel in a random direction with ``probability``."""
    k_dir, k_apply = jax.random.split(key)
    batch = x.shape[:-3]
    direction = jax.random.randint(k_dir, batch, 0, 8)
    direction = direction + (direction >= 4)  # 0..8 without 4, the centre (no move)
    moved = jax.random.uniform(k_apply, batch) < jnp.asarray(probability, jnp.float32)
    pick = jax.nn.one_hot(jnp.where(moved, direction, 4), 9, dtype=x.dtype)  # [..., 9]
    h, w, c = x.shape[-3:]
    crops = conv_patches(x).reshape(x.shape[:-1] + (9, c))  # [..., h, w, 9, c]: the 9 one-pixel moves
    return jnp.einsum("...hwkc,...k->...hwc", crops, pick)


class LeNet(nn.Module):
    """A LeNet-style convolutional network whose width, activation and dropout may be traced arrays.

    Blocks of (3x3 convolution, activation, 2x2 pooling), one per entry of
    ``channels``, then a dense hidden layer with dropout and the output layer.

    Attributes:
        image_shape: ``(height, width, channels)``; flat inputs ``[n, h * w * c]``
            are reshaped to it (``load_digits``: ``(8, 8, 1)``).
        channels: the largest channel count of each convolution block (static).
        hidden: the largest width of the dense layer (static).
        outputs: output units (classes, or 1 for regression).
        width: fraction in ``(0, 1]`` of every layer's channels and units that are
            active (``None`` = all); the rest are masked to zero.
        activation: index into ``activations`` (``lax.switch``).
        activations: the activation functions to choose from.
        dropout: dropout rate of the dense layer while training (may be traced).
        shift: while training, the probability that an image is moved one pixel in
            one of the 8 directions (zeros fill in; may be traced), a data
            augmentation; 0 disables it.
        pool: ``"max"`` or ``"avg"``.
        conv: how convolutions are computed (see ``Conv3x3``).

    Example:
        >>> import jax, jax.numpy as jnp
        >>> net = LeNet(image_shape=(8, 8, 1), channels=(4, 8), hidden=16, outputs=3)
        >>> v = net.init(jax.random.key(0), jnp.ones((2, 64)))
        >>> net.apply(v, jnp.ones((2, 64))).shape
        (2, 3)
    """

    image_shape: Sequence[int] = (8, 8, 1)
    channels: Sequence[int] = (16, 32)
    hidden: int = 128
    outputs: int = 10
    width: Any = None
    activation: Any = 0
    activations: Sequence[Callable[[Array], Array]] = (nn.relu, nn.tanh, nn.gelu)
    dropout: Any = 0.0
    shift: Any = 0.0
    pool: str = "max"
    conv: str = "auto"

    @nn.compact
    def __call__(self, x: Array, train: bool = False) -> Array:
        if self.pool not in POOLS:
            raise ValueError(f"pool must be one of {POOLS}, got {self.pool!r}")
        shape = tuple(self.image_shape)
        if len(shape) != 3:
            raise ValueError(f"image_shape must be (height, width, channels), got {self.image_shape!r}")
        size = shape[0] * shape[1] * shape[2]
        if x.shape[-1] == size and x.shape[-3:] != shape:
            x = x.reshape(x.shape[:-1] + shape)
        elif x.shape[-3:] != shape:
            raise ValueError(f"inputs of shape {x.shape} are neither [..., {size}] nor [..., *{shape}]: "
                             f"set image_shape to the images' (height, width, channels)")

        if train and not (isinstance(self.shift, (int, float)) and self.shift == 0):
            x = _random_shift(self.make_rng("dropout"), x, self.shift)

        def mask(v: Array, units: int) -> Array:
            if self.width is None:
                return v
            active = jnp.ceil(jnp.asarray(self.width, jnp.float32) * units)
            return v * (jnp.arange(units) < active).astype(v.dtype)

        for c in self.channels:
            x = mask(_activate(Conv3x3(c, conv=self.conv)(x), self.activations, self.activation), c)
            x = _pool2x2(x, self.pool)
        x = x.reshape(x.shape[:-3] + (-1,))
        x = mask(_activate(nn.Dense(self.hidden)(x), self.activations, self.activation), self.hidden)
        if train:
            x = _dropout(self, x, self.dropout)
        return nn.Dense(self.outputs)(x)
