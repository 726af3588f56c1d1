"""The store connections come back by themselves after any shape of outage:
a stall (SIGSTOP) longer than the timeout, a stall followed by a kill and an
empty restart, a restart while commands are in flight. Real servers of the
test's own (``services``), the stores in this process."""
import time

import pytest
import pytest_twisted
from twisted.internet import reactor, task, threads

from chatnet.errors import StoreUnavailable
from chatnet.stores.mongo import MongoStore
from chatnet.stores.redis import RedisStore

TIMEOUT = 0.5


def sleep(seconds):
    return task.deferLater(reactor, seconds, lambda: None)


async def answers_within(call, seconds, what):
    """Await C{call()} until it succeeds; fail after C{seconds}."""
    deadline = time.monotonic() + seconds
    last = None
    while time.monotonic() < deadline:
        try:
            return await call()
        except StoreUnavailable as e:
            last = e
        await sleep(0.1)
    raise AssertionError(f"{what} still unavailable {seconds} s after its server answered again ({last!r})")


async def unavailable(call):
    with pytest.raises(StoreUnavailable):
        await call()


@pytest.fixture
def paused_cleanup():
    paused = []
    yield paused
    for server in paused:
        server.resume()


@pytest_twisted.ensureDeferred
async def test_redis_stall_longer_than_the_timeout(services, paused_cleanup):
    server = services.redis()
    store = RedisStore(f"redis://127.0.0.1:{server.port}/3", timeout=TIMEOUT).connect()
    try:
        await store.call("set", "k", "v")
        server.pause()
        paused_cleanup.append(server)
        await unavailable(lambda: store.call("get", "k"))
        await sleep(3)  # reconnect attempts to the stalled server time out too
        await unavailable(lambda: store.call("get", "k"))
        server.resume()
        assert await answers_within(lambda: store.call("get", "k"), 5, "redis") == "v"
    finally:
        await store.disconnect()


@pytest_twisted.ensureDeferred
async def test_redis_stall_then_kill_and_empty_restart(services, paused_cleanup):
    server = services.redis()
    store = RedisStore(f"redis://127.0.0.1:{server.port}/3", timeout=TIMEOUT).connect()
    try:
        await store.call("set", "k", "v")
        server.pause()
        paused_cleanup.append(server)
        await unavailable(lambda: store.call("get", "k"))
        await sleep(1.5)  # a new connection's SELECT is now in flight to the stalled server
        pending = store.call("get", "k")
        await threads.deferToThread(server.kill)
        await unavailable(lambda: pending)
        await threads.deferToThread(server.start)
        assert await answers_within(lambda: store.call("get", "k"), 5, "redis") is None
        await store.call("set", "k", "again")
        assert await store.call("get", "k") == "again"
    finally:
        await store.disconnect()


@pytest_twisted.ensureDeferred
async def test_redis_kill_while_commands_are_in_flight(services):
    server = services.redis()
    store = RedisStore(f"redis://127.0.0.1:{server.port}/3", timeout=TIMEOUT).connect()
    try:
        await store.call("set", "k", "v")
        # a command the server holds while it dies
        pending = store.call("execute_command", "BLPOP", "nothing", "0")
        await threads.deferToThread(server.kill)
        await unavailable(lambda: pending)
        await threads.deferToThread(server.start)
        await answers_within(lambda: store.call("ping"), 5, "redis")
    finally:
        await store.disconnect()


@pytest_twisted.ensureDeferred
async def test_mongo_stall_then_kill_and_restart(services, paused_cleanup):
    server = services.mongo()
    store = MongoStore(server.url, timeout=TIMEOUT).connect()
    try:
        await answers_within(store.ping, 10, "mongodb")
        server.pause()
        paused_cleanup.append(server)
        await unavailable(store.ping)
        await sleep(1.5)
        await threads.deferToThread(server.kill)
        await unavailable(store.ping)
        await threads.deferToThread(server.start)
        await answers_within(store.ping, 5, "mongodb")
        await answers_within(lambda: store.room_exists("room1"), 5, "mongodb")
    finally:
        await store.disconnect()


@pytest_twisted.ensureDeferred
async def test_mongo_stall_then_resume(services, paused_cleanup):
    server = services.mongo()
    store = MongoStore(server.url, timeout=TIMEOUT).connect()
    try:
        await answers_within(store.ping, 10, "mongodb")
        server.pause()
        paused_cleanup.append(server)
        await unavailable(store.ping)
        await sleep(2)
        server.resume()
        await answers_within(store.ping, 5, "mongodb")
    finally:
        await store.disconnect()
