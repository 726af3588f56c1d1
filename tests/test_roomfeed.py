"""A node's room feed (chatnet/service/roomfeed.py) on the real Redis and
MongoDB, with a fake clock: messages accepted by the real accept script
arrive in any order, twice, or not at all, and every member gets each of
its rooms' messages once and in seq order; the room's node set in Redis
names the node exactly while it has members."""
import uuid

import pytest
import pytest_twisted
from twisted.internet import defer, reactor
from twisted.internet.task import Clock

from chatnet.domain.messages import ChatMessage, new_message_id
from chatnet.service.accept import Acceptor
from chatnet.service.history import History
from chatnet.service.online import SessionRecord
from chatnet.service.popular import PopularWords
from chatnet.service.roomfeed import GAP_WAIT, UNTRACK_AFTER, RoomFeed
from chatnet.service.sequences import Sequences
from chatnet.service.session import SessionService
from chatnet.stores.mongo import MongoStore
from chatnet.stores.redis import node_rooms_key, room_nodes_key
from tests.inprocess import FakeConnection, run_until

ROOM = "room1"


@pytest.fixture
def mongo(mongo_server):
    store = MongoStore(f"mongodb://127.0.0.1:{mongo_server.port}/feed{uuid.uuid4().hex[:8]}").connect()
    yield store
    pytest_twisted.blockon(store.disconnect())


class Parts:
    def __init__(self, redis, mongo):
        self.clock = Clock()
        self.clock.advance(1_700_000_000)
        self.redis = redis
        history = History(redis, mongo)
        sequences = Sequences(redis, mongo)
        self.acceptor = Acceptor(redis, sequences, history, PopularWords(redis, self.clock), "A", reactor)
        self.feed = RoomFeed("A", redis, mongo, history, sequences, lambda payload: payload,
                             lambda *args: None, self.clock)
        self.service = SessionService(None, None, None, None, None, self.clock, self.feed)

    def member(self, name):
        connection = FakeConnection(self.service)
        connection.session.logged_in(SessionRecord.new(name, "A", 1), frozenset())
        return connection

    async def accept(self, n, room=ROOM):
        """C{n} messages accepted (elsewhere): [(seq, msg id, data)]."""
        accepted = []
        for i in range(n):
            message = ChatMessage(new_message_id(), "someone", f"m{i}", 1, roomName=room)
            stamp = await self.acceptor.accept(message, [])
            accepted.append((stamp.seq, message.msgId, stamp.data))
        return accepted


@pytest.fixture
def parts(redis, mongo):
    return Parts(redis, mongo)


def seqs(connection):
    return [c["seq"] for c in connection.chats()]


@pytest_twisted.ensureDeferred
async def test_messages_are_delivered_in_seq_order_once(parts):
    ann, bob = parts.member("ann"), parts.member("bob")
    await parts.accept(2)  # before they were members: not theirs
    await parts.feed.add([ROOM], [ann, bob])
    assert await parts.redis.call("smembers", room_nodes_key(ROOM)) == {"A"}
    m = await parts.accept(4)
    for seq, msg_id, data in [m[1], m[0], m[3], m[0], m[2], m[1]]:
        parts.feed.deliver(ROOM, seq, msg_id, data)
    assert seqs(ann) == seqs(bob) == [3, 4, 5, 6]


@pytest_twisted.ensureDeferred
async def test_a_message_that_never_comes_is_read_from_the_history(parts):
    ann = parts.member("ann")
    await parts.feed.add([ROOM], [ann])
    m = await parts.accept(3)
    # the node that accepted seq 1 died before sending it
    parts.feed.deliver(ROOM, *m[1])
    parts.feed.deliver(ROOM, *m[2])
    assert seqs(ann) == []
    parts.clock.advance(GAP_WAIT)
    await run_until(None, lambda: len(ann.chats()) == 3, "the gap filled")
    assert seqs(ann) == [1, 2, 3]
    assert [c["msgId"] for c in ann.chats()] == [msg_id for _, msg_id, _ in m]


@pytest_twisted.ensureDeferred
async def test_a_room_whose_counter_stays_ahead_is_caught_up(parts):
    ann = parts.member("ann")
    await parts.feed.add([ROOM], [ann])
    await parts.accept(2)  # sent by a node that died: nothing arrives
    await parts.feed.check()
    assert seqs(ann) == []  # (may be in flight)
    await parts.feed.check()
    await run_until(None, lambda: len(ann.chats()) == 2, "caught up at the second check")
    assert seqs(ann) == [1, 2]
    # at once, as after a node left
    await parts.accept(1)
    await parts.feed.check(at_once=True)
    await run_until(None, lambda: len(ann.chats()) == 3, "caught up at once")
    assert seqs(ann) == [1, 2, 3]


@pytest_twisted.ensureDeferred
async def test_who_joins_later_gets_only_later_messages(parts):
    ann, bob = parts.member("ann"), parts.member("bob")
    await parts.feed.add([ROOM], [ann])
    m = await parts.accept(2)
    parts.feed.deliver(ROOM, *m[0])
    # bob joins while seq 2 is on its way, having seen the history up to 2
    await parts.feed.add([ROOM], [bob], marks={ROOM: 2})
    parts.feed.deliver(ROOM, *m[1])
    m3 = await parts.accept(1)
    parts.feed.deliver(ROOM, *m3[0])
    assert seqs(ann) == [1, 2, 3]
    assert seqs(bob) == [3]


@pytest_twisted.ensureDeferred
async def test_the_node_leaves_the_room_set_after_its_last_member(parts):
    ann = parts.member("ann")
    await parts.feed.add([ROOM, "world"], [ann])
    assert await parts.redis.call("smembers", node_rooms_key("A")) == {ROOM, "world"}
    parts.feed.remove(ROOM, [ann])
    parts.clock.advance(UNTRACK_AFTER - 1)
    # back before the node left the set: nothing changes
    await parts.feed.add([ROOM], [ann])
    parts.clock.advance(UNTRACK_AFTER)
    assert await parts.redis.call("smembers", room_nodes_key(ROOM)) == {"A"}
    parts.feed.session_ended(ann)
    parts.clock.advance(UNTRACK_AFTER)
    await run_until(None, lambda: not parts.feed.rooms, "the rooms forgotten")
    assert await parts.redis.call("smembers", room_nodes_key(ROOM)) == set()
    assert await parts.redis.call("smembers", node_rooms_key("A")) == set()
    # a message arriving now reaches nobody and breaks nothing
    m = await parts.accept(1)
    parts.feed.deliver(ROOM, *m[0])
    # a new member counts from the room's seq then
    bob = parts.member("bob")
    await parts.feed.add([ROOM], [bob])
    m = await parts.accept(1)
    parts.feed.deliver(ROOM, *m[0])
    assert seqs(bob) == [m[0][0]]


@pytest_twisted.ensureDeferred
async def test_redis_lost_the_room_sets(parts):
    """Redis restarted empty (or the leader swept the node as stale): the
    node adds itself again and catches up what it missed meanwhile."""
    ann = parts.member("ann")
    await parts.feed.add([ROOM], [ann])
    m = await parts.accept(1)
    parts.feed.deliver(ROOM, *m[0])
    await parts.redis.call("delete", room_nodes_key(ROOM))
    missed = await parts.accept(2)  # sent to nobody: the set was empty
    assert all(len(nodes) == 0 for nodes in [await parts.redis.call("smembers", room_nodes_key(ROOM))])
    await parts.feed.track_again()
    assert await parts.redis.call("smembers", room_nodes_key(ROOM)) == {"A"}
    await run_until(None, lambda: len(ann.chats()) == 3, "caught up")
    assert seqs(ann) == [1] + [seq for seq, _, _ in missed]


@pytest_twisted.ensureDeferred
async def test_the_accept_script_names_the_room_nodes(parts):
    ann = parts.member("ann")
    await parts.feed.add([ROOM], [ann])
    message = ChatMessage(new_message_id(), "ann", "hi", 1, roomName=ROOM)
    assert list((await parts.acceptor.accept(message, [])).nodes) == ["A"]
    direct = ChatMessage(new_message_id(), "ann", "hi", 1, to="bob")
    assert list((await parts.acceptor.accept(direct, [])).nodes) == []



@pytest_twisted.ensureDeferred
async def test_members_added_at_once_leave_no_room_locked(parts):
    """Two logins at the same time on one node: the second finds the room
    tracked by the first once it gets its turn."""
    ann, bob = parts.member("ann"), parts.member("bob")
    await defer.gatherResults([defer.ensureDeferred(parts.feed.add([ROOM, "world"], [ann])),
                               defer.ensureDeferred(parts.feed.add(["world"], [bob]))])
    again = defer.ensureDeferred(parts.feed.track_again())
    await run_until(None, lambda: again.called, "adding the node again to its rooms")
    m = await parts.accept(1, room="world")
    parts.feed.deliver("world", *m[0])
    assert seqs(ann) == seqs(bob) == [m[0][0]]


@pytest_twisted.ensureDeferred
async def test_a_notice_is_a_structured_value_its_action_decides(parts):
    """The feed is given a notice's action and data, not its bytes: a frame
    of another action that carries the words of a roomNotice in its text is
    no roomNotice, and a roomNotice about a member keeps their mute."""
    ann, bob = parts.member("ann"), parts.member("bob")
    await parts.feed.add([ROOM], [ann, bob])
    parts.feed.notice(ROOM, "typing", {"roomName": ROOM, "username": "ann", "action": "mute",
                                       "text": '"action":"roomNotice"', "until": 2**40})
    assert ann.session.mutes is None or ROOM not in ann.session.mutes
    parts.feed.notice(ROOM, "roomNotice", {"roomName": ROOM, "action": "mute", "username": "ann", "by": "bob",
                                           "until": 2**40})
    assert ann.session.mutes[ROOM] == 2**40
    assert [f["action"] for f in ann.frames] == [f["action"] for f in bob.frames] == ["typing", "roomNotice"]
