"""The compiled programs behind a ``Study``: shared per strategy, loaded without tracing where stored,
and the journal's record of what an ask changed in the strategy state.

A ``Study`` of a strategy made by a jaxhpo factory runs five programs
(init, ask, initial design, in-design test, tell; the ask as two, compiled
side by side, when the strategy splits it in ``ask_stages``); every ``Study`` of an
equal strategy in a process shares them, and ``executable_cache`` stores them
across processes.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

from jaxhpo import compile_options, executable_cache
from jaxhpo.programs import Options, Program, StagedProgram
from jaxhpo.space import Space
from jaxhpo.strategies.base import Strategy, drivers_own_capacity


def state_delta(before: Any, after: Any) -> Optional[dict]:
    """The leaves an ask changed, as JSON (so ``Study.load`` re-applies them instead of re-running the ask).

    ``None`` when the change cannot be written exactly (a PRNG key or an
    infinite value changed, or the state's structure did): the replay then
    runs the ask again.
    """
    old, new = jax.tree.leaves(before), jax.tree.leaves(after)
    if len(old) != len(new):
        return None
    changed = {}
    for i, (a, b) in enumerate(zip(old, new)):
        if a is b:
            continue
        if jax.dtypes.issubdtype(b.dtype, jax.dtypes.prng_key):
            if not bool(jnp.all(jax.random.key_data(a) == jax.random.key_data(b))):
                return None
            continue
        value = np.asarray(b)
        if np.array_equal(np.asarray(a), value, equal_nan=value.dtype.kind == "f"):
            continue
        if value.dtype.kind == "f" and np.isinf(value).any():
            return None  # the journal writes non-finite floats as null, which reads back as NaN
        changed[str(i)] = {"dtype": value.dtype.name, "shape": list(value.shape), "value": value.tolist()}
    return {"leaves": len(new), "changed": changed}


class StudyPrograms(NamedTuple):
    """The compiled programs of a study's strategy, shared by every ``Study`` of that strategy."""

    init: Program  # (space, capacity, seed) -> state
    ask: Program | StagedProgram  # (seed, call number, state, num) -> (x, state); staged: two programs
    design: Optional[Program]  # the same, from the small initial-design program
    in_design: Optional[Program]  # (state, num) -> bool[]
    tell: Program  # (state, x, y) -> state


def study_programs(strategy: Strategy) -> StudyPrograms:
    """Programs for ``strategy``; those of a jaxhpo factory's strategy load from ``executable_cache``.

    A strategy that shares its functions with another (``Strategy.shared``:
    ``bayes(beta=8.0)`` with ``bayes()``) runs that one's programs, all but
    its own ``init``: one compile serves every value of the numeric settings.
    """
    return _shared_programs(strategy.programs())._replace(init=_init_program(strategy))


def _forget_programs() -> None:
    _shared_programs.cache_clear()
    _init_program.cache_clear()


study_programs.cache_clear = _forget_programs  # as for an lru_cache: programs are made anew after it


@functools.lru_cache(maxsize=16)
def _init_program(strategy: Strategy) -> Program:
    """``(space, capacity, seed) -> state``, compiled for first-trial speed."""

    def init(space: Space, capacity: int, seed: jax.Array) -> Any:
        # the first of the two keys a study's seed splits into; a study grows the buffer before it
        # fills, so no overflow check (a host callback would keep tell out of the compilation caches)
        return drivers_own_capacity(strategy.init(_seed_keys(seed)[0], space, capacity))

    return strategy_program(strategy, "study-init", init, (0, 1), compile_options.SMALL_PROGRAM_OPTIONS)


@functools.lru_cache(maxsize=16)
def _shared_programs(strategy: Strategy) -> StudyPrograms:
    """The programs of ``strategy`` but its ``init`` (``None`` there)."""

    def program(name: str, fn: Callable, static_argnums: tuple = (),
                options: Options = compile_options.COMPILER_OPTIONS) -> Program:
        return strategy_program(strategy, f"study-{name}", fn, static_argnums, options)

    design = strategy.design_ask is not None and strategy.in_design is not None
    small = compile_options.SMALL_PROGRAM_OPTIONS  # compiled before the first trial, run a few times
    return StudyPrograms(
        init=None,
        # for compile speed on a study's first buffer, for run speed on larger ones
        ask=strategy_ask(strategy, "study", keyed_ask, ask_options),
        design=program("design", keyed_ask(strategy.design_ask), (3,), small) if design else None,
        in_design=program("in-design", strategy.in_design, (1,), small) if design else None,
        tell=program("tell", strategy.tell),
    )


def strategy_program(strategy: Strategy, name: str, fn: Callable, static_argnums: tuple = (),
                     options: Options = compile_options.COMPILER_OPTIONS) -> Program:
    """``fn``, a function of ``strategy``'s, as a ``Program`` named ``name`` (``"study-ask"``, say) with
    jaxhpo's XLA options, stored by ``executable_cache`` when ``strategy`` is a jaxhpo factory's.

    Args:
        strategy: the strategy ``fn`` belongs to (its identity keys the executable cache).
        name: the program's name, unique among the programs of a strategy.
        fn: the function to compile.
        static_argnums: its static arguments.
        options: XLA options, or a function of the call's arguments that returns them (``Program``).
    """
    key = executable_cache.program_key(name, strategy)

    @functools.wraps(fn)
    def named(*args: Any) -> Any:
        return fn(*args)

    # the name JAX's persistent cache hashes changes with the executable cache's identity
    named.__name__ = named.__qualname__ = executable_cache.program_name(name.replace("-", "_"), key).replace("-", "_")
    called_directly = compile_options.COMPILER_OPTIONS if callable(options) else options
    return Program(compile_options.jit(named, called_directly, static_argnums=static_argnums), static_argnums,
                   cache_key=key, compiler_options=options)


def strategy_ask(strategy: Strategy, prefix: str, keyed: Callable[[Callable], Callable],
                 options: Options) -> Program | StagedProgram:
    """``strategy``'s ask as programs of ``(seed, number, state, num)``: one ``Program`` named ``<prefix>-ask``,
    or, for a strategy that splits its ask (``Strategy.ask_stages``), a ``StagedProgram`` of two,
    ``<prefix>-ask-fit`` and ``<prefix>-ask-propose``, compiled side by side.

    Args:
        strategy: the strategy.
        prefix: the driver's name for its programs (``"study"``, ``"optuna"``).
        keyed: makes a function of ``(seed, number, state, num)`` from one of ``(key, state, num)``:
            how the driver derives each ask's key.
        options: XLA options, or a function of the call's arguments that returns them.
    """
    if strategy.ask_stages is None:
        return strategy_program(strategy, f"{prefix}-ask", keyed(strategy.ask), (3,), options)
    fit, propose = strategy.ask_stages
    return StagedProgram(strategy_program(strategy, f"{prefix}-ask-fit", keyed(fit), (3,), options),
                         strategy_program(strategy, f"{prefix}-ask-propose", keyed(propose), (3,), options))


def ask_options(args: tuple) -> dict:
    """The ask's XLA options for its arguments ``(seed, call number, state, num)``: by the state's buffer
    and the backend (``compile_options.study_ask_options``)."""
    return compile_options.study_ask_options(args[2].history.capacity, jax.default_backend())


def keyed_ask(ask: Callable) -> Callable:
    """``ask`` as one jitted program of ``(seed, call number, state, num)``.

    The ask's key (the call number folded into the second key of the seed's
    key) is made inside the program, so the initial design, which ignores
    its key, compiles without any random-number code, and no program runs
    eagerly to make the seed's key (``seed_array``).
    """

    def run(seed: jax.Array, calls: jax.Array, state: Any, num: int) -> tuple[jax.Array, Any]:
        return ask(jax.random.fold_in(_seed_keys(seed)[1], calls), state, num)

    return run


def _seed_keys(seed: jax.Array) -> jax.Array:
    """The two keys a study's seed splits into, inside its programs: the first for init, the second for asks."""
    return jax.random.split(jax.random.key(seed))
