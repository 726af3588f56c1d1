"""The three test tiers, and the check that keeps them honest.

Every test gets exactly one of the markers ``unit``, ``stores``, ``process``:

- ``unit``: no outside process at all;
- ``stores``: real Redis, ZooKeeper, MongoDB (SecantusDB), RabbitMQ or Redis
  Sentinel servers, started by the fixtures, and everything else in this
  process (fake ``Clock``, ``iosim``, the node's parts wired in process);
- ``process``: any other child process: ``twistd`` chat nodes and gateways,
  Chromium, Node.js, the terminal client in a pty, a packaging build, a
  second Python interpreter.

A test file rarely says its tier. It is found, in this order, from an
explicit marker (``pytestmark = pytest.mark.process`` in a file, or a mark on
one test), from a file named ``*_e2e.py`` (``process``), from the fixtures a
test uses (``PROCESS_FIXTURES``, then ``STORE_FIXTURES``, including the ones
they use in turn), and otherwise ``unit``. An explicit mark below what the
fixtures need is a collection error.

While a ``unit`` or ``stores`` test runs (its fixtures included), starting a
child process that is not a store server fails the test with the command it
tried to run, so a test that starts ``twistd`` without being marked
``process`` cannot slip into the fast tier (``scripts/run-tests --fast``,
which is ``-m "not process"``). A ``unit`` test may start no process at all.
"""
import os
import subprocess
import sys

import pytest

from devtools.localservices import ChatProcess, ManagedProcess

TIERS = ("unit", "stores", "process")

#: Fixtures that start the stores (directly or as session-wide servers).
STORE_FIXTURES = frozenset({"redis_server", "zookeeper_server", "mongo_server", "rabbitmq_server",
                            "services"})
#: Fixtures that start chat processes.
PROCESS_FIXTURES = frozenset({"three_nodes"})

_tier_key = pytest.StashKey[str]()
_violations_key = pytest.StashKey[list]()


class ProcessNotAllowed(Exception):
    """A test outside the ``process`` tier started a child process."""


def _rank(tier):
    return TIERS.index(tier)


def tier_of(item):
    """The tier of a collected test (see the module's docstring)."""
    fixtures = set(getattr(item, "fixturenames", ()))
    needed = "unit"
    if fixtures & PROCESS_FIXTURES:
        needed = "process"
    elif fixtures & STORE_FIXTURES:
        needed = "stores"
    marked = [tier for tier in TIERS if item.get_closest_marker(tier) is not None]
    if marked:
        tier = max(marked, key=_rank)
        if _rank(tier) < _rank(needed):
            raise pytest.UsageError(
                f"{item.nodeid} is marked {tier!r} but its fixtures "
                f"({', '.join(sorted(fixtures & (STORE_FIXTURES | PROCESS_FIXTURES)))}) make it {needed!r}")
        return tier
    if item.path.name.endswith("_e2e.py"):
        return "process"
    return needed


def pytest_configure(config):
    # the markers themselves are registered in setup.cfg ([tool:pytest] markers)
    _install_spawn_checks()


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    # tryfirst: before -m deselects by these markers
    for item in items:
        tier = tier_of(item)
        item.stash[_tier_key] = tier
        if item.get_closest_marker(tier) is None:
            item.add_marker(tier)


# -- the check at run time -----------------------------------------------------------

_running = None  # the item whose setup, call or teardown runs now


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    global _running
    item.stash[_violations_key] = []
    outer, _running = _running, item  # (a test may run pytest in process: tests/test_tiers.py)
    try:
        yield
    finally:
        _running = outer


@pytest.fixture(autouse=True)
def _tier_guard(request):
    """Fails a test that started a process its tier does not allow, even if
    the test caught the L{ProcessNotAllowed} raised at the start."""
    yield
    violations = request.node.stash.get(_violations_key, [])
    if violations:
        pytest.fail("\n".join(violations), pytrace=False)


def _store_server_starting():
    """True if the innermost L{ManagedProcess} on the stack is a store server."""
    frame = sys._getframe(2)
    while frame is not None:
        owner = frame.f_locals.get("self")
        if isinstance(owner, ManagedProcess):
            return not isinstance(owner, ChatProcess)
        frame = frame.f_back
    return False


def _check_spawn(what):
    item = _running
    if item is None:
        return
    tier = item.stash.get(_tier_key, "process")
    if tier == "process":
        return
    store = _store_server_starting()
    if tier == "stores" and store:
        return
    message = (f"{item.nodeid} is a {tier!r} test but starts a process ({what}); "
               + ("mark it stores (@pytest.mark.stores) or give it a store fixture" if store else
                  "mark it process (pytestmark = pytest.mark.process) or keep it in process"))
    item.stash[_violations_key].append(message)
    raise ProcessNotAllowed(message)


def _describe(args):
    if isinstance(args, (list, tuple)):
        return " ".join(str(a) for a in args[:4])
    return str(args)


_installed = False


def _install_spawn_checks():
    """Wraps every way this interpreter starts a child: C{subprocess.Popen}
    (and so C{subprocess.run}, asyncio's subprocesses, Playwright's driver),
    C{os.fork}/C{os.forkpty} (Twisted's C{spawnProcess}, pexpect's pty) and
    C{os.posix_spawn}/C{os.posix_spawnp}."""
    global _installed
    if _installed:
        return
    _installed = True

    popen_init = subprocess.Popen.__init__

    def checked_popen_init(self, args, *rest, **kwargs):
        try:
            _check_spawn(_describe(args))
        except ProcessNotAllowed:
            self._child_created = False  # what Popen.__del__ looks at
            raise
        popen_init(self, args, *rest, **kwargs)

    subprocess.Popen.__init__ = checked_popen_init

    def wrap(name, describe):
        original = getattr(os, name, None)
        if original is None:
            return

        def checked(*args, **kwargs):
            _check_spawn(describe(args))
            return original(*args, **kwargs)

        setattr(os, name, checked)

    wrap("fork", lambda args: "os.fork()")
    wrap("forkpty", lambda args: "os.forkpty()")
    wrap("posix_spawn", lambda args: _describe(args[1]) if len(args) > 1 else "posix_spawn")
    wrap("posix_spawnp", lambda args: _describe(args[1]) if len(args) > 1 else "posix_spawnp")
