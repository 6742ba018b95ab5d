"""Standard test functions in JAX, with their usual domains and known optima.

They live in the package (not only in ``benchmarks/``) so that tests,
examples and your own comparisons can import them from an installed jaxhpo:
``from jaxhpo.testing.functions import BRANIN``.

Each ``BenchmarkFunction`` carries a ``Space`` (parameters ``x0 .. x{d-1}``),
a vectorized ``fn(x[..., d])``, and ``objective(params)`` for ``minimize``.

Example:
    >>> import jax.numpy as jnp
    >>> from jaxhpo.testing.functions import BRANIN
    >>> round(float(BRANIN.fn(jnp.asarray(BRANIN.optimum_x[0]))), 5)
    0.39789
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

import jaxhpo

Array = jax.Array


@dataclass(frozen=True)
class BenchmarkFunction:
    """A test function to minimize.

    Attributes:
        name: short name, e.g. ``"branin"``.
        fn: ``x[..., d] -> value[...]`` in the function's own coordinates.
        bounds: ``(low, high)`` per dimension.
        optimum_value: the global minimum.
        optimum_x: the minimizers (one row each).
    """

    name: str
    fn: Callable[[Array], Array]
    bounds: tuple[tuple[float, float], ...]
    optimum_value: float
    optimum_x: tuple[tuple[float, ...], ...]

    @property
    def dim(self) -> int:
        return len(self.bounds)

    @property
    def space(self) -> jaxhpo.Space:
        return jaxhpo.Space({f"x{i}": jaxhpo.Float(lo, hi) for i, (lo, hi) in enumerate(self.bounds)})

    def objective(self, params: dict[str, Array]) -> Array:
        """The function over decoded parameters (a batch), as ``minimize`` calls it."""
        return self.fn(jnp.stack([params[f"x{i}"] for i in range(self.dim)], axis=-1))

    def regret(self, value: Array) -> Array:
        return value - self.optimum_value

    def __hash__(self) -> int:
        return hash(self.name)


def branin(x: Array) -> Array:
    x1, x2 = x[..., 0], x[..., 1]
    b, c = 5.1 / (4 * jnp.pi**2), 5 / jnp.pi
    return (x2 - b * x1**2 + c * x1 - 6) ** 2 + 10 * (1 - 1 / (8 * jnp.pi)) * jnp.cos(x1) + 10


_H6_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])
_H6_A = np.array(
    [[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14], [3, 3.5, 1.7, 10, 17, 8], [17, 8, 0.05, 10, 0.1, 14]]
)
_H6_P = 1e-4 * np.array(
    [
        [1312, 1696, 5569, 124, 8283, 5886],
        [2329, 4135, 8307, 3736, 1004, 9991],
        [2348, 1451, 3522, 2883, 3047, 6650],
        [4047, 8828, 8732, 5743, 1091, 381],
    ]
)


def hartmann6(x: Array) -> Array:
    inner = jnp.sum(_H6_A * (x[..., None, :] - _H6_P) ** 2, axis=-1)
    return -jnp.sum(_H6_ALPHA * jnp.exp(-inner), axis=-1)


def hartmann6_numpy(x: np.ndarray) -> np.ndarray:
    """Hartmann6 in NumPy, for objectives that a user writes without JAX (same values as ``hartmann6``)."""
    x = np.asarray(x, dtype=np.float64)
    inner = np.sum(_H6_A * (x[..., None, :] - _H6_P) ** 2, axis=-1)
    return -np.sum(_H6_ALPHA * np.exp(-inner), axis=-1)


HARTMANN6_NUMPY = hartmann6_numpy


def ackley(x: Array) -> Array:
    d = x.shape[-1]
    a = -20 * jnp.exp(-0.2 * jnp.sqrt(jnp.sum(x**2, axis=-1) / d))
    return a - jnp.exp(jnp.sum(jnp.cos(2 * jnp.pi * x), axis=-1) / d) + 20 + jnp.e


def rosenbrock(x: Array) -> Array:
    return jnp.sum(100 * (x[..., 1:] - x[..., :-1] ** 2) ** 2 + (1 - x[..., :-1]) ** 2, axis=-1)


def levy(x: Array) -> Array:
    w = 1 + (x - 1) / 4
    first = jnp.sin(jnp.pi * w[..., 0]) ** 2
    middle = jnp.sum((w[..., :-1] - 1) ** 2 * (1 + 10 * jnp.sin(jnp.pi * w[..., :-1] + 1) ** 2), axis=-1)
    last = (w[..., -1] - 1) ** 2 * (1 + jnp.sin(2 * jnp.pi * w[..., -1]) ** 2)
    return first + middle + last


BRANIN = BenchmarkFunction(
    "branin",
    branin,
    ((-5.0, 10.0), (0.0, 15.0)),
    0.397887357729738,
    ((-np.pi, 12.275), (np.pi, 2.275), (9.42478, 2.475)),
)
HARTMANN6 = BenchmarkFunction(
    "hartmann6",
    hartmann6,
    ((0.0, 1.0),) * 6,
    -3.32236801141551,
    ((0.20168952, 0.15001069, 0.47687398, 0.27533243, 0.31165162, 0.65730054),),
)
ACKLEY5 = BenchmarkFunction("ackley5", ackley, ((-32.768, 32.768),) * 5, 0.0, ((0.0,) * 5,))
ROSENBROCK4 = BenchmarkFunction("rosenbrock4", rosenbrock, ((-5.0, 10.0),) * 4, 0.0, ((1.0,) * 4,))
LEVY10 = BenchmarkFunction("levy10", levy, ((-10.0, 10.0),) * 10, 0.0, ((1.0,) * 10,))

FUNCTIONS: dict[str, BenchmarkFunction] = {
    f.name: f for f in (BRANIN, HARTMANN6, ACKLEY5, ROSENBROCK4, LEVY10)
}
