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
import math
from typing import Any, Callable, Mapping, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np
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


CHUNK_FLOPS = 1.5e6  # forward work a minibatch chunk should hold on a CPU (see lane_sizes)


def lane_sizes(mode: str, low: int, high: int, row_flops: Optional[float] = None) -> tuple[int, ...]:
    """Static minibatch chunk shapes for member batch sizes in ``[low, high]``.

    A step computes its gradient over the minibatch in chunks whose shapes are
    compiled in, sums the chunks' gradients and makes one optimizer update.
    Under ``vmap`` every member steps through one chunk of the largest batch.
    In ``"map"`` mode members run one after another and a member's batch is
    cut into chunks (``chunk_rows``) of the smallest power of two holding the
    smallest batch, plus every 8x larger power up to the largest batch when
    the range is wider than 8x (``lax.switch`` picks one per chunk). Each shape
    is one more copy of the model's gradient to compile, so few shapes keep
    the compile short, and a batch pads to the next multiple of a small chunk
    (65 rows run as 80, where one shape per power of two ran 128); the
    measurements are in ``benchmarks/README.md`` (sessions 14 and 26).

    Args:
        mode: the population's execution mode.
        low, high: the smallest and largest member batch size.
        row_flops: floating-point operations of one row's forward pass
            (``product_flops``), or None. Given, the single chunk shape is halved
            while a chunk still holds ``CHUNK_FLOPS`` of forward work: a model
            that costly per row (a CNN) runs as fast per row in smaller chunks,
            and smaller chunks pad a batch with fewer unused rows (18 rows run as
            24 in chunks of 8, as 32 in chunks of 16).
            A cheap model keeps its chunk: there each chunk's fixed cost rules.

    Example:
        >>> lane_sizes("map", 16, 128), lane_sizes("map", 8, 512), lane_sizes("vmap", 16, 128)
        ((16,), (8, 64, 512), (128,))
        >>> lane_sizes("map", 16, 128, row_flops=2.2e5), lane_sizes("map", 16, 128, row_flops=5e3)
        ((8,), (16,))
    """
    if mode != "map":
        return (high,)
    first = max(low - 1, 0).bit_length()
    last = max(high - 1, 0).bit_length()
    if last - first > 3:
        return tuple(1 << k for k in range(first, last + 1, 3))
    chunk = 1 << first
    if row_flops is not None and row_flops > 0:
        while chunk > 1 and (chunk // 2) * row_flops >= CHUNK_FLOPS:
            chunk //= 2
    return (chunk,)


def product_flops(jaxpr: Any) -> float:
    """Floating-point operations of the matrix products and convolutions in ``jaxpr`` (a forward pass's work).

    Counted from the shapes of ``dot_general`` and ``conv_general_dilated``
    (two per multiply-add), nested programs included: a ``cond``'s costliest
    branch, a ``scan``'s body times its length, a ``while``'s body once.
    Elementwise work is not counted; for a network's forward pass these are
    nearly all of its flops. ``Population`` counts them in the jaxpr of the
    model's initialization on one row, which it traces anyway to check the
    model (the forward pass is in it; the parameters' random draws have no
    products), so the estimate costs no trace of its own.

    Args:
        jaxpr: a ``jax.extend.core.Jaxpr`` or ``ClosedJaxpr`` (``jax.make_jaxpr``'s result).

    Example:
        >>> import jax, jax.numpy as jnp
        >>> product_flops(jax.make_jaxpr(lambda a, b: jnp.tanh(a @ b))(jnp.ones((2, 3)), jnp.ones((3, 4))))
        48.0
    """
    jaxpr = getattr(jaxpr, "jaxpr", jaxpr)
    total = 0.0
    for eqn in jaxpr.eqns:
        name = eqn.primitive.name
        out = eqn.outvars[0].aval.shape if eqn.outvars else ()
        if name == "dot_general":
            (contracting, _), _ = eqn.params["dimension_numbers"]
            lhs = eqn.invars[0].aval.shape
            total += 2.0 * math.prod(out) * math.prod(lhs[i] for i in contracting)
        elif name == "conv_general_dilated":
            kernel = eqn.invars[1].aval.shape
            per_output = math.prod(kernel) / kernel[eqn.params["dimension_numbers"].rhs_spec[0]]
            total += 2.0 * math.prod(out) * per_output / eqn.params["feature_group_count"]
        else:
            inner = [product_flops(j) for j in _nested_jaxprs(eqn.params)]
            if inner:
                total += (max(inner) if name == "cond" else sum(inner)) * (eqn.params["length"] if name == "scan" else 1)
    return total


def _nested_jaxprs(params: Mapping[str, Any]):
    for value in params.values():
        for item in value if isinstance(value, (tuple, list)) else (value,):
            if hasattr(item, "eqns") or hasattr(getattr(item, "jaxpr", None), "eqns"):
                yield item


def chunk_rows(b: "np.ndarray | int", sizes: tuple[int, ...]) -> list[list[int]]:
    """The chunk shapes a step over a minibatch of ``b`` rows runs, largest first (NumPy mirror of the program).

    Each chunk is the largest of ``sizes`` that the rows still to do fill, or
    the smallest when fewer rows are left (its extra rows weigh 0).

    Example:
        >>> chunk_rows([17, 100, 128], (16,))
        [[16, 16], [16, 16, 16, 16, 16, 16, 16], [16, 16, 16, 16, 16, 16, 16, 16]]
        >>> chunk_rows([100], (8, 64))
        [[64, 8, 8, 8, 8, 8]]
    """
    out = []
    for rows in np.atleast_1d(np.asarray(b, np.int64)).tolist():
        chunks, left = [], int(rows)
        while left > 0:
            fits = [z for z in sizes if z <= left]
            chunks.append(max(fits) if fits else min(sizes))
            left -= chunks[-1]
        out.append(chunks)
    return out


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

    def loss_sum(p, xb, yb, w, k):
        out = _apply(cfg, module, p, xb, True, k)
        return jnp.sum(w * cfg.loss_fn(out, yb, hp))

    def epoch_body(carry, j):
        params, opt_state, last_val = carry
        e = epoch0 + j
        active_epoch = e < member_epochs
        k_epoch = jax.random.fold_in(key, e)
        r = jax.random.uniform(jax.random.fold_in(k_epoch, 0), (n_max,))
        perm = jnp.argsort(jnp.where(jnp.arange(n_max) < n_train, r, 2.0))

        def chunk(size: int):
            """Loss sum, its gradient and the weight of ``size`` rows of step ``s``'s minibatch from ``first``."""

            def grad(p, s, first, k_step):
                i = first + jnp.arange(size)  # rows of the minibatch
                pos = s * b + i
                w = ((i < b) & (pos < n_train)).astype(jnp.float32)
                rows = train_idx[perm[jnp.clip(pos, 0, n_max - 1)]]
                loss, g = jax.value_and_grad(loss_sum)(p, x_fit[rows], y_fit[rows], w, jax.random.fold_in(k_step, first))
                return loss, g, jnp.sum(w)

            return grad

        branches = [chunk(size) for size in cfg.lane_sizes]

        def update(c, s):
            """One optimizer step on minibatch ``s``: the chunks' gradients summed, then divided by the rows."""
            p, o = c
            rows = jnp.minimum(b, n_train - s * b)
            k_step = jax.random.fold_in(k_epoch, s + 1)

            def body(acc):
                first, loss, g, w = acc
                left = rows - first
                fits = jnp.sum(sizes <= left) - 1  # the largest shape the rows left fill, else the smallest
                bucket = jnp.maximum(fits, 0)
                if len(branches) == 1:
                    out = branches[0](p, s, first, k_step)
                else:
                    out = jax.lax.switch(bucket, branches, p, s, first, k_step)
                return (first + sizes[bucket], loss + out[0], jax.tree.map(jnp.add, g, out[1]), w + out[2])

            zero = (jnp.int32(0), jnp.float32(0), jax.tree.map(jnp.zeros_like, p), jnp.float32(0))
            _, loss, g, w = jax.lax.while_loop(lambda acc: acc[0] < rows, body, zero)
            scale = 1.0 / jnp.maximum(w, 1.0)
            g = jax.tree.map(lambda a: a * scale.astype(a.dtype), g)
            o = _sync_hparams(cfg, o, hp)
            updates, o = opt.update(g, o, p)
            return (optax.apply_updates(p, updates), o), loss * scale

        def step(carry, s):
            active = active_epoch & (s < steps)

            def skip(c):
                return c, jnp.zeros((), jnp.float32)

            carry, loss = jax.lax.cond(active, lambda c: update(c, s), skip, carry)
            return carry, (loss, active)

        (params, opt_state), (losses, act) = jax.lax.scan(step, (params, opt_state), jnp.arange(cfg.max_steps))
        act_f = act.astype(jnp.float32)
        train_loss = jnp.where(act.any(), jnp.sum(losses * act_f) / jnp.maximum(act_f.sum(), 1.0), jnp.nan)
        # scored: every validation_freq-th epoch, the member's last and this call's last epoch it trains, and
        # the first epoch of a call in which it trains no more (its outputs for the carry); after an epoch past
        # the member's own the parameters are those already scored: no new evaluation
        due = ((e + 1) % data["validation_freq"] == 0) | (e == member_epochs - 1) | (j == num_epochs - 1)
        scored = (active_epoch & due) | (~active_epoch & (j == 0))
        val = jax.lax.cond(scored, lambda: _evaluate(cfg, module, params, hp, data, eval_idx, n_eval),
                           lambda: last_val)
        # an epoch trained but not scored has no validation figures (NaN); one past the member's own repeats them
        skipped = active_epoch & ~scored
        return (params, opt_state, val), (train_loss, *(jnp.where(skipped, jnp.nan, v) for v in val[1:]))

    # the outputs, loss and accuracy of the last evaluation ride in the carry: the last epoch a task trains
    # in this call is always scored, and a task that trains no more is scored at the call's first epoch, so
    # after the scan the carry holds the final parameters' outputs (one evaluation in the program, not a
    # second one after the loop to compile)
    shapes = jax.eval_shape(lambda: _evaluate(cfg, module, params, hp, data, eval_idx, n_eval))
    unscored = tuple(jnp.full(v.shape, jnp.nan, v.dtype) for v in shapes)
    (params, opt_state, (outputs, _, _)), history = jax.lax.scan(epoch_body, (params, opt_state, unscored),
                                                                 jnp.arange(num_epochs))
    if cfg.classification:
        outputs = jax.nn.softmax(outputs, axis=-1)
    done = epoch0 + jnp.minimum(num_epochs, jnp.maximum(member_epochs - epoch0, 0))
    return params, opt_state, done, history, outputs


def rows_at(tree: Any, index: Any) -> Any:
    """Every leaf of ``tree`` at the rows ``index`` of its leading axis (NumPy or JAX, eager or traced)."""
    return jax.tree.map(lambda a: a[index], tree)


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

    ``init((keys, hparams), {"x_fit": x})`` and ``run(task_args, data, index_in,
    index_out)``: ``run`` trains the tasks ``task_args[index_in]`` (``None``:
    as they are) and returns the results at ``index_out`` of that order.

    Shared by every ``Population`` of the same configuration in a process (the
    flagship's three splits, successive halving's rungs of equal length), so a
    program compiles once; a ``Population`` keeps the ones it uses
    (``Population.programs``). Bounded: the least recently used of more than
    64 configurations is dropped, and compiles again if asked for.
    """

    def init_all(task_args, shared):
        keys, hp = task_args
        x_example = shared["x_fit"][:1]  # sliced in the program: a slice outside it would be a program of its own
        return _over_tasks(cfg, lambda a: _task_init(cfg, a[0], a[1], x_example), (keys, hp))

    def train_all(task_args, shared):
        params, opt_state, keys, hp, epoch0, view = task_args

        def one(a):
            return _task_epochs(cfg, num_epochs, *a, shared)

        return _over_tasks(cfg, one, (params, opt_state, keys, hp, epoch0, view))

    options = compile_options.TRAINING_OPTIONS
    # initialization runs once per population: XLA's backend optimizations cost more compile time than they save
    init = compile_options.jit(lambda t, s: _sharded(init_all, mesh, axis, t, s), compile_options.INIT_OPTIONS)
    def run_all(task_args, shared, index_in, index_out):
        # with a mesh, the tasks are dealt to the devices in the order index_in (balanced, padded to a multiple
        # of the devices) and their results put back by index_out, inside this program: a gather of the whole
        # state outside it would be a program of its own to compile
        if index_in is not None:
            task_args = rows_at(task_args, index_in)
        out = _sharded(train_all, mesh, axis, task_args, shared)
        return out if index_out is None else rows_at(out, index_out)

    run = compile_options.jit(run_all, options)
    return init, run

