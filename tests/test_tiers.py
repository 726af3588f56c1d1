"""The test tiers (tests/tiers.py), on small test files run by pytest in
this process: the tier each test gets, and the check that fails a unit or
stores test starting a process its tier does not allow."""
import pytest

CONFTEST = '''
import pytest
from tests.tiers import _tier_guard, pytest_collection_modifyitems, pytest_configure, pytest_runtest_protocol

@pytest.fixture
def redis_server():
    return "a store"

@pytest.fixture
def three_nodes(redis_server):
    return "processes"

@pytest.fixture
def uses_a_store(redis_server):
    return redis_server
'''

MARKERS = ["unit: u", "stores: s", "process: p"]


@pytest.fixture
def run(pytester):
    pytester.makeconftest(CONFTEST)
    pytester.makeini("[pytest]\nmarkers =\n" + "".join(f"    {m}\n" for m in MARKERS))

    def run(*args, **files):
        if files:
            pytester.makepyfile(**files)
        # (no pytest-twisted inside: it would stop the reactor of this session)
        return pytester.runpytest_inprocess("-p", "no:cacheprovider", "-p", "no:twisted", "-p", "no:xdist", *args)
    return run


def tiers(result):
    """Test name -> the tier markers it ran with."""
    return {r.nodeid.split("::")[1]: [t for t in ("unit", "stores", "process") if t in r.keywords]
            for r in result.reprec.getreports("pytest_runtest_logreport") if r.when == "call"}


def test_each_test_gets_the_tier_its_fixtures_and_marks_say(run):
    result = run(test_some="""
import pytest

def test_plain(): pass
def test_store(redis_server): pass
def test_store_through_a_fixture(uses_a_store): pass
def test_cluster(three_nodes): pass

@pytest.mark.process
def test_marked(): pass

@pytest.mark.stores
def test_marked_stores(): pass
""", test_some_e2e="def test_by_name(): pass\n")
    assert tiers(result) == {
        "test_plain": ["unit"], "test_store": ["stores"], "test_store_through_a_fixture": ["stores"],
        "test_cluster": ["process"], "test_marked": ["process"], "test_marked_stores": ["stores"],
        "test_by_name": ["process"],
    }


def test_the_fast_tier_is_all_but_process(run):
    result = run("-m", "not process", test_some="""
def test_plain(): pass
def test_store(redis_server): pass
def test_cluster(three_nodes): pass
""")
    assert sorted(tiers(result)) == ["test_plain", "test_store"]


def test_a_mark_below_what_the_fixtures_need_is_refused(run):
    result = run(test_wrong="""
import pytest

@pytest.mark.unit
def test_store(redis_server): pass
""")
    assert result.ret != 0
    assert "marked 'unit' but its fixtures (redis_server) make it 'stores'" in "\n".join(result.errlines + result.outlines)


def test_a_unit_test_starting_a_process_fails_and_says_how_to_mark_it(run):
    result = run(test_spawn="""
import os
import subprocess

def test_runs_a_command():
    subprocess.run(["true"])

def test_forks():
    try:
        os.fork()  # the check raises before any child exists
    except Exception:
        pass  # caught: the test fails all the same
""")
    # the first fails in its call (and its teardown); the second's call
    # passes, and its teardown fails
    result.assert_outcomes(failed=1, passed=1, errors=2)
    text = "\n".join(result.outlines)
    assert "test_spawn.py::test_runs_a_command is a 'unit' test but starts a process (true)" in text
    assert "test_spawn.py::test_forks is a 'unit' test but starts a process (os.fork())" in text
    assert "mark it process" in text


def test_a_process_test_may_start_what_it_likes(run):
    result = run(test_spawn="""
import subprocess
import pytest

pytestmark = pytest.mark.process

def test_runs_a_command():
    assert subprocess.run(["true"]).returncode == 0
""")
    result.assert_outcomes(passed=1)
