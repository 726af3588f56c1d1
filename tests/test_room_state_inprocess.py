"""A user's room state across two nodes in-process
(L{chatnet.service.roomstate}): nodes "A" and "B" wired as chatnet.node
wires them, on the same real Redis and MongoDB, with a fake clock; the
calls between them go through recording peer links that deliver room
messages and lose every C{RoomMember} and C{RoomNotice} (a node told late
or never). A user has a C{multi} session on each node."""
import uuid
from types import SimpleNamespace

import pymongo
import pytest
import pytest_twisted
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet import defer, reactor, task, threads
from twisted.internet.task import Clock

from chatnet.actions import build
from chatnet.cluster.router import RoomRouter, Router
from chatnet.cluster.view import ClusterView
from chatnet.config import NodeConfig
from chatnet.ops.seed import seed
from chatnet.service import roomstate
from chatnet.service.accept import Acceptor
from chatnet.service.delivery import LocalDelivery, RecentDeliveries
from chatnet.service.history import History
from chatnet.service.online import LocalSessions, SessionDirectory, SessionRecord
from chatnet.service.popular import PopularWords
from chatnet.service.roomfeed import RoomFeed
from chatnet.service.rooms import Rooms
from chatnet.service.roomstate import RoomState
from chatnet.service.sequences import Sequences
from chatnet.service.session import SessionService
from chatnet.stores.message_log import MessageLog
from chatnet.stores.mongo import MongoStore, OfflineStore
from chatnet.stores.redis import room_state_key
from chatnet.text.profanity import ProfanityFilter
from tests.inprocess import HASH, PASSWORD, Announcements, FakeConnection, FakePeers, action_parts, error_code, request

MULTI = ["ack", "multi"]


class CountingRedis:
    """The real L{chatnet.stores.redis.RedisStore}, with each call it is
    given kept in C{calls} (the method's name)."""

    def __init__(self, store):
        self.store = store
        self.calls = []

    def call(self, method, *args, **kwargs):
        self.calls.append(method)
        return self.store.call(method, *args, **kwargs)

    def eval(self, script, keys=(), args=()):
        self.calls.append("eval")
        return self.store.eval(script, keys, args)


class CountingMongo:
    """The real L{chatnet.stores.mongo.MongoStore}; the room reads of a
    refresh (C{rooms_of}) are counted."""

    def __init__(self, store):
        self.store = store
        self.reads = 0

    async def rooms_of(self, usernames):
        self.reads += 1
        return await self.store.rooms_of(usernames)

    def __getattr__(self, name):
        return getattr(self.store, name)


@pytest.fixture
def mongo_url(mongo_server):
    url = f"mongodb://127.0.0.1:{mongo_server.port}/roomstate{uuid.uuid4().hex[:8]}"
    seed(url, users=6, rooms=3)
    client = pymongo.MongoClient(url)
    client.get_default_database().users.update_many({}, {"$set": {"passwordHash": HASH}})
    yield url
    client.drop_database(client.get_default_database().name)
    client.close()


def make_node(node_id, redis, mongo, clock):
    view = ClusterView(node_id, clock)
    view.changed({"A": {}, "B": {}}, "A")
    message_log = MessageLog(mongo, clock)
    history = History(redis, mongo, waiting=message_log.waiting)
    sequences = Sequences(redis, mongo, message_log.pending_seq)
    popular = PopularWords(redis, clock)
    sessions = LocalSessions()
    directory = SessionDirectory(redis, view.live_nodes)
    emit = lambda event, *args: None  # noqa: E731
    delivery = LocalDelivery(sessions, RecentDeliveries(), lambda payload: payload, emit)
    peers = FakePeers()
    router = Router(view, peers, directory, delivery, clock)
    feed = RoomFeed(node_id, redis, mongo, history, sequences, lambda payload: payload, emit, clock)
    room_state = RoomState(redis, mongo, sessions, feed, clock)
    rooms = RoomRouter(view, peers, Rooms(mongo, directory), feed, sessions, directory, redis, clock,
                       room_state=room_state)
    presence = Announcements()
    handlers = build(**action_parts(
        config=NodeConfig(), clock=clock, redis=redis, mongo=mongo, offline=OfflineStore(mongo), history=history,
        popular=popular, profanity=ProfanityFilter.default(),
        acceptor=Acceptor(redis, sequences, history, popular, node_id, reactor), message_log=message_log,
        view=view, directory=directory, sessions=sessions, presence=presence, router=router, rooms=rooms,
        feed=feed, delivery=delivery, room_state=room_state,
    ))
    service = SessionService(sessions, directory, presence, view, emit, clock, feed)
    return SimpleNamespace(node_id=node_id, handlers=handlers, feed=feed, room_state=room_state, peers=peers,
                           sessions=sessions, connect=lambda: FakeConnection(service))


def link(here, there):
    """Calls from C{here} to C{there}: room messages are delivered,
    C{RoomMember} and C{RoomNotice} are lost."""
    def room_deliver(node, roomNames, seqs, msgIds, datas):
        for room, seq, msg_id, data in zip(roomNames, seqs, msgIds, datas):
            there.feed.deliver(room, seq, msg_id, data)
        return {}

    here.peers.answers.update(RoomDeliver=room_deliver, RoomMember=lambda node, **_: {},
                              RoomNotice=lambda node, **_: {}, DeliverMany=lambda node, **_: {"missing": []})


@pytest.fixture
def nodes(redis, mongo_url):
    clock = Clock()
    clock.advance(1_700_000_000)
    mongo = MongoStore(mongo_url).connect()
    counting = CountingRedis(redis)
    a, b = make_node("A", counting, mongo, clock), make_node("B", counting, mongo, clock)
    link(a, b)
    link(b, a)
    yield SimpleNamespace(a=a, b=b, clock=clock, redis=counting, mongo=mongo)
    pytest_twisted.blockon(mongo.disconnect())


async def logged_in(node, username, features=MULTI):
    client = node.connect()
    frames = await request(node.handlers, client, "login", username=username, password=PASSWORD,
                           features=list(features))
    assert frames[0]["action"] == "login", frames
    return client


async def post(node, client, room, text):
    frames = await request(node.handlers, client, "chat", roomName=room, message=text)
    return frames


def texts(client, room):
    return [c["message"] for c in client.chats() if c["roomName"] == room]


async def delivered(nodes, sender_node, sender, receiver, room, text):
    """Whether C{text}, posted by C{sender} now, reaches C{receiver} (once
    the calls between the nodes went)."""
    assert error_code(await post(sender_node, sender, room, text)) is None
    for _ in range(3):
        nodes.clock.advance(0.01)  # the batch window of the calls to the other node
        await task.deferLater(reactor, 0.01, lambda: None)
    return text in texts(receiver, room)


@pytest_twisted.ensureDeferred
async def test_a_join_whose_room_member_call_was_lost_reaches_the_other_node_at_its_check(nodes):
    a, b = nodes.a, nodes.b
    laptop, phone = await logged_in(a, "user1"), await logged_in(b, "user1")
    poster = await logged_in(a, "user2", ["ack"])
    await request(a.handlers, poster, "joinRoom", roomName="room1")
    frames = await request(a.handlers, laptop, "joinRoom", roomName="room1")
    assert frames[-1]["action"] == "joinRoom", frames
    # told to every live node, whatever A's session cache knows (the call was lost)
    assert ("B", "RoomMember") in [(node, name) for node, name, _ in a.peers.calls]
    assert not await delivered(nodes, a, poster, phone, "room1", "before B's check")

    await b.room_state.check()
    assert "room1" in phone.session.known_rooms()
    assert await delivered(nodes, a, poster, phone, "room1", "after B's check")
    # B's version is current: nothing more to do at the next check
    reads = nodes.redis.calls.count("mget")
    await b.room_state.check()
    assert nodes.redis.calls.count("mget") == reads + 1 and "room1" in phone.session.known_rooms()


@pytest_twisted.ensureDeferred
@pytest.mark.parametrize("action", ["ban", "kick", "mute"])
async def test_a_moderation_unknown_to_the_other_node_refuses_the_post_there(nodes, action):
    a, b = nodes.a, nodes.b
    owner = await logged_in(a, "user3", ["ack"])
    assert (await request(a.handlers, owner, "createRoom", roomName="club"))[0]["action"] == "createRoom"
    laptop, phone = await logged_in(a, "user1"), await logged_in(b, "user1")
    await request(b.handlers, phone, "joinRoom", roomName="club")
    assert error_code(await post(b, phone, "club", "hello")) is None  # its mute (none) is known on B now
    assert phone in b.feed.members_of("club")

    extra = {"seconds": 600} if action == "mute" else {}
    frames = await request(a.handlers, owner, action, roomName="club", username="user1", **extra)
    assert frames[-1]["action"] == action, frames
    # B heard nothing (the notice and RoomMember were lost); its session still has the room
    assert "club" in phone.session.known_rooms()

    refused = await post(b, phone, "club", "still here?")
    assert error_code(refused) == 403, refused
    assert error_code(await post(a, laptop, "club", "and here?")) == 403
    # a ban or a kick also ended the room's delivery on B when the post read the state again
    assert (phone in b.feed.members_of("club")) == (action == "mute")


@pytest_twisted.ensureDeferred
async def test_a_post_costs_one_redis_call_until_the_state_changes(nodes):
    a, b = nodes.a, nodes.b
    phone = await logged_in(b, "user1")
    await request(b.handlers, phone, "joinRoom", roomName="room2")
    assert error_code(await post(b, phone, "room2", "first")) is None  # reads its mute once
    nodes.redis.calls.clear()
    assert error_code(await post(b, phone, "room2", "second")) is None
    assert nodes.redis.calls == ["eval"]  # the accept script, which checks the version too

    # a change elsewhere (user1 joins room3 on A): the next post reads the state again, once
    laptop = await logged_in(a, "user1")
    await request(a.handlers, laptop, "joinRoom", roomName="room3")
    version = phone.session.room_version
    nodes.redis.calls.clear()
    assert error_code(await post(b, phone, "room2", "third")) is None
    assert phone.session.room_version != version and "room3" in phone.session.known_rooms()
    # refused as stale by the accept script, the versions around the read
    # of the rooms, room3 tracked on B, the post accepted
    assert nodes.redis.calls == ["eval", "mget", "mget", "eval", "eval"]
    nodes.redis.calls.clear()
    assert error_code(await post(b, phone, "room2", "fourth")) is None
    assert nodes.redis.calls == ["eval"]


@pytest_twisted.ensureDeferred
async def test_the_node_that_made_the_change_keeps_its_sessions_current(nodes):
    a = nodes.a
    laptop = await logged_in(a, "user1")
    await request(a.handlers, laptop, "joinRoom", roomName="room1")
    nodes.redis.calls.clear()
    assert error_code(await post(a, laptop, "room1", "right after the join")) is None
    assert nodes.redis.calls == ["eval"]


@pytest_twisted.ensureDeferred
async def test_a_version_redis_did_not_take_is_written_at_the_next_check(nodes, free_port):
    from chatnet.stores.redis import RedisStore

    down = RedisStore(f"redis://127.0.0.1:{free_port}/0", timeout=0.2).connect()  # nothing listens there
    state = RoomState(down, nodes.mongo, nodes.a.sessions, nodes.a.feed, nodes.clock)
    assert await state.changed("user4") is None
    state.redis = nodes.redis
    await state.check()
    assert await nodes.redis.call("get", room_state_key("user4"))
    await down.disconnect()


# -- the cost of a check ---------------------------------------------------------


def _session(nodes, username, version):
    """A logged-in session of C{username} on node A with room state
    version C{version}, as a login leaves it."""
    connection = nodes.a.connect()
    connection.session.record = SessionRecord.new(username, "A", 1, multi=True)
    connection.session.marks = {}
    connection.session.room_version = version
    return connection


async def _check_cost(nodes, users, stale):
    """Store calls of one check of a node with C{users} users, C{stale}
    of which have an old version."""
    sessions = LocalSessions()
    for i in range(users):
        name = f"cost{i}"
        sessions.add(name, _session(nodes, name, "old" if i < stale else ""), keep=lambda other: True)
    redis, mongo = CountingRedis(nodes.redis.store), CountingMongo(nodes.mongo)
    state = RoomState(redis, mongo, sessions, nodes.a.feed, nodes.clock)
    await state.check()
    return len(redis.calls) + mongo.reads


@pytest_twisted.ensureDeferred
async def test_a_check_costs_calls_in_proportion_to_the_users(nodes):
    """cost(2n) <= 2 cost(n): a check reads the versions of C{n} users in
    C{n / CHECK_BATCH} calls, and refreshes the stale ones C{REFRESH_BATCH}
    at a time (two version reads and one MongoDB read each). Hypothesis
    searches in a thread; each example runs on the reactor."""
    def cost(users, stale):
        return threads.blockingCallFromThread(reactor, lambda: defer.ensureDeferred(_check_cost(nodes, users, stale)))

    @settings(max_examples=8, deadline=None, derandomize=True, database=None)
    @given(users=st.integers(min_value=1, max_value=1200), stale_share=st.floats(min_value=0, max_value=1))
    def bounded(users, stale_share):
        stale = int(users * stale_share)
        one, two = cost(users, stale), cost(users * 2, stale * 2)
        assert two <= 2 * one
        ceil = lambda n, k: -(-n // k)  # noqa: E731
        assert one == ceil(users, roomstate.CHECK_BATCH) + 3 * ceil(stale, roomstate.REFRESH_BATCH)

    await threads.deferToThread(bounded)


@pytest_twisted.ensureDeferred
async def test_a_ban_unknown_to_the_other_node_ends_the_delivery_at_its_check(nodes):
    a, b = nodes.a, nodes.b
    owner = await logged_in(a, "user3", ["ack"])
    await request(a.handlers, owner, "createRoom", roomName="club")
    phone = await logged_in(b, "user1")
    witness = await logged_in(b, "user2")
    for client in (phone, witness):
        await request(b.handlers, client, "joinRoom", roomName="club")
    assert await delivered(nodes, a, owner, phone, "club", "before")
    await request(a.handlers, owner, "ban", roomName="club", username="user1")
    assert await delivered(nodes, a, owner, phone, "club", "B not told")  # B heard nothing

    await b.room_state.check()
    assert phone not in b.feed.members_of("club") and "club" not in phone.session.known_rooms()
    witness.take()
    assert not await delivered(nodes, a, owner, phone, "club", "after B's check")
    assert "after B's check" in texts(witness, "club")
