"""The leader fans room messages out in seq order (fake Clock for the hold)."""
from twisted.internet import defer
from twisted.internet.task import Clock

from chatnet.protocols.constants import WORLD
from chatnet.rooms import HOLD, RoomHost
from chatnet.sessions import SessionDirectory, SessionRecord


def host():
    directory = SessionDirectory(redis=None, members=lambda: {"n1": {}})
    directory.apply(SessionRecord("alice", "n1", "s1", 0))
    sent = []

    def deliver(node, msg_id, data, names, everyone):
        sent.append(msg_id)
        return defer.succeed((1, []))

    clock = Clock()
    rooms = RoomHost(mongo=None, directory=directory, deliver=deliver, live_nodes=lambda: {"n1": {}}, clock=clock)
    rooms.ready.callback(None)
    return rooms, sent, clock


def post(rooms, seq):
    return defer.ensureDeferred(rooms.post(WORLD, f"m{seq}", seq, b"{}"))


def test_in_order_messages_go_straight_out():
    rooms, sent, _ = host()
    for seq in (1, 2, 3):
        post(rooms, seq)
    assert sent == ["m1", "m2", "m3"]


def test_early_message_waits_for_its_predecessor():
    rooms, sent, clock = host()
    post(rooms, 1)
    later = post(rooms, 3)
    assert sent == ["m1"] and not later.called
    post(rooms, 2)
    assert sent == ["m1", "m2", "m3"]
    assert later.called


def test_missing_predecessor_is_given_up_after_the_hold():
    rooms, sent, clock = host()
    post(rooms, 1)
    post(rooms, 3)
    post(rooms, 4)
    clock.advance(HOLD)
    assert sent == ["m1", "m3", "m4"]
    post(rooms, 2)  # arrives after all: still delivered
    assert sent == ["m1", "m3", "m4", "m2"]
