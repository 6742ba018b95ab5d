"""Objectives for Study tests; importable in worker processes (no JAX import)."""

import math
import os
import signal


def quadratic(params):
    return (params["x"] - 1.0) ** 2 + (0.5 if params["kind"] == "b" else 0.0) + params["n"]


def slow_quadratic(params):
    import time

    time.sleep(0.01)
    return quadratic(params)


def flaky(params):
    if params["x"] > 3.0:
        raise RuntimeError(f"diverged at x={params['x']:.3f}")
    if params["x"] < -3.0:
        return math.nan
    if params["x"] < -2.0:
        return math.inf
    return quadratic(params)


def die_on_fifth_call(params):
    """Kills its own process with SIGKILL while trial 5 is being evaluated."""
    counter = os.environ["JAXHPO_TEST_COUNTER"]
    with open(counter, "a") as f:
        f.write("x")
    if os.path.getsize(counter) == 6:
        os.kill(os.getpid(), signal.SIGKILL)
    return quadratic(params)


def kill_worker_once(params):
    """The first call whose ``n`` is 2 kills its worker process (a marker file in $JAXHPO_TEST_MARKER
    remembers it); every other call is ``quadratic``."""
    marker = os.environ["JAXHPO_TEST_MARKER"]
    if params["n"] == 2 and not os.path.exists(marker):
        open(marker, "w").close()
        os.kill(os.getpid(), signal.SIGKILL)
    return quadratic(params)


def count_calls(params):
    """``quadratic``, appending one byte per call to the file $JAXHPO_TEST_COUNTER."""
    with open(os.environ["JAXHPO_TEST_COUNTER"], "a") as f:
        f.write("x")
    return quadratic(params)


def hang_when_n_is_2(params):
    """Sleeps far past any test's trial_timeout when ``n`` is 2; a quadratic otherwise."""
    import time

    if params["n"] == 2:
        time.sleep(60)
    return quadratic(params)


def slow_quadratic_or_hang(params):
    """0.3 s per trial (within a 0.5 s limit), or a hang when ``n`` is 2."""
    import time

    time.sleep(0.3)
    return hang_when_n_is_2(params)
