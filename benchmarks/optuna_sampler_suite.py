"""Optuna's own sampler tests, run with jaxhpo's ``JaxhpoSampler`` added to their parametrizations (issue 19).

Takes ``tests/samplers_tests/test_samplers.py`` from the source distribution
of the Optuna release installed here (``pip download --no-binary :all:
optuna==<version>``, or ``--source`` for a file or an unpacked source tree),
adds jaxhpo's sampler beside Optuna's own samplers in every list of
samplers the file parametrizes over, runs the file with pytest (slow tests
included) and reports the outcome of every test that runs jaxhpo's sampler.
The test classes the file subclasses (``BasicSamplerTestCase``,
``RelativeSamplerTestCase``, ``SingleOnlySamplerTestCase``) come from the
installed ``optuna.testing.pytest_samplers``, so the suite is exactly the
release's.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/optuna_sampler_suite.py [--source PATH]

Writes ``benchmarks/results/optuna_sampler_suite.json``; exits non-zero when
a jaxhpo test fails or an insertion point is missing from the file.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.common import write_results  # noqa: E402

RELATIVE = "tests/samplers_tests/test_samplers.py"
# jaxhpo's sampler variants: bayes() (the default) and the plain Sobol design, so the suite checks the
# sampler shell with the GP and without it
VARIANTS = ['pytest.param(lambda: JaxhpoSampler(seed=0), id="JaxhpoSampler")',
            'pytest.param(lambda: JaxhpoSampler(jaxhpo.strategies.sobol(), seed=0), id="JaxhpoSampler-sobol")']

# (anchor line in the file, lines added after it, what the list is); each anchor must be found exactly
# as often as said, or the run stops: a newer Optuna moved things and the insertion must be revisited
INSERTIONS = [
    ('    "GPSampler": lambda seed: get_gp_sampler(seed=seed, n_startup_trials=0),',
     ['    "JaxhpoSampler": lambda seed: JaxhpoSampler(seed=seed),',
      '    "JaxhpoSampler sobol": lambda seed: JaxhpoSampler(jaxhpo.strategies.sobol(), seed=seed),'],
     1, "samplers with a seed: reseed_rng changes sampling, reproducible, reproducible in another process"),
    ("            lambda: get_gp_sampler(n_startup_trials=0, deterministic_objective=True),",
     [f"            {v}," for v in VARIANTS],
     2, "TestBasicSampler and TestRelativeSampler fixtures"),
    ("        (lambda: get_gp_sampler(n_startup_trials=0), True, True),",
     ['        pytest.param(lambda: JaxhpoSampler(seed=0), False, True, id="JaxhpoSampler"),'],
     1, "test_sampler_reseed_rng (no LazyRandomState of its own; reseeds its independent sampler)"),
]
SINGLE_ONLY_ANCHOR = "class TestSingleOnlySampler(SingleOnlySamplerTestCase):"

NOT_APPLICABLE = {
    "TestMultiObjectiveSampler": "multi-objective studies: JaxhpoSampler refuses them with a clear error "
                                 "(TestSingleOnlySampler checks that error)",
    "test_pickle_random_sampler": "RandomSampler only (reads its private _rng)",
    "test_sample_relative": "Optuna's FixedSampler only, not parametrized over samplers",
}


def _source_file(source: str | None, workdir: str) -> str:
    import optuna

    if source:
        return source if os.path.isfile(source) else os.path.join(source, RELATIVE)
    out = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "-q",
                          "-d", workdir, f"optuna=={optuna.__version__}"], capture_output=True, text=True)
    if out.returncode:
        sys.exit(f"could not download Optuna {optuna.__version__}'s source distribution:\n{out.stderr[-2000:]}\n"
                 f"pass --source with a checkout of https://github.com/optuna/optuna at v{optuna.__version__}")
    [archive] = glob.glob(os.path.join(workdir, "optuna-*.tar.gz"))
    with tarfile.open(archive) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith(RELATIVE))
        tar.extract(member, workdir, filter="data")
    return os.path.join(workdir, member.name)


def _patched(text: str) -> str:
    lines = text.splitlines()
    for anchor, added, times, _ in INSERTIONS:
        found = [i for i, line in enumerate(lines) if line == anchor]
        if len(found) != times:
            sys.exit(f"insertion point {anchor.strip()!r} found {len(found)} times, expected {times}: the file "
                     f"changed; update INSERTIONS in {__file__}")
        for i in reversed(found):
            lines[i + 1:i + 1] = added
    start = lines.index(SINGLE_ONLY_ANCHOR)  # its fixture's params list: add jaxhpo's sampler first in it
    params = next(i for i in range(start, len(lines)) if lines[i].strip() == "params=[")
    lines[params + 1:params + 1] = [f"            {VARIANTS[0]},"]
    header = ["import jaxhpo", "from jaxhpo.integrations.optuna import JaxhpoSampler"]
    first_import = next(i for i, line in enumerate(lines) if line.startswith("import "))
    return "\n".join(lines[:first_import] + header + lines[first_import:]) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", help="Optuna's test_samplers.py, or an Optuna source tree holding it")
    args = parser.parse_args()
    import optuna

    with tempfile.TemporaryDirectory() as work:
        original = _source_file(args.source, work)
        run_dir = os.path.join(work, "suite")
        os.makedirs(run_dir)
        target = os.path.join(run_dir, "test_samplers_patched.py")
        with open(original) as f, open(target, "w") as out:
            out.write(_patched(f.read()))
        report = os.path.join(work, "report.xml")
        cmd = [sys.executable, "-m", "pytest", target, "-q", "-p", "no:cacheprovider", f"--junitxml={report}",
               "-o", "addopts=", "-k", "Jaxhpo", "--rootdir", run_dir]
        subprocess.run(cmd, cwd=run_dir)
        cases = ET.parse(report).getroot().iter("testcase")
        rows = []
        for case in cases:
            name = f"{case.get('classname').rsplit('.', 1)[-1]}::{case.get('name')}"
            outcome = "passed"
            for tag in ("failure", "error", "skipped"):
                if case.find(tag) is not None:
                    outcome = {"failure": "failed", "error": "error", "skipped": "skipped"}[tag]
            rows.append({"test": name, "outcome": outcome, "seconds": float(case.get("time", 0))})
    jaxhpo_rows = [r for r in rows if "Jaxhpo" in r["test"]]
    counts = {k: sum(r["outcome"] == k for r in jaxhpo_rows) for k in ("passed", "failed", "error", "skipped")}
    print(f"\nOptuna {optuna.__version__} {RELATIVE}, tests that run JaxhpoSampler:")
    for r in jaxhpo_rows:
        print(f"  {r['outcome']:8s} {r['seconds']:7.1f} s  {r['test']}")
    print("  " + ", ".join(f"{v} {k}" for k, v in counts.items()))
    print("not applicable:")
    for name, why in NOT_APPLICABLE.items():
        print(f"  {name}: {why}")
    write_results("optuna_sampler_suite", {"optuna": optuna.__version__, "file": RELATIVE, "counts": counts,
                                           "tests": jaxhpo_rows, "not_applicable": NOT_APPLICABLE,
                                           "insertions": [i[3] for i in INSERTIONS]})
    if counts["failed"] or counts["error"] or not jaxhpo_rows:
        sys.exit(1)


if __name__ == "__main__":
    main()
