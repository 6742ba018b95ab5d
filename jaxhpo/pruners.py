"""Pruners for ``Study``: stop unpromising trials from their intermediate values.

An objective that takes ``(params, trial)`` reports with
``trial.report(step, value)`` and asks ``trial.should_prune()``; the study's
pruner answers. Values follow the study's direction.

Example:
    >>> import jaxhpo
    >>> from jaxhpo.pruners import MedianPruner
    >>> from jaxhpo.study import TrialPruned
    >>> study = jaxhpo.Study(jaxhpo.Space({"x": jaxhpo.Float(0.0, 1.0)}), jaxhpo.strategies.random(),
    ...                      pruner=MedianPruner(n_startup_trials=2))
    >>> def objective(params, trial):
    ...     for step in range(10):
    ...         loss = params["x"] + 1.0 / (step + 1)
    ...         trial.report(step, loss)
    ...         if trial.should_prune():
    ...             raise TrialPruned()
    ...     return loss
    >>> study.optimize(objective, n_trials=12, progress=False)
    >>> any(t.state.value == "pruned" for t in study.trials)
    True
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def _signed(study: Any, value: float) -> float:
    return value if study.direction == "minimize" else -value


class NopPruner:
    """Never prunes."""

    def prune(self, study: Any, trial: Any) -> bool:
        return False


class MedianPruner:
    """Prunes when a trial's best value so far is worse than the median of finished trials at the same step.

    As Optuna's ``MedianPruner``: no pruning before ``n_startup_trials`` trials
    have completed, nor before step ``n_warmup_steps``, and only every
    ``interval_steps`` steps.
    """

    def __init__(self, n_startup_trials: int = 5, n_warmup_steps: int = 0, interval_steps: int = 1) -> None:
        for name, v, low in (("n_startup_trials", n_startup_trials, 0), ("n_warmup_steps", n_warmup_steps, 0),
                             ("interval_steps", interval_steps, 1)):
            if not isinstance(v, int) or v < low:
                raise ValueError(f"MedianPruner: {name} must be an int >= {low}, got {name}={v!r}")
        self.n_startup_trials, self.n_warmup_steps, self.interval_steps = n_startup_trials, n_warmup_steps, interval_steps

    def prune(self, study: Any, trial: Any) -> bool:
        from jaxhpo.study import TrialState

        step = trial.last_step
        if step is None or step < self.n_warmup_steps:
            return False
        if (step - self.n_warmup_steps) % self.interval_steps:
            return False
        done = [t for t in study.trials if t.state is TrialState.COMPLETE]
        if len(done) < self.n_startup_trials:
            return False
        others = [_signed(study, t.intermediate_values[step]) for t in done if step in t.intermediate_values]
        others = [v for v in others if math.isfinite(v)]
        if not others:
            return False
        mine = [_signed(study, v) for s, v in trial.intermediate_values.items() if s <= step]
        best = min((v for v in mine if math.isfinite(v)), default=math.inf)
        return best > float(np.median(others))


class SuccessiveHalvingPruner:
    """Asynchronous successive halving (ASHA, Li et al. 2020), as Optuna's pruner of that name.

    Rung ``k`` sits at step ``min_resource * reduction_factor ** (min_early_stopping_rate + k)``.
    A trial reaching a rung continues only if its value there is among the
    best ``1 / reduction_factor`` of all trials' values at that rung (running,
    pruned and finished trials alike); with fewer than ``reduction_factor``
    values only the best continues.
    """

    def __init__(self, min_resource: int = 1, reduction_factor: int = 3, min_early_stopping_rate: int = 0) -> None:
        if not isinstance(min_resource, int) or min_resource < 1:
            raise ValueError(f"SuccessiveHalvingPruner: min_resource must be an int >= 1, got {min_resource!r}")
        if not isinstance(reduction_factor, int) or reduction_factor < 2:
            raise ValueError(f"SuccessiveHalvingPruner: reduction_factor must be an int >= 2, got {reduction_factor!r}")
        if not isinstance(min_early_stopping_rate, int) or min_early_stopping_rate < 0:
            raise ValueError(
                f"SuccessiveHalvingPruner: min_early_stopping_rate must be an int >= 0, got {min_early_stopping_rate!r}"
            )
        self.min_resource, self.eta, self.rate = min_resource, reduction_factor, min_early_stopping_rate

    def _rung_step(self, k: int) -> int:
        return self.min_resource * self.eta ** (self.rate + k)

    def _rung_value(self, study: Any, trial: Any, k: int):
        """The trial's value at the first reported step at or past rung ``k`` (None if not there yet)."""
        target = self._rung_step(k)
        steps = [s for s in trial.intermediate_values if s >= target]
        if not steps:
            return None
        return _signed(study, trial.intermediate_values[min(steps)])

    def prune(self, study: Any, trial: Any) -> bool:
        step = trial.last_step
        if step is None:
            return False
        k = 0
        while self._rung_step(k + 1) <= step:
            k += 1
        if self._rung_step(k) > step:
            return False
        # decide once per rung: at the first report that reaches it
        earlier = [s for s in trial.intermediate_values if s >= self._rung_step(k) and s < step]
        if earlier:
            return False
        mine = self._rung_value(study, trial, k)
        values = [self._rung_value(study, t, k) for t in study.trials]
        values = sorted(v if math.isfinite(v) else math.inf for v in values if v is not None)
        index = max(len(values) // self.eta - 1, 0)
        return not (math.isfinite(mine) and mine <= values[index])
