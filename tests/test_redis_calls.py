"""The Redis client's own request building and call path (chatnet/stores/redis.py):
the same RESP bytes as txredisapi's, scripts that survive a SCRIPT FLUSH,
errors still errors, and the commands of a turn on one connection. A real
Redis (the session's ``redis_server``)."""
import pytest
import pytest_twisted
import txredisapi
from twisted.internet import defer, reactor, task

from chatnet.stores.redis import RedisStore, _Protocol


@pytest.mark.parametrize("args", [
    ("GET", "k"),
    ("EVALSHA", "a" * 40, 3, "k1", b"v\r\n", -5, 0, "", "é€", 1.5, True, bytearray(b"x"), 2**70),
    ("SET", "k", b""),
])
def test_requests_are_txredisapis(args):
    ours, theirs = _Protocol(), txredisapi.RedisProtocol()
    assert ours._build_command(*args) == theirs._build_command(*args)


def test_a_string_that_cannot_be_encoded_is_txredisapis_error():
    ours = _Protocol()
    with pytest.raises(txredisapi.InvalidData):
        ours._build_command("SET", "k", "\ud800")  # a lone surrogate is no UTF-8


@pytest_twisted.ensureDeferred
async def test_scripts_run_again_after_a_script_flush(redis_server):
    store = RedisStore(redis_server.url).connect()
    try:
        script = "return {KEYS[1], ARGV[1]}"
        assert await store.eval(script, ["k"], [7]) == ["k", "7"]
        assert await store.eval(script, ["k"], ["again"]) == ["k", "again"]  # EVALSHA now
        await store.call("execute_command", "SCRIPT", "FLUSH")
        assert await store.eval(script, ["k2"], [b"x"]) == ["k2", "x"]
        with pytest.raises(txredisapi.ResponseError):
            await store.eval("return redis.call('NOSUCHCOMMAND')")
    finally:
        await store.disconnect()


@pytest_twisted.ensureDeferred
async def test_the_commands_go_to_the_ready_connections_in_turn(redis_server):
    store = RedisStore(redis_server.url, poolsize=4).connect()
    try:
        # wait for the whole pool (each connection checks the server first)
        for _ in range(200):
            await store.ping()
            if len(store._factory.connectionQueue.pending) == 4:
                break
            await task.deferLater(reactor, 0.05, lambda: None)
        assert len(store._factory.connectionQueue.pending) == 4
        counts = {}
        for connection in store._factory.connectionQueue.pending:
            def counted(*args, _connection=connection, _real=connection.execute_command, **kwargs):
                counts[_connection] = counts.get(_connection, 0) + 1
                return _real(*args, **kwargs)

            connection.execute_command = counted
        await defer.gatherResults([store.call("set", f"k{i}", str(i)) for i in range(10)])
        replies = await defer.gatherResults([store.call("get", f"k{i}") for i in range(10)])
        assert replies == [str(i) for i in range(10)]
        assert sorted(counts.values()) == [5, 5, 5, 5]
        # a connection that is down is skipped
        down = store._factory.connectionQueue.pending[0]
        down.connected = 0
        try:
            assert all(store._factory.ready() is not down for _ in range(8))
        finally:
            down.connected = 1
    finally:
        await store.disconnect()


@pytest_twisted.ensureDeferred
async def test_replies_are_txredisapis(redis_server):
    """The hiredis-parsed replies of the lighter command path are what
    txredisapi's own line parser gives, for every kind of reply."""
    from twisted.internet import protocol, reactor

    store = RedisStore(redis_server.url).connect()
    theirs = await protocol.ClientCreator(
        reactor, txredisapi.BaseRedisProtocol, convertNumbers=False).connectTCP("127.0.0.1", redis_server.port)
    calls = [
        ("set", "rk:text", "é€ text"),
        ("get", "rk:text"),
        ("set", "rk:raw", b"\xff\xfe not utf-8"),
        ("get", "rk:raw"),
        ("get", "rk:missing"),
        ("incr", "rk:n"),
        ("delete", "rk:h"),
        ("hset", "rk:h", "a", "1"),
        ("hgetall", "rk:h"),
        ("sadd", "rk:s", "x"),
        ("smembers", "rk:s"),
        ("rpush", "rk:l", ["1", b"\x80"]),
        ("lrange", "rk:l", 0, -1),
        ("eval", "return {1, 'two', {3, false}, redis.status_reply('OK')}", [], []),
        ("mget", ["rk:text", "rk:missing", "rk:raw"]),
    ]
    try:
        for method, *args in calls:
            ours = await store.call(method, *args)
            if method in ("get", "hgetall", "smembers", "lrange", "eval", "mget"):
                assert ours == await getattr(theirs, method)(*args), method
        with pytest.raises(txredisapi.ResponseError):
            await store.call("execute_command", "NOSUCHCOMMAND")
        assert await store.call("ping") == "PONG"  # the connection goes on after an error
    finally:
        theirs.transport.loseConnection()
        await store.call("execute_command", "DEL", "rk:text", "rk:raw", "rk:n", "rk:h", "rk:s", "rk:l")
        await store.disconnect()


@pytest_twisted.ensureDeferred
async def test_a_lost_connection_fails_its_waiting_commands(services):
    """Commands in flight when the server dies fail at once (no waiting for
    the timeout), and the pool connects again."""
    from twisted.internet import threads

    server = services.redis()
    store = RedisStore(f"redis://127.0.0.1:{server.port}/0", timeout=30).connect()
    try:
        await store.ping()
        server.pause()
        pending = [store.call("get", f"k{i}") for i in range(20)]
        await threads.deferToThread(server.kill)
        results = await defer.DeferredList(pending, consumeErrors=True)
        assert all(not ok for ok, _ in results)
    finally:
        await store.disconnect()
