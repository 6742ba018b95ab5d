"""Each example runs to the end with a reduced budget (``--quick``) and prints its result."""

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = {
    "01_iris_grid_search.py": "best:",
    "02_random_forest_random_search.py": "test accuracy",
    "03_breast_cancer_bayes_and_stacking.py": "stacked fusion",
    "04_regression_fusion.py": "fused",
    "flagship.py": "fused: greedy selection",
}


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_example_runs(name):
    out = subprocess.run([sys.executable, os.path.join("examples", name), "--quick"], cwd=ROOT, capture_output=True,
                         text=True, timeout=600, env=dict(os.environ, OPENBLAS_NUM_THREADS="1"))
    assert out.returncode == 0, out.stderr[-3000:]
    assert EXAMPLES[name] in out.stdout, out.stdout[-2000:]
