"""Tests for jaxhpo.lapack: jaxlib's CPU LAPACK set up without importing scipy.linalg, and still right."""

import json
import subprocess
import sys
import textwrap

import numpy as np

from jaxhpo import lapack

# A fresh process: a GP study and a CMA-ES search (Cholesky, triangular solves, eigh on CPU), then
# whether scipy.linalg was imported, then scipy.linalg itself on the same matrix.
SCRIPT = textwrap.dedent(
    """
    import json, sys, time
    import jax, jax.numpy as jnp, numpy as np, jaxhpo
    space = jaxhpo.Space({"x": jaxhpo.Float(-2.0, 2.0), "y": jaxhpo.Float(-2.0, 2.0)})
    study = jaxhpo.Study(space, jaxhpo.strategies.bayes(num_initial=3, refine_steps=3), seed=0)
    study.optimize(lambda p: (p["x"] - 0.5) ** 2 + (p["y"] + 0.25) ** 2, n_trials=6, progress=False)
    cma = jaxhpo.minimize(lambda p: p["x"] ** 2 + p["y"] ** 2, space, jaxhpo.strategies.cma_es(popsize=4),
                          num_rounds=3, key=jax.random.key(0))
    a = np.array([[4.0, 2.0, 0.4], [2.0, 3.0, 0.5], [0.4, 0.5, 2.0]])
    with jax.enable_x64(True):
        chol = np.asarray(jax.jit(jnp.linalg.cholesky)(jnp.asarray(a)))
        eig = np.asarray(jax.jit(jnp.linalg.eigvalsh)(jnp.asarray(a)))
    out = {"scipy_linalg_imported": "scipy.linalg" in sys.modules,
           "values": [t.value for t in study.trials], "cma_best": float(cma.best_value),
           "chol": chol.tolist(), "eig": eig.tolist()}
    import scipy.linalg
    from scipy.linalg import cython_lapack
    out["same_module"] = cython_lapack is sys.modules["scipy.linalg.cython_lapack"]
    out["scipy_chol"] = scipy.linalg.cholesky(a, lower=True).tolist()
    out["scipy_eig"] = scipy.linalg.eigvalsh(a).tolist()
    print(json.dumps(out))
    """
)


def test_gp_and_cma_programs_run_on_lapack_set_up_without_scipy_linalg():
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    # the package __init__ (0.25 s) was never run, yet every LAPACK call worked
    assert not out["scipy_linalg_imported"]
    assert all(np.isfinite(out["values"])) and len(out["values"]) == 6
    assert np.isfinite(out["cma_best"])
    np.testing.assert_allclose(out["chol"], out["scipy_chol"], rtol=1e-12)
    np.testing.assert_allclose(out["eig"], out["scipy_eig"], rtol=1e-12)
    # scipy.linalg imported afterwards is whole and shares the modules loaded early
    assert out["same_module"]


def test_a_failed_load_leaves_nothing_behind(monkeypatch, tmp_path):
    # SciPy files laid out otherwise: the fast path declines, sys.modules untouched, jaxlib's own set-up follows
    import importlib.util

    fake = tmp_path / "scipy"
    (fake / "linalg").mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    spec = importlib.util.spec_from_file_location("scipy", fake / "__init__.py")
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: spec if name == "scipy" else None)
    monkeypatch.delitem(sys.modules, "scipy.linalg.cython_blas", raising=False)
    monkeypatch.delitem(sys.modules, "scipy.linalg.cython_lapack", raising=False)
    before = set(sys.modules)
    assert lapack._load_scipy_extensions() is False
    assert set(sys.modules) == before
