"""Argument checks shared by the drivers, so that they agree (bools and NumPy integers alike everywhere).

Example:
    >>> import numpy as np
    >>> positive_int("minimize", "num_rounds", np.int64(3))
    3
    >>> positive_int("Study.ask", "n", True)
    Traceback (most recent call last):
    ...
    ValueError: Study.ask: n must be a positive int, got n=True
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np


def positive_int(where: str, name: str, value: Any) -> int:
    """``value`` as an ``int`` when it is a positive integer (Python or NumPy, never a bool); else ValueError."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{where}: {name} must be a positive int, got {name}={value!r}")
    return int(value)


def int_seed(where: str, value: Any, allow_none: bool = False) -> Any:
    """``value`` as an ``int`` seed (Python or NumPy integer, never a bool; ``None`` when ``allow_none``); else
    ValueError, prefixed by ``where`` when given.

    Example:
        >>> int_seed("Study", 1.5)
        Traceback (most recent call last):
        ...
        ValueError: Study: seed must be an int, got seed=1.5
    """
    if value is None and allow_none:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        prefix = f"{where}: " if where else ""
        raise ValueError(f"{prefix}seed must be {'an int or None' if allow_none else 'an int'}, got seed={value!r}")
    return int(value)


def real_scalar(value: Any) -> bool:
    """Whether ``value`` is one real number (a Python or NumPy scalar, or a 0-d array; not a bool)."""
    if isinstance(value, (bool, np.bool_)):
        return False
    if isinstance(value, numbers.Real):
        return True
    shape = getattr(value, "shape", None)
    dtype = getattr(value, "dtype", None)
    return shape == () and dtype is not None and np.issubdtype(np.dtype(dtype), np.number) and not np.issubdtype(
        np.dtype(dtype), np.complexfloating)
