"""Saving and loading fitted ensembles (``.npz``: arrays plus a JSON header, no pickle).

Example:
    >>> import os, tempfile, jax, jax.numpy as jnp
    >>> from jaxhpo import ensemble
    >>> probs = jax.nn.softmax(jax.random.normal(jax.random.key(0), (3, 20, 2)), -1)
    >>> ens = ensemble.uniform(probs)
    >>> path = os.path.join(tempfile.mkdtemp(), "ens.npz")
    >>> ensemble.save(path, ens)
    >>> bool(jnp.allclose(ensemble.load(path).predict_proba(probs), ens.predict_proba(probs)))
    True
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import jax.numpy as jnp
import numpy as np

from jaxhpo.ensemble.combine import WeightedEnsemble
from jaxhpo.ensemble.greedy import GreedyEnsemble
from jaxhpo.ensemble.stacking import StackingEnsemble

CLASSES = {cls.__name__: cls for cls in (WeightedEnsemble, GreedyEnsemble, StackingEnsemble)}


def _flatten(prefix: str, value: Any, out: dict) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(f"{prefix}/{k}", v, out)
    elif value is not None:
        out[prefix] = np.asarray(value)


def _unflatten(arrays: dict) -> dict:
    root: dict = {}
    for key, value in arrays.items():
        node = root
        *parents, leaf = key.split("/")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = jnp.asarray(value)
    return root


def save(path: str, model: Any) -> None:
    """Writes a fitted ensemble to ``path`` (``.npz``)."""
    name = type(model).__name__
    if name not in CLASSES:
        raise ValueError(f"save: expected a fitted jaxhpo ensemble ({sorted(CLASSES)}), got {name}")
    arrays, static = {}, {}
    for f in dataclasses.fields(model):
        value = getattr(model, f.name)
        if f.metadata.get("pytree_node", True):
            _flatten(f.name, value, arrays)
        else:
            static[f.name] = value
    header = json.dumps({"class": name, "static": static, "format": 1})
    with open(path, "wb") as fh:
        np.savez(fh, __header__=np.array(header), **arrays)


def load(path: str) -> Any:
    """Reads an ensemble written by ``save``."""
    with np.load(path, allow_pickle=False) as data:
        header = json.loads(str(data["__header__"]))
        arrays = {k: data[k] for k in data.files if k != "__header__"}
    cls = CLASSES.get(header.get("class"))
    if cls is None or header.get("format") != 1:
        raise ValueError(f"load: {path!r} is not a jaxhpo ensemble file (header {header!r})")
    static = {k: tuple(v) if isinstance(v, list) else v for k, v in header["static"].items()}  # JSON lists: hashable again
    return cls(**_unflatten(arrays), **static)
