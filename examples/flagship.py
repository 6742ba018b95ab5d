"""The flagship: tune a population of MLPs on digits with bayes() batches, then fuse the population.

1. load_digits, standardized, split 60/20/20 into train / validation / test.
2. ``population.search``: each of 3 rounds asks ``bayes()`` for 16 settings
   (learning rate, batch size, epochs, weight decay, width, activation) and
   trains the whole batch as one population in one compiled call.
3. Fusion on the validation predictions of every member trained: learned
   weights and greedy selection (jaxhpo.ensemble).
4. Table on the test split: best single member, fused models, and a
   scikit-learn baseline (StackingClassifier of RF, SVC and logistic
   regression, fit on train + validation); wall time; plots in ``flagship_out/``.

    python examples/flagship.py            # the README's main job (a few minutes on 2 CPU cores)
    python examples/flagship.py --quick    # a smoke run
"""

from __future__ import annotations

import os
import sys
import warnings
import time

from jaxhpo import population

population.use_cpu_cores()  # before JAX first runs: members are spread over the CPU cores

import jax  # noqa: E402
import numpy as np  # noqa: E402

import jaxhpo  # noqa: E402
from jaxhpo import ensemble, metrics, plots  # noqa: E402

ACTIVATIONS = (jax.nn.relu, jax.nn.tanh, jax.nn.gelu)
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "flagship_out")


warnings.filterwarnings("ignore", category=FutureWarning)  # scikit-learn 1.9: SVC(probability=True)

def data():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    x, y = load_digits(return_X_y=True)
    x_rest, x_test, y_rest, y_test = train_test_split(x, y, test_size=0.2, random_state=0, stratify=y)
    x_train, x_val, y_train, y_val = train_test_split(x_rest, y_rest, test_size=0.25, random_state=0, stratify=y_rest)
    sc = StandardScaler().fit(x_train)
    f = lambda a: sc.transform(a).astype(np.float32)  # noqa: E731
    return f(x_train), y_train.astype(np.int32), f(x_val), y_val.astype(np.int32), f(x_test), y_test.astype(np.int32), \
        (x_rest, y_rest, x_test)


def model_fn(h):
    return population.MLP(hidden=(128, 128), outputs=10, width=h["width"], activation=h["activation"],
                          activations=ACTIVATIONS)


def sklearn_baseline(x_rest, y_rest, x_test):
    from sklearn.ensemble import RandomForestClassifier, StackingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    model = StackingClassifier(
        [("rf", RandomForestClassifier(n_estimators=200, random_state=0)),
         ("svc", make_pipeline(StandardScaler(), SVC(probability=True, random_state=0))),
         ("lr", make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000)))],
        final_estimator=LogisticRegression(max_iter=3000), cv=5)
    return model.fit(x_rest, y_rest).predict_proba(x_test)


def main(quick: bool = False) -> None:
    start = time.perf_counter()
    x_train, y_train, x_val, y_val, x_test, y_test, raw = data()
    space = jaxhpo.Space({
        "learning_rate": jaxhpo.Float(1e-4, 3e-2, log=True),
        "weight_decay": jaxhpo.Float(1e-6, 1e-1, log=True),
        "batch_size": jaxhpo.Int(16, 256, log=True),
        "epochs": jaxhpo.Int(5, 40),
        "width": jaxhpo.Int(16, 128),
        "activation": jaxhpo.Categorical(["relu", "tanh", "gelu"]),
    })
    rounds, batch = (2, 4) if quick else (3, 16)
    strategy = jaxhpo.strategies.sobol() if quick else jaxhpo.strategies.bayes()
    if quick:
        space = jaxhpo.Space({**space.params, "epochs": jaxhpo.Int(1, 3)})
    result = population.search(space, strategy, model_fn, x_train, y_train, x_val, y_val, rounds=rounds,
                               batch_size=batch, seed=0, progress=not quick)
    t_search = time.perf_counter() - start
    # test predictions of every trained member, from the parameters each round returned
    test_preds = np.concatenate([np.asarray(population.predict(model_fn, r.state, x_test)) for r in result.rounds])
    val_preds = result.val_predictions
    best = int(np.argmin(result.val_loss))
    fusions = {
        "learned weights": ensemble.fit_weights(val_preds, y_val),
        "greedy selection": ensemble.greedy_selection(val_preds, y_val, size=50, bags=20),
    }

    def scores(p):
        return float(metrics.accuracy(y_test, np.argmax(p, -1))), float(metrics.log_loss(y_test, p))

    rows = [("best single member", *scores(test_preds[best]))]
    rows += [(f"fused: {name}", *scores(np.asarray(model.predict_proba(test_preds)))) for name, model in fusions.items()]
    t0 = time.perf_counter()
    rows.append(("sklearn StackingClassifier", *scores(sklearn_baseline(*raw))))
    t_sklearn = time.perf_counter() - t0

    print(f"\n{len(result.study.trials)} MLPs tuned by {'sobol' if quick else 'bayes()'} in {rounds} rounds of "
          f"{batch} (one compiled population per round), {t_search:.0f} s")
    print(f"best member: {result.best_params}  (validation loss {result.best_value:.4f})\n")
    print(f"{'test split (360 digits)':<30} {'accuracy':>9} {'log loss':>9}")
    for name, acc, ll in rows:
        print(f"{name:<30} {acc:9.4f} {ll:9.4f}")
    os.makedirs(OUT, exist_ok=True)
    figures = {
        "history.png": lambda path: plots.history(result.study, path),
        "parallel_coordinates.png": lambda path: plots.parallel_coordinates(result.study, path),
        "importance.png": lambda path: plots.importance_plot(result.study, path),
        "learning_curves.png": lambda path: plots.learning_curves(result.rounds[-1], path),
        "ensemble_weights.png": lambda path: plots.ensemble_weights(fusions["greedy selection"], path),
    }
    written = []
    for name, draw in figures.items():  # each returns its Figure and writes it to the path
        draw(os.path.join(OUT, name))
        written.append(os.path.join(OUT, name))
    print(f"\nplots: {', '.join(os.path.relpath(p) for p in written)}")
    print(f"wall time {time.perf_counter() - start:.0f} s (scikit-learn baseline {t_sklearn:.0f} s)")


if __name__ == "__main__":
    main("--quick" in sys.argv)
