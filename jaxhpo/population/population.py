"""``Population``: a population's static program and data views, trained in rungs (init, run, select).

Example:
    >>> import jax, jax.numpy as jnp, optax
    >>> from jaxhpo import population
    >>> x = jax.random.normal(jax.random.key(0), (64, 4)); y = (x[:, 0] > 0).astype(jnp.int32)
    >>> pop = population.Population(lambda h: population.MLP(hidden=(8,), outputs=2), x, y, x, y,
    ...                             optimizer=optax.adam, batch_size=16, max_epochs=2)
    >>> state = pop.init({"learning_rate": jnp.array([1e-3, 1e-2])}, jax.random.key(1))
    >>> state, (train_loss, val_loss, val_acc), preds = pop.run(state, 2)
    >>> val_loss.shape, preds.shape   # [tasks, epochs], [tasks, validation rows, classes]
    ((2, 2), (2, 64, 2))
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

from jaxhpo import compile_options
from jaxhpo.population.devices import default_mesh, host_local, resolve_mode
from jaxhpo.population.inputs import ReadTracker, checked_data, checked_hparams, checked_range, label_bounds
from jaxhpo.population.losses import LOSSES, LossFn, cross_entropy
from jaxhpo.population.program import (
    RESERVED, ProgramConfig, chunk_rows, compiled_programs, lane_sizes, product_flops, rows_at, takes_train,
)

Array = jax.Array


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
        val_loss: ``[members, epochs]`` validation loss after each epoch (NaN for
            epochs not scored: see ``Population``'s ``validation_freq``).
        val_accuracy: ``[members, epochs]`` validation accuracy (NaN for regression,
            and for epochs not scored).
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
        validation_freq: score the validation data after every
            ``validation_freq``-th epoch (Keras' ``validation_freq``), and always
            after a member's last epoch and the last epoch of each ``run``, so
            final scores, predictions and rung scores are unchanged; the history's
            other epochs hold NaN. Default 1: every epoch. Scoring costs a forward
            pass over the validation rows per member and epoch (what it saves the
            flagship: benchmarks/README.md).
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
        validation_freq: int = 1,
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
        for name, v in (("batch_size", batch_size), ("max_epochs", max_epochs), ("chunk_size", chunk_size),
                        ("validation_freq", validation_freq)):
            if not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        self.mode = resolve_mode(mode)
        labels = (y_train, y_val)  # as given: host labels are checked by NumPy
        x_train, y_train, x_val, y_val = checked_data(x_train, y_train, x_val, y_val)
        self._bounds: Optional[np.ndarray] = None  # label_bounds of y_train and y_val, when first needed
        if loss_fn is cross_entropy:
            for name, y in (("y_train", y_train), ("y_val", y_val)):
                if y.ndim != 1 or not jnp.issubdtype(y.dtype, jnp.integer):
                    what = "one-hot or probability rows" if y.ndim == 2 else f"{y.dtype} values of shape {y.shape}"
                    raise ValueError(f"{name} must hold integer class ids 0..C-1 for loss='cross_entropy', got "
                                     f"{what}; pass y.argmax(-1) for one-hot labels, or loss='mse' for regression")
            self._bounds = label_bounds(*labels)
            for name, low in (("y_train", self._bounds[0]), ("y_val", self._bounds[1])):
                if int(low) < 0:
                    raise ValueError(f"{name} holds negative class ids (smallest {int(low)}); class ids are "
                                     f"0..C-1 (sklearn.preprocessing.LabelEncoder makes them)")
        if classification is None:
            classification = loss_fn is cross_entropy and jnp.issubdtype(y_train.dtype, jnp.integer)
        self.classification = bool(classification)
        self._takes_train: Optional[bool] = None  # set by the first probe of model_fn (see _config)
        self._row_flops: Optional[float] = None  # one row's forward work, on CPU in map mode (see _check_model)
        self.model_fn, self.loss_fn = model_fn, loss_fn
        self.optimizer = optimizer
        self.optimizer_args = optimizer_args
        self.optimizer_kwargs = tuple(sorted((optimizer_kwargs or {}).items()))
        self.batch_size, self.max_epochs, self.chunk_size = int(batch_size), int(max_epochs), int(chunk_size)
        self.validation_freq = int(validation_freq)
        self.batch_size_range = checked_range("batch_size_range", batch_size_range)
        self.epochs_range = checked_range("epochs_range", epochs_range)
        if isinstance(mesh, str):
            if mesh != "auto":
                raise ValueError(f"mesh must be 'auto', None or a jax.sharding.Mesh, got {mesh!r}")
            mesh = default_mesh()
        self.mesh = mesh
        self.mesh_axis = mesh_axis or (mesh.axis_names[0] if mesh is not None else "tasks")
        self.data = {"x_fit": x_train, "y_fit": y_train, "x_eval": x_val, "y_eval": y_val}
        if views is None:
            views = (
                np.arange(x_train.shape[0], dtype=np.int32)[None],
                np.array([x_train.shape[0]], np.int32),
                np.arange(x_val.shape[0], dtype=np.int32)[None],
                np.array([x_val.shape[0]], np.int32),
            )
        self.views = tuple(np.asarray(a) for a in views)  # [V, n_max], [V], [V, m_max], [V]; small, on the host
        self.programs: dict = {}  # (ProgramConfig, epochs) -> (init, run): the compiled programs this population ran

    @property
    def num_views(self) -> int:
        return int(self.views[0].shape[0])

    def _config(self, hp: Mapping[str, np.ndarray]) -> ProgramConfig:
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
        if self._takes_train is None:  # model_fn is probed once per population, not at every init or run
            reads = ReadTracker(jax.device_put({k: np.asarray(v)[0] for k, v in hp.items()}))
            probe = self.model_fn(reads)
            self._check_model(probe, reads, hp, args)
            self._takes_train = takes_train(probe)
        return ProgramConfig(
            self.model_fn, self.loss_fn, self.classification, self.optimizer, args, self.optimizer_kwargs,
            self._takes_train, max_batch, max_steps, lane_sizes(self.mode, low, high, self._row_flops), self.mode,
            self.chunk_size,
        )

    def _platform(self) -> str:
        """The platform the members train on (the mesh's devices, else JAX's default backend)."""
        return self.mesh.devices.flat[0].platform if self.mesh is not None else jax.default_backend()

    def _programs(self, cfg: ProgramConfig, num_epochs: int) -> tuple[Callable, Callable]:
        """The jitted ``(init, run)`` of ``cfg`` trained ``num_epochs`` at a time, kept by this population."""
        key = (cfg, num_epochs)
        if key not in self.programs:
            self.programs[key] = compiled_programs(cfg, num_epochs, self.mesh, self.mesh_axis)
        return self.programs[key]

    def _check_model(self, probe: Any, reads: "ReadTracker", hp: Mapping[str, np.ndarray], args: tuple) -> None:
        """Every hyperparameter is taken by someone, and classification labels fit the model's outputs.

        On CPU in "map" mode it also counts one row's forward flops in the same trace (``_row_flops``,
        which sizes the minibatch chunks: ``program.lane_sizes``).
        """
        x = jax.ShapeDtypeStruct((1,) + self.data["x_fit"].shape[1:], self.data["x_fit"].dtype)  # shapes only
        try:
            takes = takes_train(probe)
            forward, out = jax.make_jaxpr(lambda x: probe.init_with_output(
                {"params": jax.random.key(0), "dropout": jax.random.key(1)}, x, **({"train": False} if takes else {}))[0],
                return_shape=True)(x)
            if self.mode == "map" and self._platform() == "cpu":  # one row's work sizes the minibatch chunks
                self._row_flops = product_flops(forward) or None
            y = jax.ShapeDtypeStruct((1,) + self.data["y_fit"].shape[1:], self.data["y_fit"].dtype)
            jax.eval_shape(lambda y: self.loss_fn(jnp.zeros(out.shape, out.dtype), y, reads), y)
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
            if self._bounds is None:
                self._bounds = label_bounds(self.data["y_fit"], self.data["y_eval"])
            high = int(self._bounds[2:].max())
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
        return take_rows(tree, idx), n_tasks

    def init(self, hparams: Mapping[str, Any], key: Array) -> PopulationState:
        """Initializes every (member, view) task; the task axis is member-major."""
        hp, n = checked_hparams(hparams)
        v = self.num_views
        hp_host = {k: np.repeat(a, v) for k, a in hp.items()}
        keys = _task_keys(key, n, v)
        cfg = self._config(hp)
        init, _ = self._programs(cfg, 1)
        keys_p, _ = self._pad(keys, n * v)
        hp_p, _ = self._pad(hp_host, n * v)
        # host arrays go into the program as they are (split over a mesh on the host: a device array
        # would be split by a slicing program compiled per shape)
        params, opt_state = host_local(init((keys_p, hp_p), {"x_fit": self.data["x_fit"]}))
        params, opt_state = _first_rows((params, opt_state), n * v)
        hp_t = jax.device_put(hp_host)  # jnp.asarray would compile a program per shape
        return PopulationState(params, opt_state, hp_t, keys, jax.device_put(np.zeros((n * v,), np.int32)))

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
        _, run = self._programs(cfg, int(num_epochs))
        t = state.epoch.shape[0]
        v = self.num_views
        view_of_task = np.arange(t) % v
        views = tuple(a[view_of_task] for a in self.views)  # NumPy: indexed on the host
        args = (state.params, state.opt_state, state.key, state.hparams, state.epoch, views)
        index_in = index_out = None
        if self.mesh is not None:  # dealt to the devices in a balanced order, padded; put back in the program
            order = self._balanced_order(cfg, hp, np.asarray(state.epoch), int(num_epochs), np.asarray(views[1]))
            order = np.arange(t) if order is None else order
            size = self.mesh.shape[self.mesh_axis]
            index_in = order[np.minimum(np.arange(-(-t // size) * size), t - 1)].astype(np.int32)
            index_out = np.argsort(order).astype(np.int32)
        # the frequency is an argument, not a static setting: one compiled program serves every frequency
        data = {**self.data, "validation_freq": np.int32(self.validation_freq)}
        outputs = host_local(run(args, data, index_in, index_out))
        params, opt_state, epoch, history, preds = outputs
        return state._replace(params=params, opt_state=opt_state, epoch=epoch), history, preds

    def _balanced_order(self, cfg: ProgramConfig, hp: Mapping[str, np.ndarray], epoch: np.ndarray, num_epochs: int,
                        n_train: np.ndarray) -> Optional[np.ndarray]:
        """A task order that gives each device of the mesh about the same work, or None to keep the order.

        In ``"map"`` mode a device trains its share one task after another, so
        the slowest share sets the time: tasks are dealt, costliest first, to the
        device with the least work that still has room (each device gets a
        contiguous block of equal size). A task's cost is its remaining epochs
        times its steps per epoch times the rows its minibatch chunks hold. The
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
        rows = np.asarray([sum(c) for c in chunk_rows(b, cfg.lane_sizes)])
        cost = remaining * np.ceil(n_train / b) * rows
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


@functools.partial(compile_options.jit, static_argnums=(1, 2))
def _task_keys(key: Array, members: int, views: int) -> Array:
    """``[members * views]`` keys, member-major: ``views`` keys split from each of ``members`` keys of ``key``."""
    member_keys = jax.random.split(key, members)
    return jax.vmap(lambda k: jax.random.split(k, views))(member_keys).reshape((members * views,) + key.shape)


_take = compile_options.jit(rows_at)


def take_rows(tree: Any, index: np.ndarray) -> Any:
    """Every leaf of ``tree`` at the rows ``index`` (a NumPy integer array) of its leading axis.

    One compiled gather for the whole tree (indexing leaf by leaf eagerly compiles one program per
    leaf shape); a tree of NumPy arrays (results gathered from other processes) is indexed by NumPy.
    """
    if all(isinstance(a, np.ndarray) for a in jax.tree.leaves(tree)):
        return rows_at(tree, index)
    return _take(tree, np.asarray(index, np.int32))  # converted here: on the device a conversion compiles


def _first_rows(tree: Any, n: int) -> Any:
    """The first ``n`` rows of every leaf: the tree itself when that is all of them (no padding)."""
    if all(np.shape(a)[0] == n for a in jax.tree.leaves(tree)):
        return tree
    return take_rows(tree, np.arange(n))


def select(state: PopulationState, index: Any) -> PopulationState:
    """The tasks at ``index`` (survivors of a rung, copies for PBT), as a new state."""
    return take_rows(state, np.asarray(index, np.int32))

