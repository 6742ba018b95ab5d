"""Which batch acquisition to use for ``population.search``: rounds of 8-16 members that are then fused (issue #17).

On load_digits (8x8 images scaled to [0, 1], seeded 60/20/20 splits), a
population of MLPs (one hidden layer of up to 128 units; tuned: learning
rate, weight decay, SGD batch size, epochs, width, dropout, activation) is
searched in rounds, each round one ``bayes()`` batch trained as one
population, with: the kriging believer (``bayes(batch="believer")``),
Thompson batches (``bayes(acquisition="thompson")``), hybrid batches
(``bayes(batch="hybrid")``: the acquisition's pick, then Thompson draws;
``population.search``'s default, and ``bayes()``'s on this mixed space) and
random search. For each run: distinct configurations, the spread of each round's batch (mean
pairwise distance in the unit cube), the best single member on the test
split (chosen by validation loss), and the members fused by greedy selection
on the validation predictions. Medians over seeds; peers in the same run.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/bench_population_rounds.py [--seeds 20] [--strategies ...]
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples"))

from jaxhpo import population  # noqa: E402

population.use_cpu_cores()

import jax  # noqa: E402
import numpy as np  # noqa: E402

import jaxhpo  # noqa: E402
from jaxhpo import ensemble, metrics  # noqa: E402
from common import write_results  # noqa: E402
from flagship import split  # noqa: E402  (the flagship's seeded 60/20/20 digits split)

SPACE = jaxhpo.Space({
    "learning_rate": jaxhpo.Float(3e-4, 3e-2, log=True),
    "weight_decay": jaxhpo.Float(1e-5, 1e-1, log=True),
    "batch_size": jaxhpo.Int(16, 128, log=True),
    "epochs": jaxhpo.Int(5, 20),
    "width": jaxhpo.Int(16, 128),
    "dropout": jaxhpo.Float(0.0, 0.5),
    "activation": jaxhpo.Categorical(["relu", "gelu", "tanh"]),
})
STRATEGIES = {
    "bayes (kriging believer)": lambda: jaxhpo.strategies.bayes(batch="believer"),
    "bayes (Thompson batches)": lambda: jaxhpo.strategies.bayes(acquisition="thompson"),
    "bayes (hybrid batches)": lambda: jaxhpo.strategies.bayes(batch="hybrid"),
    "random": lambda: jaxhpo.strategies.random(),
}
# --continuous: floats only (width 64, relu, 12 epochs of SGD batches of 32 for every member)
CONTINUOUS_SPACE = jaxhpo.Space({
    "learning_rate": jaxhpo.Float(3e-4, 3e-2, log=True),
    "weight_decay": jaxhpo.Float(1e-5, 1e-1, log=True),
    "dropout": jaxhpo.Float(0.0, 0.5),
})
SETTINGS = [(3, 8), (2, 16), (2, 32)]  # (rounds, members per round)


def model_fn(h):
    return population.MLP(hidden=(128,), outputs=10, width=h.get("width", 64), activation=h.get("activation", 0),
                          activations=(jax.nn.relu, jax.nn.gelu, jax.nn.tanh), dropout=h["dropout"])


def spread(x: np.ndarray) -> float:
    """Mean pairwise Euclidean distance of a batch's unit-cube points."""
    pairs = list(itertools.combinations(range(len(x)), 2))
    return float(np.mean([np.linalg.norm(x[i] - x[j]) for i, j in pairs]))


def one_run(name: str, seed: int, rounds: int, batch: int, continuous: bool = False) -> dict:
    x_train, y_train, x_val, y_val, x_test, y_test = split(seed)
    start = time.perf_counter()
    fixed = dict(epochs=12, sgd_batch_size=32) if continuous else {}
    result = population.search(CONTINUOUS_SPACE if continuous else SPACE, STRATEGIES[name](), model_fn, x_train,
                               y_train, x_val, y_val, rounds=rounds, batch_size=batch, seed=seed, progress=False,
                               **fixed)
    seconds = time.perf_counter() - start
    trials = result.study.trials
    x = np.asarray([t.x for t in trials])
    distinct = len({tuple(sorted(t.params.items())) for t in trials})
    test = np.concatenate([np.asarray(population.predict(model_fn, r.state, x_test)) for r in result.rounds])
    best = int(np.argmin(result.val_loss))
    greedy = ensemble.greedy_selection(result.val_predictions, y_val, size=50, bags=20)
    fused = np.asarray(greedy.predict_proba(test), np.float64)
    return {
        "distinct": distinct,
        "members": len(trials),
        "spread": float(np.mean([spread(x[r * batch:(r + 1) * batch]) for r in range(rounds)])),
        "best_single_accuracy": float(metrics.accuracy(y_test, np.argmax(test[best], -1))),
        "fused_accuracy": float(metrics.accuracy(y_test, np.argmax(fused, -1))),
        "fused_log_loss": float(metrics.log_loss(y_test, fused)),
        "seconds": seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--strategies", default=",".join(STRATEGIES),
                        help=f"comma-separated, of: {', '.join(STRATEGIES)} (default: all)")
    parser.add_argument("--continuous", action="store_true",
                        help="a space of floats only (learning rate, weight decay, dropout); writes "
                             "results/population_rounds_continuous.json")
    args = parser.parse_args()
    names = args.strategies.split(",")
    unknown = sorted(set(names) - set(STRATEGIES))
    if unknown:
        parser.error(f"--strategies: unknown {unknown}; known: {list(STRATEGIES)}")
    rows = []
    print(f"{'rounds x members':<17} {'strategy':<26} {'distinct':>9} {'spread':>7} {'best acc':>9} "
          f"{'fused acc':>10} {'fused nll':>10} {'s/run':>6}   (medians over {args.seeds} seeds)")
    for rounds, batch in SETTINGS:
        for name in names:
            runs = [one_run(name, seed, rounds, batch, args.continuous) for seed in range(args.seeds)]
            med = {k: float(np.median([r[k] for r in runs])) for k in runs[0]}
            mean = {k: float(np.mean([r[k] for r in runs])) for k in runs[0]}
            rows.append({"rounds": rounds, "batch": batch, "strategy": name, "median": med, "mean": mean,
                         "runs": runs})
            print(f"{f'{rounds} x {batch}':<17} {name:<26} {med['distinct']:>5.0f}/{rounds * batch:<3} "
                  f"{med['spread']:7.3f} {med['best_single_accuracy']:9.4f} {med['fused_accuracy']:10.4f} "
                  f"{med['fused_log_loss']:10.4f} {med['seconds']:6.1f}   (means: fused acc "
                  f"{mean['fused_accuracy']:.4f}, nll {mean['fused_log_loss']:.4f})", flush=True)
    out = "population_rounds_continuous" if args.continuous else "population_rounds"
    print("wrote", write_results(out, {"seeds": args.seeds, "rows": rows}))


if __name__ == "__main__":
    main()
