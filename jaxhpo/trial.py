"""``Trial``: one evaluation of a ``Study``: its parameters, state, value, reports and user attributes.

Example:
    >>> import jaxhpo
    >>> study = jaxhpo.Study(jaxhpo.Space({"x": jaxhpo.Float(0.0, 1.0)}), jaxhpo.strategies.sobol(), seed=0)
    >>> trial = study.ask()[0]
    >>> trial.state.value, trial.number
    ('running', 0)
"""

from __future__ import annotations

import enum
import json
import time
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from jaxhpo import journal


class TrialState(str, enum.Enum):
    RUNNING = "running"
    COMPLETE = "complete"
    FAILED = "failed"
    PRUNED = "pruned"


@dataclass
class Trial:
    """One evaluation: its number, parameters, and (once told) value or failure.

    Attributes:
        number: position in the study, from 0.
        params: parameter values (categoricals as the choices themselves).
        x: the point in the unit cube the strategy proposed.
        state: ``running``, ``complete`` or ``failed``.
        value: the told value (``None`` until told; NaN/inf kept for failed trials).
        error: the exception text for failed trials that raised.
        intermediate_values: ``{step: value}`` reported with ``report``.
    """

    number: int
    params: dict[str, Any]
    x: np.ndarray = field(repr=False)
    state: TrialState = TrialState.RUNNING
    value: Optional[float] = None
    error: Optional[str] = None
    datetime_start: float = field(default_factory=time.time, repr=False)
    datetime_complete: Optional[float] = field(default=None, repr=False)
    intermediate_values: dict = field(default_factory=dict, repr=False)
    user_attrs: dict = field(default_factory=dict, repr=False)
    infrastructure_faults: int = field(default=0, repr=False)  # times its worker died under it
    _study: Any = field(default=None, repr=False, compare=False)

    def set_user_attr(self, key: str, value: Any) -> None:
        """Attaches ``value`` (anything JSON can store) to the trial under ``key``; journaled."""
        if not isinstance(key, str):
            raise ValueError(f"Trial.set_user_attr: key must be a str, got key={key!r}")
        try:
            json.dumps(value)
        except (TypeError, ValueError):
            raise ValueError(f"Trial.set_user_attr: value must be JSON-serializable, got value={value!r}") from None
        with journal.deferred_interrupts():  # on disk and in memory, or neither
            if self._study is not None:
                self._study._log({"op": "attr", "number": self.number, "key": key, "value": value})
            self.user_attrs[key] = value

    def report(self, step: int, value: float) -> None:
        """Records an intermediate value (a validation loss after ``step`` epochs, say).

        Raises:
            ValueError: for a non-integer step, a non-numeric value, or a trial already told.
        """
        if not isinstance(step, (int, np.integer)) or isinstance(step, bool) or step < 0:
            raise ValueError(f"Trial.report: step must be a non-negative int, got step={step!r}")
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"Trial.report: value must be a number, got value={value!r}") from None
        if self.state is not TrialState.RUNNING:
            raise ValueError(f"Trial.report: trial {self.number} is already {self.state.value}")
        with journal.deferred_interrupts():
            if self._study is not None:
                self._study._log({"op": "report", "number": self.number, "step": int(step), "value": value})
            self.intermediate_values[int(step)] = value

    def should_prune(self) -> bool:
        """Whether the study's pruner says to stop this trial now (False without a pruner)."""
        if self._study is None or self._study.pruner is None or not self.intermediate_values:
            return False
        return bool(self._study.pruner.prune(self._study, self))

    @property
    def last_step(self) -> Optional[int]:
        return max(self.intermediate_values) if self.intermediate_values else None

    @property
    def duration(self) -> Optional[float]:
        if self.datetime_complete is None:
            return None
        return self.datetime_complete - self.datetime_start
