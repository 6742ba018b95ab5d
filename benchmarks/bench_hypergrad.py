"""Hypergradient tuning against random search and bayes() at equal numbers of training runs (digits).

Tuned: log learning rate and log weight decay of an MLP 64-64-10 trained by
SGD with momentum 0.9 (200 minibatch steps of 128, a fresh initialization
and shuffle per run) on load_digits (standardized, 80/20 split); objective:
validation cross-entropy after training. Budget: 32 training runs per method.

* hypergrad: ``jaxhpo.hypergrad.search``, 4 vmapped starts x 8 outer steps
  (Adam 0.3 on the log hyperparameters), one run per outer step and start;
* random: 32 uniform draws in the box, trained vmapped;
* bayes: ``Study`` with ``bayes()``, batches of 4.

Prints the best validation loss after 4, 8, 16 and 32 runs, median over 3 seeds.

    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_hypergrad.py
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

import jaxhpo  # noqa: E402
from benchmarks.common import progress, write_results  # noqa: E402
from jaxhpo import hypergrad  # noqa: E402

STEPS, BATCH, RUNS, STARTS = 200, 128, 32, 4
BOX = {"log_lr": (float(np.log(1e-3)), float(np.log(1.0))), "log_wd": (float(np.log(1e-6)), float(np.log(1e-1)))}
CHECKPOINTS = (4, 8, 16, 32)


def data():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    x, y = load_digits(return_X_y=True)
    xtr, xva, ytr, yva = train_test_split(x, y, test_size=0.2, random_state=0, stratify=y)
    sc = StandardScaler().fit(xtr)
    return (jnp.asarray(sc.transform(xtr), jnp.float32), jnp.asarray(ytr), jnp.asarray(sc.transform(xva), jnp.float32),
            jnp.asarray(yva))


XTR, YTR, XVA, YVA = data()


def init_params(key):
    k1, k2 = jax.random.split(key)
    return {"w1": jax.random.normal(k1, (64, 64)) / 8.0, "b1": jnp.zeros(64),
            "w2": jax.random.normal(k2, (64, 10)) / 8.0, "b2": jnp.zeros(10)}


def logits(p, x):
    return jax.nn.relu(x @ p["w1"] + p["b1"]) @ p["w2"] + p["b2"]


def inner_loss(p, batch, h):
    x, y = batch
    ce = optax.softmax_cross_entropy_with_integer_labels(logits(p, x), y).mean()
    return ce + jnp.exp(h["log_wd"]) * (jnp.sum(p["w1"] ** 2) + jnp.sum(p["w2"] ** 2))


def val_loss(p):
    return optax.softmax_cross_entropy_with_integer_labels(logits(p, XVA), YVA).mean()


def optimizer(h):
    return optax.sgd(jnp.exp(h["log_lr"]), momentum=0.9)


def batches(key):
    n = XTR.shape[0]
    idx = jax.vmap(lambda k: jax.random.permutation(k, n)[:BATCH])(jax.random.split(key, STEPS))
    return XTR[idx], YTR[idx]


def run(h, key):
    """One training run (no gradient), as random search and bayes use it."""
    k_init, k_data = jax.random.split(key)
    return hypergrad.unrolled_loss(h, init_params=init_params(k_init), inner_loss=inner_loss, val_loss=val_loss,
                                   optimizer=optimizer, batches=batches(k_data), checkpoint=False)


run_many = jax.jit(jax.vmap(run))


def best_curve(values):
    values = np.where(np.isfinite(values), values, np.inf)
    return {c: float(np.min(values[:c])) for c in CHECKPOINTS}


def hypergrad_method(seed):
    rng = np.random.default_rng(seed)
    h0 = {k: jnp.asarray(rng.uniform(lo, hi, STARTS), jnp.float32) for k, (lo, hi) in BOX.items()}
    res = hypergrad.search(h0, init_params=init_params, inner_loss=inner_loss, val_loss=val_loss, optimizer=optimizer,
                           batches=batches, outer_steps=RUNS // STARTS, key=jax.random.key(seed),
                           outer_optimizer=optax.adam(0.3), bounds=BOX)
    return np.asarray(res.val_loss).reshape(-1)  # run order: outer step major, 4 runs per step


def random_method(seed):
    rng = np.random.default_rng(seed)
    h = {k: jnp.asarray(rng.uniform(lo, hi, RUNS), jnp.float32) for k, (lo, hi) in BOX.items()}
    return np.asarray(run_many(h, jax.random.split(jax.random.key(seed), RUNS)))


def bayes_method(seed):
    space = jaxhpo.Space({k: jaxhpo.Float(lo, hi) for k, (lo, hi) in BOX.items()})
    study = jaxhpo.Study(space, jaxhpo.strategies.bayes(), seed=seed)
    values = []
    for r in range(RUNS // STARTS):
        trials = study.ask(STARTS)
        h = {k: jnp.asarray([t.params[k] for t in trials], jnp.float32) for k in BOX}
        keys = jax.random.split(jax.random.fold_in(jax.random.key(seed), r), STARTS)
        v = np.asarray(run_many(h, keys))
        for t, val in zip(trials, v):
            study.tell(t, float(val))
        values.extend(v.tolist())
    return np.asarray(values)


def main() -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()  # --help, not a run
    methods = {"hypergrad": hypergrad_method, "random": random_method, "bayes": bayes_method}
    curves, times = {m: [] for m in methods}, {m: [] for m in methods}
    for seed in progress(range(3), "seeds"):
        for name, fn in methods.items():
            t0 = time.perf_counter()
            curves[name].append(best_curve(fn(seed)))
            times[name].append(time.perf_counter() - t0)
    print(f"digits, MLP 64-64-10, SGD momentum, {STEPS} steps per run; best validation loss after N runs "
          f"(median of 3 seeds)\n")
    print(f"{'method':<10} " + " ".join(f"{'N=' + str(c):>8}" for c in CHECKPOINTS) + f" {'wall s':>8}")
    rows = []
    for name in methods:
        med = {c: float(np.median([cv[c] for cv in curves[name]])) for c in CHECKPOINTS}
        rows.append({"method": name, "best_val_loss": med, "wall_s": float(np.median(times[name]))})
        print(f"{name:<10} " + " ".join(f"{med[c]:8.4f}" for c in CHECKPOINTS) + f" {np.median(times[name]):8.1f}")
    print("wrote", write_results("hypergrad", {"runs": RUNS, "steps": STEPS, "rows": rows}))


if __name__ == "__main__":
    main()
