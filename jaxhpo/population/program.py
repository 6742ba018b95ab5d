"""The compiled population program: every task's epochs and minibatch steps, over tasks and devices.

A *task* is one member trained on one view of the data (one fold in
cross-validation). Every task runs the same program: epochs in a
``lax.scan``, minibatch steps in an inner ``lax.scan``; what differs per
task are arrays, never shapes (see ``jaxhpo.population.train``). This module
holds what is static about a program (``ProgramConfig``), one task's
initialization and training, and the jitted programs that run them over the
task axis in a mode (``vmap``/``map``/``chunks``), split over a mesh with
``shard_map`` when there is one.
"""

from __future__ import annotations

import functools
import inspect
from typing import Callable, Mapping, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxhpo import compile_options

Array = jax.Array

RESERVED = ("epochs", "batch_size")  # member hyperparameters the program itself reads


class ProgramConfig(NamedTuple):
    """Everything static about one compiled population program (hashable)."""

    model_fn: Callable
    loss_fn: Callable
    classification: bool
    optimizer: Callable
    optimizer_args: tuple  # ((factory arg, hparam name), ...)
    optimizer_kwargs: tuple  # ((name, value), ...) fixed arguments
    takes_train: bool
    max_batch: int
    max_steps: int
    lane_sizes: tuple  # static minibatch shapes; a member's steps use the smallest that holds its batch
    mode: str
    chunk_size: int


def lane_sizes(mode: str, low: int, high: int) -> tuple[int, ...]:
    """Static minibatch shapes for member batch sizes in ``[low, high]``.

    Under ``vmap`` every member steps through the same shape, the largest
    batch. In ``"map"`` mode members run one after another, so a member's
    minibatch is held in the smallest power of two at least its batch size
    (``lax.switch`` runs only that branch): a batch of 16 in a population whose
    largest is 256 costs 16 rows per step, not 256.
    """
    if mode != "map":
        return (high,)
    return tuple(1 << k for k in range(max(low - 1, 0).bit_length(), max(high - 1, 0).bit_length() + 1))


def takes_train(module) -> bool:
    try:
        return "train" in inspect.signature(type(module).__call__).parameters
    except (TypeError, ValueError):
        return False


def _optimizer(cfg: ProgramConfig, hp: Mapping[str, Array]) -> optax.GradientTransformation:
    kwargs = dict(cfg.optimizer_kwargs)
    for arg, name in cfg.optimizer_args:
        kwargs[arg] = hp[name]
    return optax.inject_hyperparams(cfg.optimizer)(**kwargs)


def _sync_hparams(cfg: ProgramConfig, opt_state, hp):
    """Writes the task's current hyperparameters into the injected optimizer state."""
    if not cfg.optimizer_args:
        return opt_state
    hyper = dict(opt_state.hyperparams)
    for arg, name in cfg.optimizer_args:
        hyper[arg] = jnp.asarray(hp[name], hyper[arg].dtype)
    return opt_state._replace(hyperparams=hyper)


def _apply(cfg: ProgramConfig, module, params, x, train: bool, key):
    if cfg.takes_train:
        return module.apply({"params": params}, x, train=train, rngs={"dropout": key} if train else None)
    return module.apply({"params": params}, x)


def _task_init(cfg: ProgramConfig, key: Array, hp: dict, x_example: Array):
    module = cfg.model_fn(hp)
    k_init, k_drop = jax.random.split(key)
    rngs = {"params": k_init, "dropout": k_drop}
    if cfg.takes_train:
        variables = module.init(rngs, x_example, train=False)
    else:
        variables = module.init(rngs, x_example)
    params = variables["params"]
    return params, _optimizer(cfg, hp).init(params)


def _evaluate(cfg: ProgramConfig, module, params, hp, data, eval_idx, n_eval):
    x_eval, y_eval = data["x_eval"], data["y_eval"]
    mask = jnp.arange(eval_idx.shape[0]) < n_eval
    outputs = _apply(cfg, module, params, x_eval[eval_idx], False, None)
    yb = y_eval[eval_idx]
    losses = cfg.loss_fn(outputs, yb, hp)
    w = mask.astype(losses.dtype)
    loss = jnp.sum(w * losses) / jnp.maximum(w.sum(), 1.0)
    if cfg.classification:
        acc = jnp.sum(w * (jnp.argmax(outputs, axis=-1) == yb)) / jnp.maximum(w.sum(), 1.0)
    else:
        acc = jnp.full((), jnp.nan, losses.dtype)
    return outputs, loss, acc


def _task_epochs(cfg: ProgramConfig, num_epochs: int, params, opt_state, key, hp, epoch0, view, data):
    """Trains one task for ``num_epochs`` epochs (fewer if its own ``epochs`` ends first)."""
    module = cfg.model_fn(hp)
    opt = _optimizer(cfg, hp)
    train_idx, n_train, eval_idx, n_eval = view
    x_fit, y_fit = data["x_fit"], data["y_fit"]
    n_max = train_idx.shape[0]
    big = jnp.iinfo(jnp.int32).max
    member_epochs = jnp.asarray(hp.get("epochs", big), jnp.int32)
    b = jnp.clip(jnp.asarray(hp.get("batch_size", cfg.max_batch), jnp.int32), 1, cfg.max_batch)
    steps = (n_train + b - 1) // b
    sizes = jnp.asarray(cfg.lane_sizes, jnp.int32)
    bucket = jnp.minimum(jnp.searchsorted(sizes, b), len(cfg.lane_sizes) - 1)

    def loss_of(p, xb, yb, w, k):
        out = _apply(cfg, module, p, xb, True, k)
        per = cfg.loss_fn(out, yb, hp)
        return jnp.sum(w * per) / jnp.maximum(jnp.sum(w), 1.0)

    def epoch_body(carry, j):
        params, opt_state = carry
        e = epoch0 + j
        active_epoch = e < member_epochs
        k_epoch = jax.random.fold_in(key, e)
        r = jax.random.uniform(jax.random.fold_in(k_epoch, 0), (n_max,))
        perm = jnp.argsort(jnp.where(jnp.arange(n_max) < n_train, r, 2.0))

        def update(size: int):
            """One optimizer step on a minibatch held in ``size`` lanes (rows past ``b`` weigh 0)."""

            def do(c, s):
                p, o = c
                lanes = jnp.arange(size)
                pos = s * b + lanes
                w = ((lanes < b) & (pos < n_train)).astype(jnp.float32)
                rows = train_idx[perm[jnp.clip(pos, 0, n_max - 1)]]
                o = _sync_hparams(cfg, o, hp)
                loss, g = jax.value_and_grad(loss_of)(p, x_fit[rows], y_fit[rows], w, jax.random.fold_in(k_epoch, s + 1))
                updates, o = opt.update(g, o, p)
                return (optax.apply_updates(p, updates), o), loss

            return do

        branches = [update(size) for size in cfg.lane_sizes]

        def step(carry, s):
            active = active_epoch & (s < steps)

            def do(c):
                if len(branches) == 1:
                    return branches[0](c, s)
                return jax.lax.switch(bucket, [lambda c, f=f: f(c, s) for f in branches], c)

            def skip(c):
                return c, jnp.zeros((), jnp.float32)

            carry, loss = jax.lax.cond(active, do, skip, carry)
            return carry, (loss, active)

        (params, opt_state), (losses, act) = jax.lax.scan(step, (params, opt_state), jnp.arange(cfg.max_steps))
        act_f = act.astype(jnp.float32)
        train_loss = jnp.where(act.any(), jnp.sum(losses * act_f) / jnp.maximum(act_f.sum(), 1.0), jnp.nan)
        _, val_loss, val_acc = _evaluate(cfg, module, params, hp, data, eval_idx, n_eval)
        return (params, opt_state), (train_loss, val_loss, val_acc)

    (params, opt_state), history = jax.lax.scan(epoch_body, (params, opt_state), jnp.arange(num_epochs))
    outputs, _, _ = _evaluate(cfg, module, params, hp, data, eval_idx, n_eval)
    if cfg.classification:
        outputs = jax.nn.softmax(outputs, axis=-1)
    done = epoch0 + jnp.minimum(num_epochs, jnp.maximum(member_epochs - epoch0, 0))
    return params, opt_state, done, history, outputs


def _over_tasks(cfg: ProgramConfig, fn: Callable, args):
    """Runs ``fn`` over the leading task axis of ``args`` in the configured mode."""
    if cfg.mode == "vmap":
        return jax.vmap(fn)(args)
    if cfg.mode == "map":
        return jax.lax.map(fn, args)
    return jax.lax.map(fn, args, batch_size=cfg.chunk_size)


def _sharded(fn: Callable, mesh, axis: str, task_args, shared_args):
    """Splits the task axis of ``task_args`` over ``mesh`` (``shard_map``); ``shared_args`` replicated."""
    if mesh is None:
        return fn(task_args, shared_args)
    from jax.sharding import PartitionSpec as P

    spec_tasks = jax.tree.map(lambda _: P(axis), task_args)
    spec_shared = jax.tree.map(lambda _: P(), shared_args)
    return jax.shard_map(fn, mesh=mesh, in_specs=(spec_tasks, spec_shared), out_specs=P(axis), check_vma=False)(
        task_args, shared_args
    )


@functools.lru_cache(maxsize=64)
def compiled_programs(cfg: ProgramConfig, num_epochs: int, mesh, axis: str):
    """One jitted init and one jitted training program per static configuration.

    Shared by every ``Population`` of the same configuration in a process (the
    flagship's three splits, successive halving's rungs of equal length), so a
    program compiles once; a ``Population`` keeps the ones it uses
    (``Population.programs``). Bounded: the least recently used of more than
    64 configurations is dropped, and compiles again if asked for.
    """

    def init_all(task_args, shared):
        keys, hp = task_args
        return _over_tasks(cfg, lambda a: _task_init(cfg, a[0], a[1], shared["x_example"]), (keys, hp))

    def train_all(task_args, shared):
        params, opt_state, keys, hp, epoch0, view = task_args

        def one(a):
            return _task_epochs(cfg, num_epochs, *a, shared)

        return _over_tasks(cfg, one, (params, opt_state, keys, hp, epoch0, view))

    options = compile_options.TRAINING_OPTIONS
    init = compile_options.jit(lambda t, s: _sharded(init_all, mesh, axis, t, s), options)
    run = compile_options.jit(lambda t, s: _sharded(train_all, mesh, axis, t, s), options)
    return init, run

