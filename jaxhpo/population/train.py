"""Train a population of Flax models, each with its own hyperparameters, in one compiled call.

A *task* is one member trained on one view of the data (one fold in
cross-validation). Every task runs the same program: epochs in a
``lax.scan``, minibatch steps in an inner ``lax.scan``; what differs per
task are arrays, never shapes:

* continuous optimizer hyperparameters live in the optimizer state through
  ``optax.inject_hyperparams`` (synced from the task's hyperparameters at
  every step, so population-based training can change them mid-run);
* ``epochs`` and ``batch_size`` are per-member integers: a member stops
  updating after its own epoch count, and takes its own batch size and its
  own number of steps per epoch out of a batch padded to the largest size;
* anything the model reads (width, activation index, dropout rate, init
  scale) is passed to ``model_fn(hparams)``; ``jaxhpo.population.MLP`` and
  ``LeNet`` show how: widths masked to the largest, activations by ``lax.switch``.

How tasks run is the ``mode``: ``"vmap"`` (all at once; fastest on GPU/TPU),
``"map"`` (one after another inside the compiled program; fastest on CPU
for small networks, where it also skips inactive steps), or ``"chunks"``
(``lax.map`` over vmapped chunks of ``chunk_size``). ``"auto"`` picks
``"map"`` on CPU and ``"vmap"`` elsewhere. With a ``mesh``, tasks are split
over the mesh's devices with ``shard_map`` and each device runs its share in
the chosen mode.

Example:
    >>> import jax, jax.numpy as jnp, optax
    >>> from jaxhpo import population
    >>> x = jax.random.normal(jax.random.key(0), (64, 4)); y = (x[:, 0] > 0).astype(jnp.int32)
    >>> hp = {"learning_rate": jnp.array([1e-3, 1e-2]), "epochs": jnp.array([2, 3])}
    >>> res = population.train(lambda h: population.MLP(hidden=(8,), outputs=2), hp,
    ...                        x, y, x, y, optimizer=optax.adam, batch_size=16, key=jax.random.key(1))
    >>> res.val_loss.shape   # [members, epochs]
    (2, 3)
"""

from __future__ import annotations

import functools
import inspect
import math
from typing import Any, Callable, Mapping, NamedTuple, Optional, Union

import jax
import jax.numpy as jnp
import numpy as np
import optax

Array = jax.Array
LossFn = Callable[[Array, Array, dict], Array]

RESERVED = ("epochs", "batch_size")
MODES = ("auto", "vmap", "map", "chunks")


class PopulationState(NamedTuple):
    """Training state of every task, stacked on a leading task axis.

    Attributes:
        params: model parameters, each leaf ``[tasks, ...]``.
        opt_state: optimizer states, each leaf ``[tasks, ...]``.
        hparams: per-task hyperparameters, each ``[tasks]``.
        key: ``[tasks]`` PRNG keys (shuffling and dropout derive from key and epoch).
        epoch: ``[tasks]`` epochs trained so far.
    """

    params: Any
    opt_state: Any
    hparams: dict[str, Array]
    key: Array
    epoch: Array


class PopulationResult(NamedTuple):
    """What ``train`` returns.

    Attributes:
        state: the final ``PopulationState`` (parameters for every member).
        train_loss: ``[members, epochs]`` mean training loss per epoch (NaN
            for epochs past a member's own ``epochs``).
        val_loss: ``[members, epochs]`` validation loss after each epoch.
        val_accuracy: ``[members, epochs]`` validation accuracy (NaN for regression).
        val_predictions: ``[members, n_val, classes]`` probabilities
            (classification) or ``[members, n_val, ...]`` outputs, from the final parameters.
        hparams: the hyperparameters trained, each ``[members]``.
    """

    state: PopulationState
    train_loss: Array
    val_loss: Array
    val_accuracy: Array
    val_predictions: Array
    hparams: dict[str, Array]

    @property
    def final_val_loss(self) -> Array:
        """``[members]`` validation loss of the final parameters."""
        return self.val_loss[:, -1]


# ----------------------------------------------------------------------------- losses


def cross_entropy(outputs: Array, y: Array, hparams: Mapping[str, Array]) -> Array:
    """Per-example softmax cross-entropy; reads ``hparams["label_smoothing"]`` if present."""
    classes = outputs.shape[-1]
    onehot = jax.nn.one_hot(y, classes, dtype=outputs.dtype)
    if "label_smoothing" in hparams:
        s = jnp.asarray(hparams["label_smoothing"], outputs.dtype)
        onehot = onehot * (1.0 - s) + s / classes
    return -jnp.sum(onehot * jax.nn.log_softmax(outputs, axis=-1), axis=-1)


def squared_error(outputs: Array, y: Array, hparams: Mapping[str, Array]) -> Array:
    """Per-example squared error (outputs ``[b, 1]`` or ``[b]`` against ``y [b]``)."""
    outputs = outputs.reshape(y.shape + outputs.shape[y.ndim:])
    d = (outputs - y.reshape(y.shape + (1,) * (outputs.ndim - y.ndim))) ** 2
    return d.reshape(d.shape[0], -1).mean(axis=-1)


LOSSES = {"cross_entropy": cross_entropy, "mse": squared_error}


# ----------------------------------------------------------------------------- program


class _Config(NamedTuple):
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


def _lane_sizes(mode: str, low: int, high: int) -> tuple[int, ...]:
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


def _takes_train(module) -> bool:
    try:
        return "train" in inspect.signature(type(module).__call__).parameters
    except (TypeError, ValueError):
        return False


def _optimizer(cfg: _Config, hp: Mapping[str, Array]) -> optax.GradientTransformation:
    kwargs = dict(cfg.optimizer_kwargs)
    for arg, name in cfg.optimizer_args:
        kwargs[arg] = hp[name]
    return optax.inject_hyperparams(cfg.optimizer)(**kwargs)


def _sync_hparams(cfg: _Config, opt_state, hp):
    """Writes the task's current hyperparameters into the injected optimizer state."""
    if not cfg.optimizer_args:
        return opt_state
    hyper = dict(opt_state.hyperparams)
    for arg, name in cfg.optimizer_args:
        hyper[arg] = jnp.asarray(hp[name], hyper[arg].dtype)
    return opt_state._replace(hyperparams=hyper)


def _apply(cfg: _Config, module, params, x, train: bool, key):
    if cfg.takes_train:
        return module.apply({"params": params}, x, train=train, rngs={"dropout": key} if train else None)
    return module.apply({"params": params}, x)


def _task_init(cfg: _Config, key: Array, hp: dict, x_example: Array):
    module = cfg.model_fn(hp)
    k_init, k_drop = jax.random.split(key)
    rngs = {"params": k_init, "dropout": k_drop}
    if cfg.takes_train:
        variables = module.init(rngs, x_example, train=False)
    else:
        variables = module.init(rngs, x_example)
    params = variables["params"]
    return params, _optimizer(cfg, hp).init(params)


def _evaluate(cfg: _Config, module, params, hp, data, eval_idx, n_eval):
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


def _task_epochs(cfg: _Config, num_epochs: int, params, opt_state, key, hp, epoch0, view, data):
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


def _over_tasks(cfg: _Config, fn: Callable, args):
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
def _compiled(cfg: _Config, num_epochs: int, mesh, axis: str):
    """One jitted init and one jitted training program per static configuration."""

    def init_all(task_args, shared):
        keys, hp = task_args
        return _over_tasks(cfg, lambda a: _task_init(cfg, a[0], a[1], shared["x_example"]), (keys, hp))

    def train_all(task_args, shared):
        params, opt_state, keys, hp, epoch0, view = task_args

        def one(a):
            return _task_epochs(cfg, num_epochs, *a, shared)

        return _over_tasks(cfg, one, (params, opt_state, keys, hp, epoch0, view))

    init = jax.jit(lambda t, s: _sharded(init_all, mesh, axis, t, s))
    run = jax.jit(lambda t, s: _sharded(train_all, mesh, axis, t, s))
    return init, run


# ----------------------------------------------------------------------------- public API


class _Reads(dict):
    """A dict that remembers which keys were read (``h["width"]``, ``h.get``, ``in``); iterating reads all."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.names: set = set()

    def __getitem__(self, key: Any) -> Any:
        self.names.add(key)
        return super().__getitem__(key)

    def get(self, key: Any, default: Any = None) -> Any:
        self.names.add(key)
        return super().get(key, default)

    def __contains__(self, key: Any) -> bool:
        self.names.add(key)
        return super().__contains__(key)

    def _all(self) -> None:
        self.names.update(super().keys())

    def __iter__(self):
        self._all()
        return super().__iter__()

    def keys(self):
        self._all()
        return super().keys()

    def items(self):
        self._all()
        return super().items()

    def values(self):
        self._all()
        return super().values()


def host_local(tree: Any) -> Any:
    """``tree`` with every array that spans other processes' devices gathered onto this process.

    With one process (one machine, any number of devices) arrays are returned
    as they are. When JAX runs on several processes (``jax.distributed``;
    several hosts, or several processes on one machine), the population's
    outputs are split over all processes' devices and no process can read
    them with ``np.asarray``; this gathers them (``multihost_utils.process_allgather``),
    so every process holds the whole population's results as NumPy arrays.
    ``Population.init`` and ``Population.run`` return their results through it,
    so everything built on them (``train``, ``cross_validate``, the schedulers,
    ``search``) reads the same results on every process.
    """
    if jax.process_count() == 1:
        return tree
    from jax.experimental import multihost_utils

    def local(a: Any) -> Any:
        if isinstance(a, jax.Array) and not a.is_fully_addressable:
            if jnp.issubdtype(a.dtype, jax.dtypes.prng_key):
                return jax.random.wrap_key_data(multihost_utils.process_allgather(jax.random.key_data(a), tiled=True),
                                                impl=jax.random.key_impl(a))
            return multihost_utils.process_allgather(a, tiled=True)
        return a

    return jax.tree.map(local, tree)


def _checked_data(x_train: Any, y_train: Any, x_val: Any, y_val: Any) -> tuple[Array, Array, Array, Array]:
    """The four arrays as JAX arrays, after checks that name the argument at fault."""
    out = {}
    for name, value in (("x_train", x_train), ("y_train", y_train), ("x_val", x_val), ("y_val", y_val)):
        arr = value if isinstance(value, jax.Array) else np.asarray(value)  # device arrays stay on the device
        xp = jnp if isinstance(arr, jax.Array) else np
        if np.dtype(arr.dtype).kind not in "biuf":
            example = arr.reshape(-1)[:1].tolist()
            raise ValueError(f"{name} must be numeric, got dtype {arr.dtype} (e.g. {example}); encode labels "
                             f"as integers 0..C-1 (sklearn.preprocessing.LabelEncoder) and features as numbers")
        if arr.ndim == 0 or arr.shape[0] == 0:
            raise ValueError(f"{name} is empty (shape {arr.shape})")
        if np.dtype(arr.dtype).kind == "f":
            bad = int(arr.size - xp.count_nonzero(xp.isfinite(arr)))
            if bad:
                raise ValueError(f"{name} holds {bad} NaN or infinite values; impute or drop them before training")
        out[name] = arr
    for part in ("train", "val"):
        if out[f"x_{part}"].shape[0] != out[f"y_{part}"].shape[0]:
            raise ValueError(f"x_{part} and y_{part} differ in length: {out[f'x_{part}'].shape[0]} != "
                             f"{out[f'y_{part}'].shape[0]}")
    if out["x_val"].shape[1:] != out["x_train"].shape[1:]:
        raise ValueError(f"x_val rows have shape {out['x_val'].shape[1:]}, x_train rows {out['x_train'].shape[1:]}; "
                         f"both must have the same features")
    return tuple(jnp.asarray(out[k]) for k in ("x_train", "y_train", "x_val", "y_val"))


def _check_range(name: str, value: Any) -> Optional[tuple[int, int]]:
    if value is None:
        return None
    try:
        low, high = (int(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a pair of ints (smallest, largest) or None, got {name}={value!r}") from None
    if not 1 <= low <= high:
        raise ValueError(f"{name} must satisfy 1 <= smallest <= largest, got {name}={value!r}")
    return low, high


def _check_hparams(hparams: Mapping[str, Any]) -> tuple[dict[str, np.ndarray], int]:
    if not isinstance(hparams, Mapping) or not hparams:
        raise ValueError(f"hparams must be a non-empty dict of per-member arrays, got {hparams!r}")
    out, sizes = {}, set()
    for name, value in hparams.items():
        arr = np.asarray(value)
        if arr.ndim != 1:
            raise ValueError(f"hparams[{name!r}] must be a 1-d array (one value per member), got shape {arr.shape}")
        if not np.all(np.isfinite(arr.astype(np.float64))):
            raise ValueError(f"hparams[{name!r}] has non-finite values: {arr}")
        out[name] = arr
        sizes.add(arr.shape[0])
    if len(sizes) != 1:
        raise ValueError(f"hparams arrays must all have the same length, got lengths {sorted(sizes)}")
    return out, sizes.pop()


def default_mesh(axis: str = "tasks"):
    """A 1-d mesh over all devices of the default backend, or ``None`` if there is one device."""
    devices = jax.devices()
    if len(devices) < 2:
        return None
    from jax.sharding import Mesh

    return Mesh(np.array(devices), (axis,))


def use_cpu_cores(n: Optional[int] = None) -> int:
    """Exposes ``n`` CPU cores (default: all) as JAX host devices, so a population spreads over them.

    XLA runs one CPU program on one core at a time for networks this small;
    with several host devices, ``mesh="auto"`` trains one share of the
    population per core (measured on 2 cores: 2x). Call it before JAX first
    runs anything (it sets ``XLA_FLAGS``); afterwards it changes nothing and
    returns the device count JAX already has.

    Example:
        >>> from jaxhpo import population
        >>> population.use_cpu_cores() >= 1
        True
    """
    import os

    from jax._src import xla_bridge

    if xla_bridge.backends_are_initialized():
        return len(jax.devices())
    n = int(n or os.cpu_count() or 1)
    flags = [f for f in os.environ.get("XLA_FLAGS", "").split() if "xla_force_host_platform_device_count" not in f]
    os.environ["XLA_FLAGS"] = " ".join(flags + [f"--xla_force_host_platform_device_count={n}"])
    return n


def resolve_mode(mode: str) -> str:
    """The execution mode ``"auto"`` stands for on the default backend."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if mode == "auto":
        return "map" if jax.default_backend() == "cpu" else "vmap"
    return mode


class Population:
    """A trainable population: the static program plus the data views.

    ``train`` is the one-call front door; ``Population`` is what successive
    halving, Hyperband and population-based training use to train in rungs
    (``init``, then ``run`` for some epochs, ``select`` survivors, ``run`` again).

    Args:
        model_fn: ``hparams -> flax.linen.Module`` (or an NNX module through
            ``nnx_model(cls, ...)``); ``hparams`` is a dict of one member's scalars (traced). Modules whose ``__call__`` takes ``train``
            get ``train=True`` and a ``"dropout"`` rng while training.
        x_train, y_train, x_val, y_val: arrays; ``y`` integer labels for
            classification, targets for regression.
        loss: ``"cross_entropy"`` (default), ``"mse"`` or a function
            ``(outputs, y, hparams) -> per-example losses``.
        optimizer: an Optax factory (default ``optax.adamw``), wrapped in
            ``optax.inject_hyperparams``; member hyperparameters named like its
            arguments (``learning_rate``, ``weight_decay``, ``b1`` ...) go to it.
        optimizer_args: explicit ``{factory argument: hparam name}`` mapping
            (default: matching names).
        optimizer_kwargs: fixed arguments for the factory.
        batch_size: batch size when ``hparams`` has no ``"batch_size"``; else the
            largest member batch size is the padded size.
        max_epochs: epochs when ``hparams`` has no ``"epochs"``.
        mode: ``"auto"``, ``"vmap"``, ``"map"`` or ``"chunks"`` (see module doc).
        chunk_size: tasks per vmapped chunk in ``"chunks"`` mode.
        mesh: ``"auto"`` (default: all devices of the default backend when there
            are several, e.g. GPUs, or CPU cores exposed by ``use_cpu_cores``),
            ``None`` (one device) or a ``jax.sharding.Mesh``; tasks are split
            over ``mesh_axis`` and each device trains its share in ``mode``.
        mesh_axis: the mesh axis name to split tasks over.
        classification: default: True for integer labels with ``cross_entropy``.
        views: internal (the folds of ``jaxhpo.population.cross_validate``):
            ``(train rows [V, n], train counts [V], eval rows [V, m], eval counts [V])``.
        batch_size_range: ``(smallest, largest)`` member batch size any call
            will see; the training program is padded to it, so calls whose
            members' batch sizes differ share one compiled program (what
            ``search`` passes from the space). Default: each call's own range.
        epochs_range: ``(fewest, most)`` member epochs any call will see;
            ``fit`` trains for ``most`` epochs (members stop at their own), so
            every call shares one program. Default: each call's own largest.
    """

    def __init__(
        self,
        model_fn: Callable[[dict], Any],
        x_train: Any,
        y_train: Any,
        x_val: Any,
        y_val: Any,
        *,
        loss: Union[str, LossFn] = "cross_entropy",
        optimizer: Callable[..., optax.GradientTransformation] = optax.adamw,
        optimizer_args: Optional[Mapping[str, str]] = None,
        optimizer_kwargs: Optional[Mapping[str, Any]] = None,
        batch_size: int = 64,
        max_epochs: int = 10,
        mode: str = "auto",
        chunk_size: int = 8,
        mesh: Any = "auto",
        mesh_axis: Optional[str] = None,
        classification: Optional[bool] = None,
        views: Optional[tuple] = None,
        batch_size_range: Optional[tuple[int, int]] = None,
        epochs_range: Optional[tuple[int, int]] = None,
    ) -> None:
        if not callable(model_fn):
            raise ValueError(f"model_fn must be a callable hparams -> flax module, got {model_fn!r}")
        if isinstance(loss, str):
            if loss not in LOSSES:
                raise ValueError(f"loss must be one of {sorted(LOSSES)} or a callable, got {loss!r}")
            loss_fn = LOSSES[loss]
        elif callable(loss):
            loss_fn = loss
        else:
            raise ValueError(f"loss must be a string or a callable, got {loss!r}")
        for name, v in (("batch_size", batch_size), ("max_epochs", max_epochs), ("chunk_size", chunk_size)):
            if not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        self.mode = resolve_mode(mode)
        x_train, y_train, x_val, y_val = _checked_data(x_train, y_train, x_val, y_val)
        if loss_fn is cross_entropy:
            for name, y in (("y_train", y_train), ("y_val", y_val)):
                if y.ndim != 1 or not jnp.issubdtype(y.dtype, jnp.integer):
                    what = "one-hot or probability rows" if y.ndim == 2 else f"{y.dtype} values of shape {y.shape}"
                    raise ValueError(f"{name} must hold integer class ids 0..C-1 for loss='cross_entropy', got "
                                     f"{what}; pass y.argmax(-1) for one-hot labels, or loss='mse' for regression")
                if int(y.min()) < 0:
                    raise ValueError(f"{name} holds negative class ids (smallest {int(y.min())}); class ids are "
                                     f"0..C-1 (sklearn.preprocessing.LabelEncoder makes them)")
        if classification is None:
            classification = loss_fn is cross_entropy and jnp.issubdtype(y_train.dtype, jnp.integer)
        self.classification = bool(classification)
        self._checked_model = False
        self.model_fn, self.loss_fn = model_fn, loss_fn
        self.optimizer = optimizer
        self.optimizer_args = optimizer_args
        self.optimizer_kwargs = tuple(sorted((optimizer_kwargs or {}).items()))
        self.batch_size, self.max_epochs, self.chunk_size = int(batch_size), int(max_epochs), int(chunk_size)
        self.batch_size_range = _check_range("batch_size_range", batch_size_range)
        self.epochs_range = _check_range("epochs_range", epochs_range)
        if isinstance(mesh, str):
            if mesh != "auto":
                raise ValueError(f"mesh must be 'auto', None or a jax.sharding.Mesh, got {mesh!r}")
            mesh = default_mesh()
        self.mesh = mesh
        self.mesh_axis = mesh_axis or (mesh.axis_names[0] if mesh is not None else "tasks")
        self.data = {"x_fit": x_train, "y_fit": y_train, "x_eval": x_val, "y_eval": y_val}
        if views is None:
            views = (
                jnp.arange(x_train.shape[0], dtype=jnp.int32)[None],
                jnp.array([x_train.shape[0]], jnp.int32),
                jnp.arange(x_val.shape[0], dtype=jnp.int32)[None],
                jnp.array([x_val.shape[0]], jnp.int32),
            )
        self.views = views  # [V, n_max], [V], [V, m_max], [V]

    @property
    def num_views(self) -> int:
        return int(self.views[0].shape[0])

    def _config(self, hp: Mapping[str, np.ndarray]) -> _Config:
        params = inspect.signature(self.optimizer).parameters
        if self.optimizer_args is None:
            args = tuple((n, n) for n in hp if n in params and n not in RESERVED)
        else:
            for arg, name in self.optimizer_args.items():
                if arg not in params:
                    raise ValueError(f"optimizer_args: {arg!r} is not an argument of {self.optimizer}")
                if name not in hp:
                    raise ValueError(f"optimizer_args: hparam {name!r} (for {arg!r}) is not in hparams")
            args = tuple(sorted(self.optimizer_args.items()))
        bs = np.asarray(hp["batch_size"]) if "batch_size" in hp else np.array([self.batch_size])
        if np.any(bs < 1):
            raise ValueError(f"hparams['batch_size'] must be >= 1, got {bs}")
        low, high = int(bs.min()), int(bs.max())
        if self.batch_size_range is not None:
            low, high = min(low, self.batch_size_range[0]), max(high, self.batch_size_range[1])
        max_batch = high
        n_max = int(np.max(np.asarray(self.views[1])))
        max_steps = int(math.ceil(n_max / low))
        reads = _Reads({k: jnp.asarray(v[0]) for k, v in hp.items()})
        probe = self.model_fn(reads)
        if not self._checked_model:
            self._check_model(probe, reads, hp, args)
            self._checked_model = True
        return _Config(
            self.model_fn, self.loss_fn, self.classification, self.optimizer, args, self.optimizer_kwargs,
            _takes_train(probe), max_batch, max_steps, _lane_sizes(self.mode, low, high), self.mode, self.chunk_size,
        )

    def _check_model(self, probe: Any, reads: "_Reads", hp: Mapping[str, np.ndarray], args: tuple) -> None:
        """Every hyperparameter is taken by someone, and classification labels fit the model's outputs."""
        x = self.data["x_fit"][:1]
        try:
            takes = _takes_train(probe)
            out = jax.eval_shape(lambda: probe.init_with_output(
                {"params": jax.random.key(0), "dropout": jax.random.key(1)}, x, **({"train": False} if takes else {}))[0])
            y = self.data["y_fit"][:1]
            jax.eval_shape(lambda: self.loss_fn(jnp.zeros(out.shape, out.dtype), y, reads))
        except Exception:  # the model's own errors surface, with their traceback, when it is run
            return
        optimizer_params = inspect.signature(self.optimizer).parameters
        open_ended = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in optimizer_params.values())
        taken = set(RESERVED) | reads.names | {name for _, name in args}
        if self.optimizer_args is None and open_ended:
            taken |= set(hp)
        unused = [k for k in hp if k not in taken]
        if unused:
            opt_name = getattr(self.optimizer, "__name__", repr(self.optimizer))
            offered = sorted(n for n, p in optimizer_params.items() if p.kind is not inspect.Parameter.VAR_POSITIONAL)
            raise ValueError(
                f"hparams {unused} are taken by nothing: not by the optimizer ({opt_name} takes {offered}), not "
                f"by model_fn (it reads {sorted(reads.names) or 'none'}), not by the loss, and not reserved "
                f"({list(RESERVED)}); check the spelling, or pass an optimizer that takes them "
                f"(weight_decay: optax.adamw)")
        if self.classification and out.ndim >= 1:
            classes = int(out.shape[-1])
            high = max(int(self.data["y_fit"].max()), int(self.data["y_eval"].max()))
            if high >= classes:
                raise ValueError(f"y_train/y_val hold class ids up to {high} but the model has {classes} outputs; "
                                 f"give the model {high + 1} outputs, or relabel the classes 0..{classes - 1}")

    def _num_epochs(self, hp) -> int:
        if "epochs" in hp:
            e = np.asarray(hp["epochs"])
            if np.any(e < 1):
                raise ValueError(f"hparams['epochs'] must be >= 1, got {e}")
            most = int(e.max())
            return max(most, self.epochs_range[1]) if self.epochs_range is not None else most
        return self.max_epochs

    def _pad(self, tree, n_tasks: int):
        """Pads the task axis to a multiple of the mesh size (repeats the last task)."""
        if self.mesh is None:
            return tree, n_tasks
        size = self.mesh.shape[self.mesh_axis]
        total = -(-n_tasks // size) * size
        if total == n_tasks:
            return tree, n_tasks
        idx = np.minimum(np.arange(total), n_tasks - 1)
        return jax.tree.map(lambda a: a[idx], tree), n_tasks

    def init(self, hparams: Mapping[str, Any], key: Array) -> PopulationState:
        """Initializes every (member, view) task; the task axis is member-major."""
        hp, n = _check_hparams(hparams)
        v = self.num_views
        hp_t = {k: jnp.asarray(np.repeat(a, v)) for k, a in hp.items()}
        member_keys = jax.random.split(key, n)
        keys = jax.vmap(lambda k: jax.random.split(k, v))(member_keys).reshape((n * v,) + member_keys.shape[1:])
        cfg = self._config(hp)
        init, _ = _compiled(cfg, 1, self.mesh, self.mesh_axis)
        (keys_p, hp_p), _ = self._pad((keys, hp_t), n * v)
        params, opt_state = host_local(init((keys_p, hp_p), {"x_example": self.data["x_fit"][:1]}))
        params, opt_state = jax.tree.map(lambda a: a[: n * v], (params, opt_state))
        return PopulationState(params, opt_state, hp_t, keys, jnp.zeros((n * v,), jnp.int32))

    def fit(self, hparams: Mapping[str, Any], key: Array):
        """``init`` then ``run`` for every member's full epoch budget; returns what ``run`` returns."""
        state = self.init(hparams, key)
        return self.run(state, self._num_epochs(state.hparams))

    def run(self, state: PopulationState, num_epochs: int):
        """Trains every task ``num_epochs`` more epochs.

        Returns:
            ``(state, history, predictions)``: history is ``(train_loss, val_loss,
            val_accuracy)``, each ``[tasks, num_epochs]``; predictions ``[tasks, m, ...]``.
        """
        if not isinstance(num_epochs, (int, np.integer)) or num_epochs < 1:
            raise ValueError(f"num_epochs must be a positive int, got {num_epochs!r}")
        hp = {k: np.asarray(a) for k, a in state.hparams.items()}
        cfg = self._config(hp)
        _, run = _compiled(cfg, int(num_epochs), self.mesh, self.mesh_axis)
        t = state.epoch.shape[0]
        v = self.num_views
        view_of_task = np.arange(t) % v
        views = tuple(a[view_of_task] for a in self.views)
        args = (state.params, state.opt_state, state.key, state.hparams, state.epoch, views)
        order = self._balanced_order(cfg, hp, np.asarray(state.epoch), int(num_epochs), np.asarray(views[1]))
        if order is not None:
            args = jax.tree.map(lambda a: a[order], args)
        args_p, _ = self._pad(args, t)
        outputs = host_local(run(args_p, self.data))
        outputs = jax.tree.map(lambda a: a[:t], outputs)
        if order is not None:
            outputs = jax.tree.map(lambda a: a[np.argsort(order)], outputs)
        params, opt_state, epoch, history, preds = outputs
        return state._replace(params=params, opt_state=opt_state, epoch=epoch), history, preds

    def _balanced_order(self, cfg: _Config, hp: Mapping[str, np.ndarray], epoch: np.ndarray, num_epochs: int,
                        n_train: np.ndarray) -> Optional[np.ndarray]:
        """A task order that gives each device of the mesh about the same work, or None to keep the order.

        In ``"map"`` mode a device trains its share one task after another, so
        the slowest share sets the time: tasks are dealt, costliest first, to the
        device with the least work that still has room (each device gets a
        contiguous block of equal size). A task's cost is its remaining epochs
        times its steps per epoch times the rows of its minibatch shape. The
        results are the same in any order; ``run`` puts them back.
        """
        if self.mesh is None or cfg.mode != "map":
            return None
        devices = int(self.mesh.shape[self.mesh_axis])
        t = epoch.shape[0]
        if devices < 2 or t <= 1:
            return None
        member_epochs = np.asarray(hp["epochs"], np.int64) if "epochs" in hp else np.full(t, 1 << 30)
        remaining = np.clip(np.minimum(member_epochs - epoch, num_epochs), 0, None)
        b = np.clip(np.asarray(hp.get("batch_size", np.full(t, cfg.max_batch)), np.int64), 1, cfg.max_batch)
        sizes = np.asarray(cfg.lane_sizes)
        lanes = sizes[np.minimum(np.searchsorted(sizes, b), len(sizes) - 1)]
        cost = remaining * np.ceil(n_train / b) * lanes
        block = -(-t // devices)
        room = np.full(devices, block)
        room[-1] -= block * devices - t  # the padding copies fill the end of the last block
        load = np.zeros(devices)
        shares: list[list[int]] = [[] for _ in range(devices)]
        for task in np.argsort(-cost, kind="stable"):
            d = min((d for d in range(devices) if room[d] > 0), key=lambda d: load[d])
            shares[d].append(int(task))
            load[d] += cost[task]
            room[d] -= 1
        return np.asarray([task for share in shares for task in share], np.int64)


def select(state: PopulationState, index: Any) -> PopulationState:
    """The tasks at ``index`` (survivors of a rung, copies for PBT), as a new state."""
    index = jnp.asarray(index, jnp.int32)
    return jax.tree.map(lambda a: a[index], state)


def train(
    model_fn: Callable[[dict], Any],
    hparams: Mapping[str, Any],
    x_train: Any,
    y_train: Any,
    x_val: Any,
    y_val: Any,
    *,
    key: Array,
    epochs: Optional[int] = None,
    **options: Any,
) -> PopulationResult:
    """Trains one member per row of ``hparams`` in one compiled call.

    Args:
        model_fn: ``hparams -> flax.linen.Module`` (see ``Population``).
        hparams: dict of per-member arrays ``[members]``, e.g. from ``space.decode``.
            Reserved names: ``epochs`` (per-member epoch count) and ``batch_size``.
        x_train, y_train, x_val, y_val: training and validation data.
        key: PRNG key (initialization, shuffling, dropout).
        epochs: epochs when ``hparams`` has no ``"epochs"`` (default 10).
        **options: ``Population`` options: ``loss``, ``optimizer``,
            ``optimizer_args``, ``optimizer_kwargs``, ``batch_size``, ``mode``,
            ``chunk_size``, ``mesh``, ``mesh_axis``, ``classification``.

    Returns:
        A ``PopulationResult``.
    """
    if epochs is not None:
        options["max_epochs"] = epochs
    pop = Population(model_fn, x_train, y_train, x_val, y_val, **options)
    state, (train_loss, val_loss, val_acc), preds = pop.fit(hparams, key)
    return PopulationResult(state, train_loss, val_loss, val_acc, preds, dict(state.hparams))


def predict(model_fn: Callable[[dict], Any], state: PopulationState, x: Any, *, classification: bool = True,
            batch_size: int = 4096) -> Array:
    """Predictions of every member in ``state`` on new data ``x``.

    Args:
        model_fn: the same ``hparams -> module`` the population was trained with.
        state: a ``PopulationState`` (``result.state``; one member per task).
        x: ``[n, ...]`` inputs.
        classification: return softmax probabilities (else raw outputs).
        batch_size: rows per forward pass (bounds memory).

    Returns:
        ``[members, n, ...]``, ready for ``jaxhpo.ensemble``.
    """
    x = jnp.asarray(x)
    probe = model_fn({k: jnp.asarray(v[0]) for k, v in state.hparams.items()})
    takes = _takes_train(probe)
    parts = [_predict_chunk(model_fn, takes, bool(classification), state.params, state.hparams, x[i : i + batch_size])
             for i in range(0, x.shape[0], batch_size)]
    return jnp.concatenate(parts, axis=1)


@functools.partial(jax.jit, static_argnums=(0, 1, 2))
def _predict_chunk(model_fn: Callable, takes_train: bool, classification: bool, params, hp, xb):
    """Every member's outputs on ``xb``; one compiled program per model_fn and shapes, reused across calls."""

    def one(p, h):
        module = model_fn(h)
        out = module.apply({"params": p}, xb, train=False) if takes_train else module.apply({"params": p}, xb)
        return jax.nn.softmax(out, axis=-1) if classification else out

    return jax.lax.map(lambda a: one(*a), (params, hp))


def nnx_model(cls: type, *args: Any, **kwargs: Any) -> Any:
    """A Flax NNX module class, built with ``cls(*args, **kwargs, rngs=...)``, as a population member.

    ``model_fn`` may return ``nnx_model(MyNet, din, dout, scale=h["scale"])``:
    the module is wrapped with ``flax.nnx.bridge.ToLinen``, so its parameters
    are initialized per member and trained like any linen module's;
    hyperparameters passed as arguments may be traced arrays (values, not shapes).

    Example:
        >>> from flax import nnx
        >>> model_fn = lambda h: nnx_model(nnx.Linear, 4, 2)
    """
    from flax.nnx import bridge

    return bridge.ToLinen(cls, args=tuple(args), kwargs=dict(kwargs))
