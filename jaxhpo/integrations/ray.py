"""A Ray Tune searcher that runs any jaxhpo strategy: ``tune.TuneConfig(search_alg=JaxhpoSearch())``.

Ray Tune users keep their trainables, schedulers, resources and clusters,
and get jaxhpo's strategies (``bayes()`` by default) to choose the
configurations. The search space is a jaxhpo ``Space`` or Tune's own
``param_space`` (``tune.uniform``, ``tune.loguniform``, ``tune.randint``,
``tune.lograndint``, ``tune.choice``; constants pass through, nested dicts
are kept). Needs the ``ray`` extra (``pip install "jaxhpo[ray]"``).

* Trials Tune runs at the same time are pending to the strategy, so
  concurrent trials get different configurations.
* A trial that errors, or ends without the metric, is recorded as failed
  (the search goes on); ``add_evaluated_point`` and ``points_to_evaluate``
  warm-start the search.
* ``save``/``restore`` (what Tune calls to checkpoint and resume an
  experiment) keep the search exactly: the searcher is a ``jaxhpo.Study``
  whose journal is the checkpoint, so a restored searcher continues with the
  very configurations an uninterrupted one would have proposed.

Example:
    >>> from ray import tune
    >>> import jaxhpo
    >>> from jaxhpo.integrations.ray import JaxhpoSearch
    >>> search = JaxhpoSearch(strategy=jaxhpo.strategies.sobol(), metric="loss", mode="min", seed=0)
    >>> search.set_search_properties(None, None, {"lr": tune.loguniform(1e-4, 1e-1), "act": tune.choice(["relu", "gelu"]),
    ...                                           "epochs": 10})
    True
    >>> config = search.suggest("trial_0")
    >>> sorted(config), config["epochs"]
    (['act', 'epochs', 'lr'], 10)
    >>> search.on_trial_complete("trial_0", {"loss": 0.25})
    >>> search.study.best_value
    0.25
"""

from __future__ import annotations

import math
import os
import pickle
import shutil
import tempfile
import weakref
from typing import Any, Optional

try:
    from ray.tune.search import Searcher
    from ray.tune.search import sample as tune_sample
    from ray.tune.search.variant_generator import parse_spec_vars
except ImportError as e:  # pragma: no cover - the extra is missing
    raise ImportError('jaxhpo.integrations.ray needs Ray Tune: pip install "jaxhpo[ray]"') from e

from jaxhpo.space import Categorical, Float, Int, Space
from jaxhpo.strategies.base import SpaceExhausted, Strategy, check_strategy
from jaxhpo.study import Study, TrialState

__all__ = ["JaxhpoSearch", "space_from_tune"]

_SEP = "/"  # joins the keys of a nested Tune config into one jaxhpo parameter name


def _domain_param(name: str, domain: Any) -> Any:
    """The jaxhpo parameter for one Tune domain (``tune.uniform(...)`` and the like)."""
    sampler = domain.get_sampler()
    if isinstance(domain, tune_sample.Categorical):
        return Categorical(list(domain.categories))
    if isinstance(sampler, (tune_sample.Uniform, tune_sample.LogUniform)):
        log = isinstance(sampler, tune_sample.LogUniform)
        if isinstance(domain, tune_sample.Float):
            return Float(domain.lower, domain.upper, log=log)
        if isinstance(domain, tune_sample.Integer):  # Tune's upper bound is exclusive
            return Int(domain.lower, domain.upper - 1, log=log)
    how = type(sampler).__name__.lstrip("_")
    raise ValueError(
        f"JaxhpoSearch: parameter {name!r} is {type(domain).__name__} sampled by {how}, which has "
        f"no jaxhpo equivalent; use tune.uniform, tune.loguniform, tune.randint, tune.lograndint or tune.choice, or "
        f"pass space=jaxhpo.Space(...) (quantized steps: an Int index, or a Categorical of the values)")


def space_from_tune(config: dict) -> tuple[Space, dict]:
    """A jaxhpo ``Space`` for a Tune ``param_space``, and the constants it holds.

    Args:
        config: Tune's ``param_space`` (nested dicts allowed; nested keys are
            joined with ``"/"`` in the jaxhpo names).

    Returns:
        ``(space, constants)``: ``constants`` maps the joined names of plain
        values to those values.

    Raises:
        ValueError: for a grid search, ``sample_from`` or a distribution jaxhpo
            cannot express, naming the parameter.

    Example:
        >>> from ray import tune
        >>> space, constants = space_from_tune({"opt": {"lr": tune.loguniform(1e-4, 1e-1)}, "n": tune.randint(1, 9),
        ...                                     "seed": 0})
        >>> space.params["opt/lr"].log, space.params["n"].high, constants
        (True, 8, {'seed': 0})
    """
    if not isinstance(config, dict):
        raise ValueError(f"JaxhpoSearch: the Tune config must be a dict, got {config!r}")
    constants, domains, grids = parse_spec_vars(config)
    if grids:
        raise ValueError(f"JaxhpoSearch: tune.grid_search at {_SEP.join(map(str, grids[0][0]))!r} cannot be combined "
                         f"with a searcher; use tune.choice, or jaxhpo.strategies.grid() as the strategy")
    params = {}
    for path, domain in domains:
        name = _SEP.join(map(str, path))
        if isinstance(domain, tune_sample.Function):
            raise ValueError(f"JaxhpoSearch: parameter {name!r} is tune.sample_from, which a searcher cannot model; "
                             f"give it a distribution or compute it inside the trainable")
        params[name] = _domain_param(name, domain)
    if not params:
        raise ValueError("JaxhpoSearch: the Tune config holds no parameter to search (tune.uniform, tune.choice...)")
    return Space(params), {_SEP.join(map(str, path)): value for path, value in constants}


def _nested(flat: dict) -> dict:
    out: dict = {}
    for name, value in flat.items():
        *parents, leaf = name.split(_SEP)
        node = out
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return out


def _flat(config: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        out.update(_flat(value, name + _SEP) if isinstance(value, dict) else {name: value})
    return out


class JaxhpoSearch(Searcher):
    """Ray Tune ``Searcher`` over a jaxhpo strategy.

    Args:
        space: a jaxhpo ``Space``; None takes Tune's ``param_space``
            (``Tuner(param_space=...)``), translated by ``space_from_tune``.
        strategy: any jaxhpo strategy; ``jaxhpo.strategies.default()`` when None.
        metric: the result key to optimize (or ``TuneConfig(metric=...)``).
        mode: ``"min"`` or ``"max"`` (or ``TuneConfig(mode=...)``).
        seed: seed of the strategy's PRNG key.
        points_to_evaluate: configurations (dicts, nested as the trainable
            receives them) to run first, exactly as given.

    The configurations, their results and the strategy's state live in
    ``study`` (a ``jaxhpo.Study``), for jaxhpo's plots and ``export_study``.
    """

    def __init__(self, space: Optional[Space] = None, strategy: Optional[Strategy] = None, *,
                 metric: Optional[str] = None, mode: Optional[str] = None, seed: int = 0,
                 points_to_evaluate: Optional[list[dict]] = None) -> None:
        if mode not in (None, "min", "max"):
            raise ValueError(f"JaxhpoSearch: mode must be 'min' or 'max', got mode={mode!r}")
        if metric is not None and not isinstance(metric, str):
            raise ValueError(f"JaxhpoSearch: metric must be one result key (a str), got metric={metric!r}; "
                             f"multi-objective searches are not supported")
        if space is not None and not isinstance(space, Space):
            raise ValueError(f"JaxhpoSearch: space must be a jaxhpo.Space or None (to take Tune's param_space), "
                             f"got space={space!r}")
        if strategy is not None:
            check_strategy("JaxhpoSearch", strategy)
        super().__init__(metric=metric, mode=mode)
        self._space = space
        self._strategy = strategy
        self._seed = seed
        self._constants: dict = {}
        self._points = list(points_to_evaluate or [])
        self._live: dict[str, int] = {}  # Tune trial id -> jaxhpo trial number
        self._dir = tempfile.mkdtemp(prefix="jaxhpo-ray-")
        weakref.finalize(self, shutil.rmtree, self._dir, True)
        self.study: Optional[Study] = None
        if space is not None and metric is not None and mode is not None:
            self._start()

    # ------------------------------------------------------------ set-up
    def set_search_properties(self, metric: Optional[str], mode: Optional[str], config: dict, **spec: Any) -> bool:
        """Takes the metric, the mode and Tune's ``param_space`` (called by Tune).

        Once searching (a restored searcher, say) it accepts only the same
        space, metric and mode, and returns False otherwise (Tune then refuses
        the run with its own message).
        """
        if self.study is not None:
            same = (metric in (None, self._metric) and mode in (None, self._mode)
                    and (not config or space_from_tune(config) == (self._space, self._constants)))
            return same
        self._metric = self._metric or metric
        self._mode = self._mode or mode
        if self._space is None:
            if not config:
                return False
            self._space, self._constants = space_from_tune(config)
        self._start()
        return True

    def _start(self) -> None:
        if self._metric is None or self._mode not in ("min", "max"):
            raise ValueError(f"JaxhpoSearch: metric and mode are needed (got metric={self._metric!r}, "
                             f"mode={self._mode!r}); pass them here or to tune.TuneConfig")
        direction = "minimize" if self._mode == "min" else "maximize"
        self.study = Study(self._space, self._strategy, direction=direction, seed=self._seed,
                           storage=os.path.join(self._dir, "study.jsonl"))
        for point in self._points:
            self.study.enqueue_trial(self._params(point))
        self._points = []

    def _params(self, config: dict) -> dict:
        flat = _flat(config)
        return {name: flat[name] for name in self._space.params if name in flat} | {
            name: value for name, value in flat.items() if name not in self._constants and name not in
            self._space.params}  # unknown names stay, so Study's check names them

    # ------------------------------------------------------------ Tune's calls
    def suggest(self, trial_id: str) -> Optional[dict]:
        """A configuration for ``trial_id`` (``Searcher.FINISHED`` once a finite space is exhausted)."""
        if self.study is None:
            raise RuntimeError("JaxhpoSearch: no search space yet; pass space= or give the Tuner a param_space, "
                               "and metric and mode")
        try:
            [trial] = self.study.ask()
        except SpaceExhausted:
            return Searcher.FINISHED
        self._live[trial_id] = trial.number
        return _nested({**self._constants, **trial.params})

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        """Records an intermediate value of the metric (``training_iteration`` as the step)."""
        number = self._live.get(trial_id)
        value = result.get(self._metric) if result else None
        if number is None or value is None:
            return
        step = int(result.get("training_iteration", len(self.study.trials[number].intermediate_values)))
        trial = self.study.trials[number]
        if trial.state is TrialState.RUNNING and step not in trial.intermediate_values:
            trial.report(step, float(value))

    def on_trial_complete(self, trial_id: str, result: Optional[dict] = None, error: bool = False) -> None:
        """Tells the trial's final metric; an error or a missing metric records it as failed."""
        number = self._live.pop(trial_id, None)
        if number is None or self.study.trials[number].state is not TrialState.RUNNING:
            return
        value: Any
        if error:
            value = RuntimeError("Ray Tune reported the trial as errored")
        elif not result or self._metric not in result:
            value = RuntimeError(f"the trial ended without the metric {self._metric!r}")
        else:
            value = result[self._metric]
            value = value if isinstance(value, (int, float)) and math.isfinite(value) else float("nan")
        self.study.tell(number, value)

    def add_evaluated_point(self, parameters: dict, value: float, error: bool = False, pruned: bool = False,
                            intermediate_values: Optional[list[float]] = None) -> None:
        """Adds a configuration evaluated elsewhere (warm start); ``error`` or ``pruned`` record it failed."""
        if self.study is None:
            raise RuntimeError("JaxhpoSearch.add_evaluated_point: no search space yet (see suggest)")
        self.study.add_trial(self._params(parameters),
                             RuntimeError("evaluated elsewhere with an error") if error or pruned else value)

    # ------------------------------------------------------------ checkpoints
    def get_state(self) -> dict:
        """Everything a restore needs: the study's journal and the trials Tune still runs."""
        state = {"metric": self._metric, "mode": self._mode, "constants": self._constants, "live": dict(self._live),
                 "seed": self._seed, "journal": None}
        if self.study is not None:
            with open(self.study._journal.path, "rb") as f:
                state["journal"] = f.read()
        return state

    def set_state(self, state: dict) -> None:
        """Continues the search saved by ``get_state`` (with this searcher's strategy)."""
        if self.study is not None:
            self.study.close()
            self.study = None
        self._metric, self._mode, self._seed = state["metric"], state["mode"], state["seed"]
        self._constants, self._live = dict(state["constants"]), dict(state["live"])
        if state["journal"] is not None:
            path = os.path.join(self._dir, f"restored-{len(os.listdir(self._dir))}.jsonl")
            with open(path, "wb") as f:
                f.write(state["journal"])
            # the running trials are Tune's to finish (it resumes them under the same ids), not to hand out again
            self.study = Study.load(path, self._strategy, rerun_running=False)
            self._space = self.study.space

    def __getstate__(self) -> dict:
        # Tune pickles its searcher with the experiment: the study travels as its journal
        return {"search": self.get_state(), "space": self._space, "strategy": self._strategy,
                "points": self._points}

    def __setstate__(self, pickled: dict) -> None:
        self.__init__(pickled["space"] if pickled["search"]["journal"] is None else None, pickled["strategy"],
                      points_to_evaluate=pickled["points"])
        self.set_state(pickled["search"])

    def save(self, checkpoint_path: str) -> None:
        """Writes ``get_state`` to ``checkpoint_path`` (Tune calls it to checkpoint the experiment)."""
        with open(checkpoint_path, "wb") as f:
            pickle.dump(self.get_state(), f)

    def restore(self, checkpoint_path: str) -> None:
        """Continues the search saved at ``checkpoint_path``."""
        with open(checkpoint_path, "rb") as f:
            self.set_state(pickle.load(f))
