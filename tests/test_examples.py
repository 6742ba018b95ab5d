"""Each example runs to the end with a reduced budget (``--quick``) and prints its result."""

import json
import os
import subprocess
import sys

import pytest

import _services

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = {
    "01_iris_grid_search.py": "best:",
    "02_random_forest_random_search.py": "test accuracy",
    "03_breast_cancer_bayes_and_stacking.py": "stacked fusion",
    "04_regression_fusion.py": "fused",
}


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_example_runs(name):
    out = subprocess.run([sys.executable, os.path.join("examples", name), "--quick"], cwd=ROOT, capture_output=True,
                         text=True, timeout=600, env=dict(os.environ, OPENBLAS_NUM_THREADS="1"))
    assert out.returncode == 0, out.stderr[-3000:]
    assert EXAMPLES[name] in out.stdout, out.stdout[-2000:]


def test_flagship_runs_and_its_report_opens_in_a_browser(tmp_path):
    out = subprocess.run([sys.executable, os.path.join("examples", "flagship.py"), "--quick", "--out", str(tmp_path)],
                         cwd=ROOT, capture_output=True, text=True, timeout=900,
                         env=dict(os.environ, OPENBLAS_NUM_THREADS="1"))
    assert out.returncode == 0, out.stderr[-3000:]
    assert "CNNs fused (greedy selection)" in out.stdout and "sklearn StackingClassifier" in out.stdout, out.stdout
    results = json.loads((tmp_path / "results.json").read_text())
    rows = results["median"]
    assert {"jaxhpo: CNNs fused (greedy selection)", "sklearn SVC, tuned C and gamma",
            "sklearn HistGradientBoosting", "sklearn MLPClassifier"} <= set(rows)
    for name, (acc, loss, secs) in rows.items():  # a real run: every model better than chance, finite numbers
        assert 0.5 < acc <= 1.0 and 0.0 < loss < 2.0 and secs > 0, (name, acc, loss, secs)
    for png in ("history.png", "parallel_coordinates.png", "importance.png", "learning_curves.png",
                "ensemble_weights.png"):
        assert (tmp_path / png).stat().st_size > 1000, png
    browser = _services.browser()
    if browser is None:
        pytest.skip("no Chromium installed (apt-get install chromium; .ci/run installs it): report.html not opened")
    page = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom",
                           (tmp_path / "report.html").as_uri()], capture_output=True, text=True, timeout=120)
    dom = page.stdout
    assert page.returncode == 0 and "<table>" in dom, page.stderr[-2000:]
    # the rendered page holds the results table, row by row, and the five figures as images
    for name, (acc, _, _) in rows.items():
        assert f"<td>{name}</td><td>{acc:.4f}</td>" in dom, name
    assert dom.count("<img") == 5 and dom.count("data:image/png;base64,") == 5
