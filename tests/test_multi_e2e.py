"""Several sessions of one user (the login feature ``multi``) on a real
three-node cluster, asserted from what the clients see."""
import time

import pytest

MULTI = {"features": ["ack", "multi"]}


@pytest.fixture
def cluster(three_nodes):
    return three_nodes


def messages(chats):
    return [(c["data"]["from"], c["data"]["message"]) for c in chats]


def test_two_sessions_on_two_nodes_both_receive_and_see_their_own(cluster):
    laptop = cluster.client("node1")
    laptop.login("user1", **MULTI)
    between = int(time.time() * 1000)
    phone = cluster.client("node2")
    phone.login("user1", **MULTI)
    bob = cluster.client("node3", "user2")

    info = bob.request("userInfo", {"username": "user1"})["data"]
    assert info["nodes"] == ["node1", "node2"], info
    assert info["nodeId"] in ("node1", "node2")
    assert info["loginTime"] <= between, info

    # a direct message reaches both sessions
    bob.send("chat", {"to": "user1", "message": "hello you two"})
    for session in (laptop, phone):
        assert messages(session.chats(count=1)) == [("user2", "hello you two")]

    # a room message too; joining from one session applies to the user
    assert laptop.request("joinRoom", {"roomName": "room1"})["action"] == "joinRoom"
    assert bob.request("joinRoom", {"roomName": "room1"})["action"] == "joinRoom"
    for session in (laptop, phone, bob):
        session.chats(timeout=0.3)  # the room's history
    bob.send("chat", {"roomName": "room1", "isGroup": True, "message": "to the room"})
    for session in (laptop, phone, bob):
        assert messages(session.chats(count=1)) == [("user2", "to the room")]
    phone.send("chat", {"roomName": "room1", "isGroup": True, "message": "from the phone, to the room"})
    for session in (laptop, phone, bob):
        assert messages(session.chats(count=1)) == [("user1", "from the phone, to the room")]

    # what user1 sends from the phone shows on the laptop, marked as theirs
    request_id = phone.send("chat", {"to": "user2", "message": "sent from the phone"})
    assert phone.answer(request_id)["action"] == "ack"
    assert messages(bob.chats(count=1)) == [("user1", "sent from the phone")]
    [own] = laptop.chats(count=1)
    assert (own["data"]["from"], own["data"]["to"], own["data"]["message"]) == (
        "user1", "user2", "sent from the phone")
    assert phone.chats(timeout=0.5) == []  # it has its ack
    for session in (laptop, phone):
        assert session.closed is None


def test_a_login_without_multi_takes_both_sessions_over(cluster):
    laptop = cluster.client("node1")
    laptop.login("user3", **MULTI)
    phone = cluster.client("node2")
    phone.login("user3", **MULTI)
    old = cluster.client("node3", "user3")
    for session in (laptop, phone):
        session.error(409)
        assert session.wait_closed(5)[0] == 4009
    bob = cluster.client("node1", "user4")
    info = bob.request("userInfo", {"username": "user3"})["data"]
    assert info["nodes"] == ["node3"] and info["nodeId"] == "node3"
    bob.send("chat", {"to": "user3", "message": "only the last"})
    assert messages(old.chats(count=1)) == [("user4", "only the last")]
