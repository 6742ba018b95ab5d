"""Multi-fidelity schedules on a population: successive halving, Hyperband, population-based training.

All three train in rungs with ``Population.run`` and carry parameters and
optimizer states forward: survivors continue where they stopped, they are
never retrained from scratch. A rung with fewer members is a smaller
program (compiled once per shape).

Example:
    >>> import jax, jax.numpy as jnp
    >>> from jaxhpo import population
    >>> x = jax.random.normal(jax.random.key(0), (64, 4)); y = (x[:, 0] > 0).astype(jnp.int32)
    >>> pop = population.Population(lambda h: population.MLP(hidden=(8,), outputs=2), x, y, x, y,
    ...                             batch_size=16, mesh=None)
    >>> hp = {"learning_rate": jnp.logspace(-4, -1, 9)}
    >>> sh = population.successive_halving(pop, hp, key=jax.random.key(0), min_epochs=1, max_epochs=9, eta=3)
    >>> sh.epochs.tolist().count(9)   # one member trained to the end
    1
"""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping, NamedTuple, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxhpo.population.population import Population, PopulationState, select

Array = jax.Array


class ScheduleResult(NamedTuple):
    """What a schedule returns.

    Attributes:
        hparams: the hyperparameters of every member ever trained, each ``[M]``
            (for PBT: the final hyperparameters of each slot).
        val_loss: ``[M]`` validation loss at each member's last rung.
        epochs: ``[M]`` epochs each member was trained.
        best: index of the best member (lowest loss among those trained longest).
        state: state of the members still alive at the end (``survivors`` order).
        survivors: indices (into ``hparams``) of the members in ``state``.
        predictions: validation predictions of the survivors.
        rungs: one record per rung: ``{"epochs", "members", "val_loss"}`` (PBT adds
            ``"hparams"`` and ``"parents"``).
    """

    hparams: dict[str, np.ndarray]
    val_loss: np.ndarray
    epochs: np.ndarray
    best: int
    state: PopulationState
    survivors: np.ndarray
    predictions: Array
    rungs: list


def _single_view(pop: Population) -> None:
    if pop.num_views != 1:
        raise ValueError("schedules need a Population with one train/validation split (got cross-validation views)")


def _best(val_loss: np.ndarray, epochs: np.ndarray) -> int:
    longest = epochs == epochs.max()
    loss = np.where(longest & np.isfinite(val_loss), val_loss, np.inf)
    return int(np.argmin(loss))


def successive_halving(
    pop: Population,
    hparams: Mapping[str, Any],
    *,
    key: Array,
    min_epochs: int = 1,
    max_epochs: Optional[int] = None,
    eta: int = 3,
) -> ScheduleResult:
    """Successive halving: train all for ``min_epochs``, keep the best ``1/eta``, train those ``eta`` times longer...

    Rungs are at ``min_epochs * eta**k`` epochs up to ``max_epochs`` (default
    ``pop.max_epochs``); failed (non-finite) members rank last.
    """
    _single_view(pop)
    max_epochs = int(max_epochs or pop.max_epochs)
    if not isinstance(eta, (int, np.integer)) or eta < 2:
        raise ValueError(f"eta must be an int >= 2, got eta={eta!r}")
    if not isinstance(min_epochs, (int, np.integer)) or not 1 <= min_epochs <= max_epochs:
        raise ValueError(f"min_epochs must be an int in [1, max_epochs={max_epochs}], got min_epochs={min_epochs!r}")
    state = pop.init(hparams, key)
    m = state.epoch.shape[0]
    alive = np.arange(m)
    val_loss = np.full(m, np.nan)
    epochs = np.zeros(m, np.int64)
    rungs, done, budget, preds = [], 0, int(min_epochs), None
    while True:
        budget = min(budget, max_epochs)
        state, (_, vl, _), preds = pop.run(state, budget - done)
        loss = np.asarray(vl[:, -1], np.float64)
        val_loss[alive] = loss
        epochs[alive] = np.asarray(state.epoch)
        rungs.append({"epochs": budget, "members": alive.tolist(), "val_loss": loss.tolist()})
        done = budget
        if budget >= max_epochs or alive.size == 1:
            break
        keep = max(1, alive.size // eta)
        order = np.argsort(np.where(np.isfinite(loss), loss, np.inf), kind="stable")[:keep]
        alive, state = alive[order], select(state, order)
        budget *= eta
    hp = {k: np.asarray(v) for k, v in hparams.items()}
    return ScheduleResult(hp, val_loss, epochs, _best(val_loss, epochs), state, alive, preds, rungs)


def hyperband(
    pop: Population,
    sample: Callable[[Array, int], Mapping[str, Any]],
    *,
    key: Array,
    max_epochs: Optional[int] = None,
    min_epochs: int = 1,
    eta: int = 3,
) -> ScheduleResult:
    """Hyperband (Li et al., 2018): successive halving brackets from aggressive to none.

    Args:
        pop: the population to train.
        sample: ``(key, n) -> hparams`` drawing ``n`` members, for instance
            ``lambda k, n: space.decode(jax.random.uniform(k, (n, space.dim)))``.
        key: PRNG key.
        max_epochs: the largest budget ``R`` (default ``pop.max_epochs``).
        min_epochs: the smallest budget.
        eta: the halving rate.

    Returns:
        The members of every bracket, concatenated (``state`` is the last bracket's).
    """
    max_epochs = int(max_epochs or pop.max_epochs)
    s_max = int(math.floor(math.log(max_epochs / min_epochs, eta) + 1e-9))
    parts, rungs = [], []
    for s in range(s_max, -1, -1):
        n = int(math.ceil((s_max + 1) / (s + 1) * eta**s))
        r = max(min_epochs, int(round(max_epochs / eta**s)))
        k_sample, k_train = jax.random.split(jax.random.fold_in(key, s))
        hp = {k: np.asarray(v) for k, v in sample(k_sample, n).items()}
        result = successive_halving(pop, hp, key=k_train, min_epochs=r, max_epochs=max_epochs, eta=eta)
        parts.append(result)
        rungs.extend({**rung, "bracket": s} for rung in result.rungs)
    offsets = np.cumsum([0] + [p.val_loss.size for p in parts])
    hp = {k: np.concatenate([p.hparams[k] for p in parts]) for k in parts[0].hparams}
    val_loss = np.concatenate([p.val_loss for p in parts])
    epochs = np.concatenate([p.epochs for p in parts])
    last = parts[-1]
    return ScheduleResult(hp, val_loss, epochs, _best(val_loss, epochs), last.state, last.survivors + offsets[-2],
                          last.predictions, rungs)


def pbt(
    pop: Population,
    hparams: Mapping[str, Any],
    *,
    key: Array,
    rounds: int,
    epochs_per_round: int = 1,
    fraction: float = 0.25,
    perturb: Mapping[str, tuple[float, float]],
    factors: Sequence[float] = (0.8, 1.25),
) -> ScheduleResult:
    """Population-based training (Jaderberg et al., 2017), truncation selection.

    After every round of ``epochs_per_round`` epochs, the worst ``fraction`` of
    the members copy parameters, optimizer state and hyperparameters of a
    random member of the best ``fraction`` (exploit), then multiply each
    hyperparameter in ``perturb`` by a random choice of ``factors``, clipped
    to its ``(low, high)`` bounds (explore). Hyperparameters reach the
    optimizer through ``optax.inject_hyperparams``, so the change applies
    from the next step.

    Args:
        pop: the population to train.
        hparams: initial hyperparameters, each ``[members]``.
        key: PRNG key.
        rounds: number of exploit/explore rounds.
        epochs_per_round: epochs between two rounds.
        fraction: share of members replaced per round (0 < fraction <= 0.5).
        perturb: ``{name: (low, high)}`` of the hyperparameters to explore.
        factors: multiplicative perturbations to choose from.
    """
    _single_view(pop)
    if not 0.0 < fraction <= 0.5:
        raise ValueError(f"fraction must be in (0, 0.5], got fraction={fraction!r}")
    if not isinstance(rounds, (int, np.integer)) or rounds < 1:
        raise ValueError(f"rounds must be a positive int, got rounds={rounds!r}")
    for name, bounds in perturb.items():
        if name not in hparams:
            raise ValueError(f"perturb: {name!r} is not a hyperparameter (have {sorted(hparams)})")
        if len(bounds) != 2 or not bounds[0] < bounds[1]:
            raise ValueError(f"perturb[{name!r}] must be (low, high) with low < high, got {bounds!r}")
    k_init, key = jax.random.split(key)
    state = pop.init(hparams, k_init)
    m = state.epoch.shape[0]
    q = max(1, int(round(fraction * m)))
    rng = np.random.default_rng(np.asarray(jax.random.key_data(key)).ravel()[-1].item())
    rungs, preds, loss = [], None, None
    for r in range(rounds):
        state, (_, vl, _), preds = pop.run(state, epochs_per_round)
        loss = np.asarray(vl[:, -1], np.float64)
        hp_now = {k: np.asarray(v).tolist() for k, v in state.hparams.items()}
        record = {"epochs": int(np.asarray(state.epoch).max()), "members": list(range(m)),
                  "val_loss": loss.tolist(), "hparams": hp_now, "parents": list(range(m))}
        rungs.append(record)
        if r == rounds - 1:
            break
        order = np.argsort(np.where(np.isfinite(loss), loss, np.inf), kind="stable")
        top, bottom = order[:q], order[m - q:]
        parents = np.arange(m)
        parents[bottom] = rng.choice(top, size=q)
        record["parents"] = parents.tolist()
        state = select(state, parents)
        hp = {k: np.array(v) for k, v in state.hparams.items()}
        for name, (low, high) in perturb.items():
            scale = rng.choice(np.asarray(factors, np.float64), size=q)
            new = np.clip(hp[name][bottom] * scale, low, high)
            if np.issubdtype(hp[name].dtype, np.integer):
                new = np.round(new)
            hp[name][bottom] = new.astype(hp[name].dtype)
        keys = state.key.at[jnp.asarray(bottom)].set(jax.random.split(jax.random.fold_in(key, r), q))
        state = state._replace(hparams={k: jnp.asarray(v) for k, v in hp.items()}, key=keys)
    epochs = np.asarray(state.epoch).astype(np.int64)
    hp = {k: np.asarray(v) for k, v in state.hparams.items()}
    return ScheduleResult(hp, loss, epochs, _best(loss, epochs), state, np.arange(m), preds, rungs)
