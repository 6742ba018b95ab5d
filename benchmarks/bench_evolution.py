"""CMA-ES against pycma; genetic algorithm and policy gradient against random search.

Part 1: jaxhpo ``cma_es(x0="random")`` and pycma (``cma.CMAEvolutionStrategy``,
same sigma0 = 0.3 of the box, bounds, default population, a random start)
on Ackley5, Rosenbrock4, Levy10 with 500 evaluations and 10 seeds: median
final log10 regret and optimizer overhead per generation (pycma: its
ask + tell time; jaxhpo: the whole compiled run divided by generations,
objective included). Then 64 jaxhpo CMA-ES runs vmapped in one call against
64 sequential calls.

Part 1b (``--only batching``, issue 16): jaxhpo CMA-ES at batch sizes other
than its population (3, popsize + 1, 2 popsize) and with each generation's
values told one at a time in a random order (as an executor returns them),
against the aligned, in-order run: median final log10 regret, same seeds.

Part 2: ``genetic()``, ``policy_gradient()`` and ``random()`` at equal
evaluations (500, batches of 10) on the same functions and on a categorical
problem (8 variables x 5 choices, regret = number of wrong choices).

    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_evolution.py [--seeds 10]
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import jaxhpo  # noqa: E402
from benchmarks.common import iqr, log10_regret, progress, write_results  # noqa: E402
from jaxhpo.testing.functions import FUNCTIONS  # noqa: E402

EVALS = 500
NAMES = ["ackley5", "rosenbrock4", "levy10"]


def jaxhpo_cma(f, seeds):
    d = f.dim
    lam = jaxhpo.strategies.cma.default_popsize(d)
    rounds = math.ceil(EVALS / lam)
    s = jaxhpo.strategies.cma_es(sigma0=0.3, x0="random")
    one = jax.jit(lambda k: jaxhpo.minimize(f.objective, f.space, s, num_rounds=rounds, batch_size=lam, key=k))
    many = jax.jit(jax.vmap(one))
    keys = jax.random.split(jax.random.key(0), seeds)
    jax.block_until_ready(one(keys[0]))
    best, times = [], []
    for k in keys:
        t0 = time.perf_counter()
        r = jax.block_until_ready(one(k))
        times.append(time.perf_counter() - t0)
        best.append(float(np.nanmin(np.asarray(r.y)[:EVALS])))
    # 64 vmapped runs against 64 sequential calls of the same compiled run
    keys64 = jax.random.split(jax.random.key(1), 64)
    jax.block_until_ready(many(keys64))
    t0 = time.perf_counter(); jax.block_until_ready(many(keys64)); t_vmap = time.perf_counter() - t0
    t0 = time.perf_counter()
    for k in keys64:
        jax.block_until_ready(one(k))
    t_seq = time.perf_counter() - t0
    return np.asarray(best), float(np.median(times)) / rounds, t_seq, t_vmap


def pycma_runs(f, seeds):
    import cma

    lo, hi = np.array(f.bounds, np.float64).T
    fn = jax.jit(lambda x: f.fn(x))
    best, per_gen = [], []
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        x0 = rng.uniform(size=f.dim)
        es = cma.CMAEvolutionStrategy(x0, 0.3, {"bounds": [0, 1], "seed": seed + 1, "verbose": -9})
        used, values, overhead, gens = 0, [], 0.0, 0
        while used < EVALS:
            t0 = time.perf_counter()
            xs = es.ask()
            overhead += time.perf_counter() - t0
            ys = np.asarray(fn(jnp.asarray(lo + (hi - lo) * np.asarray(xs))), np.float64)
            t0 = time.perf_counter()
            es.tell(xs, ys.tolist())
            overhead += time.perf_counter() - t0
            gens += 1
            values.extend(ys.tolist())
            used += len(xs)
        best.append(min(values[:EVALS]))
        per_gen.append(overhead / gens)
    return np.asarray(best), float(np.median(per_gen))


def _shuffled_cma(f, s, lam, rounds):
    """A CMA-ES run whose values are told one at a time, each generation in a random order."""

    def run(key):
        k_init, k_run = jax.random.split(key)
        state = s.init(k_init, f.space, rounds * lam)

        def one_round(state, k):  # the same keys as minimize's rounds: only the order of the tells differs
            k_ask, k_perm = k, jax.random.fold_in(k, 1)
            x, state = s.ask(k_ask, state, lam)
            y = f.objective(f.space.decode(x))
            order = jax.random.permutation(k_perm, lam)
            state, _ = jax.lax.scan(lambda st, i: (s.tell(st, x[i][None], y[i][None]), None), state, order)
            return state, jnp.min(y)

        _, best = jax.lax.scan(one_round, state, jax.random.split(k_run, rounds))
        return jnp.min(best)

    return jax.jit(run)


def cma_batching(seeds):
    """Regret of CMA-ES at batch sizes other than its population and with shuffled tells."""
    rows = []
    print(f"\nCMA-ES batching ({EVALS} evaluations, {seeds} seeds, median final log10 regret)")
    for name in NAMES:
        f = FUNCTIONS[name]
        lam = jaxhpo.strategies.cma.default_popsize(f.dim)
        s = jaxhpo.strategies.cma_es(sigma0=0.3, x0="random")
        keys = jax.random.split(jax.random.key(0), seeds)
        row = {"function": name, "popsize": lam}
        variants = {f"batch {lam} (aligned)": lam, "batch 3": 3, f"batch {lam + 1}": lam + 1, f"batch {2 * lam}": 2 * lam}
        runs = {}
        for label, batch in variants.items():
            rounds = math.ceil(EVALS / batch)
            runs[label] = jax.jit(lambda k, b=batch, r=rounds: jnp.min(
                jaxhpo.minimize(f.objective, f.space, s, num_rounds=r, batch_size=b, key=k).y[:EVALS]))
        runs[f"batch {lam}, shuffled tells"] = _shuffled_cma(f, s, lam, math.ceil(EVALS / lam))
        # the same parallelism as batch 2 popsize, aligned: what any CMA-ES can do with that many workers
        wide = jaxhpo.strategies.cma_es(sigma0=0.3, x0="random", popsize=2 * lam)
        rounds = math.ceil(EVALS / (2 * lam))
        runs[f"batch {2 * lam}, popsize {2 * lam} (aligned)"] = jax.jit(lambda k, r=rounds: jnp.min(
            jaxhpo.minimize(f.objective, f.space, wide, num_rounds=r, batch_size=2 * lam, key=k).y[:EVALS]))
        for label, run in runs.items():
            regret = log10_regret(f.regret(np.asarray([run(k) for k in keys], np.float64)))
            row[label] = {"median": float(np.median(regret)), "iqr": iqr(regret)}
        rows.append(row)
        print(f"{name:<12} " + "  ".join(f"{k}: {v['median']:6.2f} [{v['iqr'][0]:.2f}, {v['iqr'][1]:.2f}]"
                                         for k, v in row.items() if k not in ("function", "popsize")), flush=True)
    return rows


def compare_strategies(seeds):
    rows = []
    strategies = {"random": jaxhpo.strategies.random(), "genetic": jaxhpo.strategies.genetic(),
                  "policy_gradient": jaxhpo.strategies.policy_gradient()}
    space = jaxhpo.Space({f"c{i}": jaxhpo.Categorical(list("abcde")) for i in range(8)})
    target = jnp.array([0, 1, 2, 3, 4, 0, 1, 2])

    def categorical(p):
        return sum((p[f"c{i}"] != target[i]).astype(jnp.float32) for i in range(8))

    problems = [(n, FUNCTIONS[n].objective, FUNCTIONS[n].space, FUNCTIONS[n].regret) for n in NAMES]
    problems.append(("categorical8x5", categorical, space, lambda v: v))
    keys = jax.random.split(jax.random.key(2), seeds)
    for name, obj, sp, regret in problems:
        for sname, s in strategies.items():
            run = jax.jit(jax.vmap(lambda k: jaxhpo.minimize(obj, sp, s, num_rounds=EVALS // 10, batch_size=10,
                                                             key=k).best_value))
            r = np.asarray(regret(run(keys)), np.float64)
            rows.append({"problem": name, "strategy": sname, "median_regret": float(np.median(r)),
                         "iqr": iqr(r)})
            print(f"{name:<15} {sname:<16} median regret {np.median(r):10.4g}  IQR {iqr(r)[0]:.3g}..{iqr(r)[1]:.3g}",
                  flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--skip-ga", action="store_true")
    parser.add_argument("--only", choices=["batching"], help="run only the batching part (merged into the results)")
    args = parser.parse_args()
    if args.only == "batching":
        import json
        import os

        path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "evolution.json")
        previous = json.load(open(path)) if os.path.exists(path) else {}
        previous.pop("machine", None)
        print("wrote", write_results("evolution", {**previous, "cma_batching": cma_batching(args.seeds)}))
        return
    cma_rows = []
    print(f"CMA-ES, {EVALS} evaluations, {args.seeds} seeds (median final log10 regret; overhead ms per generation)")
    print(f"{'function':<12} {'jaxhpo':>8} {'pycma':>8} {'jaxhpo ms/gen':>14} {'pycma ms/gen':>13} {'ratio':>7} "
          f"{'64 seq s':>9} {'64 vmap s':>10}")
    for name in progress(NAMES, "functions"):
        f = FUNCTIONS[name]
        ours, ours_gen, t_seq, t_vmap = jaxhpo_cma(f, args.seeds)
        theirs, theirs_gen = pycma_runs(f, args.seeds)
        lr_ours = log10_regret(f.regret(ours))
        lr_theirs = log10_regret(f.regret(theirs))
        row = {"function": name, "jaxhpo_log10_regret": float(np.median(lr_ours)), "jaxhpo_iqr": iqr(lr_ours),
               "pycma_log10_regret": float(np.median(lr_theirs)), "pycma_iqr": iqr(lr_theirs),
               "jaxhpo_s_per_generation": ours_gen, "pycma_s_per_generation": theirs_gen,
               "overhead_ratio": theirs_gen / ours_gen, "sequential64_s": t_seq, "vmapped64_s": t_vmap}
        cma_rows.append(row)
        print(f"{name:<12} {row['jaxhpo_log10_regret']:8.2f} {row['pycma_log10_regret']:8.2f} "
              f"{1e3 * ours_gen:14.3f} {1e3 * theirs_gen:13.3f} {row['overhead_ratio']:6.0f}x "
              f"{t_seq:9.2f} {t_vmap:10.2f}", flush=True)
    batching_rows = cma_batching(args.seeds)
    ga_rows = [] if args.skip_ga else compare_strategies(args.seeds)
    print("wrote", write_results("evolution", {"evals": EVALS, "seeds": args.seeds, "cma": cma_rows,
                                                "cma_batching": batching_rows, "strategies": ga_rows}))


if __name__ == "__main__":
    main()
