"""Population training against per-model loops, on load_digits.

MLP 64-128-128-10, AdamW, 20 epochs, batch 64, per-member learning rate and
weight decay (log-uniform), N members. Every method does the same work:
shuffle every epoch, all minibatches (the last one partial), validation loss
and accuracy after every epoch. Methods, in the same run:

* ``loop``: (a) a Python loop over a jitted train step (one dispatch per step);
* ``scan``: (b) one jitted ``lax.scan`` call per model (compiled once);
* ``jaxhpo:<mode>``: ``jaxhpo.population.train`` (one call for all members).

Times exclude compilation (each program is run once first). Prints models per
second and ratios; writes ``benchmarks/results/population.json``.

    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_population.py [--sizes 8 32 128 512] [--modes auto vmap]
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

from benchmarks.common import progress, write_results  # noqa: E402
from jaxhpo import population  # noqa: E402

CORES = population.use_cpu_cores() if "--one-device" not in sys.argv else 1  # before JAX first runs

EPOCHS, BATCH, HIDDEN = 20, 64, (128, 128)


def digits():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    x, y = load_digits(return_X_y=True)
    xtr, xva, ytr, yva = train_test_split(x, y, test_size=0.2, random_state=0, stratify=y)
    sc = StandardScaler().fit(xtr)
    return (sc.transform(xtr).astype(np.float32), ytr.astype(np.int32),
            sc.transform(xva).astype(np.float32), yva.astype(np.int32))


def hparams(n: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {"learning_rate": (10 ** rng.uniform(-4, -2, n)).astype(np.float32),
            "weight_decay": (10 ** rng.uniform(-5, -2, n)).astype(np.float32)}


def model_fn(hp):
    return population.MLP(hidden=HIDDEN, outputs=10, activations=(jax.nn.relu,))


# ---------------------------------------------------------------- baselines (plain JAX, written as users do)


def make_baselines(xtr, ytr, xva, yva):
    module = model_fn({})
    n = xtr.shape[0]
    steps = -(-n // BATCH)
    xtr, ytr, xva, yva = map(jnp.asarray, (xtr, ytr, xva, yva))

    def init(key, lr, wd):
        params = module.init(key, xtr[:1])["params"]
        opt = optax.inject_hyperparams(optax.adamw)(learning_rate=lr, weight_decay=wd)
        return params, opt.init(params)

    def loss(p, xb, yb, w):
        logits = module.apply({"params": p}, xb)
        ce = optax.softmax_cross_entropy_with_integer_labels(logits, yb)
        return jnp.sum(w * ce) / jnp.sum(w)

    def step(params, opt_state, perm, s, lr, wd):
        pos = s * BATCH + jnp.arange(BATCH)
        w = (pos < n).astype(jnp.float32)
        rows = perm[jnp.clip(pos, 0, n - 1)]
        l, g = jax.value_and_grad(loss)(params, xtr[rows], ytr[rows], w)
        opt = optax.inject_hyperparams(optax.adamw)(learning_rate=lr, weight_decay=wd)
        u, opt_state = opt.update(g, opt_state, params)
        return optax.apply_updates(params, u), opt_state, l

    def evaluate(params):
        logits = module.apply({"params": params}, xva)
        return (optax.softmax_cross_entropy_with_integer_labels(logits, yva).mean(),
                (logits.argmax(-1) == yva).mean())

    def perm_of(key, e):
        return jax.random.permutation(jax.random.fold_in(key, e), n)

    def train_scan(key, lr, wd):
        params, opt_state = init(key, lr, wd)

        def epoch(c, e):
            p, o = c
            perm = perm_of(key, e)

            def body(c, s):
                p, o, l = step(*c, perm, s, lr, wd)
                return (p, o), l

            (p, o), ls = jax.lax.scan(body, (p, o), jnp.arange(steps))
            return (p, o), (ls.mean(), *evaluate(p))

        (p, o), hist = jax.lax.scan(epoch, (params, opt_state), jnp.arange(EPOCHS))
        return hist

    scan_one = jax.jit(train_scan)
    init_j, step_j, eval_j, perm_j = jax.jit(init), jax.jit(step), jax.jit(evaluate), jax.jit(perm_of)

    def loop_one(key, lr, wd):
        p, o = init_j(key, lr, wd)
        hist = []
        for e in range(EPOCHS):
            perm = perm_j(key, e)
            for s in range(steps):
                p, o, l = step_j(p, o, perm, s, lr, wd)
            hist.append(eval_j(p))
        return jax.block_until_ready(hist)

    def run_scan(hp, keys):
        out = [scan_one(k, a, b) for k, a, b in zip(keys, hp["learning_rate"], hp["weight_decay"])]
        return jax.block_until_ready(out)

    def run_loop(hp, keys):
        return [loop_one(k, a, b) for k, a, b in zip(keys, hp["learning_rate"], hp["weight_decay"])]

    return run_loop, run_scan


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[8, 32, 128, 512])
    parser.add_argument("--modes", nargs="+", default=["auto", "map@1", "vmap"],
                        help="execution modes; '@1' trains on one device (no mesh)")
    parser.add_argument("--one-device", action="store_true", help="do not expose CPU cores as devices")
    parser.add_argument("--loop-max", type=int, default=128, help="largest N for the slow Python loop")
    parser.add_argument("--scan-max", type=int, default=1 << 30, help="largest N for the per-model scan")
    parser.add_argument("--no-baselines", action="store_true")
    parser.add_argument("--name", default="population")
    args = parser.parse_args()
    data = digits()
    run_loop, run_scan = make_baselines(*data)
    print(f"backend {jax.default_backend()}, devices {jax.device_count()} (CPU cores exposed: {CORES}), "
          f"auto mode = {population.resolve_mode('auto')} over all devices")
    print(f"digits: {data[0].shape[0]} train / {data[2].shape[0]} val; MLP 64-{'-'.join(map(str, HIDDEN))}-10, "
          f"AdamW, {EPOCHS} epochs, batch {BATCH}\n")
    head = f"{'N':>5} {'method':<20} {'seconds':>9} {'models/s':>9} {'vs loop':>8} {'vs scan':>8} {'best acc':>9}"
    print(head)
    rows = []
    for n in progress(args.sizes, "population sizes"):
        hp = hparams(n)
        keys = jax.random.split(jax.random.key(0), n)
        times = {}
        if not args.no_baselines:
            if n <= args.scan_max:
                run_scan(hparams(1), keys[:1])  # compile
                t = time.perf_counter(); run_scan(hp, keys); times["scan"] = time.perf_counter() - t
            if n <= args.loop_max:
                run_loop(hparams(1), keys[:1])
                t = time.perf_counter(); run_loop(hp, keys); times["loop"] = time.perf_counter() - t
        accs = {}
        for spec in args.modes:
            mode, _, one = spec.partition("@")
            mesh = None if one else "auto"
            devices = 1 if one else jax.device_count()
            name = f"jaxhpo:{population.resolve_mode(mode)}" + ("(auto)" if mode == "auto" else "") + f"/{devices}dev"

            def go():
                r = population.train(model_fn, hp, *data, key=jax.random.key(0), epochs=EPOCHS,
                                     batch_size=BATCH, optimizer=optax.adamw, mode=mode, mesh=mesh)
                return jax.block_until_ready(r)

            go()  # compile
            t = time.perf_counter(); r = go(); times[name] = time.perf_counter() - t
            accs[name] = float(np.max(np.asarray(r.val_accuracy[:, -1])))
        for method, sec in times.items():
            row = {"N": n, "method": method, "seconds": sec, "models_per_s": n / sec,
                   "vs_loop": times["loop"] / sec if "loop" in times else None,
                   "vs_scan": times["scan"] / sec if "scan" in times else None,
                   "best_val_accuracy": accs.get(method)}
            rows.append(row)
            fmt = lambda v: f"{v:8.2f}x" if v else f"{'-':>9}"  # noqa: E731
            acc = f"{row['best_val_accuracy']:9.4f}" if row["best_val_accuracy"] else f"{'-':>9}"
            print(f"{n:5d} {method:<20} {sec:9.2f} {n / sec:9.1f} {fmt(row['vs_loop'])}{fmt(row['vs_scan'])} {acc}",
                  flush=True)
        path = write_results(args.name, {"epochs": EPOCHS, "batch": BATCH, "hidden": HIDDEN, "rows": rows})
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
