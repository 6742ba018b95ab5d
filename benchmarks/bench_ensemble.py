"""Model fusion on load_digits, load_breast_cancer and load_wine, against scikit-learn's stacking and voting.

Per dataset, 5 seeded stratified 75/25 splits. Members: 64 MLPs with random
hyperparameters trained as one population (5-fold cross-validated in one
call for out-of-fold predictions, then refit on the whole training split for
test predictions) plus a random forest, an SVC with probabilities and a
logistic regression (out-of-fold by ``ensemble.cross_val_predictions``).
Every fusion is fit on the out-of-fold predictions of the training split
only and scored on the test split. scikit-learn's ``StackingClassifier`` and
``VotingClassifier`` get the same three scikit-learn models and splits.

Second part: fit time of learned weights and greedy selection over 512
members x 2,000 examples x 10 classes, against a plain NumPy greedy loop.

    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_ensemble.py [--splits 5] [--members 64]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from jaxhpo import population  # noqa: E402

population.use_cpu_cores()  # before JAX first runs: one share of the population per core

import jax  # noqa: E402
import numpy as np  # noqa: E402

import jaxhpo  # noqa: E402
from benchmarks.common import progress, write_results  # noqa: E402
from jaxhpo import ensemble, metrics  # noqa: E402

SPACE = jaxhpo.Space({
    "learning_rate": jaxhpo.Float(3e-4, 3e-2, log=True),
    "weight_decay": jaxhpo.Float(1e-6, 1e-2, log=True),
    "width": jaxhpo.Int(16, 128),
    "dropout": jaxhpo.Float(0.0, 0.5),
    "activation": jaxhpo.Categorical(["relu", "tanh", "gelu"]),
    "epochs": jaxhpo.Int(10, 40),
})
ACTIVATIONS = (jax.nn.relu, jax.nn.tanh, jax.nn.gelu)


def datasets():
    from sklearn.datasets import load_breast_cancer, load_digits, load_wine

    return {"digits": load_digits(return_X_y=True), "breast_cancer": load_breast_cancer(return_X_y=True),
            "wine": load_wine(return_X_y=True)}


def sklearn_models(seed: int):
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    return [("rf", RandomForestClassifier(n_estimators=300, random_state=seed, n_jobs=1)),
            ("svc", make_pipeline(StandardScaler(), SVC(probability=True, random_state=seed))),
            ("lr", make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000)))]


def scores(y, probs):
    probs = np.clip(np.asarray(probs, np.float64), 1e-15, 1)
    probs = probs / probs.sum(1, keepdims=True)
    return float(np.mean(probs.argmax(1) == y)), float(metrics.log_loss(y, probs))


def one_split(x, y, seed: int, members: int, cache: str | None = None, dname: str = ""):
    from sklearn.ensemble import StackingClassifier, VotingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.25, random_state=seed, stratify=y)
    sc = StandardScaler().fit(xtr)
    xtr_s, xte_s = sc.transform(xtr).astype(np.float32), sc.transform(xte).astype(np.float32)
    ytr, yte = ytr.astype(np.int32), yte.astype(np.int32)
    classes = int(y.max()) + 1
    hp = {k: np.asarray(v) for k, v in SPACE.decode(
        jax.random.uniform(jax.random.key(seed), (members, SPACE.dim))).items()}

    def model_fn(h):
        return population.MLP(hidden=(128,), outputs=classes, width=h["width"], dropout=h["dropout"],
                              activation=h["activation"], activations=ACTIVATIONS)

    named = sklearn_models(seed)
    path = os.path.join(cache, f"{dname}_{seed}_{members}.npz") if cache else None
    if path and os.path.exists(path):
        with np.load(path) as z:
            oof, test, t_pop, t_sk = z["oof"], z["test"], float(z["t_pop"]), float(z["t_sk"])
    else:
        t0 = time.perf_counter()
        cv = population.cross_validate(model_fn, hp, xtr_s, ytr, folds=5, seed=seed, key=jax.random.key(seed),
                                       batch_size=32)
        full = population.train(model_fn, hp, xtr_s, ytr, xte_s, yte, key=jax.random.key(seed + 1), batch_size=32)
        t_pop = time.perf_counter() - t0
        t0 = time.perf_counter()
        oof_sk, fitted = ensemble.cross_val_predictions([m for _, m in named], xtr, ytr, cv=5, random_state=seed)
        t_sk = time.perf_counter() - t0
        test_sk = ensemble.model_predictions(fitted, xte)
        oof = np.concatenate([np.asarray(cv.oof_predictions), oof_sk])
        test = np.concatenate([np.asarray(full.val_predictions), test_sk])
        if path:
            os.makedirs(cache, exist_ok=True)
            np.savez(path, oof=oof, test=test, t_pop=t_pop, t_sk=t_sk)
    names = [f"mlp{i}" for i in range(members)] + [n for n, _ in named]

    rows = {}
    single = np.asarray(ensemble.member_scores(oof, ytr))
    best = int(np.argmin(single))
    rows["best single"] = (*scores(yte, test[best]), 0.0, names[best])
    fits = {
        "mean of all": lambda: ensemble.uniform(oof),
        "mean of top-5": lambda: ensemble.top_k(oof, ytr, 5),
        "greedy selection": lambda: ensemble.greedy_selection(oof, ytr, size=50, init_size=5),
        "greedy, 20 bags": lambda: ensemble.greedy_selection(oof, ytr, size=50, init_size=5, bags=20),
        "learned weights": lambda: ensemble.fit_weights(oof, ytr, l2_uniform=1e-3),
        "stacking (logistic)": lambda: ensemble.fit_stacking(oof, ytr),
        # the 64 MLPs pooled into one member next to RF, SVC and LR, raw probabilities as
        # StackingClassifier's final estimator sees them, L2 chosen by 3-fold CV
        "stacking, MLPs pooled": lambda: ensemble.fit_stacking(
            oof, ytr, features="probs", groups=[0] * members + list(range(1, len(named) + 1)), l2="auto"),
    }
    for name, fit in fits.items():
        fit()  # compile
        t0 = time.perf_counter()
        model = fit()
        jax.block_until_ready(jax.tree.leaves(model))
        rows[name] = (*scores(yte, model.predict_proba(test)), time.perf_counter() - t0, "")

    def stack_selected():  # stacking over the members greedy selection kept (a feature selection)
        sel = ensemble.greedy_selection(oof, ytr, size=50, init_size=5).selected
        return sel, ensemble.fit_stacking(oof[sel], ytr)

    stack_selected()
    t0 = time.perf_counter()
    sel, model = stack_selected()
    jax.block_until_ready(jax.tree.leaves(model))
    rows["stacking on greedy set"] = (*scores(yte, model.predict_proba(test[sel])), time.perf_counter() - t0, "")
    for name, est in (("sklearn StackingClassifier", StackingClassifier(
            sklearn_models(seed), final_estimator=LogisticRegression(max_iter=3000), cv=5, stack_method="predict_proba")),
            ("sklearn VotingClassifier", VotingClassifier(sklearn_models(seed), voting="soft"))):
        t0 = time.perf_counter()
        est.fit(xtr, ytr)
        rows[name] = (*scores(yte, est.predict_proba(xte)), time.perf_counter() - t0, "")
    return rows, {"population_s": t_pop, "sklearn_oof_s": t_sk}


def speed(members=512, examples=2000, classes=10, repeats=3):
    rng = np.random.default_rng(0)
    y = rng.integers(0, classes, examples)
    signal = np.eye(classes)[y] * rng.uniform(0.5, 3.0, (members, 1, 1))
    probs = np.asarray(jax.nn.softmax(signal + rng.normal(size=(members, examples, classes)), -1), np.float32)

    rows = np.arange(examples)

    def numpy_greedy_plain(size=50, init_size=5):
        """As auto-sklearn's EnsembleSelection: a running ensemble of full probabilities."""
        single = [-np.mean(np.log(np.maximum(p[rows, y], 1e-15))) for p in probs]
        chosen = list(np.argsort(single)[:init_size])
        total = probs[chosen].sum(0)
        for _ in range(size):
            losses = np.empty(members)
            for m in range(members):
                fant = (total + probs[m]) / (len(chosen) + 1)
                losses[m] = -np.mean(np.log(np.maximum(fant[rows, y], 1e-15)))
            best = int(np.argmin(losses))
            chosen.append(best)
            total = total + probs[best]
        return chosen

    def numpy_greedy(size=50, init_size=5):
        """The same with only the true-class probabilities kept (what the vectorized version does)."""
        py = probs[:, rows, y]
        single = -np.log(py).mean(1)
        chosen = list(np.argsort(single)[:init_size])
        total = py[chosen].sum(0)
        for _ in range(size):
            best, best_score = -1, np.inf
            for m in range(members):
                s = -np.mean(np.log(np.maximum((total + py[m]) / (len(chosen) + 1), 1e-15)))
                if s < best_score:
                    best, best_score = m, s
            chosen.append(best)
            total = total + py[best]
        return chosen

    out = {}
    for name, fn in (("learned weights", lambda: ensemble.fit_weights(probs, y)),
                     ("greedy selection", lambda: ensemble.greedy_selection(probs, y, size=50, init_size=5)),
                     ("numpy greedy loop", numpy_greedy_plain),
                     ("numpy greedy, true-class", numpy_greedy)):
        jax.block_until_ready(jax.tree.leaves(fn()))
        times = []
        for _ in range(repeats if "numpy" not in name else 1):
            t0 = time.perf_counter()
            jax.block_until_ready(jax.tree.leaves(fn()))
            times.append(time.perf_counter() - t0)
        out[name] = float(np.median(times))
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--splits", type=int, default=5)
    parser.add_argument("--members", type=int, default=64)
    parser.add_argument("--datasets", nargs="+", default=["digits", "breast_cancer", "wine"])
    parser.add_argument("--only", choices=["quality", "speed"], default=None)
    parser.add_argument("--cache", default=None, help="directory to keep (and reuse) member predictions per split")
    args = parser.parse_args()
    data = datasets()
    summary, raw = {}, {}
    for dname in ([] if args.only == "speed" else args.datasets):
        x, y = data[dname]
        per_split = []
        for seed in progress(range(args.splits), f"{dname} splits"):
            rows, timing = one_split(x, y, seed, args.members, args.cache, dname)
            per_split.append((rows, timing))
            print(f"{dname} split {seed}: population {timing['population_s']:.1f}s, "
                  f"best single {rows['best single'][0]:.4f}/{rows['best single'][1]:.4f}, "
                  f"greedy {rows['greedy selection'][0]:.4f}/{rows['greedy selection'][1]:.4f}", flush=True)
        methods = list(per_split[0][0])
        summary[dname] = {
            m: {"accuracy": float(np.median([r[m][0] for r, _ in per_split])),
                "log_loss": float(np.median([r[m][1] for r, _ in per_split])),
                "fit_s": float(np.median([r[m][2] for r, _ in per_split]))} for m in methods}
        raw[dname] = [{m: list(r[m]) for m in methods} | {"timing": t} for r, t in per_split]
        print(f"\n{dname} ({args.splits} splits, medians; {args.members} MLPs + RF, SVC, LR)")
        print(f"{'method':<28} {'test acc':>9} {'log loss':>9} {'fit s':>8}")
        for m, s in summary[dname].items():
            print(f"{m:<28} {s['accuracy']:9.4f} {s['log_loss']:9.4f} {s['fit_s']:8.3f}")
        print(flush=True)
    if args.only != "speed":
        print("wrote", write_results("ensemble", {"summary": summary, "splits": raw, "members": args.members + 3}))
    if args.only != "quality":
        sp = speed()
        print("512 members x 2000 examples x 10 classes (seconds after compile):")
        for k, v in sp.items():
            print(f"  {k:<26} {v:8.3f}")
        print(f"  greedy speed-up over the plain NumPy loop: {sp['numpy greedy loop'] / sp['greedy selection']:.0f}x, "
              f"over the true-class NumPy loop: {sp['numpy greedy, true-class'] / sp['greedy selection']:.1f}x")
        print("wrote", write_results("ensemble_speed", {"members": 512, "examples": 2000, "classes": 10,
                                                         "seconds": sp}))


if __name__ == "__main__":
    main()
