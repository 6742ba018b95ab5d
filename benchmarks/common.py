"""Shared helpers for benchmark scripts: timing, medians, result files."""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from typing import Any, Callable

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "benchmarks", "results")


def timed(fn: Callable[[], Any], repeats: int = 3) -> tuple[Any, float]:
    """Runs ``fn`` ``repeats`` times; returns its last output and the median seconds."""
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return out, float(np.median(times))


def log10_regret(regret: Any, floor: float = 1e-12) -> np.ndarray:
    return np.log10(np.maximum(np.asarray(regret, dtype=np.float64), floor))


def iqr(values: Any) -> tuple[float, float]:
    q1, q3 = np.percentile(np.asarray(values, dtype=np.float64), [25, 75])
    return float(q1), float(q3)


def write_results(name: str, payload: dict) -> str:
    """Writes ``benchmarks/results/{name}.json`` with the machine's description."""
    import jax

    os.makedirs(RESULTS, exist_ok=True)
    payload = {
        "machine": {
            "platform": platform.platform(),
            "python": sys.version.split()[0],
            "jax": jax.__version__,
            "backend": jax.default_backend(),
            "cpus": os.cpu_count(),
        },
        **payload,
    }
    path = os.path.join(RESULTS, f"{name}.json")
    with open(path, "w") as f:
        json.dump(payload, f, indent=2)
    return path


def progress(iterable: Any, desc: str, total: int | None = None) -> Any:
    """A tqdm bar over ``iterable`` on an interactive terminal (plain iteration otherwise, or without tqdm)."""
    if not sys.stderr.isatty():
        return iterable
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return iterable
    return tqdm(iterable, desc=desc, total=total, leave=False)
