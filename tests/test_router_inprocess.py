"""The router's failover decisions in-process (L{chatnet.cluster.router}):
a fake clock, the real session directory on Redis, and stand-in peer links
to the other nodes (tests/inprocess.py), so that a node can die on cue.

* L{RoomRouter}: with no leader, a room call waits for one and goes to it;
  at its deadline it is a 503; a node that is no longer the leader sends the
  call on to the next one.
* L{Router}: a direct message that cannot reach the recipient's node is
  sent to where the directory says they are now; it gives up at the
  deadline."""
import orjson
import pytest
import pytest_twisted
from twisted.internet import defer
from twisted.internet.task import Clock

from chatnet.cluster.router import RoomRouter, Router
from chatnet.cluster.view import ClusterView
from chatnet.errors import ProtocolError
from chatnet.messages import ChatMessage, new_message_id
from chatnet.protocols import amp_commands as cmd
from chatnet.service.delivery import LocalDelivery, RecentDeliveries
from chatnet.sessions import LocalSessions, SessionDirectory, SessionRecord
from tests.inprocess import FakePeers, run_until

DEADLINE = 20.0
RETRY = 0.25
ROOMS = [{"roomName": "world", "members": 3}]


def room_router(leader=None):
    clock = Clock()
    view = ClusterView("A", clock)
    view.changed({"A": {}, "B": {}, "C": {}}, leader)
    peers = FakePeers({"RoomList": lambda node: {"rooms": orjson.dumps(ROOMS)},
                       "RoomJoin": lambda node, roomName, username: {"members": 7}})
    rooms = RoomRouter(view, peers, leadership=None, clock=clock, deadline=DEADLINE, retry_interval=RETRY)
    return clock, view, peers, rooms


def test_room_call_without_leader_waits_and_goes_to_the_new_one():
    clock, view, peers, rooms = room_router(leader=None)
    d = defer.ensureDeferred(rooms.list_rooms())
    for _ in range(8):
        clock.advance(RETRY)
    assert not d.called and peers.calls == []
    # ZooKeeper elects B: the waiting call goes there at once
    view.changed(dict(view.members), "B")
    assert d.called
    assert d.result == ROOMS
    assert [(node, name) for node, name, _ in peers.calls] == [("B", "RoomList")]


def test_room_call_without_leader_is_503_at_its_deadline():
    clock, view, peers, rooms = room_router(leader=None)
    d = defer.ensureDeferred(rooms.join("room1", "user1"))
    failures = []
    d.addErrback(failures.append)
    clock.pump([RETRY] * int(DEADLINE / RETRY - 1))
    assert not d.called
    clock.pump([RETRY] * 2)
    assert len(failures) == 1
    error = failures[0].value
    assert isinstance(error, ProtocolError) and error.code == 503
    assert peers.calls == []


def test_room_call_follows_failover_of_the_leader():
    clock, view, peers, rooms = room_router(leader="B")
    peers.down.add("B")
    d = defer.ensureDeferred(rooms.join("room1", "user1"))
    clock.advance(RETRY)
    assert not d.called
    # B's own view is behind: it answers NotLeader until C takes over
    peers.down.clear()
    peers.answers["RoomJoin"] = cmd.NotLeader("not the leader")
    clock.advance(RETRY)
    assert not d.called
    view.changed({"A": {}, "C": {}}, "C")
    peers.answers["RoomJoin"] = lambda node, roomName, username: {"members": 7}
    clock.advance(RETRY)
    assert d.result == 7
    assert [node for node, _, _ in peers.calls][-1] == "C"
    assert {node for node, _, _ in peers.calls} == {"B", "C"}


# -- direct messages ------------------------------------------------------------


@pytest.fixture
def cluster(redis):
    clock = Clock()
    view = ClusterView("A", clock)
    view.changed({"A": {}, "B": {}, "C": {}}, "A")
    directory = SessionDirectory(redis, view.live_nodes)
    peers = FakePeers({"DeliverMany": lambda node, msgIds, datas, usernames: {"missing": []}})
    local = LocalDelivery(LocalSessions(), RecentDeliveries(), lambda payload: payload, lambda *args: None)
    router = Router(view, peers, directory, local, clock, deadline=DEADLINE, retry_interval=RETRY)
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
    d = defer.ensureDeferred(router.direct(message, b"{}", [on_b]))
    await run_until(clock, lambda: d.called, "the direct message delivered")
    assert d.result is True
    calls = [(node, name, arguments["usernames"]) for node, name, arguments in peers.calls]
    assert calls == [("B", "DeliverMany", ["user2"]), ("C", "DeliverMany", ["user2"])]
    assert peers.calls[1][2]["msgIds"] == [message.msgId]
    assert clock.seconds() < DEADLINE


@pytest_twisted.ensureDeferred
async def test_direct_message_gives_up_at_the_deadline(cluster):
    clock, view, directory, peers, router = cluster
    on_b = await login(directory, "user2", "B")
    peers.down.add("B")  # and the directory goes on saying user2 is there
    d = defer.ensureDeferred(router.direct(direct_message("user2"), b"{}", [on_b]))
    await run_until(clock, lambda: d.called, "the direct message given up")
    assert d.result is False
    assert DEADLINE <= clock.seconds() < DEADLINE + 2 * RETRY
    tries = [node for node, _, _ in peers.calls]
    assert set(tries) == {"B"} and len(tries) == int(DEADLINE / RETRY) + 1


@pytest_twisted.ensureDeferred
async def test_direct_message_to_someone_gone_offline_stops_at_once(cluster):
    clock, view, directory, peers, router = cluster
    on_b = await login(directory, "user2", "B")
    peers.down.add("B")
    await directory.unpublish(on_b)
    d = defer.ensureDeferred(router.direct(direct_message("user2"), b"{}", [on_b]))
    await run_until(clock, lambda: d.called, "the direct message given up")
    assert d.result is False
    assert clock.seconds() == RETRY
