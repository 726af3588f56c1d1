"""The client actions (L{chatnet.actions}) in-process: one node
("A", the leader) wired as chatnet.node wires it, on the real Redis and
MongoDB (SecantusDB), a fake clock, and recording stand-ins for the client
connections, the peer links and presence (tests/inprocess.py).

What only processes show (the WebSocket layer, ZooKeeper, several nodes,
failures of the stores) stays in the *_e2e tests."""
import uuid
from types import SimpleNamespace

import pymongo
import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.task import Clock

from chatnet.actions import build
from chatnet.actions.limits import RESUME_WAIT
from chatnet.cluster.router import RoomRouter, Router
from chatnet.cluster.view import ClusterView
from chatnet.config import NodeConfig
from chatnet.domain.messages import ChatMessage, dm_channel, new_message_id, room_channel
from chatnet.ops.seed import seed
from chatnet.service.accept import Acceptor
from chatnet.service.delivery import LocalDelivery, RecentDeliveries
from chatnet.service.history import RESUME_LIMIT, History
from chatnet.service.online import LocalSessions, SessionDirectory
from chatnet.service.popular import PopularWords
from chatnet.service.roomfeed import RoomFeed
from chatnet.service.rooms import Rooms
from chatnet.service.sequences import Sequences
from chatnet.service.session import CLOSED, CONNECTED, LOGGED_IN, SessionService
from chatnet.stores.message_log import MessageLog
from chatnet.stores.mongo import MongoStore, OfflineStore
from chatnet.stores.redis import SESSIONS, seq_key
from chatnet.text.profanity import ProfanityFilter
from tests.inprocess import (HASH, PASSWORD, Announcements, FakeConnection, FakePeers, action_parts, error_code, request,
                             run_until)

NODE = "A"


@pytest.fixture
def mongo_url(mongo_server):
    url = f"mongodb://127.0.0.1:{mongo_server.port}/handlers{uuid.uuid4().hex[:8]}"
    seed(url, users=4, rooms=3)
    client = pymongo.MongoClient(url)
    client.get_default_database().users.update_many({}, {"$set": {"passwordHash": HASH}})
    yield url
    client.drop_database(client.get_default_database().name)
    client.close()


@pytest.fixture
def node(redis, mongo_url):
    """The parts of one chat node that the client actions use, as
    L{chatnet.node.ChatNode._wire} makes them; C{handlers}: the actions
    (L{chatnet.actions.build} of C{parts}, without the C{live} extension)."""
    clock = Clock()
    clock.advance(1_700_000_000)
    mongo = MongoStore(mongo_url).connect()
    message_log = MessageLog(mongo, clock)
    history = History(redis, mongo, waiting=message_log.waiting)
    sequences = Sequences(redis, mongo, message_log.pending_seq)
    popular = PopularWords(redis, clock)
    view = ClusterView(NODE, clock)
    view.changed({NODE: {}}, NODE)
    sessions = LocalSessions()
    directory = SessionDirectory(redis, view.live_nodes)
    events = []
    emit = lambda event, *args: events.append((event, *args))  # noqa: E731
    delivery = LocalDelivery(sessions, RecentDeliveries(), lambda payload: payload, emit)
    peers = FakePeers()
    router = Router(view, peers, directory, delivery, clock)
    feed = RoomFeed(NODE, redis, mongo, history, sequences, lambda payload: payload, emit, clock)
    rooms = RoomRouter(view, peers, Rooms(mongo, directory), feed, sessions, directory, redis, clock)
    presence = Announcements()
    session_service = SessionService(sessions, directory, presence, view, emit, clock, feed)
    profanity = ProfanityFilter.default()
    acceptor = Acceptor(redis, sequences, history, popular, NODE, reactor)
    parts = action_parts(
        config=NodeConfig(), clock=clock, redis=redis, mongo=mongo, offline=OfflineStore(mongo), history=history,
        popular=popular, profanity=profanity, acceptor=acceptor, message_log=message_log, view=view,
        directory=directory, sessions=sessions, presence=presence, router=router, rooms=rooms, feed=feed,
        delivery=delivery, emit=emit)
    yield SimpleNamespace(
        handlers=build(**parts), parts=parts, **parts, redis=redis, events=events, message_log=message_log,
        acceptor=acceptor, profanity=profanity, router=router, peers=peers,
        connect=lambda: FakeConnection(session_service),
    )
    pytest_twisted.blockon(mongo.disconnect())


async def logged_in(node, username, features=("ack",)):
    client = node.connect()
    frames = await request(node.handlers, client, "login", username=username, password=PASSWORD,
                           features=list(features))
    assert [f["action"] for f in frames if f["action"] != "chat"][:1] == ["login"], frames
    return client


# -- login ----------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_login_publishes_the_session(node):
    client = node.connect()
    frames = await request(node.handlers, client, "login", username="user1", password=PASSWORD,
                           features=["ack", "resume", "nonsense"])
    assert [f["action"] for f in frames] == ["login"]
    data = frames[0]["data"]
    assert data["username"] == "user1" and data["nodeId"] == NODE
    assert data["features"] == ["ack", "resume"]
    assert node.sessions.get("user1") is client
    stored = await node.directory.lookup("user1", refresh=True)
    assert stored is not None and stored.sessionId == data["sessionId"] and stored.nodeId == NODE
    assert node.presence.announced == [("user1", True)]
    assert ("user_online", "user1", NODE) in node.events


@pytest_twisted.ensureDeferred
async def test_login_is_undone_when_the_user_rooms_cannot_be_read(node, free_port):
    """A session that does not get its rooms would miss their messages
    without knowing it: the login is a 503 and leaves nothing behind."""
    unreachable = MongoStore(f"mongodb://127.0.0.1:{free_port}/none", timeout=0.5).connect()
    node.feed.mongo = unreachable
    try:
        client = node.connect()
        frames = await request(node.handlers, client, "login", username="user1", password=PASSWORD)
        assert error_code(frames) == 503, frames
        assert client.record is None and node.sessions.get("user1") is None
        assert await node.directory.lookup("user1", refresh=True) is None
    finally:
        await unreachable.disconnect()


@pytest_twisted.ensureDeferred
async def test_login_refuses_unknown_user_and_wrong_password(node):
    client = node.connect()
    assert error_code(await request(node.handlers, client, "login", username="nobody", password=PASSWORD)) == 401
    assert error_code(await request(node.handlers, client, "login", username="user1", password="wrong")) == 401
    assert error_code(await request(node.handlers, client, "login", username="user1")) == 401
    assert client.record is None and node.sessions.get("user1") is None
    assert await node.directory.lookup("user1", refresh=True) is None
    # other actions need a login first
    assert error_code(await request(node.handlers, client, "listRooms")) == 401


@pytest_twisted.ensureDeferred
async def test_login_throttled_after_failures_until_the_lockout_ends(node):
    client = node.connect()
    for _ in range(node.login_throttle.user_after):
        assert error_code(await request(node.handlers, client, "login", username="user2", password="no")) == 401
    # locked out now, even with the right password
    frames = await request(node.handlers, client, "login", username="user2", password=PASSWORD)
    assert error_code(frames) == 429, frames
    assert client.record is None
    # the lockout is over once its time has passed on the node's clock
    node.clock.advance(node.login_throttle.cap + 1)
    frames = await request(node.handlers, client, "login", username="user2", password=PASSWORD)
    assert [f["action"] for f in frames] == ["login"], frames


# -- chat -------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_direct_chat_to_a_local_user_is_delivered_and_acked(node):
    alice, bob = await logged_in(node, "user1"), await logged_in(node, "user2")
    frames = await request(node.handlers, alice, "chat", to="user2", message="hello bob")
    assert [f["action"] for f in frames] == ["ack"], frames
    ack = frames[0]["data"]
    assert ack["seq"] == 1 and ack["msgId"] == ack["id"]
    got = bob.take()
    assert [f["action"] for f in got] == ["chat"], got
    chat = got[0]["data"]
    assert (chat["from"], chat["message"], chat["msgId"], chat["seq"]) == ("user1", "hello bob", ack["msgId"], 1)
    frames = await request(node.handlers, alice, "chat", to="user2", message="again")
    assert frames[0]["data"]["seq"] == 2
    assert [c["seq"] for c in bob.chats()] == [2]
    # it is in the conversation's history
    assert [d["seq"] for d in await node.history.after(dm_channel("user1", "user2"), 0)] == [1, 2]


@pytest_twisted.ensureDeferred
async def test_chat_to_an_offline_user(node):
    alice = await logged_in(node, "user1", features=("ack",))
    # without "offline": the user must be online
    assert error_code(await request(node.handlers, alice, "chat", to="user3", message="hi")) == 404
    alice = node.connect()
    await request(node.handlers, alice, "login", username="user1", password=PASSWORD, features=["ack", "offline"])
    frames = await request(node.handlers, alice, "chat", to="user3", message="while you were away")
    assert [f["action"] for f in frames] == ["queued"], frames
    queued = frames[0]["data"]
    assert queued["to"] == "user3" and queued["seq"] == 1
    # an unknown user is not queued for
    assert error_code(await request(node.handlers, alice, "chat", to="nobody", message="hi")) == 404
    # user3 gets it at their next login, then the count
    carol = node.connect()
    frames = await request(node.handlers, carol, "login", username="user3", password=PASSWORD, features=["offline"])
    assert [f["action"] for f in frames] == ["login", "chat", "offline"], frames
    assert frames[1]["data"]["msgId"] == queued["msgId"]
    assert frames[2]["data"] == {"delivered": 1, "dropped": 0}


@pytest_twisted.ensureDeferred
async def test_room_chat_by_a_member_and_a_non_member(node):
    alice, bob = await logged_in(node, "user1"), await logged_in(node, "user2")
    frames = await request(node.handlers, alice, "joinRoom", roomName="room1")
    assert [f["action"] for f in frames] == ["joinRoom"] and frames[0]["data"]["members"] == 1
    frames = await request(node.handlers, alice, "chat", roomName="room1", message="hello room")
    assert frames[0]["action"] == "ack" and frames[0]["data"]["seq"] == 1, frames
    # the leader (this node) fans it out to the online members, its sender too
    await run_until(None, lambda: len(frames) + len(alice.frames) > 1, "the room message back to its sender")
    chats = [f["data"] for f in frames + alice.take() if f["action"] == "chat"]
    assert [(c["roomName"], c["message"], c["seq"]) for c in chats] == [("room1", "hello room", 1)]
    assert bob.take() == []
    # bob has not joined room1: 403, nothing sent
    assert error_code(await request(node.handlers, bob, "chat", roomName="room1", message="me too")) == 403
    assert error_code(await request(node.handlers, bob, "chat", roomName="room99", message="hm")) == 404
    assert [d["seq"] for d in await node.history.after(room_channel("room1"), 0)] == [1]


@pytest_twisted.ensureDeferred
async def test_join_room_sends_the_history_then_the_answer(node):
    alice = await logged_in(node, "user1")
    await request(node.handlers, alice, "joinRoom", roomName="room2")
    for text in ("one", "two", "three"):
        await request(node.handlers, alice, "chat", roomName="room2", message=text)
    bob = await logged_in(node, "user2")
    frames = await request(node.handlers, bob, "joinRoom", roomName="room2")
    assert [f["action"] for f in frames] == ["chat", "chat", "chat", "joinRoom"], frames
    assert [f["data"]["message"] for f in frames[:3]] == ["one", "two", "three"]
    assert frames[3]["data"] == {"roomName": "room2", "members": 2}
    # a member now: bob may post
    assert [f["action"] for f in await request(node.handlers, bob, "chat", roomName="room2", message="hi")][0] == "ack"


# -- resume ------------------------------------------------------------------------


async def accept(node, room, n):
    """C{n} messages of user4 in C{room}, accepted as a chat would be."""
    for i in range(n):
        message = ChatMessage(new_message_id(), "user4", f"m{i}", 1, roomName=room)
        await node.acceptor.accept(message, [])


@pytest_twisted.ensureDeferred
async def test_resume_replays_without_a_gap_and_tells_what_is_too_old(node):
    alice = await logged_in(node, "user1", features=("ack", "resume"))
    for room in ("room1", "room2"):
        await request(node.handlers, alice, "joinRoom", roomName=room)
    await accept(node, "room1", 12)
    await accept(node, "room2", RESUME_LIMIT + 2)
    frames = await request(node.handlers, alice, "resume", rooms={"room1": 4, "room2": 0})
    assert [f["action"] for f in frames] == ["chat"] * 8 + ["resume"], [f["action"] for f in frames]
    assert [(f["data"]["roomName"], f["data"]["seq"]) for f in frames[:8]] == [("room1", s) for s in range(5, 13)]
    assert frames[-1]["data"] == {"replayed": 8, "tooOld": [{"roomName": "room2"}]}
    # up to date: nothing to replay
    frames = await request(node.handlers, alice, "resume", rooms={"room1": 12})
    assert [f["action"] for f in frames] == ["resume"] and frames[0]["data"]["replayed"] == 0
    # a room the user is not in: 403
    assert error_code(await request(node.handlers, alice, "resume", rooms={"room3": 0})) == 403


# -- the session: holding live messages back, logout, replacement --------------------


@pytest_twisted.ensureDeferred
async def test_live_messages_wait_for_the_resume_replay_and_are_not_doubled(node):
    alice = await logged_in(node, "user1", features=("ack", "resume"))
    assert alice.session.holding  # a resume is likely next
    bob = await logged_in(node, "user2")
    await request(node.handlers, bob, "chat", to="user1", message="live")
    assert alice.frames == []  # kept back
    frames = await request(node.handlers, alice, "resume", conversations={"user2": 0})
    # the replay has it: the live copy is dropped
    assert [(f["action"], f["data"].get("message")) for f in frames] == [("chat", "live"), ("resume", None)]
    assert not alice.session.holding
    await request(node.handlers, bob, "chat", to="user1", message="after")
    assert [c["message"] for c in alice.chats()] == ["after"]


@pytest_twisted.ensureDeferred
async def test_a_request_other_than_resume_ends_the_hold(node):
    alice = await logged_in(node, "user1", features=("resume",))
    bob = await logged_in(node, "user2")
    await request(node.handlers, bob, "chat", to="user1", message="waiting")
    assert alice.frames == []
    frames = await request(node.handlers, alice, "listRooms")
    assert [f["action"] for f in frames] == ["chat", "listRooms"]


@pytest_twisted.ensureDeferred
async def test_the_hold_ends_by_itself(node):
    alice = await logged_in(node, "user1", features=("resume",))
    bob = await logged_in(node, "user2")
    await request(node.handlers, bob, "chat", to="user1", message="waiting")
    node.clock.advance(RESUME_WAIT)
    assert [c["message"] for c in alice.chats()] == ["waiting"]


@pytest_twisted.ensureDeferred
async def test_close_logs_out(node):
    alice = await logged_in(node, "user1")
    assert alice.session.state == LOGGED_IN
    alice.close()
    await alice.session.gone
    assert alice.session.state == CLOSED and alice.record is None
    assert node.sessions.get("user1") is None
    assert await node.directory.lookup("user1", refresh=True) is None
    assert node.presence.announced == [("user1", True), ("user1", False)]
    assert ("user_offline", "user1", NODE) in node.events


@pytest_twisted.ensureDeferred
async def test_a_newer_login_replaces_the_session(node):
    first = await logged_in(node, "user1")
    second = await logged_in(node, "user1")
    assert first.replaced_by_newer and first.session.state == CONNECTED and first.record is None
    assert second.session.state == LOGGED_IN and node.sessions.get("user1") is second
    record = await node.directory.lookup("user1", refresh=True)
    assert record.sessionId == second.record.sessionId


@pytest_twisted.ensureDeferred
async def test_a_client_leaving_while_its_login_is_published_ends_offline(node):
    alice = node.connect()
    publish = node.directory.publish

    async def publish_as_the_client_leaves(record):
        # the connection closes with the login in hand (the protocol's onClose)
        alice.closed = True
        alice.session.closed(busy=True)
        await publish(record)

    node.directory.publish = publish_as_the_client_leaves
    frames = await request(node.handlers, alice, "login", username="user1", password=PASSWORD)
    assert frames == []
    alice.session.request_finished()  # the protocol, once the request is done
    await alice.session.gone
    assert alice.session.state == CLOSED and alice.record is None
    assert node.sessions.get("user1") is None
    # as the other nodes see it: the session is gone from Redis
    assert await node.redis.call("hget", SESSIONS, "user1") is None


@pytest_twisted.ensureDeferred
async def test_posting_answers_an_accepted_value_before_the_route(node):
    """L{Posting.post} returns an immutable L{Accepted} and calls
    C{accepted} with it before the message is routed: the sender's answer
    comes before its own copy of the room message."""
    import dataclasses

    alice = await logged_in(node, "user1")
    await request(node.handlers, alice, "joinRoom", roomName="room1")
    alice.take()
    told = []
    accepted = await node.posting.post(
        "user1", "hello", 1_700_000_000_000, room="room1",
        accepted=lambda a: told.append((a, len(alice.chats()))))
    assert told == [(accepted, 0)]
    assert (accepted.seq, accepted.queued, accepted.message.message) == (1, False, "hello")
    with pytest.raises(dataclasses.FrozenInstanceError):
        accepted.queued = True
    await run_until(None, lambda: alice.chats(), "the room message")
    assert [c["seq"] for c in alice.chats()] == [1]
    assert node.posting.background.failures == 0


@pytest_twisted.ensureDeferred
async def test_posting_refuses_before_accepting_while_the_message_log_is_full(node):
    """A full write-behind log: L{Posting.post} fails with a 503 before the
    message has a seq or a history entry, and C{accepted} is not called;
    once there is room again the next message is the room's first."""
    from chatnet.errors import StoreUnavailable

    alice = await logged_in(node, "user1")
    await request(node.handlers, alice, "joinRoom", roomName="room1")
    told = []
    counter = await node.redis.call("get", seq_key(room_channel("room1")))
    room_size = node.message_log.max_bytes
    node.message_log.max_bytes = 0
    with pytest.raises(StoreUnavailable):
        await node.posting.post("user1", "refused", 1_700_000_000_000, room="room1",
                                         accepted=told.append)
    assert told == [] and await node.redis.call("get", seq_key(room_channel("room1"))) == counter
    node.message_log.max_bytes = room_size
    accepted = await node.posting.post("user1", "taken", 1_700_000_000_001, room="room1",
                                                accepted=told.append)
    assert told == [accepted] and accepted.seq == 1
