"""Tests for jaxhpo.switch_interval: a short GIL switch interval while jaxhpo works in the background."""

import os
import sys
import threading

import pytest

from jaxhpo.switch_interval import INTERVAL, responsive


@pytest.fixture(autouse=True)
def default_interval():
    before = sys.getswitchinterval()
    sys.setswitchinterval(0.005)
    yield
    sys.setswitchinterval(before)


def test_the_interval_is_short_inside_and_the_callers_outside():
    with responsive():
        assert sys.getswitchinterval() <= INTERVAL
    assert sys.getswitchinterval() == pytest.approx(0.005)


def test_overlapping_users_on_threads_restore_only_when_the_last_one_ends():
    entered, leave = threading.Event(), threading.Event()

    def background():
        with responsive():
            entered.set()
            leave.wait(10)

    thread = threading.Thread(target=background)
    thread.start()
    assert entered.wait(10)
    with responsive():
        pass  # ends first: the background job still runs, so the interval stays short
    assert sys.getswitchinterval() <= INTERVAL
    leave.set()
    thread.join(10)
    assert sys.getswitchinterval() == pytest.approx(0.005)


def test_an_interval_set_meanwhile_or_already_shorter_is_left_alone():
    with responsive():
        sys.setswitchinterval(0.02)  # the user's own choice, made during jaxhpo's work
    assert sys.getswitchinterval() == pytest.approx(0.02)
    sys.setswitchinterval(INTERVAL / 2)
    with responsive():
        assert sys.getswitchinterval() == pytest.approx(INTERVAL / 2)
    assert sys.getswitchinterval() == pytest.approx(INTERVAL / 2)


def test_an_error_inside_still_restores_the_interval():
    with pytest.raises(RuntimeError, match="boom"):
        with responsive():
            raise RuntimeError("boom")
    assert sys.getswitchinterval() == pytest.approx(0.005)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_child_forked_during_a_trace_gets_the_callers_interval_back():
    with responsive():
        pid = os.fork()
        if pid == 0:  # the child: none of the parent's threads, so no trace of theirs runs here
            ok = abs(sys.getswitchinterval() - 0.005) < 1e-6
            with responsive():
                ok = ok and sys.getswitchinterval() <= INTERVAL
            os._exit(0 if ok and abs(sys.getswitchinterval() - 0.005) < 1e-6 else 1)
        assert sys.getswitchinterval() <= INTERVAL  # the parent's trace goes on
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
