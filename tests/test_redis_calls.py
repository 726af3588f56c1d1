"""The Redis store's call path (chatnet/stores/redis.py): scripts that
survive a SCRIPT FLUSH, errors still errors, the commands spread over the
ready connections, and the waiting commands of a lost connection failed at
once. A real Redis (the session's ``redis_server``); the lighter command
path against txredisapi's own is tests/test_adapters_txredisapi.py."""
import pytest
import pytest_twisted
import txredisapi
from twisted.internet import defer, reactor, task

from chatnet.stores.redis import RedisStore


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
