"""The flagship: tune a population of LeNet-style CNNs on digits with bayes() batches, fuse it, beat scikit-learn.

For each of 3 seeded splits of load_digits (8x8 images; 60 % train, 20 %
validation, 20 % test):

1. ``population.search``: 3 rounds, each asking ``bayes()`` for 8 settings of
   a LeNet-style CNN (learning rate, batch size, epochs, weight decay, dropout,
   one-pixel shift augmentation, width, activation) and training the batch as
   one population in one compiled call; the validation loss is the objective
   (scored every 5th epoch and after each member's last).
2. Fusion on the validation predictions: greedy selection over the CNNs
   (the headline row), and a pooled stacking of the CNNs with three
   scikit-learn models (SVC, logistic regression, k-nearest neighbours; fit on
   train for the validation rows, refit on train + validation for the test).
3. Baselines a scikit-learn user would run, fit on train + validation:
   ``StackingClassifier`` (RF + SVC + LR), an SVC tuned by ``GridSearchCV``,
   ``HistGradientBoostingClassifier`` and ``MLPClassifier``.

The table shows medians over the splits of test accuracy, test log loss and
the wall time each row took per split; plots and ``report.html`` (the table
and the figures in one file) go to ``flagship_out/``.

    python examples/flagship.py              # the README's main job
    python examples/flagship.py --splits 1   # one split
    python examples/flagship.py --quick      # a smoke run (one split, 2 rounds of 4, 1-3 epochs)
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import time
import warnings

from jaxhpo import population

population.use_cpu_cores()  # before JAX first runs: members are spread over the CPU cores

import jax  # noqa: E402
import numpy as np  # noqa: E402

from sklearn.base import clone  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier, StackingClassifier  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.model_selection import GridSearchCV, train_test_split  # noqa: E402
from sklearn.neighbors import KNeighborsClassifier  # noqa: E402
from sklearn.neural_network import MLPClassifier  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.svm import SVC  # noqa: E402

import jaxhpo  # noqa: E402
from jaxhpo import ensemble, metrics, plots, report  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "flagship_out")
ACTIVATIONS = (jax.nn.relu, jax.nn.tanh, jax.nn.gelu)
HEADLINE = "jaxhpo: CNNs fused (greedy selection)"
warnings.filterwarnings("ignore", category=FutureWarning)  # scikit-learn 1.9: SVC(probability=True)

SPACE = jaxhpo.Space({
    "learning_rate": jaxhpo.Float(3e-4, 3e-2, log=True),
    "weight_decay": jaxhpo.Float(1e-5, 1e-1, log=True),
    "batch_size": jaxhpo.Int(16, 128, log=True),
    "epochs": jaxhpo.Int(5, 30),
    "dropout": jaxhpo.Float(0.0, 0.5),
    "shift": jaxhpo.Float(0.0, 1.0),
    "width": jaxhpo.Float(0.25, 1.0),
    "activation": jaxhpo.Categorical(["relu", "tanh", "gelu"]),
})


def model_fn(h):
    return population.LeNet(image_shape=(8, 8, 1), channels=(16, 32), hidden=128, outputs=10, width=h["width"],
                            activation=h["activation"], activations=ACTIVATIONS, dropout=h["dropout"], shift=h["shift"])


def split(seed: int):
    """load_digits scaled to [0, 1], split 60/20/20 (stratified) by ``seed``."""
    x, y = load_digits(return_X_y=True)
    x, y = (x / 16.0).astype(np.float32), y.astype(np.int32)
    x_rest, x_test, y_rest, y_test = train_test_split(x, y, test_size=0.2, random_state=seed, stratify=y)
    x_train, x_val, y_train, y_val = train_test_split(x_rest, y_rest, test_size=0.25, random_state=seed,
                                                      stratify=y_rest)
    return x_train, y_train, x_val, y_val, x_test, y_test


def fusion_models(seed: int) -> dict:
    """The scikit-learn models joined to the CNNs in the pooled stacking."""
    return {"svc": SVC(C=10, probability=True, random_state=seed),
            "lr": LogisticRegression(C=1.0, max_iter=3000),
            "knn": KNeighborsClassifier(5, weights="distance")}


def baselines(seed: int) -> dict:
    """What a scikit-learn user would run on digits, each fit on train + validation."""

    class TunedSVC:  # C and gamma by 3-fold grid search on accuracy, then one refit with Platt probabilities
        def fit(self, x, y):
            grid = GridSearchCV(SVC(), {"C": [1, 3, 10, 30], "gamma": ["scale", 0.01, 0.03, 0.1]}, cv=3, n_jobs=2)
            params = grid.fit(x, y).best_params_
            self.model = SVC(probability=True, random_state=seed, **params).fit(x, y)
            return self

        def predict_proba(self, x):
            return self.model.predict_proba(x)

    return {
        "sklearn StackingClassifier (RF+SVC+LR)": StackingClassifier(
            [("rf", RandomForestClassifier(n_estimators=200, random_state=seed)),
             ("svc", make_pipeline(StandardScaler(), SVC(probability=True, random_state=seed))),
             ("lr", make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000)))],
            final_estimator=LogisticRegression(max_iter=3000), cv=5, n_jobs=2),  # its models side by side
        "sklearn SVC, tuned C and gamma": TunedSVC(),
        "sklearn HistGradientBoosting": HistGradientBoostingClassifier(random_state=seed),
        "sklearn MLPClassifier": MLPClassifier(hidden_layer_sizes=(256,), max_iter=500, random_state=seed),
    }


def scores(y, probs) -> tuple[float, float]:
    probs = np.asarray(probs, np.float64)
    return float(metrics.accuracy(y, np.argmax(probs, -1))), float(metrics.log_loss(y, probs))


def one_split(seed: int, rounds: int, batch: int, quick: bool) -> tuple[dict, dict]:
    """Runs the whole workflow on one split; returns ``{row: (accuracy, log loss, seconds)}`` and artifacts."""
    x_train, y_train, x_val, y_val, x_test, y_test = split(seed)
    rows = {}
    space = SPACE if not quick else jaxhpo.Space({**SPACE.params, "epochs": jaxhpo.Int(1, 3)})
    t0 = time.perf_counter()
    # validation_freq=5: the members are scored every 5th epoch and at their last (the objective and the
    # predictions fused), not after every epoch: the same members and scores for less work (benchmarks/README.md)
    result = population.search(space, jaxhpo.strategies.bayes(), model_fn, x_train, y_train, x_val, y_val,
                               rounds=rounds, batch_size=batch, seed=seed, progress=False, validation_freq=5)
    test_cnn = np.concatenate([np.asarray(population.predict(model_fn, r.state, x_test)) for r in result.rounds])
    val_cnn = result.val_predictions
    t_search = time.perf_counter() - t0
    best = int(np.argmin(result.val_loss))
    rows["jaxhpo: best single CNN (by validation)"] = (*scores(y_test, test_cnn[best]), t_search)

    t0 = time.perf_counter()
    greedy = ensemble.greedy_selection(val_cnn, y_val, size=50, bags=20)
    rows[HEADLINE] = (*scores(y_test, greedy.predict_proba(test_cnn)), t_search + time.perf_counter() - t0)

    t0 = time.perf_counter()
    val_sk, test_sk = [], []
    for model in fusion_models(seed).values():
        val_sk.append(clone(model).fit(x_train, y_train).predict_proba(x_val))
        test_sk.append(clone(model).fit(np.concatenate([x_train, x_val]), np.concatenate([y_train, y_val]))
                       .predict_proba(x_test))
    groups = [0] * len(val_cnn) + list(range(1, len(val_sk) + 1))  # the CNNs pooled into one block
    stack = ensemble.fit_stacking(np.concatenate([val_cnn, np.stack(val_sk)]), y_val, features="probs",
                                  groups=groups, l2="auto")
    probs = stack.predict_proba(np.concatenate([test_cnn, np.stack(test_sk)]))
    rows["jaxhpo: CNNs + SVC/LR/kNN (pooled stacking)"] = (*scores(y_test, probs),
                                                           t_search + time.perf_counter() - t0)

    x_rest, y_rest = np.concatenate([x_train, x_val]), np.concatenate([y_train, y_val])
    for name, model in baselines(seed).items():
        t0 = time.perf_counter()
        probs = model.fit(x_rest, y_rest).predict_proba(x_test)
        rows[name] = (*scores(y_test, probs), time.perf_counter() - t0)
    return rows, {"result": result, "greedy": greedy, "best_params": result.best_params}


def figures(art: dict, out: str) -> dict:
    """Draws the plots of split 0 into ``out``; returns ``{caption: PNG path}`` for the report."""
    result = art["result"]
    drawn = {
        "search history": (plots.history, result.study, "history.png"),
        "parallel coordinates": (plots.parallel_coordinates, result.study, "parallel_coordinates.png"),
        "hyperparameter importance": (plots.importance_plot, result.study, "importance.png"),
        "learning curves, last round": (plots.learning_curves, result.rounds[-1], "learning_curves.png"),
        "greedy ensemble weights": (plots.ensemble_weights, art["greedy"], "ensemble_weights.png"),
    }
    for plot, data, name in drawn.values():
        plot(data, os.path.join(out, name))
    return {caption: os.path.join(out, name) for caption, (_, _, name) in drawn.items()}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--splits", type=int, default=3, help="seeded splits (the table shows medians over them)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: one split, 2 rounds of 4, 1-3 epochs")
    parser.add_argument("--out", default=OUT, help=f"where plots, report.html and results.json go (default {OUT})")
    args = parser.parse_args(argv)
    out = args.out
    if args.splits < 1:
        parser.error(f"--splits must be at least 1, got {args.splits}")
    start = time.perf_counter()
    splits, (rounds, batch) = (1, (2, 4)) if args.quick else (args.splits, (3, 8))
    per_split, art0 = [], None
    for seed in range(splits):
        rows, art = one_split(seed, rounds, batch, args.quick)
        per_split.append(rows)
        art0 = art0 or art
        print(f"split {seed}: " + ", ".join(f"{n.split(':')[-1].strip()} {a:.4f}" for n, (a, _, _) in rows.items()
                                            if n == HEADLINE or n.startswith("sklearn")), flush=True)
    names = list(per_split[0])
    median = {n: tuple(float(np.median([r[n][i] for r in per_split])) for i in range(3)) for n in names}
    wall = time.perf_counter() - start

    title = f"test split (360 digits), median of {splits} split{'s' if splits > 1 else ''}"
    print(f"\n{rounds * batch} LeNet CNNs per split, tuned by bayes() in {rounds} rounds of {batch} "
          f"(one compiled population per round); best of split 0: {art0['best_params']}\n")
    print(f"{title:<46} {'accuracy':>9} {'log loss':>9} {'s/split':>8}")
    for n in names:
        acc, ll, secs = median[n]
        print(f"{n:<46} {acc:9.4f} {ll:9.4f} {secs:8.1f}")
    baseline = [n for n in names if n.startswith("sklearn")]
    wins = {metric: all(median[HEADLINE][i] > median[b][i] if i == 0 else median[HEADLINE][i] < median[b][i]
                        for b in baseline) for i, metric in enumerate(("accuracy", "log loss"))}
    verdict = (f"{HEADLINE.split(': ')[1]} beats every scikit-learn baseline in accuracy: "
               f"{'yes' if wins['accuracy'] else 'no'}, in log loss: {'yes' if wins['log loss'] else 'no'}")
    print(f"\n{verdict}")

    os.makedirs(out, exist_ok=True)
    figs = figures(art0, out)
    table = report.Table(title, ["model", "accuracy", "log loss", "seconds per split"],
                         [[n, *median[n]] for n in names])
    per = report.Table("accuracy per split", ["model"] + [f"split {s}" for s in range(splits)],
                       [[n] + [r[n][0] for r in per_split] for n in names])
    notes = [verdict, f"{splits} split{'s' if splits > 1 else ''} in {wall:.0f} s on {os.cpu_count()} CPU cores "
                      f"(after imports, before these figures); plots from split 0."]
    path = report.write_html(os.path.join(out, "report.html"), "jaxhpo flagship: LeNet population on digits",
                             tables=[table, per], figures=figs, notes=notes)
    results = {"splits": splits, "rounds": rounds, "batch": batch, "wall_s": wall, "median": median,
               "per_split": per_split, "wins": wins}
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    print(f"plots, results.json and {os.path.basename(path)} in {out}")
    print(f"wall time {time.perf_counter() - start:.0f} s after imports (the splits {wall:.0f} s, then figures "
          f"and report)")
    return results


if __name__ == "__main__":
    # Python's cyclic garbage collector walks every live object in each full collection and once more
    # at exit, the objects the imports made among them. Those live to the end: frozen, no collection
    # walks them; frozen again at the end, the exit skips its collection (everything is written and
    # closed by then). What it saves: benchmarks/README.md, the flagship section.
    gc.freeze()
    main()
    gc.freeze()
