"""Random, Sobol and LHS on the five test functions: vmapped studies against sequential calls.

For each function and strategy: 10 seeds x 60 evaluations, run (a) as 10
studies vmapped in one compiled call and (b) as 10 sequential calls of the
same compiled ``minimize``. Prints the median final log10 regret and the time
ratio; writes ``benchmarks/results/random.json``.

    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_random.py
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import numpy as np  # noqa: E402

import jaxhpo  # noqa: E402
from benchmarks.common import iqr, log10_regret, timed, write_results  # noqa: E402
from jaxhpo.testing.functions import FUNCTIONS  # noqa: E402

SEEDS = 10
EVALS = 60


def main() -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()  # --help, not a run
    strategies = {"random": jaxhpo.strategies.random(), "sobol": jaxhpo.strategies.sobol(), "lhs": jaxhpo.strategies.lhs()}
    keys = jax.random.split(jax.random.key(0), SEEDS)
    rows = []
    print(f"{SEEDS} seeds x {EVALS} evaluations; times are medians of 3 after compilation\n")
    print(f"{'function':<12} {'strategy':<7} {'log10 regret':>12} {'IQR':>16} {'vmapped s':>10} {'sequential s':>13} {'seq/vmap':>9}")
    for f in FUNCTIONS.values():
        for name, strategy in strategies.items():
            one = jax.jit(lambda k: jaxhpo.minimize(f.objective, f.space, strategy, num_rounds=EVALS, key=k))
            many = jax.jit(jax.vmap(one))
            jax.block_until_ready(many(keys)), jax.block_until_ready(one(keys[0]))  # compile
            batched, t_vmap = timed(lambda: jax.block_until_ready(many(keys)))
            _, t_seq = timed(lambda: [jax.block_until_ready(one(k)) for k in keys])
            regret = log10_regret(np.asarray(batched.best_value, np.float64) - f.optimum_value)
            q1, q3 = iqr(regret)
            rows.append({"function": f.name, "strategy": name, "median_log10_regret": float(np.median(regret)),
                         "iqr": [q1, q3], "vmapped_s": t_vmap, "sequential_s": t_seq, "ratio_seq_over_vmap": t_seq / t_vmap})
            print(f"{f.name:<12} {name:<7} {np.median(regret):>12.3f} {f'[{q1:.2f}, {q3:.2f}]':>16} "
                  f"{t_vmap:>10.4f} {t_seq:>13.4f} {t_seq / t_vmap:>9.1f}")
    ratios = [r["ratio_seq_over_vmap"] for r in rows]
    print(f"\nmedian time ratio sequential/vmapped: {np.median(ratios):.1f}x")
    path = write_results("random", {"seeds": SEEDS, "evaluations": EVALS, "rows": rows,
                                    "median_ratio_seq_over_vmap": float(np.median(ratios))})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
