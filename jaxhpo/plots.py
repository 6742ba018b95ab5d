"""Figures of studies, populations and ensembles (matplotlib, optional extra: ``pip install 'jaxhpo[plots]'``).

Each function takes results (a ``Study``, a ``PopulationResult``, an
ensemble) and returns a ``matplotlib.figure.Figure``, which a notebook shows
as it is; with ``path`` it is also written to that file (PNG, or any format
matplotlib infers from the name). Figures are made without pyplot, so
nothing accumulates in pyplot's figure list and no display is needed.

Example:
    >>> import os, tempfile, jaxhpo
    >>> from jaxhpo import plots
    >>> study = jaxhpo.Study(jaxhpo.Space({"x": jaxhpo.Float(0.0, 1.0)}), jaxhpo.strategies.sobol())
    >>> study.optimize(lambda p: (p["x"] - 0.3) ** 2, n_trials=8, progress=False)
    >>> fig = plots.history(study)                       # a Figure, for a notebook
    >>> path = os.path.join(tempfile.mkdtemp(), "history.png")
    >>> _ = plots.history(study, path)                   # and written to a file
    >>> type(fig).__name__, os.path.getsize(path) > 0
    ('Figure', True)
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np


def _figure(figsize: tuple[float, float]) -> tuple[Any, Any]:
    """A new ``Figure`` (outside pyplot) and its axes."""
    try:
        from matplotlib.figure import Figure
    except ImportError as e:  # pragma: no cover - exercised only without matplotlib
        raise ImportError("jaxhpo.plots needs matplotlib: pip install 'jaxhpo[plots]'") from e
    fig = Figure(figsize=figsize)
    return fig, fig.subplots()


def _trials_table(study: Any) -> tuple[list[str], np.ndarray, np.ndarray, bool]:
    """``(names, X [trials, params] in the unit cube, values [trials], maximize)`` of complete trials."""
    from jaxhpo.study import TrialState

    done = [t for t in study.trials if t.state is TrialState.COMPLETE]
    if not done:
        raise ValueError("the study has no complete trial to plot")
    x = np.stack([np.asarray(t.x, np.float64) for t in done])
    y = np.array([t.value for t in done], np.float64)
    return list(study.space.names), x, y, study.direction == "maximize"


def _finish(fig: Any, path: Optional[str]) -> Any:
    """Lays ``fig`` out, writes it to ``path`` when one is given, and returns it."""
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110)
    return fig


def history(study: Any, path: Optional[str] = None, title: Optional[str] = None) -> Any:
    """Objective value of every trial and the best so far, against trial number."""
    from jaxhpo.study import TrialState

    numbers = [t.number for t in study.trials if t.state is TrialState.COMPLETE]
    _, _, y, maximize = _trials_table(study)
    best = np.maximum.accumulate(y) if maximize else np.minimum.accumulate(y)
    fig, ax = _figure((6, 4))
    ax.scatter(numbers, y, s=12, alpha=0.6, label="trial")
    ax.plot(numbers, best, color="C3", label="best so far")
    ax.set_xlabel("trial")
    ax.set_ylabel("objective")
    ax.set_title(title or "optimization history")
    ax.legend()
    return _finish(fig, path)


def parallel_coordinates(study: Any, path: Optional[str] = None, title: Optional[str] = None) -> Any:
    """One line per trial across the parameters (unit-cube axes), colored by objective value;
    categorical axes are labelled with their choices."""
    names, x, y, maximize = _trials_table(study)
    order = np.argsort(y if not maximize else -y)[::-1]  # best drawn last, on top
    fig, ax = _figure((max(5, 1.4 * len(names) + 2), 4))
    from matplotlib import cm, colormaps, colors

    norm = colors.Normalize(np.min(y), np.max(y))
    cmap = colormaps["viridis_r" if not maximize else "viridis"]
    for i in order:
        ax.plot(range(len(names)), x[i], color=cmap(norm(y[i])), alpha=0.7, lw=1)
    ax.set_xticks(range(len(names)), names, rotation=20)
    ax.set_ylabel("position in range")
    ax.set_ylim(-0.02, 1.02)
    for j, name in enumerate(names):  # categorical axes: the choices at their positions
        choices = getattr(study.space.params[name], "choices", None)
        for k, choice in enumerate(choices or ()):
            ax.text(j + 0.04, (k + 0.5) / len(choices), str(choice), fontsize=7, va="center",
                    bbox={"facecolor": "white", "alpha": 0.7, "lw": 0, "pad": 0.5})
    fig.colorbar(cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax, label="objective")
    ax.set_title(title or "parallel coordinates")
    return _finish(fig, path)


def importance(study: Any, bins: int = 5, method: str = "auto") -> dict[str, float]:
    """Share of the objective's variance each parameter explains, normalized to sum to 1.

    Args:
        study: a ``Study`` with complete trials.
        bins: quantile bins per parameter for ``method="binned"``.
        method: ``"fanova"``: Optuna's fANOVA evaluator (a random forest fit to the
            trials, then a functional ANOVA of the forest, as ``optuna.importance``
            computes by default; needs the ``optuna`` extra and scikit-learn; seeded,
            so repeatable); ``"binned"``: first-order main effects of the observed
            trials in ``bins`` quantile bins (no dependencies; noisier on few trials,
            where one bin mean rests on a handful of values); ``"auto"``: fANOVA
            when Optuna is installed, else binned.
    """
    if method not in ("auto", "fanova", "binned"):
        raise ValueError(f"importance: method must be 'auto', 'fanova' or 'binned', got method={method!r}")
    if method in ("auto", "fanova"):
        try:
            import optuna
            from jaxhpo.integrations.optuna import export_study
        except ImportError:
            if method == "fanova":
                raise ImportError('importance(method="fanova") needs Optuna: pip install "jaxhpo[optuna]"') from None
        else:
            evaluator = optuna.importance.FanovaImportanceEvaluator(seed=0)
            verbosity = optuna.logging.get_verbosity()
            optuna.logging.set_verbosity(optuna.logging.WARNING)  # no "study created" line for a scratch copy
            try:
                shares = optuna.importance.get_param_importances(export_study(study), evaluator=evaluator)
            finally:
                optuna.logging.set_verbosity(verbosity)
            return {name: float(shares.get(name, 0.0)) for name in study.space.names}
    names, x, y, _ = _trials_table(study)
    total = np.var(y)
    scores = {}
    for j, name in enumerate(names):
        edges = np.quantile(x[:, j], np.linspace(0, 1, bins + 1)[1:-1])
        group = np.searchsorted(edges, x[:, j], side="right")
        effect = 0.0
        for g in np.unique(group):
            members = group == g
            effect += members.mean() * (y[members].mean() - y.mean()) ** 2
        scores[name] = effect / total if total > 0 else 0.0
    s = sum(scores.values())
    return {k: (v / s if s > 0 else 1.0 / len(scores)) for k, v in scores.items()}


def _importance_method() -> str:
    try:
        import optuna  # noqa: F401
    except ImportError:
        return "binned"
    return "fanova"


def importance_plot(study: Any, path: Optional[str] = None, title: Optional[str] = None) -> Any:
    """Horizontal bars of ``importance(study)``."""
    method = _importance_method()  # decided once: the numbers and the axis label agree
    imp = importance(study, method=method)
    names = sorted(imp, key=imp.get)
    fig, ax = _figure((6, 0.5 * len(names) + 1.5))
    ax.barh(names, [imp[n] for n in names], color="C0")
    ax.set_xlabel("share of variance explained (fANOVA)" if method == "fanova" else
                  "share of variance explained (main effect)")
    ax.set_title(title or "parameter importance")
    return _finish(fig, path)


def learning_curves(result: Any, path: Optional[str] = None, highlight: Optional[Sequence[int]] = None,
                    title: Optional[str] = None) -> Any:
    """Validation loss per epoch of every population member (``PopulationResult`` or ``[members, epochs]``)."""
    curves = np.asarray(getattr(result, "val_loss", result), np.float64)
    if curves.ndim != 2:
        raise ValueError(f"learning_curves needs [members, epochs] curves, got shape {curves.shape}")
    fig, ax = _figure((6, 4))
    epochs = np.arange(1, curves.shape[1] + 1)
    scored = np.isfinite(curves)  # epochs not scored (validation_freq) or diverged: no point, the line joins the rest
    for c, ok in zip(curves, scored):
        ax.plot(epochs[ok], c[ok], color="0.6", alpha=0.35, lw=0.8)
    for i in highlight if highlight is not None else [int(np.nanargmin(curves[:, -1]))]:
        ax.plot(epochs[scored[i]], curves[i][scored[i]], color="C3", lw=2, label=f"member {i}")
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation loss")
    ax.set_yscale("log")
    ax.legend()
    ax.set_title(title or f"learning curves of {curves.shape[0]} members")
    return _finish(fig, path)


def ensemble_weights(weights: Any, path: Optional[str] = None, names: Optional[Sequence[str]] = None, top: int = 30,
                     title: Optional[str] = None) -> Any:
    """Bars of the largest fusion weights (an ensemble with ``.weights`` or an array)."""
    w = np.asarray(getattr(weights, "weights", weights), np.float64)
    if w.ndim != 1:
        raise ValueError(f"ensemble_weights needs a 1-d weight vector, got shape {w.shape}")
    names = list(names) if names is not None else [str(i) for i in range(w.size)]
    order = np.argsort(w)[::-1][:top]
    order = order[w[order] > 0] if np.any(w[order] > 0) else order
    fig, ax = _figure((max(5, 0.35 * len(order) + 2), 4))
    ax.bar(range(len(order)), w[order], color="C2")
    ax.set_xticks(range(len(order)), [names[i] for i in order], rotation=60, fontsize=8)
    ax.set_ylabel("weight")
    ax.set_title(title or "ensemble weights")
    return _finish(fig, path)
