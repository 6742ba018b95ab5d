"""Search spaces: typed parameters, and their map to and from the unit cube.

Every parameter takes one coordinate of the unit cube ``[0, 1]^d``. Floats map
linearly (or linearly in log space); integers and categorical indices map to
equal-width bins, so a uniform point in the cube gives a uniform value.
``Space.decode`` and ``Space.encode`` are pure ``jnp`` functions over batches:
they run under ``jit``, ``vmap`` and ``lax.scan``.

Longer than 400 lines for a reason: the maps exist twice on purpose, in
``jnp`` (inside programs) and in NumPy float64 (the Python shell, without a
JAX dispatch per trial), and every check of user input to a space (names,
ranges, choices, exact decoding) sits next to the map it guards.

Example:
    >>> import jax, jaxhpo
    >>> space = jaxhpo.Space({
    ...     "lr": jaxhpo.Float(1e-4, 1e-1, log=True),
    ...     "layers": jaxhpo.Int(1, 4),
    ...     "act": jaxhpo.Categorical(["relu", "tanh"]),
    ... })
    >>> params = space.decode(jax.numpy.full((2, 3), 0.5))
    >>> space.to_python(params, 0)["act"]
    'tanh'
"""

from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence, Union

import jax
import jax.numpy as jnp
import numpy as np

from jaxhpo._arrays import device_array

Array = jax.Array


def _check_flag(kind: str, name: str, value: Any) -> None:
    """A flag must be True or False: ``log="False"`` would otherwise mean True."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{kind}: {name} must be True or False, got {name}={value!r}")


def _check_bound(kind: str, name: str, value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{kind}: {name} must be a number, got {name}={value!r}") from None
    if not math.isfinite(number):
        raise ValueError(f"{kind}: {name} must be finite, got {name}={value!r}")
    return number


@dataclass(frozen=True)
class Float:
    """A real-valued parameter in ``[low, high]``, optionally on a log scale.

    Example:
        >>> lr = Float(1e-5, 1e-1, log=True)
    """

    low: float
    high: float
    log: bool = False

    def __post_init__(self) -> None:
        _check_flag("Float", "log", self.log)
        low = _check_bound("Float", "low", self.low)
        high = _check_bound("Float", "high", self.high)
        if not low < high:
            raise ValueError(f"Float: low must be less than high, got low={self.low!r}, high={self.high!r} "
                             f"(for a value held fixed, leave it out of the space or use Categorical([value]))")
        if self.log and low <= 0:
            raise ValueError(f"Float: log=True needs low > 0, got low={self.low!r}")
        object.__setattr__(self, "low", low)
        object.__setattr__(self, "high", high)
        object.__setattr__(self, "log", bool(self.log))


@dataclass(frozen=True)
class Int:
    """An integer parameter in ``[low, high]`` (both included), optionally on a log scale.

    ``low == high`` holds the parameter at that value (as Optuna's
    ``suggest_int(name, 3, 3)``): every point decodes to it.

    Example:
        >>> units = Int(16, 512, log=True)
        >>> Space({"depth": Int(3, 3)}).decode_numpy([[0.9]])["depth"].tolist()
        [3]
    """

    low: int
    high: int
    log: bool = False

    def __post_init__(self) -> None:
        _check_flag("Int", "log", self.log)
        for name in ("low", "high"):
            value = getattr(self, name)
            number = _check_bound("Int", name, value)
            if number != int(number):
                raise ValueError(f"Int: {name} must be an integer, got {name}={value!r}")
        low, high = int(self.low), int(self.high)
        if not low <= high:  # low == high: a fixed value, as Optuna's suggest_int(name, 3, 3)
            raise ValueError(f"Int: low must not exceed high, got low={self.low!r}, high={self.high!r}")
        if self.log and low <= 0:
            raise ValueError(f"Int: log=True needs low >= 1, got low={self.low!r}")
        object.__setattr__(self, "low", low)
        object.__setattr__(self, "high", high)
        object.__setattr__(self, "log", bool(self.log))


@dataclass(frozen=True)
class Categorical:
    """A choice among a fixed list of values; decoded as the index of the choice.

    Example:
        >>> act = Categorical(["relu", "gelu", "tanh"])
    """

    choices: tuple

    def __post_init__(self) -> None:
        if isinstance(self.choices, (str, bytes)) or not isinstance(self.choices, Sequence):
            raise ValueError(f"Categorical: choices must be a list or tuple, got choices={self.choices!r}")
        choices = tuple(self.choices)
        if not choices:
            raise ValueError(f"Categorical: choices must not be empty, got choices={self.choices!r}")
        seen: list = []
        for choice in choices:
            if any(type(choice) is type(other) and choice == other for other in seen):
                raise ValueError(f"Categorical: duplicate choice {choice!r} in choices={self.choices!r}")
            seen.append(choice)
        object.__setattr__(self, "choices", choices)

    def index(self, value: Any) -> int:
        """Returns the index of ``value`` among the choices, or raises ``ValueError``."""
        for i, choice in enumerate(self.choices):
            if type(choice) is type(value) and choice == value:
                return i
        for i, choice in enumerate(self.choices):  # 1 == 1.0, numpy scalars
            try:
                if choice == value:
                    return i
            except Exception:  # noqa: BLE001 - incomparable types are simply not equal
                pass
        raise ValueError(f"value {value!r} is not one of the choices {list(self.choices)!r}")


Param = Union[Float, Int, Categorical]


def _param_to_dict(param: Param) -> dict:
    if isinstance(param, Categorical):
        return {"type": "categorical", "choices": list(param.choices)}
    return {"type": type(param).__name__.lower(), "low": param.low, "high": param.high, "log": param.log}


def _param_from_dict(spec: Mapping[str, Any]) -> Param:
    kind = spec.get("type")
    if kind == "categorical":
        return Categorical(tuple(spec["choices"]))
    if kind == "float":
        return Float(spec["low"], spec["high"], spec.get("log", False))
    if kind == "int":
        return Int(spec["low"], spec["high"], spec.get("log", False))
    raise ValueError(f"unknown parameter type {kind!r} in {dict(spec)!r}")


@functools.partial(jax.jit, static_argnums=(0, 2))
def _decode_program(space: "Space", u: Array, int_dtype: Any) -> dict[str, Array]:
    """``Space.decode`` as one program per space and shape (called eagerly, its clips, exps and
    casts would compile one by one); inside a caller's ``jit`` it is inlined."""
    return space._decode(u, jnp, int_dtype)


@dataclass(frozen=True)
class Space:
    """An ordered collection of named parameters; one unit-cube coordinate each.

    Args:
        params: mapping from parameter name to ``Float``, ``Int`` or ``Categorical``.

    Example:
        >>> space = Space({"x": Float(-5.0, 10.0), "y": Float(0.0, 15.0)})
        >>> space.dim
        2
    """

    params: Mapping[str, Param]
    _items: tuple = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.params, Mapping):
            raise ValueError(f"Space: params must be a dict of name -> parameter, got {self.params!r}")
        if not self.params:
            raise ValueError("Space: params must not be empty, got {}")
        for name, param in self.params.items():
            if not isinstance(name, str) or not name:
                raise ValueError(f"Space: parameter names must be non-empty strings, got {name!r}")
            if not isinstance(param, (Float, Int, Categorical)):
                raise ValueError(
                    f"Space: parameter {name!r} must be Float, Int or Categorical, got {param!r}"
                )
        items = tuple(self.params.items())
        object.__setattr__(self, "params", dict(items))
        object.__setattr__(self, "_items", items)

    def _identity(self) -> tuple:
        """What equality and hashing compare: names, kinds, bounds, and choices with their types
        (``Categorical([1, 2])`` hands out ints, ``Categorical([1.0, 2.0])`` floats: two spaces)."""
        return tuple((n, _hashable(p)) for n, p in self._items)

    def __hash__(self) -> int:
        return hash(self._identity())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Space) and self._identity() == other._identity()

    # ----------------------------------------------------------------- layout
    @property
    def names(self) -> tuple[str, ...]:
        """Parameter names, in coordinate order."""
        return tuple(name for name, _ in self._items)

    @property
    def dim(self) -> int:
        """Number of unit-cube coordinates (one per parameter)."""
        return len(self._items)

    def _bounds(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Per-coordinate ``(lo, hi, is_log, is_discrete, clip_lo, clip_hi)``; lo/hi in transformed units."""
        lo, hi, is_log, discrete, clip_lo, clip_hi = [], [], [], [], [], []
        for _, p in self._items:
            if isinstance(p, Float):
                a, b = (math.log(p.low), math.log(p.high)) if p.log else (p.low, p.high)
                lo.append(a), hi.append(b), is_log.append(p.log), discrete.append(False)
                clip_lo.append(p.low), clip_hi.append(p.high)
            else:
                low, high = (0, len(p.choices) - 1) if isinstance(p, Categorical) else (p.low, p.high)
                log = isinstance(p, Int) and p.log
                a, b = low - 0.5, high + 0.5
                if log:
                    a, b = math.log(a), math.log(b)
                lo.append(a), hi.append(b), is_log.append(log), discrete.append(True)
                clip_lo.append(low), clip_hi.append(high)
        return tuple(np.asarray(v, dtype=np.float64) for v in (lo, hi, is_log, discrete, clip_lo, clip_hi))

    @property
    def discrete_mask(self) -> np.ndarray:
        """Boolean ``[d]``: True for Int and Categorical coordinates."""
        return np.array([not isinstance(p, Float) for _, p in self._items])

    @property
    def categorical_sizes(self) -> np.ndarray:
        """Int ``[d]``: number of choices for categorical coordinates, 0 elsewhere."""
        return np.array([len(p.choices) if isinstance(p, Categorical) else 0 for _, p in self._items])

    # ------------------------------------------------------------- jnp maps
    def decode(self, u: Array) -> dict[str, Array]:
        """Maps unit-cube points ``[..., d]`` to a dict of parameter arrays ``[...]``.

        Floats come back in the dtype of ``u``; Int values and categorical
        indices as ``int32`` (``int64`` for float64 points, with x64 on).
        Points outside the cube are clipped into it.

        Raises:
            ValueError: when ``u`` is float32 and a parameter's range does not fit
                it exactly (``Float(0, 1e39)``, ``Float(1e-300, 1, log=True)``,
                ``Int(0, 2**40)``): the message says to enable x64.
        """
        u = device_array(u)
        if not jnp.issubdtype(u.dtype, jnp.floating):
            u = u.astype(jnp.float32)
        int_dtype = jnp.int64 if u.dtype == jnp.float64 else jnp.int32
        self._check_exact(np.dtype(u.dtype))
        return _decode_program(self, u, int_dtype)

    def _check_exact(self, dtype: np.dtype) -> None:
        """Raises when a parameter's range cannot be decoded exactly in ``dtype`` (float32 without x64)."""
        if dtype == np.float64:
            return
        info = np.finfo(dtype)
        exact = 2 ** (info.nmant + 1)  # every integer up to this is a float of this precision
        for name, p in self._items:
            if isinstance(p, Float):
                bad = [b for b in (p.low, p.high) if abs(b) > float(info.max) or (p.log and b < float(info.tiny))]
                if bad:
                    raise ValueError(
                        f"Space: parameter {name!r} ({p}) has a bound ({bad[0]!r}) outside what {dtype} holds "
                        f"(magnitudes {info.tiny:.3g} to {info.max:.3g}), so decode in {dtype} would give 0, inf "
                        f"or NaN; enable 64-bit JAX (jax.config.update('jax_enable_x64', True)) and decode float64 "
                        f"points, or rescale the parameter (Study decodes in float64 already)")
            elif isinstance(p, Int) and max(abs(p.low), abs(p.high)) > exact:
                raise ValueError(
                    f"Space: parameter {name!r} ({p}) reaches beyond {exact}, past which {dtype} cannot hold "
                    f"every integer; enable 64-bit JAX (jax.config.update('jax_enable_x64', True)) and decode "
                    f"float64 points (Study decodes in float64 already)")

    def decode_numpy(self, u: Any) -> dict[str, np.ndarray]:
        """``decode`` in NumPy float64 (Int values as ``int64``): what the Python shell hands to objectives.

        Runs no JAX program, and keeps float64 precision: a log-scale value
        comes back as the float64 number the point means, not float32-rounded.
        """
        return self._decode(np.asarray(u, dtype=np.float64), np, np.int64)

    def _decode(self, u: Any, xp: Any, int_dtype: Any) -> dict[str, Any]:
        if u.shape[-1:] != (self.dim,):
            raise ValueError(f"decode: expected points of shape [..., {self.dim}], got shape {u.shape}")
        lo, hi, is_log, discrete, clip_lo, clip_hi = self._bounds()
        u = xp.clip(u, 0.0, 1.0)
        t = (1.0 - u) * lo + u * hi  # not lo + u (hi - lo): hi - lo overflows for ranges such as +-1e308
        log = is_log.astype(bool)
        values = xp.where(log, xp.exp(xp.where(log, t, 0.0)), t)  # no exp of a linear coordinate: it may overflow
        out = {}
        for i, (name, _) in enumerate(self._items):
            v = xp.clip(values[..., i], clip_lo[i], clip_hi[i])
            if discrete[i]:
                # floor(v + 0.5), not round-half-even: a point on a bin's edge takes the upper bin, as snap does
                v = xp.clip(xp.floor(v + 0.5), clip_lo[i], clip_hi[i]).astype(int_dtype)
            else:
                v = v.astype(u.dtype)
            out[name] = v
        return out

    def encode(self, values: Mapping[str, Any], dtype: Any = None) -> Array:
        """Maps a dict of parameter arrays ``[...]`` (categoricals as indices) to ``[..., d]``.

        Concrete (non-traced) inputs are validated: unknown or missing names and
        out-of-range values raise ``ValueError``.
        """
        return self._encode(values, jnp, dtype or jnp.result_type(float))

    def encode_numpy(self, values: Mapping[str, Any]) -> np.ndarray:
        """``encode`` in NumPy float64, validated the same way; runs no JAX operation (for the Python shell)."""
        return self._encode(values, np, np.float64)

    def _encode(self, values: Mapping[str, Any], xp: Any, dtype: Any) -> Any:
        self._check_names(values)
        lo, hi, is_log, discrete, _, _ = self._bounds()
        columns = []
        for i, (name, param) in enumerate(self._items):
            v = values[name]
            if not isinstance(v, jax.core.Tracer):
                self._check_range(name, param, np.asarray(v))
            v = xp.asarray(v, dtype=dtype)
            t = xp.log(v) if is_log[i] else v
            columns.append((t - lo[i]) / (hi[i] - lo[i]))
        return xp.clip(xp.stack(columns, axis=-1), 0.0, 1.0)

    # ------------------------------------------------------ Python values
    def to_python(self, decoded: Mapping[str, Any], index: Any = None) -> dict[str, Any]:
        """Turns decoded arrays into plain Python values, categoricals as their choices.

        Args:
            decoded: output of ``decode`` (a batch or a single point).
            index: optional index into the batch dimension.
        """
        out = {}
        for name, param in self._items:
            v = np.asarray(decoded[name])
            if index is not None:
                v = v[index]
            if v.ndim:
                raise ValueError(f"to_python: parameter {name!r} is a batch of shape {v.shape}; pass index")
            if isinstance(param, Categorical):
                out[name] = param.choices[int(v)]
            elif isinstance(param, Int):
                out[name] = int(v)
            else:
                out[name] = float(v)
        return out

    def from_python(self, params: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """The inverse of ``to_python``: categoricals given as choices become indices."""
        self._check_names(params)
        out = {}
        for name, param in self._items:
            value = params[name]
            if isinstance(param, Categorical):
                try:
                    out[name] = np.asarray(param.index(value), dtype=np.int32)
                except ValueError as e:
                    raise ValueError(f"parameter {name!r}: {e}") from None
            else:
                out[name] = np.asarray(value)
                self._check_range(name, param, out[name])
        return out

    def validate(self, params: Mapping[str, Any]) -> None:
        """Raises ``ValueError`` naming the parameter if ``params`` (Python values) do not fit."""
        self.from_python(params)

    def _check_names(self, values: Mapping[str, Any]) -> None:
        unknown = [k for k in values if k not in self.params]
        if unknown:
            raise ValueError(f"unknown parameter {unknown[0]!r}; the space has {list(self.names)!r}")
        missing = [k for k in self.names if k not in values]
        if missing:
            raise ValueError(f"missing parameter {missing[0]!r}; the space has {list(self.names)!r}")

    @staticmethod
    def _check_range(name: str, param: Param, v: np.ndarray) -> None:
        if v.dtype == object or not np.issubdtype(v.dtype, np.number):
            if isinstance(param, Categorical):
                value = v.tolist()
                hint = (f"give its index {param.choices.index(value)}" if value in param.choices
                        else f"it is not one of the choices {list(param.choices)!r}")
                raise ValueError(f"parameter {name!r}: encoded values of a Categorical are choice indices "
                                 f"0..{len(param.choices) - 1}, got {value!r}: {hint} (Space.from_python "
                                 f"converts choices to indices)")
            raise ValueError(f"parameter {name!r}: value {v.tolist()!r} is not numeric")
        if isinstance(param, Categorical):
            low, high = 0, len(param.choices) - 1
        else:
            low, high = param.low, param.high
        bad = ~np.isfinite(v) | (v < low) | (v > high)
        if isinstance(param, (Int, Categorical)):
            bad |= np.isfinite(v) & (v != np.round(v))
        if np.any(bad):
            first = v[bad].flat[0] if v.ndim else v
            what = "index" if isinstance(param, Categorical) else "value"
            kind = "an integer in" if isinstance(param, (Int, Categorical)) else "inside"
            raise ValueError(f"parameter {name!r}: {what} {first.item()!r} is not {kind} [{low}, {high}]")

    # ------------------------------------------------------ sampling, grid
    def sample(self, key: Array, num: int) -> dict[str, Array]:
        """Draws ``num`` points uniformly from the unit cube and decodes them."""
        return self.decode(jax.random.uniform(key, (num, self.dim)))

    def grid(self, resolution: int = 5) -> np.ndarray:
        """Every grid combination as unit-cube points ``[n, d]``, in lexicographic order.

        Floats take ``resolution`` evenly spaced values (in log space when
        ``log=True``), endpoints included; integers take every value when there
        are at most ``resolution`` of them, else ``resolution`` distinct values
        evenly spaced; categoricals take every choice.

        Example:
            >>> Space({"a": Float(0, 1), "b": Categorical([1, 2, 3])}).grid(2).shape
            (6, 2)
        """
        if int(resolution) != resolution or resolution < 1:
            raise ValueError(f"grid: resolution must be a positive integer, got resolution={resolution!r}")
        axes = [self._axis(p, int(resolution)) for _, p in self._items]
        points = np.array(list(itertools.product(*axes)), dtype=np.float64)
        return points.reshape(-1, self.dim)

    @staticmethod
    def _axis(param: Param, resolution: int) -> list[float]:
        if isinstance(param, Float):
            return list(np.linspace(0.0, 1.0, resolution)) if resolution > 1 else [0.5]
        count = len(param.choices) if isinstance(param, Categorical) else param.high - param.low + 1
        if isinstance(param, Categorical) or count <= resolution and not param.log:
            return [(i + 0.5) / count for i in range(count)]
        # Evenly spaced in the (log) transformed scale, snapped to distinct integers.
        if param.log:
            values = np.exp(np.linspace(math.log(param.low), math.log(param.high), resolution))
        else:
            values = np.linspace(param.low, param.high, resolution)
        ints = sorted(set(int(v) for v in np.round(values)))
        a, b = param.low - 0.5, param.high + 0.5
        if param.log:
            return [(math.log(v) - math.log(a)) / (math.log(b) - math.log(a)) for v in ints]
        return [(v - a) / (b - a) for v in ints]

    def grid_size(self, resolution: int = 5) -> int:
        """Number of points ``grid(resolution)`` returns."""
        return int(np.prod([len(self._axis(p, int(resolution))) for _, p in self._items]))

    # ------------------------------------------------------ serialization
    def to_dict(self) -> dict[str, dict]:
        """A JSON-ready description; ``Space.from_dict`` inverts it."""
        return {name: _param_to_dict(p) for name, p in self._items}

    @classmethod
    def from_dict(cls, spec: Mapping[str, Mapping[str, Any]]) -> "Space":
        """Builds a space from ``to_dict`` output."""
        return cls({name: _param_from_dict(p) for name, p in spec.items()})


def _hashable(param: Param) -> tuple:
    if isinstance(param, Categorical):
        return ("categorical", tuple(repr(c) for c in param.choices))
    return (type(param).__name__, param.low, param.high, param.log)
