"""The benchmark test functions; they live in ``jaxhpo.testing.functions`` (importable from an installed jaxhpo)."""

from jaxhpo.testing.functions import *  # noqa: F401,F403
from jaxhpo.testing.functions import FUNCTIONS, BenchmarkFunction  # noqa: F401
