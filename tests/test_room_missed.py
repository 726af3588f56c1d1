"""Room messages fanned out right after a membership change, while the leader
did not know some online members, reach them once they are announced again
(fake Clock); and the history entries a departed node may not have stored
become the right MongoDB documents."""
from twisted.internet import defer
from twisted.internet.task import Clock

from chatnet.rescue import document
from chatnet.protocols.constants import WORLD
from chatnet.rooms import MISSED_FOR, SETTLE, RoomHost
from chatnet.sessions import SessionDirectory, SessionRecord

NODES = {"n1": {}, "n2": {}}


def host():
    directory = SessionDirectory(redis=None, members=lambda: NODES)
    directory.apply(SessionRecord("alice", "n1", "s1", 0))
    sent = []

    def deliver(node, msg_id, data, names, everyone):
        sent.append((node, msg_id, list(names), everyone))
        return defer.succeed((1, []))

    clock = Clock()
    clock.advance(100)
    rooms = RoomHost(mongo=None, directory=directory, deliver=deliver, live_nodes=lambda: {"n1": {}}, clock=clock)
    rooms.rooms = {"room1": {"alice", "bob"}}
    rooms.ready.callback(None)
    return rooms, directory, sent, clock


def test_member_announced_after_a_change_gets_what_it_missed():
    rooms, directory, sent, clock = host()
    rooms.unsettled()
    defer.ensureDeferred(rooms.post("room1", "m1", 1, b"{}"))
    defer.ensureDeferred(rooms.post(WORLD, "w1", 1, b"{}"))
    assert sent == [("n1", "m1", ["alice"], False), ("n1", "w1", [], True)]
    clock.advance(1)
    bob = SessionRecord("bob", "n2", "s2", 50_000)  # logged in before the messages
    directory.apply(bob)
    rooms.session_known(bob)
    assert sent[2:] == [("n2", "m1", ["bob"], False), ("n2", "w1", ["bob"], False)]
    rooms.session_known(bob)  # once only
    assert len(sent) == 4


def test_later_logins_and_settled_clusters_get_nothing_old():
    rooms, directory, sent, clock = host()
    rooms.unsettled()
    defer.ensureDeferred(rooms.post("room1", "m1", 1, b"{}"))
    late = SessionRecord("bob", "n2", "s2", int(clock.seconds() * 1000) + 1)
    rooms.session_known(late)
    assert len(sent) == 1
    clock.advance(MISSED_FOR + 1)
    rooms.session_known(SessionRecord("bob", "n2", "s3", 0))
    assert len(sent) == 1
    clock.advance(SETTLE)
    defer.ensureDeferred(rooms.post("room1", "m2", 2, b"{}"))
    rooms.session_known(SessionRecord("bob", "n2", "s4", 0))
    assert [s[1] for s in sent] == ["m1", "m2"]


def test_rescued_documents():
    data = {"from": "bob", "roomName": "", "message": "hi", "ts": 5, "format": "text",
            "msgId": "6b0a8e348ebb59956b0ad9e2", "seq": 3}
    doc = document("dm:alice\nbob", data)
    assert (doc["channel"], doc["from"], doc["to"], doc["seq"]) == ("dm:alice\nbob", "bob", "alice", 3)
    assert str(doc["_id"]) == data["msgId"]
    room = document("room:room1", dict(data, roomName="room1"))
    assert (room["channel"], room["to"], room["roomName"]) == ("room:room1", "", "room1")


def test_who_joined_after_the_message_does_not_get_it():
    """The members at the time of the message are its recipients: a user who
    joins the room later and is announced then gets only the join's history."""
    rooms, directory, sent, clock = host()
    rooms.unsettled()
    defer.ensureDeferred(rooms.post("room1", "m1", 1, b"{}"))
    rooms.rooms["room1"].add("carol")  # joins after the message
    clock.advance(1)
    carol = SessionRecord("carol", "n2", "s3", 50_000)
    directory.apply(carol)
    rooms.session_known(carol)
    assert [s for s in sent if "carol" in s[2]] == []
