"""Model fusion over stacked predictions: averaging, voting, learned weights, stacking, greedy selection.

Input everywhere: ``[members, examples, classes]`` probabilities (or logits
with ``inputs="logits"``) or ``[members, examples]`` regression predictions,
from a trained population (``PopulationResult.val_predictions``,
``CVResult.oof_predictions``) or from any models
(``cross_val_predictions`` for scikit-learn estimators). Fitted ensembles
are pytrees with ``predict``/``predict_proba``, saved with ``save``/``load``.

Example:
    >>> import jax, jax.numpy as jnp
    >>> from jaxhpo import ensemble
    >>> probs = jax.nn.softmax(jax.random.normal(jax.random.key(0), (5, 40, 3)), -1)
    >>> y = jnp.argmax(probs[2], -1)
    >>> ensemble.vote(probs, kind="hard").shape
    (40, 3)
    >>> sorted(ensemble.greedy_selection(probs, y, size=5, init_size=1).selected.tolist())
    [2]
"""

from jaxhpo.ensemble.combine import (
    WeightedEnsemble,
    fit_weights,
    mean,
    median,
    member_scores,
    top_k,
    uniform,
    vote,
)
from jaxhpo.ensemble.greedy import GreedyEnsemble, greedy_selection
from jaxhpo.ensemble.io import load, save
from jaxhpo.ensemble.models import SerialFusion, cross_val_predictions, model_predictions
from jaxhpo.ensemble.stacking import StackingEnsemble, fit_stacking

__all__ = [
    "GreedyEnsemble",
    "SerialFusion",
    "StackingEnsemble",
    "WeightedEnsemble",
    "cross_val_predictions",
    "fit_stacking",
    "fit_weights",
    "greedy_selection",
    "load",
    "mean",
    "median",
    "member_scores",
    "model_predictions",
    "save",
    "top_k",
    "uniform",
    "vote",
]
