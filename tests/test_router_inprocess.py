"""The router's failover decisions in-process (L{chatnet.cluster.router}):
a fake clock, the real session directory on Redis, and stand-in peer links
to the other nodes (tests/inprocess.py), so that a node can die on cue.

* L{RoomRouter}: a room message goes to this node's feed and to the other
  nodes of the room's node set that are in the cluster: to an idle node at
  the end of the reactor turn, to a node whose call waits for its answer
  with what gathers meanwhile; a call that fails is tried again while its node is
  in the cluster, not after it left.
* L{Router}: a direct message that cannot reach the recipient's node is
  sent to where the directory says they are now; it gives up at the
  deadline, or when they had no session on record for the grace."""
import pytest
import pytest_twisted
from twisted.internet import defer
from twisted.internet.task import Clock

from chatnet.cluster.router import ABSENT_GRACE, BATCH_WINDOW, RoomRouter, Router
from chatnet.cluster.view import ClusterView
from chatnet.domain.messages import ChatMessage, new_message_id
from chatnet.service.delivery import LocalDelivery, RecentDeliveries
from chatnet.service.online import LocalSessions, SessionDirectory, SessionRecord
from tests.inprocess import FakePeers, run_until

DEADLINE = 20.0
RETRY = 0.25


class Feed:
    """This node's room feed: keeps what it is given."""

    def __init__(self):
        self.delivered = []

    def deliver(self, room, seq, msg_id, data):
        self.delivered.append((room, seq))


def room_router(batch_window=BATCH_WINDOW, peers=None):
    clock = Clock()
    view = ClusterView("A", clock)
    view.changed({"A": {}, "B": {}, "C": {}}, "A")
    peers = peers or FakePeers({"RoomDeliver": lambda node, **arguments: {}})
    feed = Feed()
    rooms = RoomRouter(view, peers, rooms=None, feed=feed, sessions=None, directory=None, redis=None, clock=clock,
                       deadline=DEADLINE, retry_interval=RETRY, batch_window=batch_window)
    return clock, view, peers, feed, rooms


class HeldPeers(FakePeers):
    """Peer links whose calls wait for the test to answer them (C{answer})."""

    def __init__(self):
        super().__init__()
        self.waiting = []

    async def call(self, node, command, **arguments):
        self.calls.append((node, command.__name__, arguments))
        answered = defer.Deferred()
        self.waiting.append((node, answered))
        await answered
        return {}

    def answer(self, node):
        [d] = [d for n, d in self.waiting if n == node and not d.called][:1]
        d.callback(None)


def room_message(seq):
    return ChatMessage(new_message_id(), "user1", "hi", 1, roomName="room1", seq=seq)


def test_room_messages_go_to_an_idle_node_at_the_end_of_the_turn_and_gather_while_a_call_waits():
    clock, view, peers, feed, rooms = room_router(peers=HeldPeers())

    def sent():
        return [(node, arguments["seqs"]) for node, _, arguments in peers.calls]

    first = defer.ensureDeferred(rooms.room(room_message(1), b"{}", ["A", "B", "gone"]))
    assert feed.delivered == [("room1", 1)] and sent() == []
    clock.advance(0)  # the end of the turn: the idle node at once (a node not in the cluster is not called)
    assert sent() == [("B", [1])]
    second = defer.ensureDeferred(rooms.room(room_message(2), b"{}", ["A", "B", "C"]))
    third = defer.ensureDeferred(rooms.room(room_message(3), b"{}", ["A", "B", "C"]))
    clock.advance(0)  # C is idle: its two in one call; B's call is not answered: they wait
    assert sent() == [("B", [1]), ("C", [2, 3])]
    peers.answer("B")  # what waited goes as one call when a call is answered
    assert first.called and sent()[-1] == ("B", [2, 3])
    fourth = defer.ensureDeferred(rooms.room(room_message(4), b"{}", ["A", "B"]))
    clock.advance(BATCH_WINDOW)  # or after the window at the most
    assert sent()[-1] == ("B", [4])
    for node in ("C", "B", "B"):
        peers.answer(node)
    assert second.called and third.called and fourth.called
    assert feed.delivered == [("room1", 1), ("room1", 2), ("room1", 3), ("room1", 4)]


def test_failed_room_call_is_retried_while_the_node_is_in_the_cluster():
    clock, view, peers, feed, rooms = room_router(batch_window=0)
    peers.down.add("B")
    d = defer.ensureDeferred(rooms.room(room_message(1), b"{}", ["B", "C"]))
    clock.advance(0)
    clock.pump([0] + [RETRY, 0] * 3)
    assert not d.called
    assert [node for node, _, _ in peers.calls].count("B") == 4
    assert [node for node, _, _ in peers.calls].count("C") == 1
    # B left the cluster: no more tries (its members are gone; its
    # successor catches up from the history)
    view.changed({"A": {}, "C": {}}, "A")
    clock.pump([RETRY, 0])
    assert d.called
    assert [node for node, _, _ in peers.calls].count("B") == 4


# -- direct messages ------------------------------------------------------------


@pytest.fixture
def cluster(redis):
    clock = Clock()
    view = ClusterView("A", clock)
    view.changed({"A": {}, "B": {}, "C": {}}, "A")
    directory = SessionDirectory(redis, view.live_nodes)
    peers = FakePeers({"DeliverMany": lambda node, msgIds, datas, usernames: {"missing": []}})
    local = LocalDelivery(LocalSessions(), RecentDeliveries(), lambda payload: payload, lambda *args: None)
    router = Router(view, peers, directory, local, clock, deadline=DEADLINE, retry_interval=RETRY, batch_window=0)
    return clock, view, directory, peers, router


def direct_message(to):
    return ChatMessage(new_message_id(), "user1", "hi", 1, to=to, seq=1)


async def login(directory, username, node):
    record = SessionRecord.new(username, node, 1)
    await directory.publish(record)
    return record


@pytest_twisted.ensureDeferred
async def test_direct_message_follows_the_recipient_to_their_new_node(cluster):
    clock, view, directory, peers, router = cluster
    on_b = await login(directory, "user2", "B")
    # B dies; user2 logs in again on C before anyone here hears of it
    peers.down.add("B")
    await login(directory, "user2", "C")
    message = direct_message("user2")
    result = []
    router.direct(message, b"{}", [on_b]).addBoth(result.append)
    await run_until(clock, lambda: result, "the direct message delivered")
    assert result == [True]
    calls = [(node, name, arguments["usernames"]) for node, name, arguments in peers.calls]
    assert calls == [("B", "DeliverMany", ["user2"]), ("C", "DeliverMany", ["user2"])]
    assert peers.calls[1][2]["msgIds"] == [message.msgId]
    assert clock.seconds() < DEADLINE


@pytest_twisted.ensureDeferred
async def test_direct_message_gives_up_at_the_deadline(cluster):
    clock, view, directory, peers, router = cluster
    on_b = await login(directory, "user2", "B")
    peers.down.add("B")  # and the directory goes on saying user2 is there
    result = []
    router.direct(direct_message("user2"), b"{}", [on_b]).addBoth(result.append)
    await run_until(clock, lambda: result, "the direct message given up")
    assert result == [False]
    assert DEADLINE <= clock.seconds() < DEADLINE + 2 * RETRY
    tries = [node for node, _, _ in peers.calls]
    assert set(tries) == {"B"} and len(tries) == int(DEADLINE / RETRY) + 1


@pytest_twisted.ensureDeferred
async def test_direct_message_to_someone_gone_offline_stops_after_the_grace(cluster):
    clock, view, directory, peers, router = cluster
    on_b = await login(directory, "user2", "B")
    peers.down.add("B")
    await directory.unpublish(on_b)
    result = []
    router.direct(direct_message("user2"), b"{}", [on_b]).addBoth(result.append)
    await run_until(clock, lambda: result, "the direct message given up")
    assert result == [False]
    assert ABSENT_GRACE <= clock.seconds() <= ABSENT_GRACE + 2 * RETRY < DEADLINE
    assert [node for node, _, _ in peers.calls] == ["B"]  # nobody else was called


@pytest_twisted.ensureDeferred
async def test_direct_message_reaches_a_session_whose_record_comes_back(cluster):
    """The leader removed user2's record (their node was out of ZooKeeper
    for a while), and the node publishes it again at its next heartbeat:
    the message, whose first try failed, gets there then."""
    clock, view, directory, peers, router = cluster
    on_b = await login(directory, "user2", "B")
    peers.down.add("B")  # the first try fails
    assert await directory.remove_stale(["A", "C"]) == 1  # B's sessions swept
    message = direct_message("user2")
    result = []
    router.direct(message, b"{}", [on_b]).addBoth(result.append)
    await run_until(clock, lambda: clock.seconds() >= ABSENT_GRACE / 2, "half the grace")
    assert result == []
    peers.down.discard("B")
    assert await directory.restore(on_b)
    await run_until(clock, lambda: result, "the direct message delivered")
    assert result == [True]
    assert [node for node, _, _ in peers.calls] == ["B", "B"]
    assert peers.calls[-1][2]["msgIds"] == [message.msgId]
