"""A static-argument key under which equal objective functions share one compiled program.

``minimize`` compiles the objective into its program, so the objective is a
static argument of ``jit``, keyed by identity: a fresh but identical
``lambda`` (a notebook cell run again, a loop that builds the objective)
would trace and compile the whole search again. ``ObjectiveKey`` compares
plain Python functions by what determines their behaviour instead: the code
object, the globals they read from, default arguments and closure contents
(by equality where hashable, else by identity). Two functions with equal keys
compute the same thing as far as ``jit`` can tell, which caches a function by
identity and never notices a changed global either. Anything that is not a
plain function (a ``functools.partial``, a callable object) keeps its identity.

Example:
    >>> make = lambda scale: (lambda p: scale * p["x"] ** 2)
    >>> ObjectiveKey(make(2.0)) == ObjectiveKey(make(2.0))
    True
    >>> ObjectiveKey(make(2.0)) == ObjectiveKey(make(3.0))
    False
"""

from __future__ import annotations

import types
from typing import Any, Callable


def _token(value: Any, depth: int = 0) -> Any:
    """``value`` itself where it hashes (compared by equality), else its identity.

    Identities are safe to compare: the first key of a kind stays alive in
    ``jit``'s cache with its function, which keeps the objects it names alive,
    so their ids cannot be reused by other objects while a match matters.
    """
    if isinstance(value, types.FunctionType):
        return _function_key(value, depth + 1) if depth < 4 else ("id", id(value))
    try:
        hash(value)
    except TypeError:
        return ("id", id(value))
    if hasattr(value, "shape") and hasattr(value, "dtype"):  # arrays and scalars of arrays: by identity
        return ("id", id(value))
    return ("value", type(value), value)


def _function_key(fn: types.FunctionType, depth: int) -> tuple:
    try:
        cells = tuple(_token(c.cell_contents, depth) for c in (fn.__closure__ or ()))
    except ValueError:  # an empty cell (a name assigned after the function was made)
        return ("id", id(fn))
    defaults = tuple(_token(v, depth) for v in (fn.__defaults__ or ()))
    kwdefaults = tuple(sorted((k, _token(v, depth)) for k, v in (fn.__kwdefaults__ or {}).items()))
    return ("fn", fn.__code__, id(fn.__globals__), cells, defaults, kwdefaults)


class ObjectiveKey:
    """Wraps a function; equal and equal-hashing for functions that behave the same (see module doc)."""

    __slots__ = ("fn", "_key", "_hash")

    def __init__(self, fn: Callable) -> None:
        self.fn = fn
        self._key = _function_key(fn, 0) if isinstance(fn, types.FunctionType) else ("id", id(fn))
        try:
            self._hash = hash(self._key)
        except TypeError:  # a value whose hash raised inside a tuple: fall back to identity
            self._key = ("id", id(fn))
            self._hash = hash(self._key)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ObjectiveKey) and self._hash == other._hash and self._key == other._key

    def __hash__(self) -> int:
        return self._hash

    def __repr__(self) -> str:
        return f"ObjectiveKey({self.fn!r})"
