"""Bayesian optimization: jaxhpo ``bayes()`` against Optuna, scikit-optimize, bayes_opt and random search.

Three questions, in one invocation (each can be skipped):

1. quality: final log10 regret after 60 evaluations (10 initial) on Branin,
   Hartmann6, Ackley5, Rosenbrock4 and Levy10, over seeds; median and IQR,
   and the optimizer's overhead per run (CPU seconds, objective time excluded);
2. speed: time per suggestion (fit + acquisition, after compilation) with
   n = 50 .. 1000 observations in 6-d, jaxhpo beside Optuna's GPSampler;
3. many studies: 16 complete BO studies on Branin vmapped in one compiled
   ``minimize`` call against 16 sequential calls;
4. batches: batches of 4 by the kriging believer (the default) against
   Thompson batches and random search, same evaluation budget.

    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_bo.py                  # everything
    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_bo.py --only quality --seeds 10

Results go to ``benchmarks/results/bo_<part>.json``, all parts together in ``bo.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import jaxhpo  # noqa: E402
from jaxhpo.strategies.base import next_capacity  # noqa: E402
from benchmarks.common import RESULTS, iqr, log10_regret, write_results  # noqa: E402
from jaxhpo.testing.functions import FUNCTIONS, HARTMANN6, BRANIN, BenchmarkFunction  # noqa: E402

EVALS, INITIAL = 60, 10


class Timed:
    """Wraps a NumPy objective, accumulating the time spent inside it."""

    def __init__(self, f: BenchmarkFunction) -> None:
        self.f, self.seconds, self.best = f, 0.0, np.inf
        self.np_fn = jax.jit(f.fn)

    def __call__(self, x) -> float:
        start = time.process_time()
        value = float(self.np_fn(jnp.asarray(np.asarray(x, np.float32))))
        self.seconds += time.process_time() - start
        self.best = min(self.best, value)
        return value


# ------------------------------------------------------------------ runners
def run_jaxhpo(f: BenchmarkFunction, seeds: int, strategy) -> tuple[list[float], list[float]]:
    run = jax.jit(lambda k: jaxhpo.minimize(f.objective, f.space, strategy, num_rounds=EVALS, key=k).best_value)
    jax.block_until_ready(run(jax.random.key(10_000)))  # compile
    values, overhead = [], []
    for seed in range(seeds):
        start = time.process_time()
        values.append(float(jax.block_until_ready(run(jax.random.key(seed)))))
        overhead.append(time.process_time() - start)  # objective time is negligible inside the program
    return values, overhead


def run_optuna(f: BenchmarkFunction, seeds: int, kind: str) -> tuple[list[float], list[float]]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    values, overhead = [], []
    for seed in range(seeds):
        obj = Timed(f)
        if kind == "tpe":
            sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=INITIAL)
        else:
            sampler = optuna.samplers.GPSampler(seed=seed, n_startup_trials=INITIAL)
        study = optuna.create_study(sampler=sampler)

        def objective(trial):
            return obj([trial.suggest_float(f"x{i}", lo, hi) for i, (lo, hi) in enumerate(f.bounds)])

        start = time.process_time()
        study.optimize(objective, n_trials=EVALS)
        overhead.append(time.process_time() - start - obj.seconds)
        values.append(obj.best)
    return values, overhead


def run_skopt(f: BenchmarkFunction, seeds: int) -> tuple[list[float], list[float]]:
    from skopt import gp_minimize

    values, overhead = [], []
    for seed in range(seeds):
        obj = Timed(f)
        start = time.process_time()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            gp_minimize(obj, list(f.bounds), n_calls=EVALS, n_initial_points=INITIAL, random_state=seed)
        overhead.append(time.process_time() - start - obj.seconds)
        values.append(obj.best)
    return values, overhead


def run_bayes_opt(f: BenchmarkFunction, seeds: int) -> tuple[list[float], list[float]]:
    from bayes_opt import BayesianOptimization

    values, overhead = [], []
    for seed in range(seeds):
        obj = Timed(f)

        def target(**kw):
            return -obj([kw[f"x{i}"] for i in range(f.dim)])

        bounds = {f"x{i}": b for i, b in enumerate(f.bounds)}
        opt = BayesianOptimization(f=target, pbounds=bounds, random_state=seed, verbose=0)
        start = time.process_time()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            opt.maximize(init_points=INITIAL, n_iter=EVALS - INITIAL)
        overhead.append(time.process_time() - start - obj.seconds)
        values.append(obj.best)
    return values, overhead


METHODS = {
    "jaxhpo bayes": lambda f, s: run_jaxhpo(f, s, jaxhpo.strategies.bayes(num_initial=INITIAL)),
    "random (jaxhpo)": lambda f, s: run_jaxhpo(f, s, jaxhpo.strategies.random()),
    "optuna TPE": lambda f, s: run_optuna(f, s, "tpe"),
    "optuna GP": lambda f, s: run_optuna(f, s, "gp"),
    "skopt gp_minimize": run_skopt,
    "bayes_opt": run_bayes_opt,
}


def quality(seeds: int, functions: list[str], methods: list[str], name: str = "bo_quality",
            merge: bool = False) -> dict:
    """Runs the quality table; with ``merge``, rows for other (function, method) pairs already in
    ``results/{name}.json`` are kept (runs are seeded, so a method can be rerun alone)."""
    rows = []
    if merge and os.path.exists(os.path.join(RESULTS, name + ".json")):
        with open(os.path.join(RESULTS, name + ".json")) as fh:
            rows = [r for r in json.load(fh)["rows"]
                    if not (r["function"] in functions and r["method"] in methods)]
    print(f"\n## Quality: final log10 regret after {EVALS} evaluations ({INITIAL} initial), {seeds} seeds")
    print(f"{'function':<12} {'method':<18} {'median':>8} {'IQR':>16} {'overhead s/run':>15}")
    for fname in functions:
        f = FUNCTIONS[fname]
        for method in methods:
            try:
                values, overhead = METHODS[method](f, seeds)
            except ImportError as e:
                print(f"{fname:<12} {method:<18} skipped ({e})")
                continue
            regret = log10_regret(np.asarray(values) - f.optimum_value)
            q1, q3 = iqr(regret)
            row = {"function": fname, "method": method, "median_log10_regret": float(np.median(regret)),
                   "iqr": [q1, q3], "log10_regret": regret.tolist(), "overhead_cpu_s": float(np.median(overhead)),
                   "date": time.strftime("%Y-%m-%d")}
            rows.append(row)
            print(f"{fname:<12} {method:<18} {row['median_log10_regret']:>8.2f} {f'[{q1:.2f}, {q3:.2f}]':>16} "
                  f"{row['overhead_cpu_s']:>15.2f}", flush=True)
            write_results(name, {"seeds": seeds, "evaluations": EVALS, "initial": INITIAL, "rows": rows})
    order = {m: i for i, m in enumerate(METHODS)}
    rows.sort(key=lambda r: (list(FUNCTIONS).index(r["function"]), order.get(r["method"], 99)))
    return {"seeds": seeds, "evaluations": EVALS, "initial": INITIAL, "rows": rows}


# -------------------------------------------------------------------- speed
ASKS = 20  # consecutive suggestions timed per size: one full refit cycle of bayes()


def _jaxhpo_ask_time(n: int, strategy, repeats: int = ASKS) -> tuple[float, float, float, int]:
    """Median and mean seconds per suggestion over ``repeats`` consecutive ones centred on ``n``
    observations (from ``n - repeats // 2`` to ``n + repeats // 2 - 1``), the first call's
    (compile and cold fit) time, and the buffer's capacity. By default a full multi-start refit
    runs each time the count passes a multiple of 20, so 20 consecutive asks hold exactly one and
    the mean is the cost amortized over a refit cycle. The buffer holds ``next_capacity(n + repeats // 2)`` rows, the
    size a ``Study`` has grown to at that point (512 at n = 500)."""
    f = HARTMANN6
    start = n - repeats // 2 - 1  # the untimed first ask happens here
    capacity = next_capacity(n + repeats // 2)
    state = strategy.init(jax.random.key(0), f.space, capacity)
    x = jax.random.uniform(jax.random.key(1), (start, f.dim))
    state = strategy.tell(state, x, f.fn(x))
    ask = jax.jit(strategy.ask, static_argnums=2)
    tell = jax.jit(strategy.tell)
    with jaxhpo.gp.blas.limit_blas_threads():  # as Study and minimize run it
        return (*_timed_asks(ask, tell, state, f, repeats), capacity)


def _timed_asks(ask, tell, state, f, repeats):
    start = time.perf_counter()
    xq, state = jax.block_until_ready(ask(jax.random.key(2), state, 1))  # compile + the first (cold) fit
    first = time.perf_counter() - start
    state = tell(state, xq, f.fn(xq))
    times = []
    for i in range(repeats):  # consecutive suggestions, each told before the next
        start = time.perf_counter()
        xq, state = jax.block_until_ready(ask(jax.random.key(3 + i), state, 1))
        times.append(time.perf_counter() - start)
        state = tell(state, xq, f.fn(xq))
    return float(np.median(times)), float(np.mean(times)), first


def _optuna_ask_time(n: int, repeats: int = 10) -> tuple[float, float]:
    """Median and mean seconds per ``study.ask`` of GPSampler, ``repeats`` consecutive ones
    centred on ``n`` observations after one untimed ask."""
    import optuna
    from optuna.distributions import FloatDistribution

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    f = HARTMANN6
    dist = {f"x{i}": FloatDistribution(0.0, 1.0) for i in range(f.dim)}
    study = optuna.create_study(sampler=optuna.samplers.GPSampler(seed=0))
    rng = np.random.default_rng(0)
    xs = rng.uniform(size=(n - repeats // 2 - 1, f.dim))
    ys = np.asarray(f.fn(jnp.asarray(xs)))
    study.add_trials([optuna.trial.create_trial(params={k: float(v) for k, v in zip(dist, x)}, distributions=dist,
                                                value=float(y)) for x, y in zip(xs, ys)])
    times = []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        trial = study.ask(dist)
        times.append(time.perf_counter() - start)
        study.tell(trial, float(f.fn(jnp.asarray([trial.params[k] for k in dist]))))
    return float(np.median(times[1:])), float(np.mean(times[1:]))


def speed(sizes: list[int], with_optuna: bool) -> dict:
    print(f"\n## Speed: seconds per suggestion (fit + acquisition, after compile), 6-d, median and mean of 20 "
          f"consecutive asks centred on n (GPSampler: 10, 5 above n=200) ({jax.default_backend()})")
    print(f"{'n':>6} {'capacity':>9} {'jaxhpo median':>14} {'mean':>8} {'compile+first':>14} {'GPSampler median':>17} "
          f"{'mean':>8} {'ratio median':>13} {'ratio mean':>11}")
    rows = []
    strategy = jaxhpo.strategies.bayes()
    for n in sizes:
        ours, ours_mean, first, capacity = _jaxhpo_ask_time(n, strategy)
        theirs, theirs_mean = (_optuna_ask_time(n, 10 if n <= 200 else 5) if with_optuna
                               else (float("nan"), float("nan")))
        rows.append({"n": n, "capacity": capacity, "jaxhpo_s": ours, "jaxhpo_mean_s": ours_mean,
                     "jaxhpo_compile_and_first_s": first, "optuna_gp_s": theirs, "optuna_gp_mean_s": theirs_mean})
        print(f"{n:>6} {capacity:>9} {ours:>14.4f} {ours_mean:>8.4f} {first:>14.1f} {theirs:>17.4f} {theirs_mean:>8.4f} "
              f"{theirs / ours:>13.1f} {theirs_mean / ours_mean:>11.1f}", flush=True)
    return {"backend": jax.default_backend(), "rows": rows}


# ------------------------------------------------------------- many studies
def many_studies(count: int = 16) -> dict:
    f = BRANIN
    strategy = jaxhpo.strategies.bayes(num_initial=INITIAL)
    keys = jax.random.split(jax.random.key(0), count)
    one = jax.jit(lambda k: jaxhpo.minimize(f.objective, f.space, strategy, num_rounds=EVALS, key=k).best_value)
    many = jax.jit(jax.vmap(lambda k: jaxhpo.minimize(f.objective, f.space, strategy, num_rounds=EVALS,
                                                      key=k).best_value))
    jax.block_until_ready(one(keys[0])), jax.block_until_ready(many(keys))
    start = time.perf_counter()
    batched = jax.block_until_ready(many(keys))
    t_vmap = time.perf_counter() - start
    start = time.perf_counter()
    sequential = [float(jax.block_until_ready(one(k))) for k in keys]
    t_seq = time.perf_counter() - start
    same = bool(np.allclose(np.asarray(batched), sequential, rtol=1e-4, atol=1e-6))
    print(f"\n## Many studies: {count} BO studies on Branin ({EVALS} evaluations each)")
    print(f"vmapped in one call: {t_vmap:.2f} s; {count} sequential calls: {t_seq:.2f} s; "
          f"ratio sequential/vmapped {t_seq / t_vmap:.2f}; same results: {same}")
    return {"backend": jax.default_backend(), "studies": count, "vmapped_s": t_vmap, "sequential_s": t_seq, "ratio": t_seq / t_vmap, "same_results": same}


# ------------------------------------------------------------------ batches
def batches(seeds: int = 10, batch: int = 4) -> dict:
    """Batch proposals: kriging believer (default) against Thompson batches, hybrid batches, local
    penalization and random, same budget."""
    print(f"\n## Batches of {batch}: final log10 regret after {EVALS} evaluations ({EVALS // batch} rounds), "
          f"{seeds} seeds")
    print(f"{'function':<12} {'method':<30} {'median':>8} {'IQR':>16}")
    rows = []
    strategies = {
        "kriging believer (log-EI)": jaxhpo.strategies.bayes(num_initial=INITIAL),
        "thompson batch": jaxhpo.strategies.bayes(num_initial=INITIAL, acquisition="thompson"),
        "hybrid (log-EI, then Thompson)": jaxhpo.strategies.bayes(num_initial=INITIAL, batch="hybrid"),
        "local penalization (log-EI)": jaxhpo.strategies.bayes(num_initial=INITIAL, batch="penalized"),
        "random": jaxhpo.strategies.random(),
    }
    for fname in ("branin", "hartmann6"):
        f = FUNCTIONS[fname]
        for method, strategy in strategies.items():
            run = jax.jit(lambda k, s=strategy: jaxhpo.minimize(f.objective, f.space, s, num_rounds=EVALS // batch,
                                                                batch_size=batch, key=k).best_value)
            values = [float(run(jax.random.key(seed))) for seed in range(seeds)]
            regret = log10_regret(np.asarray(values) - f.optimum_value)
            q1, q3 = iqr(regret)
            rows.append({"function": fname, "method": method, "batch": batch,
                         "median_log10_regret": float(np.median(regret)), "iqr": [q1, q3],
                         "log10_regret": regret.tolist()})
            print(f"{fname:<12} {method:<30} {np.median(regret):>8.2f} {f'[{q1:.2f}, {q3:.2f}]':>16}", flush=True)
    return {"seeds": seeds, "evaluations": EVALS, "rows": rows}


def write_combined(suffix: str = "") -> str:
    """Gathers the part files (``bo_quality``, ``bo_speed``, ``bo_many``, ``bo_batch``) into ``bo{suffix}.json``."""
    parts = {}
    for part in ("quality", "speed", "many", "batch"):
        path = os.path.join(RESULTS, f"bo_{part}{suffix}.json")
        if os.path.exists(path):
            with open(path) as fh:
                parts[part] = json.load(fh)
    return write_results("bo" + suffix, {"parts": parts})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", choices=["quality", "speed", "many", "batch"], action="append")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--functions", default=",".join(FUNCTIONS))
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--sizes", default="50,100,200,500,1000")
    parser.add_argument("--no-optuna-speed", action="store_true")
    parser.add_argument("--merge", action="store_true",
                        help="keep rows of other functions/methods from the existing results file")
    parser.add_argument("--suffix", default="", help="appended to result file names, e.g. _gpu")
    args = parser.parse_args()
    parts = args.only or ["quality", "speed", "many", "batch"]
    if "quality" in parts:
        result = quality(args.seeds, args.functions.split(","), args.methods.split(","),
                         "bo_quality" + args.suffix, args.merge)
        print("wrote", write_results("bo_quality" + args.suffix, result))
    if "speed" in parts:
        result = speed([int(n) for n in args.sizes.split(",")], not args.no_optuna_speed)
        print("wrote", write_results("bo_speed" + args.suffix, result))
    if "many" in parts:
        print("wrote", write_results("bo_many" + args.suffix, many_studies()))
    if "batch" in parts:
        print("wrote", write_results("bo_batch" + args.suffix, batches(args.seeds)))
    print("wrote", write_combined(args.suffix))


if __name__ == "__main__":
    main()
