"""Shared fixtures: real Redis, ZooKeeper, SecantusDB (MongoDB) and RabbitMQ servers.

The three stores are started once per test session, each on a free loopback
port with its data under pytest's temporary directory, and stopped at the end.
They are shared: a test cleans up the keys, znodes and documents it creates
(or uses names of its own), and a test that stops or kills one of them must
restart it before it ends. A test that wants to break a store on purpose
takes its own from ``services`` instead.

Asynchronous tests run on the default reactor through pytest-twisted, with
``@pytest_twisted.ensureDeferred`` or ``@pytest_twisted.inlineCallbacks``.
"""
import pytest
import pytest_twisted  # noqa: F401  (the plugin runs the reactor for the tests)
from hypothesis import settings

# No test asserts a time: Hypothesis's per-example deadline (200 ms) would be
# one, and fails on a loaded machine; cost is proven by counting work.
settings.register_profile("chatnet", deadline=None)
settings.load_profile("chatnet")

# the files whose tests wait longest are handed to the workers first
pytest_plugins = ["tests.schedule"]

from tests.tiers import (  # noqa: F401  (the test tiers: unit, stores, process)
    _tier_guard,
    pytest_collection_modifyitems,
    pytest_configure,
    pytest_runtest_protocol,
)
from devtools.localservices import (
    ChatProcess,
    RabbitMQServer,
    RedisServer,
    SecantusServer,
    ZooKeeperServer,
    free_port as _free_port,
)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    """A real ``redis-server`` for the whole session (``.url``: redis://127.0.0.1:P/0)."""
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def zookeeper_server(tmp_path_factory):
    """A real standalone ZooKeeper for the whole session (``.url``: 127.0.0.1:P)."""
    server = ZooKeeperServer(tmp_path_factory.mktemp("zookeeper")).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def mongo_server(tmp_path_factory):
    """A SecantusDB server for the whole session (``.url``: mongodb://127.0.0.1:P/chat)."""
    server = SecantusServer(tmp_path_factory.mktemp("mongo")).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def rabbitmq_server(tmp_path_factory):
    """A real RabbitMQ broker for the whole session (``.url``: amqp://guest:guest@127.0.0.1:P/%2F).
    Started on first use only: it takes some seconds."""
    server = RabbitMQServer(tmp_path_factory.mktemp("rabbitmq")).start()
    yield server
    server.stop()


@pytest.fixture
def redis(redis_server):
    """A connected L{chatnet.stores.redis.RedisStore} on database 0 of the
    session's Redis, emptied after the test."""
    from chatnet.stores.redis import RedisStore

    store = RedisStore(f"redis://127.0.0.1:{redis_server.port}/0").connect()
    yield store
    pytest_twisted.blockon(store.call("flushdb"))
    pytest_twisted.blockon(store.disconnect())


@pytest.fixture
def free_port():
    """A TCP port that is free on 127.0.0.1 (call ``devtools.localservices.free_port()`` for more)."""
    return _free_port()


class Services:
    """Starts processes for one test and stops them all when it ends."""

    def __init__(self, root):
        self.root = root
        self.started = []
        self._count = 0

    def _dir(self, name):
        self._count += 1
        return self.root / f"{name}{self._count}"

    def _start(self, process):
        self.started.append(process)
        return process.start()

    def redis(self, **kwargs):
        return self._start(RedisServer(self._dir("redis"), **kwargs))

    def zookeeper(self, **kwargs):
        return self._start(ZooKeeperServer(self._dir("zookeeper"), **kwargs))

    def mongo(self, **kwargs):
        return self._start(SecantusServer(self._dir("mongo"), **kwargs))

    def rabbitmq(self, **kwargs):
        return self._start(RabbitMQServer(self._dir("rabbitmq"), **kwargs))

    def chat(self, kind, args, name=None, **kwargs):
        """``twistd -n <kind> <args>`` (``chatnode``/``chatgateway``), log in the test's dir."""
        name = name or kind
        log = self._dir(name) / f"{name}.log"
        return self._start(ChatProcess(kind, args, log, name=name, **kwargs))

    def stop_all(self):
        # A test's own store is thrown away: it gets a few seconds to stop
        # cleanly (a store a test stalled may take longer), then it is killed.
        for process in reversed(self.started):
            try:
                process.stop(None if isinstance(process, ChatProcess) else 5.0)
            except Exception:
                process.kill()


@pytest.fixture
def services(tmp_path):
    """Private servers for one test: ``services.redis()``, ``.zookeeper()``,
    ``.mongo()``, ``.rabbitmq()``, ``.chat(kind, args)``; all stopped when the test ends."""
    started = Services(tmp_path)
    yield started
    started.stop_all()


@pytest.fixture
def three_nodes(tmp_path, redis_server, zookeeper_server, mongo_server):
    """A started three-node cluster of real processes (ZooKeeper session
    timeout 2 s, no rate limit), stopped after the test."""
    from tests.harness import ChatCluster

    cluster = ChatCluster(tmp_path, redis_server, zookeeper_server, mongo_server, nodes=3,
                          session_timeout=2.0, extra_args=["--rate-limit", "0"])
    cluster.start()
    yield cluster
    cluster.stop()


@pytest.fixture
def failures_logged():
    """Events logged with a traceback during the test."""
    from twisted.logger import globalLogPublisher

    events = []
    observer = events.append
    globalLogPublisher.addObserver(observer)
    yield lambda: [e for e in events if "log_failure" in e]
    globalLogPublisher.removeObserver(observer)
