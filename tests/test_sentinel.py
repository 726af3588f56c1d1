"""Redis through Sentinel, in process: the URLs, asking real sentinels for
the master, following a failover, and seq counters that are restored once
the data set changed (a promoted replica may lack the last increments)."""
import time
import uuid

import pytest
import pytest_twisted
from bson import ObjectId
from twisted.internet import defer, error, protocol as twisted_protocol, reactor, task

from chatnet.errors import StoreUnavailable
from chatnet.service.accept import Acceptor
from chatnet.service.history import History
from devtools.localservices import free_port
from chatnet.domain.messages import ChatMessage, new_message_id
from chatnet.service.popular import PopularWords
from chatnet.service.sequences import Sequences
from chatnet.stores.mongo import MongoStore
from chatnet.stores.redis import SEQ_SERVER, SEQ_TRUSTED, MasterNotFound, RedisStore, SentinelEndpoint
from chatnet.stores.redis_url import check_redis_url, parse_sentinel_url
from tests.sentinel import SentinelGroup


@pytest.mark.parametrize("url, expected", [
    ("redis+sentinel://h1:26380,h2:26381/mymaster/3", ([("h1", 26380), ("h2", 26381)], "mymaster", 3)),
    ("redis+sentinel://h1/mymaster", ([("h1", 26379)], "mymaster", 0)),
    ("redis+sentinel://h1, h2:1/m/0/", ([("h1", 26379), ("h2", 1)], "m", 0)),
    ("redis+sentinel://[::1]:26380,[fe80::1]/m/1", ([("::1", 26380), ("fe80::1", 26379)], "m", 1)),
])
def test_sentinel_urls(url, expected):
    assert parse_sentinel_url(url) == expected
    check_redis_url(url)


@pytest.mark.parametrize("url, why", [
    ("redis+sentinel://h1:26379/", "no master name"),
    ("redis+sentinel:///m/0", "empty"),
    ("redis+sentinel://h1,,h2/m/0", "empty"),
    ("redis+sentinel://h1:port/m/0", "bad sentinel port"),
    ("redis+sentinel://h1:0/m/0", "bad sentinel port"),
    ("redis+sentinel://h1/m/first", "must be a number"),
    ("redis://h1/first", "must be a number"),
    ("http://h1/0", "not a redis:// URL"),
])
def test_bad_urls_are_told(url, why):
    with pytest.raises(ValueError, match=why):
        check_redis_url(url)


@pytest.fixture(scope="module")
def group(tmp_path_factory):
    """Redis servers and Sentinels of their own (the tests that take it are marked stores)."""
    group = SentinelGroup(tmp_path_factory.mktemp("sentinel")).start()
    yield group
    group.stop()


async def eventually(check, timeout=30.0, what="the condition"):
    """Run C{check} (async) until it returns a true value; bounded."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            result = await check()
            if result:
                return result
        except StoreUnavailable as e:
            last = e
        await task.deferLater(reactor, 0.1, lambda: None)
    raise AssertionError(f"{what} not within {timeout} s (last error: {last})")


@pytest.mark.stores
@pytest_twisted.ensureDeferred
async def test_the_master_is_asked_of_the_first_sentinel_that_answers(group):
    dead = ("127.0.0.1", free_port())
    sentinels = [dead] + [("127.0.0.1", s.port) for s in group.sentinels]
    endpoint = SentinelEndpoint(reactor, sentinels, group.master_name, timeout=2.0)
    assert await endpoint.discover() == ("127.0.0.1", group.primary.port)
    # the one that answered is asked first from now on
    assert endpoint.sentinels[0] == ("127.0.0.1", group.sentinels[0].port)

    unknown = SentinelEndpoint(reactor, sentinels, "no-such-master", timeout=2.0)
    with pytest.raises(MasterNotFound, match="no-such-master"):
        await unknown.discover()


@pytest.mark.stores
@pytest_twisted.ensureDeferred
async def test_a_cancelled_attempt_connects_nowhere(group):
    """A pool that stops cancels its attempt in progress: the attempt ends
    there, at whatever step it is (resolving a sentinel's address, asking
    it, connecting to the master), and no connection is made later behind
    the pool's back (it would be lost after the pool stopped, which
    Twisted's ClientService reports as an unhandled error)."""
    sentinels = [("127.0.0.1", s.port) for s in group.sentinels]
    built = []
    factory = twisted_protocol.Factory.forProtocol(twisted_protocol.Protocol)
    factory.buildProtocol = lambda addr: built.append(addr) or twisted_protocol.Protocol()
    cancelled = 0
    for delay in (0, 0, 0.0005, 0.001, 0.002, 0.003, 0.005):
        attempt = SentinelEndpoint(reactor, sentinels, group.master_name, timeout=2.0).connect(factory)
        if delay:
            await task.deferLater(reactor, delay, lambda: None)
        if attempt.called:  # connected already: nothing to call off
            (await attempt).transport.abortConnection()
            continue
        before = len(built)
        attempt.cancel()
        with pytest.raises(defer.CancelledError):
            await attempt
        await task.deferLater(reactor, 0.1, lambda: None)
        assert len(built) == before, f"a connection made after the attempt was cancelled at {delay} s"
        cancelled += 1
    assert cancelled >= 2


@pytest.mark.stores
def test_seed_checks_the_master_the_sentinels_name(group):
    from chatnet.ops.seed import check_redis, master_address

    assert master_address(group.url()) == ("127.0.0.1", group.primary.port)
    check_redis(group.url())
    with pytest.raises(RuntimeError, match="no sentinel names the master nobody"):
        check_redis(group.url().replace(group.master_name, "nobody"))


def test_node_and_gateway_options_take_a_sentinel_url():
    from twisted.python import usage

    from chatnet.gateway.tap import Options as GatewayOptions
    from chatnet.tap_node import Options as NodeOptions

    url = "redis+sentinel://10.0.0.1:26379,10.0.0.2:26379/chat/2"
    node = NodeOptions()
    node.parseOptions(["--cluster-secret", "s", "--redis", url])
    assert node.config().redis == url
    GatewayOptions().parseOptions(["--redis", url])
    for options, args in ((NodeOptions(), ["--cluster-secret", "s"]), (GatewayOptions(), [])):
        with pytest.raises(usage.UsageError, match="--redis: no master name"):
            options.parseOptions([*args, "--redis", "redis+sentinel://10.0.0.1:26379"])


@pytest.mark.stores
@pytest_twisted.ensureDeferred
async def test_a_store_follows_the_failover_and_restores_the_counters(group, mongo_server):
    """Kill the primary: the store answers again from the promoted replica,
    which is a new data set: every seq counter is restored from MongoDB (here
    holding seqs the replica never got) before it counts on."""
    store = RedisStore(group.url(db=5), timeout=2.0).connect()
    mongo = MongoStore(f"mongodb://127.0.0.1:{mongo_server.port}/t{uuid.uuid4().hex[:8]}").connect()
    clock = task.Clock()
    clock.advance(time.time())
    acceptor = Acceptor(store, Sequences(store, mongo), History(store, mongo),
                        PopularWords(store, clock, window=60), "n1", reactor)
    try:
        await eventually(lambda: store.call("ping"), what="the store answering through the sentinels")
        await store.call("flushdb")
        assert group.replica.execute("ROLE")[0] == b"slave"

        async def accept(text):
            m = ChatMessage(new_message_id(), "ann", text, int(time.time() * 1000), "text", "", "r1")
            return m.with_seq((await acceptor.accept(m, [])).seq)

        assert [(await accept(f"m{i}")).seq for i in range(3)] == [1, 2, 3]
        # two more were acked and stored in MongoDB, but their increments
        # never reached the replica (replication is asynchronous)
        await mongo.db.messages.insert_many(
            [{"_id": ObjectId(), "channel": "room:r1", "seq": s, "roomName": "r1"} for s in (4, 5)])
        group.primary.kill()
        await eventually(lambda: store.call("ping"), what="the store answering after the failover")
        group.wait_for_master(group.replica, timeout=10)
        assert store.server_changes >= 2  # the first connection, then the new master
        assert await store.call("get", SEQ_SERVER) is not None
        assert (await accept("after")).seq == 6
        assert await store.call("sismember", SEQ_TRUSTED, "room:r1") == 1
    finally:
        await store.disconnect()
        await mongo.disconnect()


@pytest_twisted.ensureDeferred
async def test_a_counter_is_restored_when_the_server_changed_under_it(redis, mongo_server):
    """Without Sentinel too: a connection that finds another server than the
    one the counters were trusted on (a restart from an old snapshot) makes
    every counter be restored once; the same server changes nothing."""
    mongo = MongoStore(f"mongodb://127.0.0.1:{mongo_server.port}/t{uuid.uuid4().hex[:8]}").connect()
    clock = task.Clock()
    clock.advance(time.time())
    acceptor = Acceptor(redis, Sequences(redis, mongo), History(redis, mongo),
                        PopularWords(redis, clock, window=60), "n1", reactor)

    async def accept():
        m = ChatMessage(new_message_id(), "ann", "hi", int(time.time() * 1000), "text", "bob", "")
        return (await acceptor.accept(m, [])).seq

    async def reconnect():
        old = set(redis._factory.pool)
        redis._factory.drop_connections()
        await eventually(lambda: _pool_renewed(redis, old), what="the pool connected again")

    try:
        await redis.call("flushdb")
        await reconnect()  # (which notes this server again)
        assert [await accept() for _ in range(3)] == [1, 2, 3]
        await mongo.db.messages.insert_one({"_id": ObjectId(), "channel": "dm:ann\nbob", "seq": 9})
        await reconnect()  # the same server: the counter is trusted
        assert await accept() == 4
        await redis.call("set", SEQ_SERVER, "a-server-that-is-gone")
        changes = redis.server_changes
        await reconnect()
        assert redis.server_changes == changes + 1
        assert await accept() == 10
    finally:
        await mongo.disconnect()


async def _pool_renewed(store, old):
    pool = store._factory.pool
    return len(pool) == store.poolsize and not set(pool) & old


@pytest_twisted.ensureDeferred
async def test_a_server_demoted_under_the_pool_is_left(services):
    """A connection whose server became a replica gets -READONLY: that call
    is a 503, and the pool connects again, using only a master."""
    server, other = services.redis(), services.redis()
    store = RedisStore(server.url, timeout=2.0).connect()
    try:
        await eventually(lambda: store.call("set", "k", "1"), what="the store answering")
        server.execute("REPLICAOF", "127.0.0.1", str(other.port))
        with pytest.raises(StoreUnavailable):
            await store.call("set", "k", "2")
        with pytest.raises(StoreUnavailable):  # no connection to a replica is used
            await store.call("get", "k")
        server.execute("REPLICAOF", "NO", "ONE")
        await eventually(lambda: store.call("set", "k", "3"), what="the store answering again")
    finally:
        await store.disconnect()
