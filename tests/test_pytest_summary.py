"""The combined closing line of scripts/run-tests --tiers (devtools/pytest_summary.py)."""
from devtools.pytest_summary import combine, summary_line

FAST = """tests/test_a.py ....
============================= slowest 15 durations =============================
1.00s call     tests/test_a.py::test_x
640 passed, 2 skipped, 170 deselected, 1 warning in 55.11s
"""
PROCESS = "...\n=== 1 failed, 168 passed, 1 skipped, 674 deselected, 2 errors in 250.30s (0:04:10) ===\n"


def test_the_last_summary_line_of_a_run_is_found():
    assert summary_line(FAST) == "640 passed, 2 skipped, 170 deselected, 1 warning in 55.11s"
    assert summary_line(PROCESS).startswith("=== 1 failed, 168 passed")
    assert summary_line("collected 0 items\n") is None


def test_the_runs_are_added_up_in_pytests_form():
    line = combine([summary_line(FAST), summary_line(PROCESS)])
    assert line == "1 failed, 808 passed, 3 skipped, 1 warning, 2 errors in 305.41s"
    # a line of this form is itself a summary line
    assert summary_line(line) == line


def test_one_run_alone_is_its_own_line_without_the_deselected():
    assert combine(["5 passed, 3 deselected in 1.50s"]) == "5 passed in 1.50s"
    assert combine([]) == "no tests ran in 0.00s"
