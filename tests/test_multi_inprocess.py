"""Several sessions of one user (the login feature ``multi``) in-process:
the node of tests/test_handlers_inprocess.py, with a second node "B" that
these tests do not run (a fake peer) where the user may have a session too."""
import pytest_twisted

from chatnet.cluster.responder import Responder
from chatnet.service.online import SessionRecord
from chatnet.service.session import CONNECTED, LOGGED_IN
from tests.inprocess import error_code, request, run_until
from tests.test_handlers_inprocess import NODE, logged_in, mongo_url, node  # noqa: F401 (fixtures)

MULTI = ("ack", "multi")


def chats_of(client):
    return [(c["from"], c["message"]) for c in client.chats()]


@pytest_twisted.ensureDeferred
async def test_two_multi_sessions_on_one_node_coexist_and_both_receive(node):
    laptop = await logged_in(node, "user1", MULTI)
    phone = await logged_in(node, "user1", MULTI)
    bob = await logged_in(node, "user2")
    assert not laptop.replaced_by_newer and laptop.session.state == LOGGED_IN
    assert node.sessions.all("user1") == [laptop, phone]
    assert {r.sessionId for r in await node.directory.lookup_all("user1", refresh=True)} == {
        laptop.record.sessionId, phone.record.sessionId}
    for c in (laptop, phone, bob):
        c.take()

    await request(node.handlers, bob, "chat", to="user1", message="hi both")
    await run_until(node.clock, lambda: laptop.chats() and phone.chats(), "the direct message in both sessions")
    assert chats_of(laptop) == chats_of(phone) == [("user2", "hi both")]
    laptop.take(), phone.take()

    # what user1 sends from the laptop shows on the phone too, once; the
    # laptop has its ack
    frames = await request(node.handlers, laptop, "chat", to="user2", message="from the laptop")
    assert [f["action"] for f in frames] == ["ack"]
    await run_until(node.clock, lambda: phone.chats() and bob.chats(), "own message and the recipient")
    assert chats_of(phone) == [("user1", "from the laptop")] and phone.chats()[0]["to"] == "user2"
    assert chats_of(bob) == [("user1", "from the laptop")]
    assert chats_of(laptop) == []

    # a room message reaches both; a retried delivery doubles in neither
    await request(node.handlers, bob, "chat", roomName="world", message="to the world")
    await run_until(node.clock, lambda: len(laptop.chats()) == 1 and len(phone.chats()) == 2, "the room message")
    room = laptop.chats()[-1]
    node.feed.deliver("world", room["seq"], room["msgId"], b'{"again": true}')
    assert len(laptop.chats()) == 1 and len(phone.chats()) == 2


@pytest_twisted.ensureDeferred
async def test_a_login_without_multi_takes_every_session_over(node):
    laptop = await logged_in(node, "user1", MULTI)
    phone = await logged_in(node, "user1", MULTI)
    old = await logged_in(node, "user1", ("ack",))
    assert laptop.replaced_by_newer and phone.replaced_by_newer
    assert laptop.session.state == phone.session.state == CONNECTED
    assert node.sessions.all("user1") == [old]
    [record] = await node.directory.lookup_all("user1", refresh=True)
    assert record.sessionId == old.record.sessionId
    # and a multi login after it takes the one without multi over
    new = await logged_in(node, "user1", MULTI)
    assert old.replaced_by_newer and node.sessions.all("user1") == [new]


@pytest_twisted.ensureDeferred
async def test_leaving_a_room_applies_to_every_session(node):
    laptop = await logged_in(node, "user1", MULTI)
    phone = await logged_in(node, "user1", MULTI)
    await request(node.handlers, laptop, "joinRoom", roomName="room1")
    assert error_code(await request(node.handlers, phone, "chat", roomName="room1", message="x")) is None
    await request(node.handlers, laptop, "leaveRoom", roomName="room1")
    assert error_code(await request(node.handlers, phone, "chat", roomName="room1", message="y")) == 403


@pytest_twisted.ensureDeferred
async def test_sessions_on_two_nodes(node):
    """user1 on this node and on node B (announced by B): a direct message
    goes to both nodes, userInfo names both and the earliest login; a login
    without multi on B takes the session here over."""
    view = node.view
    view.changed({NODE: {}, "B": {}}, NODE)
    peers = node.peers
    peers.answers["DeliverMany"] = lambda peer, msgIds, datas, usernames: {"missing": []}
    responder = Responder(node.directory, node.sessions, node.delivery, node.feed,
                          node.rooms.local_member_changed)
    earlier = node.clock.seconds() * 1000 - 60_000
    here = await logged_in(node, "user1", MULTI)
    # B publishes its session in Redis (as its node would), then announces it
    there = SessionRecord.new("user1", "B", int(earlier), multi=True)
    await node.directory.publish(there)
    responder.session_changed("user1", "B", there.sessionId, there.loginTime, "", there.version, True, True)
    assert not here.replaced_by_newer
    bob = await logged_in(node, "user2")
    here.take()

    frames = await request(node.handlers, bob, "userInfo", username="user1")
    info = frames[0]["data"]
    assert info["nodes"] == [NODE, "B"] and info["loginTime"] == int(earlier)
    assert info["nodeId"] in (NODE, "B") and info["onlineFor"] == "00d 00h 01m 00s"

    await request(node.handlers, bob, "chat", to="user1", message="both nodes")
    await run_until(node.clock, lambda: here.chats() and any(c[1] == "DeliverMany" for c in peers.calls),
                    "the message here and on B")
    assert chats_of(here) == [("user2", "both nodes")]
    [(peer, _, arguments)] = [c for c in peers.calls if c[1] == "DeliverMany"]
    assert peer == "B" and arguments["usernames"] == ["user1"]

    # what user1 sends here goes to their session on B as well
    peers.calls.clear()
    await request(node.handlers, here, "chat", to="user2", message="mine")
    await run_until(node.clock, lambda: any(c[1] == "DeliverMany" for c in peers.calls), "own message to B")
    [(peer, _, arguments)] = [c for c in peers.calls if c[1] == "DeliverMany"]
    assert peer == "B" and arguments["usernames"] == ["user1"]
    assert here.chats() == []  # the sending session has its ack only

    # a login on B without multi takes the session here over
    responder.session_changed("user1", "B", "b-old-client", 1, "", there.version + 1, True, False)
    assert here.replaced_by_newer
    assert [r.sessionId for r in node.directory.cached_all("user1")] == ["b-old-client"]


@pytest_twisted.ensureDeferred
async def test_redis_keeps_a_set_of_sessions(node):
    directory = node.directory
    a = SessionRecord.new("user3", NODE, 1000, multi=True)
    b = SessionRecord.new("user3", "B", 2000, multi=True)
    assert await directory.publish(a) == []
    assert await directory.publish(b) == []
    assert await directory.restore(a)
    raw = await node.redis.call("hget", "chatnet:sessions", "user3")
    assert {r.sessionId for r in SessionRecord.list_from_json("user3", raw)} == {a.sessionId, b.sessionId}
    await directory.unpublish(a)
    raw = await node.redis.call("hget", "chatnet:sessions", "user3")
    assert [r.sessionId for r in SessionRecord.list_from_json("user3", raw)] == [b.sessionId]
    c = SessionRecord.new("user3", NODE, 3000)
    [replaced] = await directory.publish(c)
    assert replaced.sessionId == b.sessionId
    assert not await directory.restore(b)
    assert await directory.remove_stale({"B"}) == 1
    assert await node.redis.call("hget", "chatnet:sessions", "user3") is None
