"""Population training: many Flax models with different hyperparameters in one compiled call.

Example:
    >>> from jaxhpo import population
    >>> population.resolve_mode("auto") in ("map", "vmap")
    True
"""

from jaxhpo.population.cv import CVResult, cross_validate, kfold
from jaxhpo.population.schedulers import ScheduleResult, hyperband, pbt, successive_halving
from jaxhpo.population.search import SearchResult, search
from jaxhpo.population.models import MLP, LeNet
from jaxhpo.population.train import (
    Population,
    PopulationResult,
    PopulationState,
    cross_entropy,
    default_mesh,
    host_local,
    nnx_model,
    predict,
    resolve_mode,
    select,
    squared_error,
    train,
    use_cpu_cores,
)

__all__ = [
    "CVResult",
    "ScheduleResult",
    "SearchResult",
    "cross_validate",
    "default_mesh",
    "host_local",
    "hyperband",
    "kfold",
    "nnx_model",
    "pbt",
    "predict",
    "search",
    "successive_halving",
    "use_cpu_cores",
    "LeNet",
    "MLP",
    "Population",
    "PopulationResult",
    "PopulationState",
    "cross_entropy",
    "resolve_mode",
    "select",
    "squared_error",
    "train",
]
