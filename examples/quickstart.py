"""Quick start: search Branin and Hartmann6 with jaxhpo, many studies at once.

Run with ``make demo`` (or ``python examples/quickstart.py`` in the venv).
Each search is one compiled program; ``jax.vmap`` runs 8 seeds together.
"""

from __future__ import annotations

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import numpy as np  # noqa: E402

import jaxhpo  # noqa: E402
from jaxhpo.testing.functions import BRANIN, HARTMANN6  # noqa: E402

STRATEGIES = {
    "random": jaxhpo.strategies.random(),
    "sobol": jaxhpo.strategies.sobol(),
    "lhs": jaxhpo.strategies.lhs(),
    "bayes": jaxhpo.strategies.bayes(),  # Gaussian-process BO
}


def main(num_rounds: int = 16, batch_size: int = 4, seeds: int = 8) -> None:
    keys = jax.random.split(jax.random.key(0), seeds)
    print(f"{num_rounds * batch_size} evaluations per study, {seeds} studies vmapped in one call\n")
    print(f"{'function':<10} {'strategy':<8} {'median regret':>14} {'best regret':>12} {'seconds*':>8}")
    for f in (BRANIN, HARTMANN6):
        for name, strategy in STRATEGIES.items():
            run = jax.vmap(lambda k: jaxhpo.minimize(
                f.objective, f.space, strategy, num_rounds=num_rounds, batch_size=batch_size, key=k))
            start = time.perf_counter()
            result = jax.block_until_ready(run(keys))
            seconds = time.perf_counter() - start
            regret = np.asarray(result.best_value) - f.optimum_value
            best = int(np.argmin(regret))
            print(f"{f.name:<10} {name:<8} {np.median(regret):>14.4f} {regret[best]:>12.4f} {seconds:>8.2f}")
        point = f.space.to_python(jax.tree.map(lambda v: v[best], result.best_params))
        print(f"  best {f.name} point ({name}): " + ", ".join(f"{k}={v:.4f}" for k, v in point.items()))
        print()
    print("* wall time of the vmapped call, compilation included")


if __name__ == "__main__":
    main()
