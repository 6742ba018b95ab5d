import os

import numpy as np
import pytest

import jaxhpo
from jaxhpo import plots


@pytest.fixture(scope="module")
def study():
    space = jaxhpo.Space({"x": jaxhpo.Float(-2.0, 2.0), "noise": jaxhpo.Float(0.0, 1.0),
                          "kind": jaxhpo.Categorical(["a", "b"])})
    s = jaxhpo.Study(space, jaxhpo.strategies.sobol(), seed=0)
    s.optimize(lambda p: p["x"] ** 2 + 0.01 * p["noise"], n_trials=32, progress=False)
    return s


def test_every_plot_returns_a_figure_and_writes_a_non_empty_image(study, tmp_path):
    from matplotlib.figure import Figure

    draws = {
        "history.png": lambda path: plots.history(study, path),
        "parallel.png": lambda path: plots.parallel_coordinates(study, path),
        "importance.png": lambda path: plots.importance_plot(study, path),
        "lc.png": lambda path: plots.learning_curves(np.abs(np.random.default_rng(0).normal(size=(5, 8))) + 0.1, path),
        "w.png": lambda path: plots.ensemble_weights(np.array([0.5, 0.0, 0.3, 0.2]), path, names=list("abcd")),
    }
    paths = []
    for name, draw in draws.items():
        assert isinstance(draw(None), Figure)  # without a path: a figure only, for a notebook
        assert not (tmp_path / name).exists()
        assert isinstance(draw(str(tmp_path / name)), Figure)
        paths.append(str(tmp_path / name))
    for p in paths:
        assert os.path.getsize(p) > 1000
        with open(p, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_importance_finds_the_parameter_that_matters(study):
    imp = plots.importance(study)
    assert set(imp) == {"x", "noise", "kind"}
    assert abs(sum(imp.values()) - 1.0) < 1e-9
    assert imp["x"] > 2 * max(imp["noise"], imp["kind"])


def test_learning_curves_join_the_scored_epochs_of_curves_with_gaps():
    # a population trained with validation_freq=3 has NaN on the epochs it did not score: each line joins
    # the scored ones (a line through NaN would break into single points and draw nothing)
    curves = np.array([[np.nan, np.nan, 0.5, np.nan, np.nan, 0.3, 0.25],
                       [np.nan, np.nan, 0.6, np.nan, 0.4, 0.4, 0.4]])
    ax = plots.learning_curves(curves).axes[0]
    lines = [line for line in ax.get_lines() if len(line.get_xdata())]
    drawn = {tuple(line.get_xdata()): tuple(line.get_ydata()) for line in lines}
    assert drawn[(3, 6, 7)] == (0.5, 0.3, 0.25) and drawn[(3, 5, 6, 7)] == (0.6, 0.4, 0.4, 0.4)
    assert lines[-1].get_label() == "member 0"  # the lowest final loss, highlighted


def test_plots_reject_bad_input(tmp_path):
    empty = jaxhpo.Study(jaxhpo.Space({"x": jaxhpo.Float(0.0, 1.0)}), jaxhpo.strategies.sobol())
    with pytest.raises(ValueError, match="no complete trial"):
        plots.history(empty, str(tmp_path / "h.png"))
    with pytest.raises(ValueError, match="members, epochs"):
        plots.learning_curves(np.ones(3), str(tmp_path / "l.png"))


def test_plots_and_sklearn_need_no_explicit_import():
    import subprocess
    import sys

    code = ("import sys, jaxhpo; assert 'jaxhpo.plots' not in sys.modules; "
            "print(jaxhpo.plots.__name__, jaxhpo.sklearn.__name__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["jaxhpo.plots", "jaxhpo.sklearn"]


def test_parallel_coordinates_labels_categorical_axes_with_their_choices(study):
    fig = plots.parallel_coordinates(study)
    texts = {t.get_text() for t in fig.axes[0].texts}
    assert set(study.space.params["kind"].choices) <= texts


def test_fanova_importance_is_optunas_on_the_same_trials(study):
    optuna = pytest.importorskip("optuna")
    ours = plots.importance(study, method="fanova")
    assert plots.importance(study) == ours  # the default when Optuna is installed
    reference = optuna.create_study()
    dists = {"x": optuna.distributions.FloatDistribution(-2.0, 2.0),
             "noise": optuna.distributions.FloatDistribution(0.0, 1.0),
             "kind": optuna.distributions.CategoricalDistribution(["a", "b"])}
    reference.add_trials([optuna.trial.create_trial(params=t.params, distributions=dists, value=t.value)
                          for t in study.trials])
    theirs = optuna.importance.get_param_importances(
        reference, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0))
    assert ours == pytest.approx(dict(theirs), abs=1e-12)
    assert max(ours, key=ours.get) == "x"
    binned = plots.importance(study, method="binned")
    assert max(binned, key=binned.get) == "x" and binned != ours
    with pytest.raises(ValueError, match="method must be 'auto', 'fanova' or 'binned'"):
        plots.importance(study, method="shap")


# A random forest's space: the driver is, in turn, a log float, an int and a categorical; the two others
# (and a pure-noise float) barely matter. Both importance methods must put the driver first, as fANOVA does.
_DRIVERS = {
    "lr": lambda p: 3.0 * np.log10(p["lr"]) ** 2,
    "depth": lambda p: 1.5 * abs(p["depth"] - 6),
    "criterion": lambda p: {"gini": 0.0, "entropy": 8.0, "log_loss": 4.0}[p["criterion"]],
}


@pytest.mark.parametrize("driver", sorted(_DRIVERS))
def test_importance_ranks_the_dominant_parameter_first_with_either_method(driver):
    space = jaxhpo.Space({"lr": jaxhpo.Float(1e-4, 1.0, log=True), "depth": jaxhpo.Int(1, 12),
                          "criterion": jaxhpo.Categorical(["gini", "entropy", "log_loss"]),
                          "noise": jaxhpo.Float(0.0, 1.0)})
    rng = np.random.default_rng(0)
    minor = {name: (lambda f: (lambda p: 0.02 * f(p)))(f) for name, f in _DRIVERS.items() if name != driver}

    def objective(p):
        return _DRIVERS[driver](p) + sum(f(p) for f in minor.values()) + 0.05 * p["noise"] + 0.01 * rng.normal()

    study = jaxhpo.Study(space, jaxhpo.strategies.random(), seed=3)
    study.optimize(objective, n_trials=60, progress=False)
    binned = plots.importance(study, method="binned")
    assert max(binned, key=binned.get) == driver and binned[driver] > 0.5
    if pytest.importorskip("optuna"):
        fanova = plots.importance(study, method="fanova")
        assert max(fanova, key=fanova.get) == driver and fanova[driver] > 0.5
