"""Every case of the fault matrix (benchmarks/fault_matrix.py) ends in a clear error or is handled.

A case fails when a user mistake raises something that does not say what to
change, passes silently, gives a wrong result, or loses a told trial.
"""

import pytest

from benchmarks import fault_matrix


@pytest.mark.parametrize("case", fault_matrix.CASES, ids=lambda c: f"{c.area}: {c.name}")
def test_case_ends_in_a_clear_error_or_is_handled(case):
    outcome, detail = fault_matrix.run_case(case)
    assert outcome in fault_matrix.GOOD, f"{outcome}: {detail}"


def test_the_classifier_catches_each_bad_outcome():
    """The matrix itself can fail: an unclear error, a silent pass, a wrong or lost result are each reported."""
    def raise_key_error():
        raise KeyError("x")

    def silent():
        return "fine"

    def lost():
        raise AssertionError("LOST: trial 3")

    assert fault_matrix.run_case(fault_matrix.Case("t", "unclear", raise_key_error, r"x"))[0] == "unclear error"
    assert fault_matrix.run_case(fault_matrix.Case("t", "vague", lambda: int("a"), r"argument"))[0] == "unclear error"
    assert fault_matrix.run_case(fault_matrix.Case("t", "silent", silent, r"x"))[0] == "silent"
    assert fault_matrix.run_case(fault_matrix.Case("t", "lost", lost))[0] == "lost"
    assert fault_matrix.run_case(fault_matrix.Case("t", "wrong", lambda: (_ for _ in ()).throw(AssertionError("off"))))[0] == "wrong"
