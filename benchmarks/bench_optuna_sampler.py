"""jaxhpo's Optuna sampler against Optuna's GPSampler and TPE, through ``optuna.create_study`` (issue 19).

The five benchmark functions, each parameter a ``suggest_float``; 60 trials
(10 initial), ``--seeds`` seeds, all three samplers in the same run, plus
jaxhpo's own ``Study`` with the same strategy for reference. Median final
log10 regret over seeds and the sampler's overhead per trial (the run's
CPU time minus the objective's, divided by trials; jaxhpo's first run per
function, which compiles, is left out of the overhead and shown apart).

    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_optuna_sampler.py [--seeds 10]

Writes ``benchmarks/results/optuna_sampler.json``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

import jaxhpo  # noqa: E402
from benchmarks.common import iqr, log10_regret, write_results  # noqa: E402
from jaxhpo.testing.functions import FUNCTIONS  # noqa: E402

TRIALS = 60
INITIAL = 10


def _numpy_fn(f):
    import jax

    fn = jax.jit(f.fn)
    lo, hi = np.asarray(f.bounds, np.float64).T
    return lambda x: float(fn(np.asarray(x, np.float32))), lo, hi


def run_optuna(f, seed: int, kind: str) -> tuple[float, float]:
    import optuna

    from jaxhpo.integrations.optuna import JaxhpoSampler

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    fn, lo, hi = _numpy_fn(f)
    if kind == "jaxhpo":
        sampler = JaxhpoSampler(jaxhpo.strategies.bayes(num_initial=INITIAL), seed=seed)
    elif kind == "gp":
        sampler = optuna.samplers.GPSampler(seed=seed, n_startup_trials=INITIAL)
    else:
        sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=INITIAL)
    objective_s = 0.0

    def objective(trial):
        nonlocal objective_s
        x = [trial.suggest_float(f"x{i}", float(lo[i]), float(hi[i])) for i in range(f.dim)]
        t0 = time.process_time()
        value = fn(x)
        objective_s += time.process_time() - t0
        return value

    study = optuna.create_study(sampler=sampler)
    start = time.process_time()
    study.optimize(objective, n_trials=TRIALS)
    return study.best_value, (time.process_time() - start - objective_s) / TRIALS


def run_study(f, seed: int) -> float:
    fn, lo, hi = _numpy_fn(f)
    space = jaxhpo.Space({f"x{i}": jaxhpo.Float(float(lo[i]), float(hi[i])) for i in range(f.dim)})
    study = jaxhpo.Study(space, jaxhpo.strategies.bayes(num_initial=INITIAL), seed=seed)
    study.optimize(lambda p: fn([p[f"x{i}"] for i in range(f.dim)]), n_trials=TRIALS, progress=False)
    return study.best_value


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--functions", default=",".join(FUNCTIONS))
    args = parser.parse_args()
    rows = []
    print(f"{TRIALS} trials, {args.seeds} seeds: median log10 regret [IQR], overhead ms per trial")
    for name in args.functions.split(","):
        f = FUNCTIONS[name]
        row = {"function": name}
        for kind in ("jaxhpo", "gp", "tpe"):
            if kind == "jaxhpo":  # a first run (seed 10_000) compiles the GP program; measured apart
                row["jaxhpo_first_run_overhead_ms"] = 1e3 * run_optuna(f, 10_000, kind)[1]
            results = [run_optuna(f, seed, kind) for seed in range(args.seeds)]
            regret = log10_regret(f.regret(np.asarray([r[0] for r in results])))
            row[kind] = {"median_log10_regret": float(np.median(regret)), "iqr": iqr(regret),
                         "overhead_ms_per_trial": 1e3 * float(np.median([r[1] for r in results]))}
        study_regret = log10_regret(f.regret(np.asarray([run_study(f, s) for s in range(args.seeds)])))
        row["jaxhpo_study"] = {"median_log10_regret": float(np.median(study_regret)), "iqr": iqr(study_regret)}
        rows.append(row)
        print(f"{name:12s} " + "  ".join(
            f"{k}: {row[k]['median_log10_regret']:6.2f} [{row[k]['iqr'][0]:.2f}, {row[k]['iqr'][1]:.2f}]"
            + (f" {row[k]['overhead_ms_per_trial']:7.1f} ms" if "overhead_ms_per_trial" in row[k] else "")
            for k in ("jaxhpo", "jaxhpo_study", "gp", "tpe")), flush=True)
    print("wrote", write_results("optuna_sampler", {"trials": TRIALS, "seeds": args.seeds, "rows": rows}))


if __name__ == "__main__":
    main()
