"""jaxhpo: hyperparameter optimization and model fusion in JAX.

Example:
    >>> import jax, jaxhpo
    >>> space = jaxhpo.Space({"x": jaxhpo.Float(-5.0, 5.0)})
    >>> result = jaxhpo.minimize(lambda p: p["x"] ** 2, space, jaxhpo.strategies.sobol(),
    ...                          num_rounds=16, key=jax.random.key(0))
"""

from jaxhpo import compile_cache, ensemble, hypergrad, metrics, population, pruners, strategies
from jaxhpo.minimize import MinimizeResult, minimize
from jaxhpo.space import Categorical, Float, Int, Space
from jaxhpo.strategies import Strategy
from jaxhpo.evaluation import TrialTimeout
from jaxhpo.study import Study, Trial, TrialPruned, TrialState, create_study

__version__ = "0.1.0"

_OPTIONAL = ("plots", "sklearn")  # modules whose dependencies are extras: imported on first use


def __getattr__(name: str):
    """``jaxhpo.plots`` and ``jaxhpo.sklearn`` without an explicit import (matplotlib and scikit-learn load then)."""
    if name in _OPTIONAL:
        import importlib

        return importlib.import_module(f"jaxhpo.{name}")
    raise AttributeError(f"module 'jaxhpo' has no attribute {name!r}")


__all__ = [
    "Categorical",
    "Float",
    "Int",
    "MinimizeResult",
    "Space",
    "Strategy",
    "Study",
    "Trial",
    "TrialPruned",
    "TrialState",
    "TrialTimeout",
    "compile_cache",
    "create_study",
    "ensemble",
    "hypergrad",
    "metrics",
    "population",
    "pruners",
    "minimize",
    "strategies",
]
