"""A zoom line search that compiles the objective once: for ``optax.lbfgs`` in the GP's fit.

It is the strong-Wolfe search of Nocedal and Wright (Algorithms 3.5 and 3.6)
with the choices of ``optax.scale_by_zoom_linesearch`` (Hager and Zhang's
approximate decrease test, cubic then quadratic interpolation then bisection,
a safe step when the search fails), and it takes the same steps. What differs
is the program: optax evaluates the objective inside each of its two phases
(the interval search, the zoom), two branches of a ``lax.cond``, so XLA
compiles the objective and its gradient twice per line search. Here each
iteration first chooses its step (the next step of the interval search, or
the zoom's interpolated point), evaluates the objective there once, then
updates the search with the phase's rules. For the GP's marginal likelihood
that is one copy fewer of its value and gradient in the fit program.

Example:
    >>> import jax.numpy as jnp, optax
    >>> from jaxhpo.gp.linesearch import zoom_linesearch
    >>> f = lambda w: jnp.sum((w - 3.0) ** 2)
    >>> opt = optax.lbfgs(linesearch=zoom_linesearch(max_steps=12))
    >>> w = jnp.zeros(2)
    >>> state = opt.init(w)
    >>> value_and_grad = optax.value_and_grad_from_state(f)
    >>> for _ in range(3):
    ...     value, grad = value_and_grad(w, state=state)
    ...     updates, state = opt.update(grad, state, w, value=value, grad=grad, value_fn=f)
    ...     w = optax.apply_updates(w, updates)
    >>> [round(float(v), 4) for v in w]
    [3.0, 3.0]
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

Array = jax.Array


class ZoomState(NamedTuple):
    """The transform's state: the last step size, and the value and gradient where it ended
    (``optax.value_and_grad_from_state`` reads ``value`` and ``grad``)."""

    learning_rate: Array
    value: Array
    grad: Array


class _Search(NamedTuple):
    """One line search in progress (the names of Nocedal and Wright; ``low``/``high`` bound an interval
    holding an acceptable step, ``value(high) >= value(low)``)."""

    count: Array
    stepsize: Array
    value: Array
    grad: Array
    slope: Array
    decrease_error: Array
    curvature_error: Array
    interval_found: Array
    done: Array
    failed: Array
    low: Array
    value_low: Array
    slope_low: Array
    high: Array
    value_high: Array
    slope_high: Array
    cubic_ref: Array
    value_cubic_ref: Array
    safe_stepsize: Array
    safe_value: Array
    safe_grad: Array


def _cubic_minimizer(a: Array, fa: Array, fpa: Array, b: Array, fb: Array, c: Array, fc: Array) -> Array:
    """The critical point of the cubic through ``(a, fa)``, ``(b, fb)``, ``(c, fc)`` with slope ``fpa`` at
    ``a`` (NaN when it has none: then the caller falls back)."""
    db, dc = b - a, c - a
    denominator = (db * dc) ** 2 * (db - dc)
    matrix = jnp.array([[dc**2, -(db**2)], [-(dc**3), db**3]])
    cubic, square = jnp.dot(matrix, jnp.array([fb - fa - fpa * db, fc - fa - fpa * dc]),
                            precision=jax.lax.Precision.HIGHEST) / denominator
    return a + (-square + jnp.sqrt(square * square - 3.0 * cubic * fpa)) / (3.0 * cubic)


def _quadratic_minimizer(a: Array, fa: Array, fpa: Array, b: Array, fb: Array) -> Array:
    """The critical point of the parabola through ``(a, fa)`` and ``(b, fb)`` with slope ``fpa`` at ``a``."""
    db = b - a
    square = (fb - fa - fpa * db) / (db**2)
    return a - fpa / (2.0 * square)


def _value_dtype(params: Array) -> Any:
    """The real dtype of the objective's values for ``params`` (float64 for float64 or complex128)."""
    return jnp.real(jnp.empty((), jax.tree.leaves(params)[0].dtype)).dtype


def zoom_linesearch(
    max_steps: int,
    *,
    increase_factor: float = 2.0,
    slope_rtol: float = 1e-4,
    curv_rtol: float = 0.9,
    approx_dec_rtol: float = 1e-6,
    stepsize_precision: float = 1e-5,
    initial_guess: str = "keep",
) -> optax.GradientTransformationExtraArgs:
    """The zoom line search as an optax transform (``optax.lbfgs(linesearch=...)``), for array parameters.

    The settings and their defaults are ``optax.scale_by_zoom_linesearch``'s (with no largest step and a
    zero tolerance), and so are the steps taken. ``zoom_linesearch(20, initial_guess="one")`` is the
    search ``optax.lbfgs()`` runs by default.

    Args:
        max_steps: most objective evaluations per line search.
        increase_factor: how much the interval search grows the step each time.
        slope_rtol: the sufficient decrease (Armijo) constant.
        curv_rtol: the curvature (Wolfe) constant.
        approx_dec_rtol: relative tolerance of Hager and Zhang's approximate decrease test.
        stepsize_precision: an interval shorter than this ends the search with the best safe step.
        initial_guess: the first step tried: ``"keep"`` (the previous search's step) or ``"one"``
            (a unit step, as quasi-Newton directions are scaled to be).

    Returns:
        A transform whose ``update(updates, state, params, value=, grad=, value_fn=)`` scales the
        direction ``updates`` by the step found.
    """

    if initial_guess not in ("keep", "one"):
        raise ValueError(f"zoom_linesearch: initial_guess must be 'keep' or 'one', got initial_guess={initial_guess!r}")

    def decrease_error(stepsize: Array, value: Array, slope: Array, value_init: Array, slope_init: Array) -> Array:
        armijo = value - value_init - slope_rtol * stepsize * slope_init
        approximate = jnp.maximum(slope - (2 * slope_rtol - 1.0) * slope_init,
                                  value - value_init - approx_dec_rtol * jnp.abs(value_init))
        error = jnp.maximum(jnp.minimum(approximate, armijo), 0.0)
        return jnp.where(jnp.isnan(error), jnp.inf, error)

    def curvature_error(slope: Array, slope_init: Array) -> Array:
        error = jnp.maximum(jnp.abs(slope) - curv_rtol * jnp.abs(slope_init), 0.0)
        return jnp.where(jnp.isnan(error), jnp.inf, error)

    def zoom_point(s: _Search) -> Array:
        """The zoom's next step: the cubic's minimizer well inside the interval, else the quadratic's, else
        the middle."""
        delta = jnp.abs(s.high - s.low)
        left, right = jnp.minimum(s.high, s.low), jnp.maximum(s.high, s.low)
        cubic = _cubic_minimizer(s.low, s.value_low, s.slope_low, s.high, s.value_high, s.cubic_ref,
                                 s.value_cubic_ref)
        use_cubic = (cubic > left + 0.2 * delta) & (cubic < right - 0.2 * delta)
        quadratic = _quadratic_minimizer(s.low, s.value_low, s.slope_low, s.high, s.value_high)
        use_quadratic = ~use_cubic & (quadratic > left + 0.1 * delta) & (quadratic < right - 0.1 * delta)
        middle = jnp.where(use_cubic, cubic, s.cubic_ref)
        middle = jnp.where(use_quadratic, quadratic, middle)
        return jnp.where(~use_cubic & ~use_quadratic, (s.low + s.high) / 2.0, middle)

    def init_fn(params: Array) -> ZoomState:
        dtype = _value_dtype(params)
        return ZoomState(learning_rate=jnp.asarray(1.0, dtype), value=jnp.asarray(jnp.inf, dtype),
                         grad=optax.tree.zeros_like(params))

    def update_fn(updates: Array, state: ZoomState, params: Array, *, value: Array, grad: Array,
                  value_fn: Callable[[Array], Array], **extra_args: Any) -> tuple[Array, ZoomState]:
        if extra_args:
            raise TypeError(f"zoom_linesearch: unexpected arguments {sorted(extra_args)}: value_fn takes the "
                            "parameters only")
        value_and_grad = jax.value_and_grad(value_fn)
        guess = state.learning_rate if initial_guess == "keep" else jnp.ones_like(state.learning_rate)
        dtype = _value_dtype(params)
        slope_init = optax.tree.real(optax.tree.vdot(updates, grad))
        value_init = value
        zero = jnp.asarray(0.0)

        def step(s: _Search) -> _Search:
            # the one evaluation of this iteration, where its phase puts it
            stepsize = jnp.where(s.interval_found, zoom_point(s),
                                 jnp.where(s.count == 0, guess, increase_factor * s.stepsize))
            new_value, new_grad = value_and_grad(optax.tree.add_scale(params, stepsize, updates))
            new_slope = optax.tree.real(optax.tree.vdot(optax.tree.conj(new_grad), updates))
            dec = decrease_error(stepsize, new_value, new_slope, value_init, slope_init)
            curv = curvature_error(new_slope, slope_init)
            done = jnp.maximum(dec, curv) <= 0.0
            count = s.count + 1
            out_of_steps = count >= max_steps

            # the interval search (Algorithm 3.5): an interval is found once the step overshoots
            high_at_new = (dec > 0.0) | ((new_value >= s.value) & (s.count > 0))
            low_at_new = (new_slope >= 0.0) & ~high_at_new
            new_point = [stepsize, new_value, new_slope]
            previous = [s.stepsize, s.value, s.slope]
            low, value_low, slope_low, high, value_high, slope_high = optax.tree.where(
                low_at_new, new_point + previous, previous + new_point)
            safe = dec <= 0.0
            searched = _Search(
                count=count, stepsize=stepsize, value=new_value, grad=new_grad, slope=new_slope,
                decrease_error=dec, curvature_error=curv,
                interval_found=high_at_new | low_at_new | done, done=done, failed=out_of_steps & ~done,
                low=low, value_low=value_low, slope_low=slope_low, high=high, value_high=value_high,
                slope_high=slope_high, cubic_ref=low, value_cubic_ref=value_low,
                safe_stepsize=jnp.where(safe, stepsize, s.safe_stepsize),
                safe_value=jnp.where(safe, new_value, s.safe_value),
                safe_grad=optax.tree.where(safe, new_grad, s.safe_grad))

            # the zoom (Algorithm 3.6): the interval shrinks around an acceptable step
            safer = safe & (new_value < s.safe_value)
            safe_stepsize = jnp.where(safer, stepsize, s.safe_stepsize)
            high_at_new = (dec > 0.0) | (new_value >= s.value_low)
            high_at_low = (new_slope * (s.high - s.low) >= 0.0) & ~high_at_new
            high = optax.tree.where(high_at_new, new_point, [s.high, s.value_high, s.slope_high])
            high = optax.tree.where(high_at_low, [s.low, s.value_low, s.slope_low], high)
            low = optax.tree.where(~high_at_new, new_point, [s.low, s.value_low, s.slope_low])
            cubic_ref = optax.tree.where(high_at_new | high_at_low, [s.high, s.value_high], [s.low, s.value_low])
            too_small = jnp.abs(s.high - s.low) <= stepsize_precision
            zoomed = _Search(
                count=count, stepsize=stepsize, value=new_value, grad=new_grad, slope=new_slope,
                decrease_error=dec, curvature_error=curv, interval_found=s.interval_found, done=done,
                failed=(out_of_steps | (too_small & (safe_stepsize > 0.0))) & ~done,
                low=low[0], value_low=low[1], slope_low=low[2], high=high[0], value_high=high[1],
                slope_high=high[2], cubic_ref=cubic_ref[0], value_cubic_ref=cubic_ref[1],
                safe_stepsize=safe_stepsize, safe_value=jnp.where(safer, new_value, s.safe_value),
                safe_grad=optax.tree.where(safer, new_grad, s.safe_grad))

            s = optax.tree.where(s.interval_found, zoomed, searched)
            # a failed search takes the best step of sufficient decrease seen, if any (or stays put
            # where the objective is not finite)
            fall_back = s.failed & ((s.safe_stepsize > 0.0) | jnp.isinf(s.decrease_error))
            return s._replace(stepsize=jnp.where(fall_back, s.safe_stepsize, s.stepsize),
                              value=jnp.where(fall_back, s.safe_value, s.value),
                              grad=optax.tree.where(fall_back, s.safe_grad, s.grad))

        value0 = jnp.asarray(value, dtype)
        start = _Search(
            count=jnp.asarray(0), stepsize=jnp.asarray(0.0, dtype), value=value0, grad=grad, slope=slope_init,
            decrease_error=jnp.asarray(jnp.inf), curvature_error=jnp.asarray(jnp.inf),
            interval_found=jnp.asarray(False), done=jnp.asarray(False), failed=jnp.asarray(False),
            low=zero, value_low=value0, slope_low=slope_init, high=zero, value_high=value0, slope_high=slope_init,
            cubic_ref=zero, value_cubic_ref=value0, safe_stepsize=zero, safe_value=value0, safe_grad=grad)
        end = jax.lax.while_loop(lambda s: ~(s.done | s.failed), step, start)
        new_state = ZoomState(learning_rate=end.stepsize, value=end.value, grad=end.grad)
        return optax.tree.scale(end.stepsize, updates), optax.tree.cast_like(new_state, other_tree=state)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)
