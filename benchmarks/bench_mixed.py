"""``bayes()`` on mixed spaces (log floats, ints, categoricals) against Optuna and random search (issue 17).

Problems: scikit-learn models on scikit-learn's bundled data sets, each with
a mixed space and the 3-fold cross-validated loss as objective (evaluations
cached by configuration, so repeats cost nothing but a wasted budget slot),
plus synthetic mixed functions with known optima. Methods, in the same run:
jaxhpo ``bayes()`` (through ``Study``; its default batches here are hybrid:
the acquisition's pick, then Thompson draws), ``bayes(batch="thompson")``
("jaxhpo TS batch": every member of a batch a Thompson draw; at batch 1 it
is ``bayes()``), Optuna's TPE (``constant_liar`` for batches) and
GPSampler, and random search (jaxhpo ``random()``);
scikit-optimize's ``Optimizer`` with ``--skopt`` (about 20 s per 40-trial
run on 2 cores, so off by default). Budget: 40 evaluations, at batch 1 and
batch 4 (ask 4, evaluate, tell 4), ``--seeds`` seeds.

Scores as bayesmark does: per problem, 0 = the best value any method found,
1 = the median of all random-search evaluations, the final best of each run
mapped to that scale and clipped to [-1, 1]; per method, the mean and the
median over problems of its median score over seeds, the share of problems
where it beats TPE (and its wins, ties and losses against TPE: equal medians
are a tie), and the mean number of distinct configurations evaluated (of 40).

    OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 python benchmarks/bench_mixed.py [--seeds 16] [--skopt]

Writes ``benchmarks/results/mixed.json`` (scores) and ``results/mixed_runs.json``
(every run's 40 values and configurations). A change to jaxhpo can be scored
against the peers' stored runs without running them again (they do not depend
on jaxhpo; Optuna and scikit-learn are seeded):

    python benchmarks/bench_mixed.py --methods "jaxhpo bayes,jaxhpo TS batch" --reuse

runs the named methods and takes every other method's runs from
``results/mixed_runs.json`` (the table says which were reused). Another seed
set, to see how much of a difference is the seeds': ``--first-seed 16 --out
mixed_seeds16``; then ``--pool mixed,mixed_seeds16 --out mixed_pooled`` scores
the stored runs of both sets as one set of 32 seeds (running nothing).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
import warnings
from dataclasses import dataclass
from typing import Callable

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

import jaxhpo  # noqa: E402
from benchmarks.common import RESULTS, write_results  # noqa: E402

EVALS = 40
F, I, C = jaxhpo.Float, jaxhpo.Int, jaxhpo.Categorical


@dataclass
class Problem:
    name: str
    space: jaxhpo.Space
    loss: Callable[[dict], float]


def _cv_loss(make_model, data, scoring="accuracy"):
    from sklearn.model_selection import cross_val_score

    x, y = data
    cache: dict = {}

    def loss(params: dict) -> float:
        key = tuple(sorted((k, repr(v)) for k, v in params.items()))
        if key not in cache:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    score = float(np.mean(cross_val_score(make_model(params), x, y, cv=3, scoring=scoring)))
                except ValueError:
                    score = -math.inf if scoring != "accuracy" else 0.0
            cache[key] = (1.0 - score) if scoring == "accuracy" else -score
        return cache[key]

    return loss


def problems() -> list[Problem]:
    from sklearn import datasets
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import ElasticNet, LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC
    from sklearn.tree import DecisionTreeClassifier

    wine = datasets.load_wine(return_X_y=True)
    cancer = datasets.load_breast_cancer(return_X_y=True)
    digits = datasets.load_digits(return_X_y=True)
    diabetes = datasets.load_diabetes(return_X_y=True)
    out = [
        Problem("tree-wine", jaxhpo.Space({
            "max_depth": I(1, 20), "min_samples_split": I(2, 40, log=True), "min_samples_leaf": I(1, 20, log=True),
            "criterion": C(["gini", "entropy", "log_loss"]), "max_features": F(0.1, 1.0)}),
            _cv_loss(lambda p: DecisionTreeClassifier(random_state=0, **p), wine)),
        Problem("knn-cancer", jaxhpo.Space({
            "n_neighbors": I(1, 60, log=True), "weights": C(["uniform", "distance"]), "p": I(1, 2),
            "leaf_size": I(5, 60)}),
            _cv_loss(lambda p: make_pipeline(StandardScaler(), KNeighborsClassifier(**p)), cancer)),
        Problem("svc-cancer", jaxhpo.Space({
            "C": F(1e-3, 1e3, log=True), "gamma": F(1e-5, 1.0, log=True), "kernel": C(["rbf", "sigmoid", "poly"]),
            "degree": I(2, 5)}),
            _cv_loss(lambda p: make_pipeline(StandardScaler(), SVC(**p)), cancer)),
        Problem("logreg-digits", jaxhpo.Space({
            "C": F(1e-4, 1e2, log=True), "fit_intercept": C([True, False]), "max_iter": I(5, 200, log=True)}),
            _cv_loss(lambda p: make_pipeline(StandardScaler(), LogisticRegression(**p)), (digits[0][:600], digits[1][:600]))),
        Problem("enet-diabetes", jaxhpo.Space({
            "alpha": F(1e-4, 10.0, log=True), "l1_ratio": F(0.0, 1.0), "fit_intercept": C([True, False]),
            "selection": C(["cyclic", "random"])}),
            _cv_loss(lambda p: ElasticNet(random_state=0, max_iter=2000, **p), diabetes, "neg_mean_squared_error")),
        # added in session 23: the model families the issue names that the first seven left out (a random
        # forest of 10 trees as bayesmark's, gradient boosting, an MLP); about 0.07-0.13 s per evaluation
        Problem("rf-cancer", jaxhpo.Space({
            "max_depth": I(1, 20), "max_features": F(0.05, 1.0), "min_samples_split": I(2, 40, log=True),
            "min_samples_leaf": I(1, 20, log=True), "criterion": C(["gini", "entropy"]), "bootstrap": C([True, False])}),
            _cv_loss(lambda p: RandomForestClassifier(n_estimators=10, random_state=0, **p), cancer)),
        Problem("hgb-cancer", jaxhpo.Space({
            "learning_rate": F(0.01, 1.0, log=True), "max_iter": I(5, 50, log=True), "max_leaf_nodes": I(2, 64, log=True),
            "min_samples_leaf": I(1, 60, log=True), "l2_regularization": F(1e-6, 10.0, log=True),
            "max_features": F(0.1, 1.0), "interaction_cst": C(["none", "no_interactions"])}),
            _cv_loss(lambda p: HistGradientBoostingClassifier(
                random_state=0, early_stopping=False,
                **{**p, "interaction_cst": None if p["interaction_cst"] == "none" else p["interaction_cst"]}), cancer)),
        Problem("mlp-digits", jaxhpo.Space({
            "hidden": I(8, 128, log=True), "alpha": F(1e-6, 1.0, log=True), "learning_rate_init": F(1e-4, 0.3, log=True),
            "activation": C(["relu", "tanh", "logistic"]), "batch_size": I(16, 128, log=True),
            "max_iter": I(5, 60, log=True)}),
            _cv_loss(lambda p: make_pipeline(StandardScaler(), MLPClassifier(
                hidden_layer_sizes=(p["hidden"],), random_state=0, **{k: v for k, v in p.items() if k != "hidden"})),
                (digits[0][:500], digits[1][:500]))),
    ]

    # synthetic: known optimum 0
    offsets = np.array([0.8, 0.0, 1.5, 0.3, 2.0])

    def mixed_ackley(p):
        x = np.array([p["x0"], p["x1"], p["x2"]])
        a = -20 * np.exp(-0.2 * np.sqrt(np.mean(x ** 2))) - np.exp(np.mean(np.cos(2 * np.pi * x))) + 20 + np.e
        return float(a + (p["n"] - 7) ** 2 / 10 + offsets[["a", "b", "c", "d", "e"].index(p["c"])])

    out.append(Problem("synth-ackley-mixed", jaxhpo.Space({
        "x0": F(-5.0, 5.0), "x1": F(-5.0, 5.0), "x2": F(-5.0, 5.0), "n": I(0, 10), "c": C(list("abcde"))}),
        mixed_ackley))

    def discrete_bowl(p):
        ints = np.array([p["i0"], p["i1"], p["i2"], p["i3"]], dtype=float)
        return float(np.sum((ints - np.array([3, 11, 7, 0])) ** 2) / 16 + (p["c0"] != "x") + 0.5 * (p["c1"] != "w"))

    out.append(Problem("synth-discrete", jaxhpo.Space({
        "i0": I(0, 15), "i1": I(0, 15), "i2": I(0, 15), "i3": I(0, 15), "c0": C(list("xyzw")), "c1": C(list("xyzw"))}),
        discrete_bowl))
    return out


# ------------------------------------------------------------------ methods: each returns the 40 values in order
def run_jaxhpo(problem: Problem, seed: int, batch: int, strategy) -> list:
    study = jaxhpo.Study(problem.space, strategy, seed=seed)
    study.optimize(problem.loss, n_trials=EVALS, batch_size=batch, progress=False)
    return [(t.value, _key(t.params)) for t in study.trials]


def _optuna_suggest(trial, space: jaxhpo.Space) -> dict:
    out = {}
    for name, p in space.params.items():
        if isinstance(p, jaxhpo.Categorical):
            out[name] = trial.suggest_categorical(name, list(p.choices))
        elif isinstance(p, jaxhpo.Int):
            out[name] = trial.suggest_int(name, p.low, p.high, log=p.log)
        else:
            out[name] = trial.suggest_float(name, p.low, p.high, log=p.log)
    return out


def run_optuna(problem: Problem, seed: int, batch: int, kind: str) -> list:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if kind == "tpe":
        sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=10, constant_liar=batch > 1)
    else:
        sampler = optuna.samplers.GPSampler(seed=seed, n_startup_trials=10)
    study = optuna.create_study(sampler=sampler)
    out = []
    while len(out) < EVALS:
        trials = [study.ask() for _ in range(min(batch, EVALS - len(out)))]
        params = [_optuna_suggest(t, problem.space) for t in trials]
        for t, p in zip(trials, params):
            value = problem.loss(p)
            study.tell(t, value)
            out.append((value, _key(p)))
    return out


def run_skopt(problem: Problem, seed: int, batch: int) -> list:
    from skopt import Optimizer
    from skopt.space import Categorical, Integer, Real

    dims, names = [], list(problem.space.params)
    for name, p in problem.space.params.items():
        if isinstance(p, jaxhpo.Categorical):
            dims.append(Categorical(list(p.choices), name=name))
        elif isinstance(p, jaxhpo.Int):
            dims.append(Integer(p.low, p.high, prior="log-uniform" if p.log else "uniform", name=name))
        else:
            dims.append(Real(p.low, p.high, prior="log-uniform" if p.log else "uniform", name=name))
    opt = Optimizer(dims, base_estimator="GP", n_initial_points=10, random_state=seed)
    out = []
    while len(out) < EVALS:
        xs = opt.ask(n_points=min(batch, EVALS - len(out))) if batch > 1 else [opt.ask()]
        values = []
        for x in xs:
            p = dict(zip(names, [v.item() if hasattr(v, "item") else v for v in x]))
            values.append(problem.loss(p))
            out.append((values[-1], _key(p)))
        opt.tell(xs, values)
    return out


def _key(params: dict) -> tuple:
    return tuple(sorted((k, repr(v)) for k, v in params.items()))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=16)
    parser.add_argument("--first-seed", type=int, default=0,
                        help="seeds first_seed .. first_seed + seeds - 1 (another seed set: give another --out)")
    parser.add_argument("--batches", default="1,4")
    parser.add_argument("--skopt", action="store_true", help="add scikit-optimize (about 20 s per run)")
    parser.add_argument("--problems", default=None, help="comma-separated names (default: all)")
    parser.add_argument("--out", default="mixed", help="results/<out>.json (default: mixed)")
    parser.add_argument("--thompson", action="store_true",
                        help="add bayes(acquisition='thompson'): joint posterior draws instead of the kriging believer")
    parser.add_argument("--methods", default=None,
                        help="comma-separated methods to run (default: all); with --reuse the others come from "
                             "results/<out>_runs.json; with --pool the methods to score")
    parser.add_argument("--reuse", action="store_true",
                        help="score the methods not run on their stored runs (results/<out>_runs.json)")
    parser.add_argument("--pool", default=None,
                        help="run nothing: score the stored runs of several seed sets together, e.g. "
                             "'mixed,mixed_seeds16' (results/<name>_runs.json each; their seeds must not overlap); "
                             "writes results/<out>.json")
    args = parser.parse_args()
    if args.pool:
        return pool(args.pool.split(","), args.out, args.problems, args.batches,
                    args.methods.split(",") if args.methods else list(POOLED_METHODS))

    bayes = jaxhpo.strategies.bayes()
    methods: dict[str, Callable] = {
        "jaxhpo bayes": lambda pr, s, b: run_jaxhpo(pr, s, b, bayes),
        "optuna TPE": lambda pr, s, b: run_optuna(pr, s, b, "tpe"),
        "optuna GP": lambda pr, s, b: run_optuna(pr, s, b, "gp"),
        "random": lambda pr, s, b: run_jaxhpo(pr, s, b, jaxhpo.strategies.random()),
        "jaxhpo TS batch": lambda pr, s, b: run_jaxhpo(pr, s, b, jaxhpo.strategies.bayes(batch="thompson")),
    }
    if args.skopt:
        methods["skopt GP"] = run_skopt
    if args.thompson:
        thompson = jaxhpo.strategies.bayes(acquisition="thompson")
        methods["jaxhpo thompson"] = lambda pr, s, b: run_jaxhpo(pr, s, b, thompson)
    probs = problems()
    if args.problems:
        probs = [p for p in probs if p.name in args.problems.split(",")]
    batches = [int(b) for b in args.batches.split(",")]

    runs: dict = {}  # (problem, batch, method) -> list over seeds of [(value, key)] * 40
    seconds: dict = {}
    to_run = set(methods) if args.methods is None else set(args.methods.split(","))
    unknown = to_run - set(methods)
    if unknown:
        raise SystemExit(f"--methods: unknown {sorted(unknown)}; known: {sorted(methods)}")
    stored = _load_runs(args.out) if args.reuse else {}
    reused = set()
    for problem in probs:
        for batch in batches:
            for name, fn in methods.items():
                if name not in to_run:
                    key = (problem.name, batch, name)
                    if (key not in stored or len(stored[key]["runs"]) < args.seeds
                            or stored[key]["first_seed"] != args.first_seed):
                        raise SystemExit(f"--reuse: no stored runs of {name!r} on {problem.name} at batch {batch} "
                                         f"for seeds {args.first_seed}..{args.first_seed + args.seeds - 1} in "
                                         f"results/{args.out}_runs.json; run it")
                    runs[key] = stored[key]["runs"][:args.seeds]
                    seconds[key] = stored[key]["seconds_per_run"]
                    reused.add(name)
                    continue
                start = time.perf_counter()
                seeds = range(args.first_seed, args.first_seed + args.seeds)
                runs[(problem.name, batch, name)] = [fn(problem, seed, batch) for seed in seeds]
                seconds[(problem.name, batch, name)] = (time.perf_counter() - start) / args.seeds
                print(f"  {problem.name:20s} batch {batch}  {name:14s} {seconds[(problem.name, batch, name)]:6.2f} s/run",
                      flush=True)

    rows, summary = score(runs, seconds, probs, batches, list(methods), args.seeds)
    if reused:
        print(f"\nreused stored runs (results/{args.out}_runs.json) of: {', '.join(sorted(reused))}")
    path = write_results(args.out, {"seeds": args.seeds, "first_seed": args.first_seed, "evals": EVALS, "rows": rows, "reused": sorted(reused),
                                   "summary": {str(k): v for k, v in summary.items()}})
    _save_runs(args.out, {**stored, **{k: {"runs": v, "seconds_per_run": seconds[k], "first_seed": args.first_seed}
                                       for k, v in runs.items()}})
    print(f"\nwrote {path}")


def score(runs: dict, seconds: dict, probs: list, batches: list[int], methods: list[str],
          seeds: int) -> tuple[list, dict]:
    """Scores ``runs[(problem, batch, method)]`` (lists over seeds of ``(value, configuration)`` pairs) as bayesmark
    does, prints the per-problem table and the summary, and returns the rows and the summary.

    ``seconds[(problem, batch, method)]`` is the time per run the rows report.
    """
    rows, summary = [], {}
    for batch in batches:
        per_method: dict = {name: {"scores": [], "distinct": [], "vs_tpe": []} for name in methods}
        for problem in probs:
            everything = [v for name in methods for run in runs[(problem.name, batch, name)] for v, _ in run
                          if np.isfinite(v)]
            best = min(everything)
            random_median = float(np.median([v for run in runs[(problem.name, batch, "random")] for v, _ in run
                                             if np.isfinite(v)]))
            scale = random_median - best if random_median > best else 1.0
            medians = {}
            for name in methods:
                finals = [min(v for v, _ in run) for run in runs[(problem.name, batch, name)]]
                scores = np.clip((np.asarray(finals) - best) / scale, -1.0, 1.0)
                distinct = [len({k for _, k in run}) for run in runs[(problem.name, batch, name)]]
                medians[name] = float(np.median(scores))
                per_method[name]["scores"].append(medians[name])
                per_method[name]["distinct"].append(float(np.mean(distinct)))
                rows.append({"problem": problem.name, "batch": batch, "method": name,
                             "median_score": medians[name], "mean_distinct": float(np.mean(distinct)),
                             "seconds_per_run": seconds[(problem.name, batch, name)]})
            for name in methods:  # 1: better than TPE, 0: a tie (equal medians), -1: worse
                gap = medians["optuna TPE"] - medians[name]
                per_method[name]["vs_tpe"].append(0 if abs(gap) <= 1e-12 else int(np.sign(gap)))
        summary[batch] = {
            name: {"mean_score": float(np.mean(m["scores"])), "median_score": float(np.median(m["scores"])),
                   "share_better_than_tpe": float(np.mean(np.asarray(m["vs_tpe"]) > 0)),
                   "wins_ties_losses_vs_tpe": [int(np.sum(np.asarray(m["vs_tpe"]) == v)) for v in (1, 0, -1)],
                   "mean_distinct": float(np.mean(m["distinct"]))}
            for name, m in per_method.items()
        }

    print(f"\n{seeds} seeds x {EVALS} evaluations; normalized score (0 = best found by any method, "
          "1 = median random evaluation; lower is better)\n")
    header = f"{'problem':20s} {'batch':>5s} " + " ".join(f"{name:>14s}" for name in methods)
    print(header)
    for batch in batches:
        for problem in probs:
            cells = [next(r for r in rows if r["problem"] == problem.name and r["batch"] == batch
                          and r["method"] == name) for name in methods]
            print(f"{problem.name:20s} {batch:5d} " + " ".join(f"{c['median_score']:8.3f} ({c['mean_distinct']:4.1f})"
                                                              for c in cells))
    print("\n(in parentheses: distinct configurations evaluated, of 40)\n")
    print(f"{'batch':>5s} {'method':14s} {'mean':>7s} {'median':>7s} {'beats TPE':>10s} {'W/T/L vs TPE':>13s} "
          f"{'distinct':>9s}")
    for batch in batches:
        for name, s in summary[batch].items():
            print(f"{batch:5d} {name:14s} {s['mean_score']:7.3f} {s['median_score']:7.3f} "
                  f"{100 * s['share_better_than_tpe']:9.0f}% {'/'.join(map(str, s['wins_ties_losses_vs_tpe'])):>13s} "
                  f"{s['mean_distinct']:9.1f}")
    return rows, summary


POOLED_METHODS = ("jaxhpo bayes", "optuna TPE", "optuna GP", "random", "jaxhpo TS batch")


def pool(names: list[str], out: str, problem_names: str | None, batch_names: str, methods: list[str]) -> None:
    """Scores the stored runs of several seed sets (``results/<name>_runs.json``) as one set of seeds.

    Every (problem, batch) scored needs every method's runs for all the seeds
    the sets hold together; a (problem, batch) that lacks some is left out, and named.
    """
    if out == "mixed":
        raise SystemExit("--pool: give --out a name of its own (results/mixed.json holds the 16-seed record)")
    merged: dict = {}  # key -> {first_seed: (runs, seconds)}
    for name in names:
        if not os.path.exists(_runs_path(name)):
            raise SystemExit(f"--pool: no stored runs for {name!r} ({_runs_path(name)}); run bench_mixed.py --out {name}")
        for key, entry in _load_runs(name).items():
            seeds = set(range(entry["first_seed"], entry["first_seed"] + len(entry["runs"])))
            for first, (runs_before, _) in merged.get(key, {}).items():
                if seeds & set(range(first, first + len(runs_before))):
                    raise SystemExit(f"--pool: {key} has seeds {min(seeds)}..{max(seeds)} in {name!r} and "
                                     f"{first}..{first + len(runs_before) - 1} in an earlier set")
            merged.setdefault(key, {})[entry["first_seed"]] = (entry["runs"], entry["seconds_per_run"])
    seed_sets = {key: tuple((first, len(r)) for first, (r, _) in sorted(v.items())) for key, v in merged.items()}
    for required in ("optuna TPE", "random"):
        if required not in methods:
            raise SystemExit(f"--pool: --methods must include {required!r} (the score needs it)")
    wanted = [int(b) for b in batch_names.split(",")]
    probs = [p for p in problems() if problem_names is None or p.name in problem_names.split(",")]
    widest = max((sum(n for _, n in v) for v in seed_sets.values()), default=0)
    complete, left_out = [], []
    for batch in wanted:
        for problem in probs:
            sets = {seed_sets.get((problem.name, batch, m)) for m in methods}
            whole = len(sets) == 1 and None not in sets and sum(n for _, n in sets.pop()) == widest
            (complete if whole else left_out).append((problem.name, batch))
    if not complete:
        raise SystemExit(f"--pool: no (problem, batch) has every method's runs for the same seeds in {names}")
    if left_out:
        print(f"left out (a method lacks some of the {widest} seeds): "
              + ", ".join(f"{p} at batch {b}" for p, b in left_out))
    batches = [b for b in wanted if any(cb == b for _, cb in complete)]
    kept = [p for p in probs if all((p.name, b) in complete for b in batches)]
    runs = {key: [run for _, (r, _) in sorted(v.items()) for run in r] for key, v in merged.items()}
    seconds = {key: float(np.average([sec for _, (_, sec) in sorted(v.items())],
                                     weights=[len(r) for _, (r, _) in sorted(v.items())]))
               for key, v in merged.items()}
    seeds = len(runs[(kept[0].name, batches[0], methods[0])])
    rows, summary = score(runs, seconds, kept, batches, methods, seeds)
    first_seeds = sorted({f for v in seed_sets.values() for f, _ in v})
    path = write_results(out, {"seeds": seeds, "pooled_from": names, "first_seeds": first_seeds, "evals": EVALS,
                               "rows": rows, "summary": {str(k): v for k, v in summary.items()}})
    print(f"\nwrote {path}")


def _runs_path(out: str) -> str:
    return os.path.join(RESULTS, f"{out}_runs.json")


def _save_runs(out: str, runs: dict) -> None:
    """Every run's (value, configuration) pairs; non-finite values as null."""
    payload = [{"problem": p, "batch": b, "method": m, "seconds_per_run": entry["seconds_per_run"],
                "first_seed": entry.get("first_seed", 0),
                "runs": [[[v if np.isfinite(v) else None, k if isinstance(k, str) else repr(k)] for v, k in run] for run in entry["runs"]]}
               for (p, b, m), entry in sorted(runs.items())]
    with open(_runs_path(out), "w") as f:
        json.dump(payload, f)


def _load_runs(out: str) -> dict:
    if not os.path.exists(_runs_path(out)):
        return {}
    with open(_runs_path(out)) as f:
        payload = json.load(f)
    return {(e["problem"], e["batch"], e["method"]): {
        "seconds_per_run": e["seconds_per_run"], "first_seed": e.get("first_seed", 0),
        "runs": [[(math.inf if v is None else float(v), k) for v, k in run] for run in e["runs"]]}
        for e in payload}


if __name__ == "__main__":
    main()
