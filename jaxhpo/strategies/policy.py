"""A policy-gradient (REINFORCE) controller: the reinforcement-learning approach to tuning.

The policy is one softmax per parameter over its choices: the categories of
a categorical, the bins of an integer, or ``bins`` equal slices of a float's
unit interval (a float is then sampled uniformly inside its slice). Each
``tell`` is one REINFORCE step on the told batch: the advantage is the
reward (by default the share of told values a result beats) against a moving-average baseline, scaled by a
running standard deviation, plus an entropy bonus; the update is by an Optax
optimizer (Adam by default).

Example:
    >>> import jax, jax.numpy as jnp, jaxhpo
    >>> space = jaxhpo.Space({f"c{i}": jaxhpo.Categorical(list("abcd")) for i in range(3)})
    >>> f = lambda p: sum((p[f"c{i}"] != 1).astype(jnp.float32) for i in range(3))
    >>> res = jaxhpo.minimize(f, space, jaxhpo.strategies.policy_gradient(), num_rounds=30,
    ...                       batch_size=8, key=jax.random.key(0))
    >>> float(res.best_value)
    0.0
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxhpo._checks import real_scalar
from jaxhpo.space import Categorical, Int, Space
from jaxhpo.strategies.base import History, Static, Strategy, history_add, history_init, factory

Array = jax.Array


class PolicyState(NamedTuple):
    """Controller state.

    Attributes:
        history: every told point.
        logits: ``[d, max_choices]`` policy logits (masked past each parameter's choices).
        opt_state: the Optax optimizer's state.
        baseline: moving average of the reward.
        scale: moving average of the squared advantage (for normalization).
        steps: REINFORCE updates done.
        settings: the numeric settings (``PolicySettings``), leaves: one program serves every value.
        choices: per parameter, its number of choices (static).
    """

    history: History
    logits: Array
    opt_state: Any
    baseline: Array
    scale: Array
    steps: Array
    settings: "PolicySettings"
    choices: Static


class PolicySettings(NamedTuple):
    """The numeric settings of ``policy_gradient()``, leaves of its state (the learning rate of its
    default Adam is a leaf of ``opt_state``, by ``optax.inject_hyperparams``).

    Attributes:
        baseline_decay: decay of the moving averages of the reward and the squared advantage.
        baseline_step: ``1 - baseline_decay``, rounded once from the Python value.
        entropy: weight of the entropy bonus.
    """

    baseline_decay: Array
    baseline_step: Array
    entropy: Array


@factory(settings=("learning_rate", "baseline_decay", "entropy"))
def policy_gradient(
    learning_rate: float = 0.1,
    bins: int = 10,
    baseline_decay: float = 0.9,
    entropy: float = 0.01,
    optimizer: Optional[optax.GradientTransformation] = None,
    reward: str = "quantile",
) -> Strategy:
    """REINFORCE over categorical and discretized parameters, trained with Optax.

    Args:
        learning_rate: Adam's learning rate (ignored when ``optimizer`` is given).
        bins: slices of a float parameter (and of an integer with more values than this).
        baseline_decay: decay of the moving-average baseline.
        entropy: weight of the entropy bonus (keeps exploring).
        optimizer: any Optax optimizer for the logits (maximizing reward).
        reward: ``"quantile"`` (default): the share of all told values a result
            beats, in ``[0, 1]``, robust to heavy-tailed objectives (fitness
            shaping); ``"raw"``: minus the value.
    """
    if reward not in ("quantile", "raw"):
        raise ValueError(f"policy_gradient: reward must be 'quantile' or 'raw', got reward={reward!r}")
    reward_kind = reward
    if not isinstance(bins, int) or bins < 2:
        raise ValueError(f"policy_gradient: bins must be an int >= 2, got bins={bins!r}")
    if not 0.0 <= baseline_decay < 1.0:
        raise ValueError(f"policy_gradient: baseline_decay must be in [0, 1), got {baseline_decay!r}")
    if learning_rate <= 0:
        raise ValueError(f"policy_gradient: learning_rate must be > 0, got {learning_rate!r}")
    if not (real_scalar(entropy) and np.isfinite(entropy)):
        raise ValueError(f"policy_gradient: entropy must be a finite number, got entropy={entropy!r}")
    # the default Adam keeps its learning rate in its state: every value runs one program
    opt = optimizer or optax.inject_hyperparams(optax.adam, hyperparam_dtype=jnp.float32)(learning_rate=learning_rate)

    def init(key: Array, space: Space, capacity: int) -> PolicyState:
        choices = []
        for p in space.params.values():
            if isinstance(p, Categorical):
                choices.append(len(p.choices))
            elif isinstance(p, Int) and not p.log and p.high - p.low + 1 <= bins:
                choices.append(p.high - p.low + 1)
            else:
                choices.append(bins)
        logits = jnp.zeros((space.dim, max(choices)), jnp.float32)
        settings = PolicySettings(*(jnp.float32(v) for v in (baseline_decay, 1 - baseline_decay, entropy)))
        return PolicyState(history_init(capacity, space.dim), logits, opt.init(logits), jnp.zeros(()),
                           jnp.ones(()), jnp.zeros((), jnp.int32), settings, Static(tuple(choices)))

    def _mask(state: PolicyState) -> Array:
        k = jnp.asarray(np.asarray(state.choices.value, np.int32))
        return jnp.arange(state.logits.shape[1])[None, :] < k[:, None]

    def _log_probs(logits: Array, mask: Array) -> Array:
        return jax.nn.log_softmax(jnp.where(mask, logits, -1e9), axis=-1)

    def ask(key: Array, state: PolicyState, num: int = 1) -> tuple[Array, PolicyState]:
        mask = _mask(state)
        k = jnp.asarray(np.asarray(state.choices.value, np.float32))
        k_pick, k_jitter = jax.random.split(key)
        logp = _log_probs(state.logits, mask)
        gumbel = -jnp.log(-jnp.log(jax.random.uniform(k_pick, (num,) + logp.shape, jnp.float32, 1e-20, 1.0)))
        picks = jnp.argmax(logp[None] + gumbel, axis=-1)  # Gumbel-max: a draw from softmax(logp)
        jitter = jax.random.uniform(k_jitter, picks.shape, jnp.float32)
        x = (picks.astype(jnp.float32) + jitter) / k
        return x.astype(state.history.x.dtype), state

    def tell(state: PolicyState, x: Array, y: Array) -> PolicyState:
        history = history_add(state.history, x, y)
        k = jnp.asarray(np.asarray(state.choices.value, np.float32))
        actions = jnp.clip(jnp.floor(x.astype(jnp.float32) * k), 0, k - 1).astype(jnp.int32)
        ok = jnp.isfinite(y)
        if reward_kind == "quantile":
            seen = jnp.where(history.valid, history.y, jnp.nan).astype(jnp.float32)
            n_seen = jnp.maximum(jnp.sum(history.valid), 1)
            beats = jnp.sum(seen[None, :] > y[:, None].astype(jnp.float32), axis=1)
            reward = jnp.where(ok, beats.astype(jnp.float32) / n_seen.astype(jnp.float32), 0.0)  # NaN: not beaten
        else:
            reward = jnp.where(ok, -y.astype(jnp.float32), 0.0)
        reward = reward.astype(jnp.float32)
        n_ok = jnp.maximum(jnp.sum(ok), 1).astype(jnp.float32)
        batch_mean = jnp.sum(reward) / n_ok
        first = state.steps == 0
        baseline = jnp.where(first, batch_mean, state.baseline)
        adv = jnp.where(ok, reward - baseline, 0.0)
        scale = jnp.where(first, jnp.sum(adv**2) / n_ok + 1e-12, state.scale)
        adv = adv / jnp.sqrt(scale + 1e-12)
        mask = _mask(state)
        entropy, decay, step = state.settings.entropy, state.settings.baseline_decay, state.settings.baseline_step

        def objective(logits):
            logp = _log_probs(logits, mask)
            taken = jnp.take_along_axis(logp[None], actions[..., None], axis=-1)[..., 0].sum(-1)
            ent = -jnp.sum(jnp.where(mask, jnp.exp(logp) * logp, 0.0))
            return -(jnp.sum(adv * taken) / n_ok + entropy * ent)

        grads = jax.grad(objective)(state.logits)
        updates, opt_state = opt.update(grads, state.opt_state, state.logits)
        logits = optax.apply_updates(state.logits, updates)
        any_ok = jnp.any(ok)
        new_baseline = decay * baseline + step * batch_mean
        raw_adv2 = jnp.sum(jnp.where(ok, (reward - baseline) ** 2, 0.0)) / n_ok
        new_scale = decay * scale + step * raw_adv2
        return PolicyState(
            history,
            jnp.where(any_ok, logits, state.logits),
            jax.tree.map(lambda a, b: jnp.where(any_ok, a, b), opt_state, state.opt_state),
            jnp.where(any_ok, new_baseline, state.baseline),
            jnp.where(any_ok, new_scale, state.scale),
            state.steps + any_ok.astype(jnp.int32),
            state.settings,
            state.choices,
        )

    return Strategy(init, ask, tell)


def policy_probabilities(state: PolicyState) -> Array:
    """``[d, max_choices]`` probabilities of the controller in ``state`` (rows padded with zeros)."""
    k = jnp.asarray(np.asarray(state.choices.value, np.int32))
    mask = jnp.arange(state.logits.shape[1])[None, :] < k[:, None]
    return jnp.exp(jax.nn.log_softmax(jnp.where(mask, state.logits, -1e9), axis=-1)) * mask
