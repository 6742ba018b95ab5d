"""A jaxhpo study exported to SQLite opens in a real optuna-dashboard, read by a real headless Chromium."""

import html
import re
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest

import jaxhpo

import _services

optuna = pytest.importorskip("optuna")
pytest.importorskip("optuna_dashboard", reason="optuna-dashboard is not installed (pip install optuna-dashboard)")
from jaxhpo.integrations.optuna import export_study  # noqa: E402


def _page_text(browser: str, url: str, screenshot: str | None = None) -> str:
    """The page's text after its scripts ran (Chromium's --dump-dom), optionally a screenshot."""
    args = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--virtual-time-budget=15000"]
    if screenshot:
        args += ["--window-size=1280,900", f"--screenshot={screenshot}"]
    else:
        args += ["--dump-dom"]
    out = subprocess.run(args + [url], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    dom = re.sub(r"<(script|style)[^>]*>.*?</\1>", " ", out.stdout, flags=re.S)
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", dom)))


@pytest.fixture
def dashboard(tmp_path):
    """An optuna-dashboard server on a free local port over a SQLite file; yields (storage url, base url)."""
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    optuna.create_study(storage=storage, study_name="placeholder")  # the schema exists before the server reads it
    port = _services.free_port()
    server = subprocess.Popen([sys.executable, "-c", "from optuna_dashboard._cli import main; main()", storage, "--host", "127.0.0.1",
                               "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/studies", timeout=2).read()
                break
            except OSError:
                assert server.poll() is None, server.stderr.read().decode()[-2000:]
                assert time.monotonic() < deadline, "optuna-dashboard did not answer within 60 s"
                time.sleep(0.2)
        yield storage, base
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_an_exported_study_opens_in_optuna_dashboard(dashboard, tmp_path):
    browser = _services.browser()
    if browser is None:
        pytest.skip("no Chromium installed (apt-get install chromium; .ci/run installs it)")
    storage, base = dashboard
    space = jaxhpo.Space({"lr": jaxhpo.Float(1e-4, 1e-1, log=True), "act": jaxhpo.Categorical(["relu", "gelu"]),
                          "width": jaxhpo.Int(8, 64)})
    study = jaxhpo.Study(space, jaxhpo.strategies.random(), seed=5)
    study.optimize(lambda p: abs(np.log10(p["lr"]) + 2.5) + 0.01 * p["width"] + (p["act"] == "gelu"), n_trials=9,
                   progress=False)
    exported = export_study(study, storage, study_name="jaxhpo-lenet")

    listing = _page_text(browser, f"{base}/dashboard")
    assert "jaxhpo-lenet" in listing and "placeholder" in listing, listing[:2000]
    study_id = exported._study_id
    trials = _page_text(browser, f"{base}/dashboard/studies/{study_id}/trials")
    assert "9 Trials" in trials, trials[:3000]
    for t in study.trials:  # every trial listed, complete
        assert f"Trial {t.number} Complete" in trials, t.number
    overview = _page_text(browser, f"{base}/dashboard/studies/{study_id}")
    best = study.best_trial
    assert f"Best Trial (number={best.number})" in overview and repr(best.value) in overview, overview[:3000]
    assert f"act: {best.params['act']}" in overview

    shot = tmp_path / "dashboard.png"
    _page_text(browser, f"{base}/dashboard/studies/{study_id}", screenshot=str(shot))
    import matplotlib.image

    pixels = matplotlib.image.imread(str(shot))
    assert pixels.shape[:2] == (900, 1280)
    assert pixels[..., :3].std() > 0.05  # a drawn page (charts, text), not a blank one
