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
  own number of steps per epoch; a step's gradient is summed over chunks of
  static shapes (in ``"map"`` mode small ones, see ``program.lane_sizes``;
  under ``vmap`` one chunk of the largest batch), then divided by its rows;
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

from typing import Any, Callable, Mapping, Optional

import jax
import jax.numpy as jnp
import numpy as np

from jaxhpo import compile_options
from jaxhpo.population.population import Population, PopulationResult, PopulationState
from jaxhpo.population.program import takes_train

Array = jax.Array


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
            ``chunk_size``, ``mesh``, ``mesh_axis``, ``classification``,
            ``validation_freq``.

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
    x = x if isinstance(x, jax.Array) else np.asarray(x)  # host data is sliced on the host, not by a program each
    traced = any(isinstance(a, jax.core.Tracer) for a in jax.tree.leaves((state.params, state.hparams, x)))
    probe = model_fn({k: v[0] if traced else jax.device_put(np.asarray(v)[0]) for k, v in state.hparams.items()})
    takes = takes_train(probe)
    chunk = _predict_chunk_inlined if traced else _predict_chunk  # under your jit: no options of ours (JAX refuses)
    parts = [chunk(model_fn, takes, bool(classification), state.params, state.hparams, x[i : i + batch_size])
             for i in range(0, x.shape[0], batch_size)]
    return parts[0] if len(parts) == 1 else jnp.concatenate(parts, axis=1)


def _predict_chunk_fn(model_fn: Callable, takes_train: bool, classification: bool, params, hp, xb):
    """Every member's outputs on ``xb``; one compiled program per model_fn and shapes, reused across calls."""

    def one(p, h):
        module = model_fn(h)
        out = module.apply({"params": p}, xb, train=False) if takes_train else module.apply({"params": p}, xb)
        return jax.nn.softmax(out, axis=-1) if classification else out

    return jax.lax.map(lambda a: one(*a), (params, hp))


# Called at the top level, compiled with jaxhpo's options: the same predictions, bit for bit, as XLA's defaults
# (the flagship's 8 CNNs on 360 test images), in 0.58-0.68 s instead of 0.97-1.18 s (2-core CPU, fresh process).
_predict_chunk = compile_options.jit(_predict_chunk_fn, static_argnums=(0, 1, 2))
_predict_chunk_inlined = jax.jit(_predict_chunk_fn, static_argnums=(0, 1, 2))


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
