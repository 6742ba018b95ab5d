"""An Optuna sampler that runs any jaxhpo strategy: ``optuna.create_study(sampler=JaxhpoSampler())``.

Optuna users keep their objective, ``trial.suggest_*`` calls, storages
(RDB, journal), workers and dashboard, and get jaxhpo's strategies
(``bayes()`` by default) for the parameters every trial shares. Needs the
``optuna`` extra (``pip install "jaxhpo[optuna]"``).

* **Relative sampling** on the intersection search space (Optuna's
  ``IntersectionSearchSpace``, pruned trials included): floats (``log``,
  ``step``), ints (``log``, ``step``) and categoricals map to a jaxhpo
  ``Space``; parameters outside it (define-by-run, conditional ones) come
  from ``independent_sampler`` (``RandomSampler`` by default).
* **Every finished trial is told once**, in trial order, to a state kept per
  study and search space: COMPLETE with its value, PRUNED with its last
  intermediate value, FAIL as a failed trial (masked out of the GP, never
  proposed again). Maximizing studies are negated.
* **Pending-aware**: trials RUNNING in the storage (other workers', other
  processes') are passed to the strategy's ``set_pending``, so parallel
  workers get different points.
* **No recompile as the study grows**: the state's buffers grow by doubling
  from 64 rows, and each ask and tell is one compiled program per buffer
  size. ``bayes()``'s initial design comes from its small design program.
* **Deterministic for a seed**: the key of trial ``n``'s ask is the seed's
  key folded with ``n``.

* **Export**: ``export_study(study, storage)`` copies a jaxhpo ``Study`` (its
  journal loaded with ``Study.load``, say) into any Optuna storage, to open it
  in optuna-dashboard or analyse it with Optuna's tools; ``import_study(study)``
  goes the other way, to continue an Optuna study with a jaxhpo strategy.

Example:
    >>> import optuna, jaxhpo
    >>> from jaxhpo.integrations.optuna import JaxhpoSampler
    >>> optuna.logging.set_verbosity(optuna.logging.WARNING)
    >>> study = optuna.create_study(sampler=JaxhpoSampler(jaxhpo.strategies.sobol(), seed=0))
    >>> study.optimize(lambda t: (t.suggest_float("x", -2, 2) - 1) ** 2 + t.suggest_int("n", 0, 4), n_trials=16)
    >>> study.best_value < 0.5
    True
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

try:
    import optuna
    from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
    from optuna.samplers import BaseSampler
    from optuna.search_space import IntersectionSearchSpace
    from optuna.trial import TrialState
except ImportError as e:  # pragma: no cover - the extra is missing
    raise ImportError('jaxhpo.integrations.optuna needs Optuna: pip install "jaxhpo[optuna]"') from e

from jaxhpo._checks import int_seed
from jaxhpo.space import Categorical, Float, Int, Space
from jaxhpo.strategies.base import Strategy, check_strategy, drivers_own_capacity, grow_state, next_capacity

__all__ = ["JaxhpoSampler", "export_study", "import_study"]

INITIAL_CAPACITY = 64


def _param(dist: BaseDistribution) -> Any:
    """The jaxhpo parameter for an Optuna distribution (stepped ones as an index)."""
    if isinstance(dist, CategoricalDistribution):
        return Categorical(list(dist.choices))
    if isinstance(dist, IntDistribution):
        if dist.step != 1:
            return Int(0, (dist.high - dist.low) // dist.step)
        return Int(dist.low, dist.high, log=dist.log)
    if isinstance(dist, FloatDistribution):
        if dist.step is not None:
            return Int(0, int(round((dist.high - dist.low) / dist.step)))
        return Float(dist.low, dist.high, log=dist.log)
    raise ValueError(f"JaxhpoSampler: unsupported distribution {dist!r}")


def _to_jaxhpo(dist: BaseDistribution, value: Any) -> Any:
    """An Optuna parameter value as the jaxhpo value ``Space.encode`` takes (categoricals as indices)."""
    if isinstance(dist, CategoricalDistribution):
        return dist.to_internal_repr(value)
    if isinstance(dist, FloatDistribution) and dist.step is not None or (
            isinstance(dist, IntDistribution) and dist.step != 1):  # stepped: the index, as _param models it
        return int(round((value - dist.low) / dist.step))
    return value


def _to_optuna(dist: BaseDistribution, value: Any) -> Any:
    """A decoded jaxhpo value as the Optuna parameter value."""
    if isinstance(dist, CategoricalDistribution):
        return dist.choices[int(value)]
    if isinstance(dist, IntDistribution):
        return int(dist.low + int(value) * dist.step) if dist.step != 1 else int(value)
    if dist.step is not None:
        return float(min(dist.low + int(value) * dist.step, dist.high))
    return float(min(max(float(value), dist.low), dist.high))


@dataclass
class _Model:
    """A strategy's state for one study and one search space, with the trials it has been told."""

    space: Space
    distributions: dict
    state: Any
    told: set = field(default_factory=set)
    first_open: int = 0  # trials numbered below it are all finished and told
    pending_told: bool = False  # whether the state holds pending points


class JaxhpoSampler(BaseSampler):
    """Runs a jaxhpo strategy as an Optuna sampler.

    Args:
        strategy: any jaxhpo ``Strategy`` (default ``jaxhpo.strategies.bayes()``).
        seed: seed of the strategy's keys (and of the independent sampler);
            ``None`` draws one.
        independent_sampler: samples the parameters outside the intersection
            search space (default ``optuna.samplers.RandomSampler(seed)``).
    """

    def __init__(self, strategy: Optional[Strategy] = None, *, seed: Optional[int] = None,
                 independent_sampler: Optional[BaseSampler] = None) -> None:
        from jaxhpo import compile_cache, strategies

        if strategy is not None:
            check_strategy("JaxhpoSampler", strategy)
        int_seed("JaxhpoSampler", seed, allow_none=True)
        compile_cache.ensure()
        self._strategy = strategy or strategies.bayes()
        self._seed = int(seed) if seed is not None else int(np.random.SeedSequence().entropy % 2**31)
        self._independent = independent_sampler or optuna.samplers.RandomSampler(seed=seed)
        self._search_space = IntersectionSearchSpace(include_pruned=True)
        self._models: dict = {}

    def reseed_rng(self) -> None:
        """A new seed (Optuna calls it in each worker process of ``n_jobs``)."""
        self._seed = int(np.random.SeedSequence().entropy % 2**31)
        self._independent.reseed_rng()

    def infer_relative_search_space(self, study: "optuna.Study", trial: "optuna.trial.FrozenTrial") -> dict:
        self._raise_error_if_multi_objective(study)
        return {name: dist for name, dist in sorted(self._search_space.calculate(study).items())
                if not dist.single()}

    def sample_relative(self, study: "optuna.Study", trial: "optuna.trial.FrozenTrial", search_space: dict) -> dict:
        self._raise_error_if_multi_objective(study)
        if not search_space:
            return {}
        from jaxhpo.gp.blas import limit_blas_threads

        model = self._model(study, search_space)
        trials = study._get_trials(deepcopy=False, use_cache=True)
        self._tell_finished(model, trials, study.direction == optuna.study.StudyDirection.MAXIMIZE)
        running = [self._encode(model, t.params) for t in trials
                   if t.state == TrialState.RUNNING and t.number != trial.number and self._covers(model, t.params)]
        strategy = self._strategy
        if strategy.set_pending is not None and (running or model.pending_told):
            model.state = strategy.set_pending(model.state, np.asarray(running, np.float32).reshape(-1, model.space.dim))
            model.pending_told = bool(running)
        ask, design = _sampler_programs(strategy.programs())  # bayes(beta=...) shares bayes()'s
        args = (np.uint32(self._seed), np.int32(trial.number))  # the trial's key is made in the programs
        with limit_blas_threads():
            if design is not None and bool(strategy.in_design(model.state, 1)):
                x, model.state = design(*args, model.state, 1)
                if int(model.state.history.count) >= 2:
                    # the model's program (bayes()'s GP) compiles on a thread behind the design trials;
                    # from the third trial of a search space on, as Optuna's intersection of
                    # define-by-run parameters most often shrinks in a study's first trials (a
                    # program prepared for a space left behind would compile for nothing)
                    ask.prepare(*args, model.state, 1)
            else:
                x, model.state = ask(*args, model.state, 1)
        x = np.asarray(x, np.float64)[0]
        if not np.all(np.isfinite(x)):
            return {}  # the strategy has nothing new: the independent sampler takes over
        decoded = model.space.decode_numpy(x)
        return {name: _to_optuna(dist, decoded[name]) for name, dist in model.distributions.items()}

    def sample_independent(self, study: "optuna.Study", trial: "optuna.trial.FrozenTrial", param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        self._raise_error_if_multi_objective(study)
        return self._independent.sample_independent(study, trial, param_name, param_distribution)

    def before_trial(self, study: "optuna.Study", trial: "optuna.trial.FrozenTrial") -> None:
        self._independent.before_trial(study, trial)

    def after_trial(self, study: "optuna.Study", trial: "optuna.trial.FrozenTrial", state: TrialState,
                    values: Any) -> None:
        self._independent.after_trial(study, trial, state, values)

    # ------------------------------------------------------------ internals
    def _model(self, study: "optuna.Study", search_space: dict) -> _Model:
        import jax

        key = (study._study_id, tuple((name, repr(dist)) for name, dist in search_space.items()))
        model = self._models.get(key)
        if model is None:
            space = Space({name: _param(dist) for name, dist in search_space.items()})
            # the buffer grows before it fills: no overflow check (its host callback would keep the
            # strategy's programs out of the persistent compilation cache)
            state = drivers_own_capacity(self._strategy.init(jax.random.key(self._seed), space, INITIAL_CAPACITY))
            model = self._models[key] = _Model(space, dict(search_space), state)
        return model

    def _covers(self, model: _Model, params: dict) -> bool:
        return all(name in params for name in model.distributions)

    def _encode(self, model: _Model, params: dict) -> np.ndarray:
        values = {name: _to_jaxhpo(dist, params[name]) for name, dist in model.distributions.items()}
        return model.space.encode_numpy(values)

    def _tell_finished(self, model: _Model, trials: list, maximize: bool) -> None:
        """Tells the strategy, once each and in trial order, the finished trials it has not seen."""
        start = model.first_open
        if not (start < len(trials) and trials[start].number == start):
            start = 0  # numbers are not positions (never seen in Optuna's storages): look at all
        for t in trials[start:]:
            if t.number == model.first_open and (t.number in model.told or t.state.is_finished()):
                model.first_open += 1
            if t.number in model.told or not t.state.is_finished():
                continue
            model.told.add(t.number)
            if not self._covers(model, t.params):
                continue
            if t.state == TrialState.COMPLETE:
                value = t.value
            elif t.state == TrialState.PRUNED and t.intermediate_values:
                value = t.intermediate_values[max(t.intermediate_values)]
            else:
                value = math.nan  # failed (and pruned before any report): never proposed again, not modelled
            value = -value if maximize else value
            history = model.state.history
            if int(history.count) + 1 > history.capacity:
                model.state = grow_state(model.state, next_capacity(int(history.count) + 1, 2 * history.capacity))
            x = self._encode(model, t.params)[None].astype(np.float32)
            model.state = self._strategy.tell(model.state, x, np.asarray([value], np.float32))


@functools.lru_cache(maxsize=16)
def _sampler_programs(strategy: Strategy) -> tuple[Any, Any]:
    """The strategy's ask and initial-design programs for the sampler (``jaxhpo.programs.Program``), as a
    ``Study`` compiles them: with jaxhpo's XLA options, a staged ask as two programs, stored by
    ``executable_cache``, the ask prepared on a thread. Unlike a ``Study``'s first buffer, the ask is
    compiled for run speed (``COMPILER_OPTIONS``, LLVM level 1) at every size: the sampler's overhead
    per trial is what its benchmark holds against GPSampler's (``benchmarks/README.md``,
    ``bench_optuna_sampler.py``, where level 0 doubled it).

    Each takes ``(seed, trial number, state, num)`` and asks with the key of that trial of a sampler
    seeded with ``seed``, made inside the program.
    """
    import jax

    from jaxhpo import compile_options
    from jaxhpo.study_programs import strategy_ask, strategy_program

    def keyed(fn: Any) -> Any:
        def run(seed: Any, number: Any, state: Any, num: int) -> Any:
            return fn(jax.random.fold_in(jax.random.key(seed), number), state, num)

        return run

    ask = strategy_ask(strategy, "optuna", keyed, compile_options.COMPILER_OPTIONS)  # bayes(): two, side by side
    design = None
    if strategy.design_ask is not None and strategy.in_design is not None:
        design = strategy_program(strategy, "optuna-design", keyed(strategy.design_ask), (3,),
                                  compile_options.SMALL_PROGRAM_OPTIONS)
    return ask, design


_STATES = {"complete": TrialState.COMPLETE, "failed": TrialState.FAIL, "pruned": TrialState.PRUNED}


def _distribution(name: str, param: Any) -> BaseDistribution:
    if isinstance(param, Float):
        return FloatDistribution(param.low, param.high, log=param.log)
    if isinstance(param, Int):
        return IntDistribution(param.low, param.high, log=param.log)
    for choice in param.choices:
        if choice is not None and not isinstance(choice, (bool, int, float, str)):
            raise ValueError(f"export_study: parameter {name!r} has the choice {choice!r}, which Optuna cannot "
                             f"store (it takes None, bool, int, float and str choices)")
    return CategoricalDistribution(list(param.choices))


def export_study(study: Any, storage: Any = None, study_name: Optional[str] = None) -> "optuna.Study":
    """Copies a jaxhpo ``Study`` into a new Optuna study (for optuna-dashboard, Optuna's plots and tools).

    Every finished trial is added with its parameters (as the objective saw
    them), value, state (complete, failed, pruned), intermediate values, user
    attributes and times; its jaxhpo number is kept as the system attribute
    ``jaxhpo_number``. Trials still running are left out.

    Args:
        study: a ``jaxhpo.Study`` (for a journal on disk: ``Study.load(path)``).
        storage: any Optuna storage or URL (``"sqlite:///study.db"``, a
            ``JournalStorage``...); None keeps it in memory.
        study_name: the new study's name (Optuna makes one when None).

    Returns:
        The Optuna study.

    Raises:
        ValueError: for categorical choices Optuna cannot store, or a ``study_name``
            already taken in ``storage`` (nothing is added to that study).

    Example:
        >>> import jaxhpo
        >>> s = jaxhpo.Study(jaxhpo.Space({"x": jaxhpo.Float(-1.0, 1.0)}), jaxhpo.strategies.sobol(), seed=0)
        >>> s.optimize(lambda p: p["x"] ** 2, n_trials=4, progress=False)
        >>> exported = export_study(s)
        >>> len(exported.trials), exported.best_value == s.best_value
        (4, True)
    """
    import datetime

    distributions = {name: _distribution(name, p) for name, p in study.space.params.items()}
    try:
        target = optuna.create_study(storage=storage, study_name=study_name, direction=study.direction)
    except optuna.exceptions.DuplicatedStudyError:
        raise ValueError(f"export_study: storage already holds a study named {study_name!r}; pass another "
                         f"study_name (nothing was changed)") from None
    when = lambda t: None if t is None else datetime.datetime.fromtimestamp(t)  # noqa: E731
    frozen = []
    for t in study.trials:
        if t.state.value not in _STATES:
            continue
        state = _STATES[t.state.value]
        value = t.value if state == TrialState.COMPLETE else None
        if state == TrialState.PRUNED and t.intermediate_values:
            value = t.intermediate_values[max(t.intermediate_values)]
        frozen.append(optuna.trial.create_trial(
            state=state, value=value, params=dict(t.params), distributions=distributions,
            user_attrs=dict(t.user_attrs), system_attrs={"jaxhpo_number": t.number, **({"fail_reason": t.error}
                                                                                        if t.error else {})},
            intermediate_values={int(k): float(v) for k, v in t.intermediate_values.items()},
        ))
        frozen[-1].datetime_start = when(t.datetime_start)
        frozen[-1].datetime_complete = when(t.datetime_complete)
    target.add_trials(frozen)
    return target


def _space_param(name: str, dist: BaseDistribution) -> Any:
    """The jaxhpo parameter an Optuna distribution describes exactly (no stepped ones: jaxhpo has no steps)."""
    if isinstance(dist, CategoricalDistribution):
        return Categorical(list(dist.choices))
    if getattr(dist, "step", None) not in (None, 1):
        raise ValueError(f"import_study: parameter {name!r} has step={dist.step}, which a jaxhpo space cannot "
                         f"express exactly; copy the study's trials with a Categorical of the values instead")
    kind = Int if isinstance(dist, IntDistribution) else Float
    return kind(dist.low, dist.high, log=dist.log)


def import_study(source: "optuna.Study", strategy: Optional[Strategy] = None, *, seed: int = 0,
                 storage: Optional[str] = None) -> Any:
    """Copies an Optuna study into a new ``jaxhpo.Study``, to continue it with a jaxhpo strategy.

    Every finished trial is added, in trial order, with its parameters, value,
    state (a complete trial's value, a pruned trial's intermediate values, a
    failed trial as failed) and user attributes, so the strategy learns from
    all of them; trials still running are left out. Trial times are those of
    the copy.

    Args:
        source: the Optuna study (``optuna.load_study(...)``), single-objective.
        strategy: the jaxhpo strategy to continue with (``Study``'s default when None).
        seed: seed of the new study's PRNG key.
        storage: a journal path for the new study (None keeps it in memory).

    Returns:
        The ``jaxhpo.Study``.

    Raises:
        ValueError: for a multi-objective study, parameters whose distribution
            changes between trials or is stepped, or no finished trial to learn
            the space from.

    Example:
        >>> import optuna
        >>> optuna.logging.set_verbosity(optuna.logging.WARNING)
        >>> source = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
        >>> source.optimize(lambda t: t.suggest_float("x", 1e-3, 1.0, log=True), n_trials=5)
        >>> study = import_study(source)
        >>> len(study.trials), study.best_value == source.best_value, study.space.params["x"].log
        (5, True, True)
    """
    from jaxhpo.study import Study, TrialPruned

    if len(source.directions) != 1:
        raise ValueError(f"import_study: the study has {len(source.directions)} objectives; jaxhpo studies have one")
    finished = [t for t in source.get_trials(deepcopy=False) if t.state in _STATES.values()]
    distributions: dict = {}
    for t in finished:
        for name, dist in t.distributions.items():
            if distributions.setdefault(name, dist) != dist:
                raise ValueError(f"import_study: parameter {name!r} has the distribution {distributions[name]} in "
                                 f"one trial and {dist} in trial {t.number}; a jaxhpo space has one per parameter")
    if not distributions:
        raise ValueError("import_study: the study has no finished trial with parameters to take the space from")
    space = Space({name: _space_param(name, dist) for name, dist in distributions.items()})
    missing = [t.number for t in finished if set(t.params) != set(distributions)]
    if missing:
        raise ValueError(f"import_study: trials {missing[:10]} lack some of the parameters {sorted(distributions)} "
                         f"(conditional parameters); a jaxhpo space holds every parameter in every trial")
    direction = "maximize" if source.direction == optuna.study.StudyDirection.MAXIMIZE else "minimize"
    study = Study(space, strategy, direction=direction, seed=seed, storage=storage)
    for t in finished:
        study.enqueue_trial(dict(t.params))
        [trial] = study.ask()
        for key, value in t.user_attrs.items():
            trial.set_user_attr(key, value)
        for step, value in sorted(t.intermediate_values.items()):
            trial.report(int(step), value)
        if t.state == TrialState.COMPLETE:
            study.tell(trial, t.value)
        elif t.state == TrialState.PRUNED:
            study.tell(trial, TrialPruned())
        else:
            study.tell(trial, RuntimeError(t.system_attrs.get("fail_reason", "failed in Optuna")))
    return study
