"""Search strategies: each a ``Strategy(init, ask, tell)`` of pure functions.

Example:
    >>> import jaxhpo
    >>> strategy = jaxhpo.strategies.sobol()
"""

from jaxhpo.strategies.base import (
    CapacityWarning,
    History,
    Strategy,
    grow_state,
    history_add,
    history_best,
    history_init,
)
from jaxhpo.strategies.bayes import bayes
from jaxhpo.strategies.cma import CMAState, cma_es
from jaxhpo.strategies.genetic import GeneticState, genetic
from jaxhpo.strategies.base import SpaceExhausted
from jaxhpo.strategies.grid import GridExhausted, grid
from jaxhpo.strategies.policy import PolicyState, policy_gradient, policy_probabilities
from jaxhpo.strategies.sampling import lhs, random, sobol


def default() -> Strategy:
    """The strategy ``Study`` uses when none is given: ``bayes()``."""
    return bayes()


__all__ = [
    "CMAState",
    "CapacityWarning",
    "GeneticState",
    "PolicyState",
    "cma_es",
    "genetic",
    "policy_gradient",
    "policy_probabilities",
    "GridExhausted",
    "SpaceExhausted",
    "bayes",
    "History",
    "Strategy",
    "default",
    "grid",
    "grow_state",
    "history_add",
    "history_best",
    "history_init",
    "lhs",
    "random",
    "sobol",
]
