"""Checks of what a population is given: data, hyperparameter arrays, ranges; and which hyperparameters a model reads.

Every check names the argument at fault and says what to do.

Example:
    >>> from jaxhpo.population.inputs import checked_range
    >>> checked_range("batch_size_range", (16, 128))
    (16, 128)
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

import jax
import jax.numpy as jnp
import numpy as np

from jaxhpo._arrays import device_array

Array = jax.Array


class ReadTracker(dict):
    """A dict that remembers which keys were read (``h["width"]``, ``h.get``, ``in``); iterating reads all."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.names: set = set()

    def __getitem__(self, key: Any) -> Any:
        self.names.add(key)
        return super().__getitem__(key)

    def get(self, key: Any, default: Any = None) -> Any:
        self.names.add(key)
        return super().get(key, default)

    def __contains__(self, key: Any) -> bool:
        self.names.add(key)
        return super().__contains__(key)

    def _all(self) -> None:
        self.names.update(super().keys())

    def __iter__(self):
        self._all()
        return super().__iter__()

    def keys(self):
        self._all()
        return super().keys()

    def items(self):
        self._all()
        return super().items()

    def values(self):
        self._all()
        return super().values()



@jax.jit
def _nonfinite_count(a: Array) -> Array:
    """How many entries of device array ``a`` are NaN or infinite: one program per shape (eagerly,
    ``isfinite``, ``count_nonzero`` and the subtraction were a program each)."""
    return jnp.sum(~jnp.isfinite(a))


def checked_data(x_train: Any, y_train: Any, x_val: Any, y_val: Any) -> tuple[Array, Array, Array, Array]:
    """The four arrays as JAX arrays, after checks that name the argument at fault."""
    out = {}
    for name, value in (("x_train", x_train), ("y_train", y_train), ("x_val", x_val), ("y_val", y_val)):
        arr = value if isinstance(value, jax.Array) else np.asarray(value)  # device arrays stay on the device
        xp = jnp if isinstance(arr, jax.Array) else np
        if np.dtype(arr.dtype).kind not in "biuf":
            example = arr.reshape(-1)[:1].tolist()
            raise ValueError(f"{name} must be numeric, got dtype {arr.dtype} (e.g. {example}); encode labels "
                             f"as integers 0..C-1 (sklearn.preprocessing.LabelEncoder) and features as numbers")
        if arr.ndim == 0 or arr.shape[0] == 0:
            raise ValueError(f"{name} is empty (shape {arr.shape})")
        if np.dtype(arr.dtype).kind == "f":
            bad = int(_nonfinite_count(arr)) if xp is jnp else int(arr.size - np.count_nonzero(np.isfinite(arr)))
            if bad:
                raise ValueError(f"{name} holds {bad} NaN or infinite values; impute or drop them before training")
        out[name] = arr
    for part in ("train", "val"):
        if out[f"x_{part}"].shape[0] != out[f"y_{part}"].shape[0]:
            raise ValueError(f"x_{part} and y_{part} differ in length: {out[f'x_{part}'].shape[0]} != "
                             f"{out[f'y_{part}'].shape[0]}")
    if out["x_val"].shape[1:] != out["x_train"].shape[1:]:
        raise ValueError(f"x_val rows have shape {out['x_val'].shape[1:]}, x_train rows {out['x_train'].shape[1:]}; "
                         f"both must have the same features")
    return tuple(device_array(out[k]) for k in ("x_train", "y_train", "x_val", "y_val"))


def label_bounds(y_train: Any, y_val: Any) -> np.ndarray:
    """``[smallest of y_train, smallest of y_val, largest of y_train, largest of y_val]``.

    By NumPy for host arrays; device arrays stay where they are and are
    reduced in one program.

    Example:
        >>> label_bounds(np.array([2, 0, 1]), np.array([1, 3])).tolist()
        [0, 1, 2, 3]
    """
    if isinstance(y_train, jax.Array) or isinstance(y_val, jax.Array):
        return np.asarray(_label_bounds(y_train, y_val))
    y_train, y_val = np.asarray(y_train), np.asarray(y_val)
    return np.array([y_train.min(), y_val.min(), y_train.max(), y_val.max()])


@jax.jit
def _label_bounds(y_train: Array, y_val: Array) -> Array:
    return jnp.stack([jnp.min(y_train), jnp.min(y_val), jnp.max(y_train), jnp.max(y_val)])


def checked_range(name: str, value: Any) -> Optional[tuple[int, int]]:
    if value is None:
        return None
    try:
        low, high = (int(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a pair of ints (smallest, largest) or None, got {name}={value!r}") from None
    if not 1 <= low <= high:
        raise ValueError(f"{name} must satisfy 1 <= smallest <= largest, got {name}={value!r}")
    return low, high


def checked_hparams(hparams: Mapping[str, Any]) -> tuple[dict[str, np.ndarray], int]:
    if not isinstance(hparams, Mapping) or not hparams:
        raise ValueError(f"hparams must be a non-empty dict of per-member arrays, got {hparams!r}")
    out, sizes = {}, set()
    for name, value in hparams.items():
        arr = np.asarray(value)
        if arr.ndim != 1:
            raise ValueError(f"hparams[{name!r}] must be a 1-d array (one value per member), got shape {arr.shape}")
        if not np.all(np.isfinite(arr.astype(np.float64))):
            raise ValueError(f"hparams[{name!r}] has non-finite values: {arr}")
        out[name] = arr
        sizes.add(arr.shape[0])
    if len(sizes) != 1:
        raise ValueError(f"hparams arrays must all have the same length, got lengths {sorted(sizes)}")
    return out, sizes.pop()
