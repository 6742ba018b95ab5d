"""What a user waits for: jaxhpo's entry points end to end, each in a fresh process, cold and warm.

Every row runs in a new Python process. *Cold* starts with an empty
compilation cache (a fresh ``XDG_CACHE_HOME``); *warm* is a second process
on the cache the cold one left. Peers run in their own fresh processes in
the same invocation. Programs are counted with ``jax.monitoring`` (built:
compiled by XLA or loaded from the persistent cache), and printed beside the
times.

Rows (issue 14):

1. ``first_trial``: ``Study(space)`` with the default strategy on a 6-d
   space; seconds from after ``import jaxhpo`` to the first trial's params;
2. ``study60``: 60-trial default ``Study`` on Hartmann6 (objective in NumPy),
   end to end, against Optuna's GPSampler and TPE; ``study60_by_hand``: the
   same study driven by ``ask``/``tell`` by hand, with no budget given;
3. ``searchcv``: ``SearchCV`` 20 trials, Pipeline(StandardScaler, SVC) on
   breast cancer, against ``RandomizedSearchCV`` and scikit-optimize's
   ``BayesSearchCV``;
4. ``load100``: ``Study.load`` of a 100-trial ``bayes()`` journal;
5. ``population3``: ``population.search``, 3 rounds of 8, compiles counted;
6. ``minimize_twice``: ``minimize(bayes())``, 40 rounds, called twice with
   fresh identical lambdas (the second call's time);
7. ``settings_sweep``: three 20-trial ``Study`` runs of ``bayes(acquisition="ucb", beta=b)``,
   b = 0.5, 2, 8, on Hartmann6 in one process (a sweep of a numeric setting), against three
   20-trial Optuna GPSampler studies; the GP compiles for the first only;
8. ``gp_program``: the default ``Study``'s GP ask program (6-d, 64 rows)
   alone, built as a ``Study`` builds it (its two stages, the fit and the
   proposal, each on a thread): the wall time until it is ready, then trace,
   lower and XLA seconds summed over the stages, XLA per stage, one ask.
   On a study's first buffer (64 rows) its XLA options favour compile speed
   (``compile_options.study_ask_options``); ``gp_program_128``: the same on
   128 rows, the program a study grows into, compiled for run speed.

``--only`` replaces those rows in ``results/latency.json`` and keeps the others; ``--suffix _gpu``
writes ``results/latency_gpu.json`` instead (``benchmarks/gpu_run.sh``).

    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_latency.py
    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_latency.py --only first_trial study60

Writes ``benchmarks/results/latency.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

EVALS = 60


# ------------------------------------------------------------------ jobs (each runs in its own process)
def _count_compiles() -> dict:
    import jax

    # JAX records backend_compile_duration for every program it builds, compiled or loaded from the
    # persistent cache (which also records cache_hits): "programs" counts both
    counts = {"programs": 0, "cache_hits": 0, "build_s": 0.0, "executables_loaded": 0}

    def on_duration(event: str, duration: float, **_: object) -> None:
        if event == "/jax/core/compile/backend_compile_duration":
            counts["programs"] += 1
            counts["build_s"] += duration

    def on_event(event: str, **_: object) -> None:
        if event == "/jax/compilation_cache/cache_hits":
            counts["cache_hits"] += 1
        if event == "/jaxhpo/executable_cache/hits":  # loaded without tracing (jaxhpo.executable_cache)
            counts["executables_loaded"] += 1

    jax.monitoring.register_event_duration_secs_listener(on_duration)
    jax.monitoring.register_event_listener(on_event)
    return counts


def _space6():
    import jaxhpo

    return jaxhpo.Space({f"x{i}": jaxhpo.Float(0.0, 1.0) for i in range(6)})


def _hartmann6_numpy():
    import numpy as np

    from jaxhpo.testing.functions import HARTMANN6_NUMPY

    return lambda params: float(HARTMANN6_NUMPY(np.array([params[f"x{i}"] for i in range(6)])))


def job_first_trial() -> dict:
    t0 = time.perf_counter()
    import jaxhpo

    counts = _count_compiles()
    t1 = time.perf_counter()
    study = jaxhpo.Study(_space6(), seed=0)
    [trial] = study.ask()
    t2 = time.perf_counter()
    return {"import_s": t1 - t0, "seconds": t2 - t1, **counts, "params": trial.params}


def job_study60() -> dict:
    import jaxhpo

    counts = _count_compiles()
    fn = _hartmann6_numpy()
    t0 = time.perf_counter()
    study = jaxhpo.Study(_space6(), seed=0)
    study.optimize(fn, n_trials=EVALS, progress=False)
    return {"seconds": time.perf_counter() - t0, "best": study.best_value, **counts}


def job_study60_by_hand() -> dict:
    import jaxhpo

    counts = _count_compiles()
    fn = _hartmann6_numpy()
    t0 = time.perf_counter()
    study = jaxhpo.Study(_space6(), seed=0)
    for _ in range(EVALS):  # ask/tell by hand, no budget given (Optuna's ask/tell habit)
        [trial] = study.ask()
        study.tell(trial, fn(trial.params))
    return {"seconds": time.perf_counter() - t0, "best": study.best_value, **counts}


def _optuna_study60(sampler_name: str) -> dict:
    import optuna

    from jaxhpo.testing.functions import HARTMANN6_NUMPY
    import numpy as np

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    t0 = time.perf_counter()
    if sampler_name == "gp":
        sampler = optuna.samplers.GPSampler(seed=0, n_startup_trials=10)
    else:
        sampler = optuna.samplers.TPESampler(seed=0)
    study = optuna.create_study(sampler=sampler)
    study.optimize(lambda t: float(HARTMANN6_NUMPY(np.array([t.suggest_float(f"x{i}", 0.0, 1.0) for i in range(6)]))),
                   n_trials=EVALS)
    return {"seconds": time.perf_counter() - t0, "best": study.best_value}


def job_optuna_gp() -> dict:
    return _optuna_study60("gp")


def job_optuna_tpe() -> dict:
    return _optuna_study60("tpe")


def _svc_problem():
    from sklearn.datasets import load_breast_cancer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    x, y = load_breast_cancer(return_X_y=True)
    return make_pipeline(StandardScaler(), SVC()), x, y


def job_searchcv() -> dict:
    import jaxhpo
    from jaxhpo.sklearn import SearchCV

    counts = _count_compiles()
    est, x, y = _svc_problem()
    t0 = time.perf_counter()
    space = {"svc__C": jaxhpo.Float(1e-2, 1e3, log=True), "svc__gamma": jaxhpo.Float(1e-4, 1e0, log=True)}
    search = SearchCV(est, space, n_trials=20, cv=3, random_state=0).fit(x, y)
    return {"seconds": time.perf_counter() - t0, "best": search.best_score_, **counts}


def job_randomized() -> dict:
    from scipy.stats import loguniform
    from sklearn.model_selection import RandomizedSearchCV

    est, x, y = _svc_problem()
    t0 = time.perf_counter()
    dist = {"svc__C": loguniform(1e-2, 1e3), "svc__gamma": loguniform(1e-4, 1e0)}
    search = RandomizedSearchCV(est, dist, n_iter=20, cv=3, random_state=0).fit(x, y)
    return {"seconds": time.perf_counter() - t0, "best": search.best_score_}


def job_bayessearch() -> dict:
    from skopt import BayesSearchCV
    from skopt.space import Real

    est, x, y = _svc_problem()
    t0 = time.perf_counter()
    space = {"svc__C": Real(1e-2, 1e3, prior="log-uniform"), "svc__gamma": Real(1e-4, 1e0, prior="log-uniform")}
    search = BayesSearchCV(est, space, n_iter=20, cv=3, random_state=0).fit(x, y)
    return {"seconds": time.perf_counter() - t0, "best": search.best_score_}


def _journal_path() -> str:
    return os.path.join(os.environ["JAXHPO_BENCH_TMP"], "study100.jsonl")


def job_write_journal() -> dict:
    import jaxhpo

    study = jaxhpo.Study(_space6(), seed=0, storage=_journal_path())
    study.optimize(_hartmann6_numpy(), n_trials=100, progress=False)
    study.close()
    return {"trials": len(study.trials)}


def job_load100() -> dict:
    import jaxhpo

    counts = _count_compiles()
    t0 = time.perf_counter()
    study = jaxhpo.Study.load(_journal_path())
    return {"seconds": time.perf_counter() - t0, "trials": len(study.trials), **counts}


def job_population3() -> dict:
    import jax.numpy as jnp
    import numpy as np
    from sklearn.datasets import load_digits

    import jaxhpo
    from jaxhpo import population

    counts = _count_compiles()
    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32)
    xt, yt, xv, yv = x[:1200], y[:1200], x[1200:], y[1200:]
    space = jaxhpo.Space({
        "learning_rate": jaxhpo.Float(1e-4, 3e-2, log=True),
        "batch_size": jaxhpo.Int(16, 128, log=True),
        "epochs": jaxhpo.Int(2, 8),
    })
    t0 = time.perf_counter()
    population.search(space, None, lambda h: population.MLP(hidden=(32,), outputs=10),
                      jnp.asarray(xt), jnp.asarray(yt), jnp.asarray(xv), jnp.asarray(yv),
                      rounds=3, batch_size=8, seed=0, progress=False, mesh=None)
    return {"seconds": time.perf_counter() - t0, **counts}


def job_minimize_twice() -> dict:
    import jax

    import jaxhpo
    from jaxhpo.testing.functions import HARTMANN6

    counts = _count_compiles()
    times = []
    for _ in range(2):
        objective = lambda p: HARTMANN6.objective(p)  # noqa: E731 - a fresh lambda each time
        t0 = time.perf_counter()
        jaxhpo.minimize(objective, HARTMANN6.space, jaxhpo.strategies.bayes(), num_rounds=40, key=jax.random.key(0))
        times.append(time.perf_counter() - t0)
        if not times[1:]:
            first = dict(counts)
    return {"seconds": times[1], "first_s": times[0], "programs": counts["programs"] - first["programs"],
            "cache_hits": counts["cache_hits"] - first["cache_hits"], "build_s": counts["build_s"]}


def job_settings_sweep() -> dict:
    import jaxhpo

    counts = _count_compiles()
    fn = _hartmann6_numpy()
    t0 = time.perf_counter()
    per_study = []
    for beta in (0.5, 2.0, 8.0):
        start = time.perf_counter()
        study = jaxhpo.Study(_space6(), jaxhpo.strategies.bayes(acquisition="ucb", beta=beta), seed=0)
        study.optimize(fn, n_trials=20, progress=False)
        per_study.append(round(time.perf_counter() - start, 3))
    return {"seconds": time.perf_counter() - t0, "per_study_s": per_study, **counts}


def job_optuna_gp_sweep() -> dict:
    import numpy as np
    import optuna

    from jaxhpo.testing.functions import HARTMANN6_NUMPY

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    t0 = time.perf_counter()
    for seed in range(3):
        study = optuna.create_study(sampler=optuna.samplers.GPSampler(seed=seed, n_startup_trials=10))
        study.optimize(lambda t: float(HARTMANN6_NUMPY(np.array([t.suggest_float(f"x{i}", 0.0, 1.0)
                                                                 for i in range(6)]))), n_trials=20)
    return {"seconds": time.perf_counter() - t0}


def job_gp_program() -> dict:
    return _gp_program(64)


def job_gp_program_128() -> dict:
    return _gp_program(128)


def _gp_program(capacity: int) -> dict:
    import threading

    import jax
    import jax.numpy as jnp

    import jaxhpo
    from jaxhpo.keys import seed_array
    from jaxhpo.study_programs import study_programs

    counts = _count_compiles()
    stages: dict = {}  # per compile thread: trace, lower and XLA seconds (JAX's own timings)
    names = {"/jax/core/compile/jaxpr_trace_duration": "trace_s",
             "/jax/core/compile/jaxpr_to_mlir_module_duration": "lower_s",
             "/jax/core/compile/backend_compile_duration": "compile_s"}

    def on_duration(event: str, duration: float, **_: object) -> None:
        if event in names and threading.current_thread().name.startswith("jaxhpo-compile"):
            stage = stages.setdefault(threading.current_thread().ident, {})
            stage[names[event]] = stage.get(names[event], 0.0) + duration

    jax.monitoring.register_event_duration_secs_listener(on_duration)
    jaxhpo.compile_cache.ensure()  # as Study does: JAX's persistent cache in the (empty, when cold) cache directory
    strategy = jaxhpo.strategies.bayes()
    program = study_programs(strategy).ask
    space = _space6()
    state = strategy.init(jax.random.key(0), space, capacity)
    x = jax.random.uniform(jax.random.key(1), (20, 6), state.history.x.dtype)
    state = strategy.tell(state, x, jnp.sum((x - 0.3) ** 2, axis=1))
    args = (seed_array(2), jnp.int32(0), state, 1)
    t0 = time.perf_counter()
    program.prepare(*args)  # as a Study does behind its first trials: every stage on its own thread
    while not program.ready(*args):
        time.sleep(0.005)
    t1 = time.perf_counter()
    jax.block_until_ready(program(*args))
    t2 = time.perf_counter()
    per_stage = sorted(stages.values(), key=lambda st: -st.get("compile_s", 0.0))
    total = lambda key: sum(st.get(key, 0.0) for st in per_stage)  # noqa: E731
    return {"seconds": t1 - t0, "trace_s": total("trace_s"), "lower_s": total("lower_s"),
            "compile_s": total("compile_s"), "stages": per_stage, "first_ask_s": t2 - t1, **counts}


JOBS = {name[4:]: fn for name, fn in globals().items() if name.startswith("job_")}

# row -> (jaxhpo job, peers, setup job)
ROWS = {
    "first_trial": ("first_trial", [], None),
    "study60": ("study60", ["optuna_gp", "optuna_tpe"], None),
    "study60_by_hand": ("study60_by_hand", [], None),
    "searchcv": ("searchcv", ["randomized", "bayessearch"], None),
    "load100": ("load100", [], "write_journal"),
    "population3": ("population3", [], None),
    "minimize_twice": ("minimize_twice", [], None),
    "settings_sweep": ("settings_sweep", ["optuna_gp_sweep"], None),
    "gp_program": ("gp_program", [], None),
    "gp_program_128": ("gp_program_128", [], None),
}


# ------------------------------------------------------------------ runner
def _run_job(name: str, cache_home: str, tmp: str) -> dict:
    env = dict(os.environ, XDG_CACHE_HOME=cache_home, JAXHPO_BENCH_TMP=tmp, OPENBLAS_NUM_THREADS="1")
    env.pop("JAXHPO_CACHE_DIR", None)
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, __file__, "--job", name], env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}",
                "process_s": wall}
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["process_s"] = wall
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", choices=sorted(ROWS), help="rows to run (default: all)")
    parser.add_argument("--suffix", default="", help="results go to results/latency<SUFFIX>.json (`_gpu` on a GPU)")
    parser.add_argument("--job", choices=sorted(JOBS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.job:
        print(json.dumps(JOBS[args.job](), default=str))
        return

    from benchmarks.common import write_results

    rows = {}
    for row in args.only or list(ROWS):
        job, peers, setup = ROWS[row]
        tmp = tempfile.mkdtemp(prefix=f"jaxhpo-bench-{row}-")
        try:
            if setup:
                _run_job(setup, os.path.join(tmp, "setup-cache"), tmp)
            cache = os.path.join(tmp, "cache")
            entry = {"cold": _run_job(job, cache, tmp), "warm": _run_job(job, cache, tmp)}
            for peer in peers:
                entry[peer] = _run_job(peer, os.path.join(tmp, "peer-cache"), tmp)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        rows[row] = entry
        _print_row(row, entry)
    previous = os.path.join(ROOT, "benchmarks", "results", f"latency{args.suffix}.json")
    if args.only and os.path.exists(previous):  # the rows not run this time stay as they were
        with open(previous) as f:
            rows = {**json.load(f).get("rows", {}), **rows}
    path = write_results(f"latency{args.suffix}", {"rows": rows})
    print(f"\nwrote {path}")


def _fmt(result: dict) -> str:
    if "error" in result:
        return f"error: {result['error'][:60]}"
    text = f"{result['seconds']:7.2f} s"
    if "programs" in result:
        compiled = result["programs"] - result["cache_hits"]
        text += f"  ({result['programs']} programs: {compiled} compiled, {result['cache_hits']} from the cache"
        text += f"; {result.get('executables_loaded', 0)} executables loaded untraced)"
    if "per_study_s" in result:
        text += f"  [per study {', '.join(f'{t:.2f}' for t in result['per_study_s'])} s]"
    if "first_s" in result:
        text += f"  [first call {result['first_s']:.2f} s]"
    if "compile_s" in result:
        text += (f"  [summed over stages: trace {result['trace_s']:.2f} s, lower {result['lower_s']:.2f} s, "
                 f"XLA {result['compile_s']:.2f} s"
                 + "".join(f"; stage {i + 1}: XLA {st.get('compile_s', 0.0):.2f} s"
                           for i, st in enumerate(result.get("stages", [])))
                 + f"; first ask {1e3 * result['first_ask_s']:.0f} ms]")
    return text


def _print_row(row: str, entry: dict) -> None:
    print(f"\n{row}")
    for name, result in entry.items():
        print(f"  {name:12s} {_fmt(result)}")


if __name__ == "__main__":
    main()
