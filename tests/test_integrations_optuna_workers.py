"""Four worker processes share one Optuna storage, each running JaxhpoSampler: PostgreSQL, SQLite, JournalStorage.

The PostgreSQL cluster is a real one, started from Debian's packages in a
temporary directory on a free local port and removed after the test.
"""

import glob
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap

import pytest

import _services

optuna = pytest.importorskip("optuna")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKERS, TRIALS_EACH = 4, 5

WORKER = textwrap.dedent(
    """
    import sys, time, optuna, jaxhpo
    from jaxhpo.integrations.optuna import JaxhpoSampler
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url, index, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    if url.endswith(".log"):
        from optuna.storages.journal import JournalFileBackend
        storage = optuna.storages.JournalStorage(JournalFileBackend(url))
    else:
        storage = optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 60}}
                                             if url.startswith("sqlite") else {})
    study = optuna.load_study(study_name="shared", storage=storage, sampler=JaxhpoSampler(seed=index))

    def objective(trial):
        x = trial.suggest_float("x", -2.0, 2.0)
        n = trial.suggest_int("n", 0, 20)
        c = trial.suggest_categorical("c", ["a", "b", "c"])
        time.sleep(0.2)  # trials overlap across workers: each sees the others' RUNNING trials
        return (x - 0.5) ** 2 + abs(n - 7) / 10 + (c != "b")

    study.optimize(objective, n_trials=n)
    print("WORKER_DONE", index)
    """
)


@pytest.fixture
def postgres_url():
    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not bins:
        pytest.skip("PostgreSQL is not installed (Debian: apt-get install postgresql)")
    pytest.importorskip("psycopg2", reason="psycopg2 (the dev extra's psycopg2-binary) is needed for PostgreSQL")
    bindir = os.path.dirname(bins[-1])
    root = tempfile.mkdtemp(prefix="jaxhpo-pg-")
    data, port = os.path.join(root, "data"), _services.free_port()
    as_user = []
    if os.geteuid() == 0:  # the server refuses to run as root
        shutil.chown(root, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    run = lambda *cmd: subprocess.run(as_user + list(cmd), check=True, capture_output=True, text=True,  # noqa: E731
                                      timeout=120)
    run(os.path.join(bindir, "initdb"), "-D", data, "-A", "trust", "-U", "postgres")
    run(os.path.join(bindir, "pg_ctl"), "-D", data, "-w", "-l", os.path.join(root, "log"),
        "-o", f"-p {port} -k {root} -c listen_addresses=localhost", "start")
    try:
        run(os.path.join(bindir, "createdb"), "-h", "localhost", "-p", str(port), "-U", "postgres", "jaxhpo")
        yield f"postgresql+psycopg2://postgres@localhost:{port}/jaxhpo"
    finally:
        subprocess.run(as_user + [os.path.join(bindir, "pg_ctl"), "-D", data, "-m", "immediate", "stop"],
                       capture_output=True, timeout=120)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def xla_cache(tmp_path_factory):
    """One compilation cache for the module's workers, filled by one worker alone first: the tests'
    four workers load the sampler's programs instead of compiling the same ones four times at once."""
    cache, folder = str(tmp_path_factory.mktemp("xla")), tmp_path_factory.mktemp("warm")
    _run_workers(str(folder / "study.log"), folder, cache, workers=1)
    return cache


def _run_workers(url: str, tmp_path, xla_cache: str, workers: int = WORKERS) -> "optuna.Study":
    if url.endswith(".log"):
        from optuna.storages.journal import JournalFileBackend

        storage = optuna.storages.JournalStorage(JournalFileBackend(url))
    else:
        storage = url
    optuna.create_study(study_name="shared", storage=storage)
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", JAXHPO_CACHE_DIR=xla_cache)
    procs = [subprocess.Popen([sys.executable, str(script), url, str(i), str(TRIALS_EACH)], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(workers)]
    try:
        outs = [p.communicate(timeout=600) for p in procs]
    finally:
        for p in procs:
            p.kill()
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0 and "WORKER_DONE" in out, err[-3000:]
    return optuna.load_study(study_name="shared", storage=storage)


def _check(study) -> None:
    trials = study.get_trials(deepcopy=False)
    assert len(trials) == WORKERS * TRIALS_EACH  # all trials present
    assert sorted(t.number for t in trials) == list(range(WORKERS * TRIALS_EACH))  # none duplicated
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    configs = {(round(t.params["x"], 12), t.params["n"], t.params["c"]) for t in trials}
    assert len(configs) == len(trials)  # workers got different points
    assert study.best_value < 1.5  # and they searched: the optimum is 0, a random point averages about 2


def test_four_workers_share_a_postgresql_storage(postgres_url, tmp_path, xla_cache):
    _check(_run_workers(postgres_url, tmp_path, xla_cache))


@pytest.mark.parametrize("kind", ["sqlite", "journal"])
def test_four_workers_share_a_storage_on_one_machine(kind, tmp_path, xla_cache):
    url = f"sqlite:///{tmp_path / 'study.db'}" if kind == "sqlite" else str(tmp_path / "study.log")
    _check(_run_workers(url, tmp_path, xla_cache))
