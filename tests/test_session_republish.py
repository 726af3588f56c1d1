"""The leader's stale-session sweep and a node's re-publishing, against a real
Redis: the sweep takes a node's marker with its sessions (so that a node the
leader did not see publishes them again), and re-publishing keeps a session's
version and never replaces a newer login."""
import pytest_twisted

from chatnet.service.online import SessionDirectory, SessionRecord
from chatnet.stores.redis import SESSIONS, marker_key


async def login(directory, username, node):
    record = SessionRecord.new(username, node, 1000)
    await directory.publish(record)
    return record


@pytest_twisted.ensureDeferred
async def test_sweep_removes_sessions_and_markers_of_nodes_not_live(redis):
    directory = SessionDirectory(redis)
    await login(directory, "alice", "node1")
    await login(directory, "bob", "node2")
    await redis.call("hset", SESSIONS, "broken", "not json")
    for node in ("node1", "node2", "node3"):
        await redis.call("set", marker_key(node), "1")
    assert await directory.remove_stale({"node1", "node3"}) == 2
    assert set(await redis.call("hkeys", SESSIONS)) == {"alice"}
    assert await redis.call("get", marker_key("node1")) == "1"
    assert await redis.call("get", marker_key("node2")) is None
    # a node without sessions keeps its marker
    assert await redis.call("get", marker_key("node3")) == "1"


@pytest_twisted.ensureDeferred
async def test_restore_keeps_the_version_and_never_replaces_a_newer_login(redis):
    directory = SessionDirectory(redis)
    old = await login(directory, "alice", "node1")
    await redis.call("hdel", SESSIONS, "alice")
    assert await directory.restore(old)
    [back] = SessionRecord.list_from_json("alice", await redis.call("hget", SESSIONS, "alice"))
    assert (back.sessionId, back.version) == (old.sessionId, old.version)
    newer = await login(directory, "alice", "node2")
    assert newer.version > old.version
    assert not await directory.restore(old)
    [current] = SessionRecord.list_from_json("alice", await redis.call("hget", SESSIONS, "alice"))
    assert (current.nodeId, current.version) == ("node2", newer.version)
    # and a login after a re-publish is still the newer one
    await redis.call("hdel", SESSIONS, "alice")
    assert await directory.restore(old)
    latest = await login(directory, "alice", "node3")
    assert latest.version > old.version
