"""jaxhpo: hyperparameter optimization and model fusion in JAX.

Example:
    >>> import jax, jaxhpo
    >>> space = jaxhpo.Space({"x": jaxhpo.Float(-5.0, 5.0)})
    >>> result = jaxhpo.minimize(lambda p: p["x"] ** 2, space, jaxhpo.strategies.sobol(),
    ...                          num_rounds=16, key=jax.random.key(0))
"""

from jaxhpo import compile_cache, pruners, strategies
from jaxhpo.minimize import MinimizeResult, minimize
from jaxhpo.space import Categorical, Float, Int, Space
from jaxhpo.strategies import Strategy
from jaxhpo.evaluation import TrialTimeout
from jaxhpo.study import Study, Trial, TrialPruned, TrialState, create_study

__version__ = "0.1.0"

# imported on first use: modules whose dependencies are extras (matplotlib, scikit-learn), and the
# parts a study does not need (Flax loads with population training and fusion), so that `import jaxhpo`
# costs a study only what it runs
_LAZY = ("ensemble", "hypergrad", "metrics", "plots", "population", "sklearn")


def __getattr__(name: str):
    """``jaxhpo.population``, ``jaxhpo.ensemble``, ``jaxhpo.plots``, ... without an explicit import: each
    module (and what it needs) loads the first time it is used."""
    if name in _LAZY:
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
