"""The session cache against a real Redis: a session that ended never comes
back into a node's cache, whatever arrives late (a look-up answered just
before the session was deleted, an announcement that overtook its logout)."""
import pytest_twisted
from twisted.internet import defer

from chatnet.service.online import SessionDirectory, SessionRecord
from chatnet.stores.redis import SESSIONS


def directory_of(redis):
    return SessionDirectory(redis, members=lambda: {"node1", "node2"})


@pytest_twisted.ensureDeferred
async def test_a_lookup_racing_the_logout_does_not_bring_the_session_back(redis):
    here = directory_of(redis)
    record = SessionRecord.new("alice", "node1", 1000)
    await here.publish(record)
    # the look-up reads Redis first; the logout runs before its answer is used
    read = redis.call("hget", SESSIONS, "alice")
    raw = await read
    await here.unpublish(record)
    released = defer.Deferred()
    real_call = redis.call

    def late_answer(method, *args, **kwargs):
        if method == "hget":
            return released
        return real_call(method, *args, **kwargs)

    redis.call = late_answer
    try:
        lookup = defer.ensureDeferred(here.lookup("alice", refresh=True))
        released.callback(raw)  # the stale answer arrives after the logout
        assert await lookup is None
    finally:
        redis.call = real_call
    assert here.cached("alice") is None
    assert await here.lookup("alice") is None


@pytest_twisted.ensureDeferred
async def test_a_late_announcement_of_an_ended_session_is_ignored(redis):
    there = directory_of(redis)
    record = SessionRecord.new("bob", "node2", 1000)
    record.version = 5
    there.forget("bob", record.sessionId)  # the logout's announcement came first
    assert not there.apply(record)
    assert there.cached("bob") is None
    # a new login of the same user is a new session: it counts
    again = SessionRecord.new("bob", "node2", 2000)
    again.version = 6
    assert there.apply(again)
    assert there.cached("bob") is again


@pytest_twisted.ensureDeferred
async def test_a_node_that_left_keeps_its_sessions_restorable(redis):
    here = directory_of(redis)
    record = SessionRecord.new("carol", "node2", 1000)
    await here.publish(record)
    here.forget_node("node2")  # a ZooKeeper pause: not a logout
    assert here.apply(record)
    assert here.cached("carol") is record
