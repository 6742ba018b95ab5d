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
from jaxhpo.population.devices import default_mesh, host_local, resolve_mode, use_cpu_cores
from jaxhpo.population.losses import cross_entropy, squared_error
from jaxhpo.population.population import Population, PopulationResult, PopulationState, select
from jaxhpo.population.train import nnx_model, predict, train

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
