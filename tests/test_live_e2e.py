"""The ``live`` extension on a real three-node cluster (docs/protocol.md,
"`live`: history, edits, typing, read state, invitations"), asserted from
what the clients see: scroll-back, edits and deletions, typing, read
markers and invitations across nodes and across a user's ``multi``
sessions."""
import time

import pytest

LIVE = {"features": ["ack", "multi", "live", "resume"]}


@pytest.fixture
def cluster(three_nodes):
    return three_nodes


def live_client(cluster, node, username):
    client = cluster.client(node)
    client.login(username, **LIVE)
    return client


def frames(client, action, timeout=0.6):
    """The frames of C{action} that arrived (within C{timeout} seconds)."""
    got = [f for f in client.quiet(timeout) if f.get("action") == action]
    return got


def send_many(client, room, count):
    """Post C{count} messages to C{room}; their acks (in order)."""
    ids = [client.send("chat", {"roomName": room, "isGroup": True, "message": f"m{i}"}) for i in range(count)]
    return [client.answer(i, timeout=30) for i in ids]


def page_all(client, where, limit=100):
    """Every message of a room or conversation, paging back from the newest."""
    seen, before, pages = [], None, 0
    while True:
        data = dict(where, limit=limit)
        if before is not None:
            data["before"] = before
        answer = client.request("history", data, timeout=15)
        assert answer["action"] == "history", answer
        page = answer["data"]["messages"]
        pages += 1
        assert [m["seq"] for m in page] == sorted(m["seq"] for m in page)
        seen = page + seen
        if not answer["data"]["more"]:
            return seen, pages
        before = page[0]["seq"]


def test_history_pages_back_through_more_than_501_messages(cluster):
    alice = live_client(cluster, "node1", "user1")
    assert alice.request("joinRoom", {"roomName": "room2"})["action"] == "joinRoom"
    acks = send_many(alice, "room2", 520)
    assert [a["action"] for a in acks] == ["ack"] * 520
    bob = live_client(cluster, "node3", "user2")
    assert bob.request("joinRoom", {"roomName": "room2"})["action"] == "joinRoom"
    # pages of 100 from another node: Redis holds the last 501, MongoDB all
    seen, pages = page_all(bob, {"roomName": "room2"}, limit=100)
    assert [m["seq"] for m in seen] == list(range(1, 521))
    assert [m["message"] for m in seen] == [f"m{i}" for i in range(520)]
    assert pages == 6
    # a small page in the middle, and past the start
    middle = bob.request("history", {"roomName": "room2", "before": 11, "limit": 3})["data"]
    assert [m["seq"] for m in middle["messages"]] == [8, 9, 10] and middle["more"] is True
    start = bob.request("history", {"roomName": "room2", "before": 2})["data"]
    assert [m["seq"] for m in start["messages"]] == [1] and start["more"] is False
    # a conversation, with "to"
    for i in range(5):
        alice.send("chat", {"to": "user2", "message": f"d{i}"})
    bob.chats(count=5)
    convo = bob.request("history", {"conversation": "user1", "limit": 3})["data"]
    assert [(m["from"], m["to"], m["message"]) for m in convo["messages"]] == [
        ("user1", "user2", "d2"), ("user1", "user2", "d3"), ("user1", "user2", "d4")]
    assert convo["more"] is True and convo["conversation"] == "user1"
    # members only
    carol = live_client(cluster, "node2", "user3")
    refused = carol.request("history", {"roomName": "room2"})
    assert refused["action"] == "error" and refused["data"]["code"] == 403


def test_edit_and_delete_reach_every_session_once_and_show_in_history_and_resume(cluster):
    laptop = live_client(cluster, "node1", "user4")
    phone = live_client(cluster, "node2", "user4")
    bob = live_client(cluster, "node3", "user5")
    old = cluster.client("node3", "user6")  # an old client: no live
    made = laptop.request("createRoom", {"roomName": "club"})
    assert made["action"] == "createRoom", made
    for client in (bob, old):
        assert client.request("joinRoom", {"roomName": "club"})["action"] == "joinRoom"
    for client in (laptop, phone, bob, old):
        client.quiet(0.5)

    ack = laptop.request("chat", {"roomName": "club", "isGroup": True, "message": "helo"})["data"]
    other = bob.request("chat", {"roomName": "club", "isGroup": True, "message": "mine"})["data"]
    for client in (laptop, phone, bob, old):
        client.chats(count=2)

    edited = laptop.request("edit", {"roomName": "club", "msgId": ack["msgId"], "message": "hello"})
    assert edited["action"] == "edit" and edited["data"]["message"] == "hello", edited
    for client in (phone, bob):
        [notice] = frames(client, "messageEdited")
        assert notice["data"] == {"roomName": "club", "msgId": ack["msgId"], "seq": ack["seq"],
                                  "message": "hello", "editedAt": edited["data"]["editedAt"], "by": "user4"}
    assert frames(laptop, "messageEdited") == []  # it has its answer
    assert old.quiet(0.3) == []  # no new frames for an old client

    # only the author edits; the owner deletes anyone's message
    refused = bob.request("edit", {"roomName": "club", "msgId": ack["msgId"], "message": "x"})
    assert refused["action"] == "error" and refused["data"]["code"] == 403
    refused = bob.request("delete", {"roomName": "club", "msgId": ack["msgId"]})
    assert refused["action"] == "error" and refused["data"]["code"] == 403
    deleted = phone.request("delete", {"roomName": "club", "msgId": other["msgId"]})
    assert deleted["action"] == "delete", deleted
    for client in (laptop, bob):
        [notice] = frames(client, "messageDeleted")
        assert notice["data"] == {"roomName": "club", "msgId": other["msgId"], "seq": other["seq"], "by": "user4"}
    assert frames(phone, "messageDeleted") == []
    again = phone.request("delete", {"roomName": "club", "msgId": other["msgId"]})
    assert again["action"] == "delete"
    assert frames(laptop, "messageDeleted") == []  # told once
    gone = laptop.request("edit", {"roomName": "club", "msgId": other["msgId"], "message": "back"})
    assert gone["action"] == "error" and gone["data"]["code"] == 404

    # history: the edited text, and a tombstone
    page = bob.request("history", {"roomName": "club"})["data"]["messages"]
    assert [(m["seq"], m["message"], m.get("edited") is not None, m.get("deleted", False)) for m in page] == [
        (ack["seq"], "hello", True, False), (other["seq"], "", False, True)]
    # resume after a reconnect: the same
    bob.close()
    bob = live_client(cluster, "node2", "user5")
    answer = bob.request("resume", {"rooms": {"club": 0}})
    replayed = bob.chats(timeout=0.3)
    assert answer["data"]["replayed"] == 2, answer
    assert [(c["data"]["message"], c["data"].get("deleted", False)) for c in replayed] == [
        ("hello", False), ("", True)]
    # joinRoom's history too
    joined = cluster.client("node1", "user7")
    joined.send("joinRoom", {"roomName": "club"})
    assert [c["data"]["message"] for c in joined.chats(count=2)] == ["hello", ""]

    # a direct message: both users' sessions, each once
    dm = bob.request("chat", {"to": "user4", "message": "psst"})["data"]
    for client in (laptop, phone):
        client.chats(count=1)
    changed = bob.request("edit", {"to": "user4", "msgId": dm["msgId"], "message": "pssst"})
    assert changed["action"] == "edit" and changed["data"]["to"] == "user4"
    for client in (laptop, phone):
        [notice] = frames(client, "messageEdited")
        assert notice["data"]["conversation"] == "user5" and notice["data"]["message"] == "pssst"
    convo = laptop.request("history", {"conversation": "user5"})["data"]["messages"]
    assert [m["message"] for m in convo] == ["pssst"]


def test_typing_read_state_and_invitations_across_nodes(cluster):
    laptop = live_client(cluster, "node1", "user8")
    phone = live_client(cluster, "node2", "user8")
    bob = live_client(cluster, "node3", "user9")
    for client in (laptop, bob):
        assert client.request("joinRoom", {"roomName": "room3"})["action"] == "joinRoom"
    for client in (laptop, phone, bob):
        client.quiet(0.5)

    # typing: the others, once a second at most, never stored, not back to the sender
    laptop.send("typing", {"roomName": "room3"})
    laptop.send("typing", {"roomName": "room3"})
    got = frames(bob, "typing")
    assert [f["data"] for f in got] == [{"roomName": "room3", "from": "user8"}]
    assert frames(phone, "typing", 0.2) == [] and frames(laptop, "typing", 0.1) == []
    bob.send("typing", {"to": "user8"})
    for client in (laptop, phone):
        assert [f["data"] for f in frames(client, "typing")] == [{"to": "user8", "from": "user9"}]
    assert bob.request("history", {"roomName": "room3"})["data"]["messages"] == []
    refused = laptop.request("typing", {"roomName": "room4"})
    assert refused["action"] == "error" and refused["data"]["code"] == 403

    # read markers: on the user's other sessions, and in unread counts after a new login
    for i in range(5):
        bob.send("chat", {"roomName": "room3", "isGroup": True, "message": f"r{i}"})
    seqs = [c["data"]["seq"] for c in laptop.chats(count=5)]
    phone.chats(count=5)
    read = laptop.request("read", {"roomName": "room3", "seq": seqs[1]})
    assert read["data"] == {"roomName": "room3", "seq": seqs[1]}
    assert [f["data"] for f in frames(phone, "read")] == [{"roomName": "room3", "seq": seqs[1]}]
    back = laptop.request("read", {"roomName": "room3", "seq": 0})  # markers only move forward
    assert back["data"]["seq"] == seqs[1]
    assert [f["data"] for f in frames(phone, "read")] == [{"roomName": "room3", "seq": seqs[1]}]
    for client in (laptop, phone):
        client.close()
    again = cluster.client("node3")
    login = again.login("user8", **LIVE)
    rooms = {r["roomName"]: r for r in login["rooms"]}
    assert rooms["room3"]["unread"] == 3 and rooms["room3"]["member"] is True
    assert "world" in rooms
    listed = {r["roomName"]: r for r in again.request("listRooms")["data"]["rooms"]}
    assert listed["room3"]["unread"] == 3 and "unread" not in listed["room5"]

    # an invitation reaches the invited user's sessions and shows in listRooms
    carol = live_client(cluster, "node1", "user10")
    assert again.request("createRoom", {"roomName": "hideout", "private": True})["action"] == "createRoom"
    assert again.request("invite", {"roomName": "hideout", "username": "user10"})["action"] == "invite"
    [notice] = frames(carol, "roomNotice")
    assert notice["data"] == {"roomName": "hideout", "action": "invite", "kind": "invited",
                              "username": "user10", "by": "user8"}
    listed = {r["roomName"]: r for r in carol.request("listRooms")["data"]["rooms"]}
    assert listed["hideout"].get("invited") is True and "member" not in listed["hideout"]
    assert carol.request("joinRoom", {"roomName": "hideout"})["action"] == "joinRoom"
    [count] = frames(again, "members")  # (the joining session has its answer)
    assert count["data"] == {"roomName": "hideout", "members": 2}
    listed = {r["roomName"]: r for r in carol.request("listRooms")["data"]["rooms"]}
    assert "invited" not in listed["hideout"] and listed["hideout"]["unread"] == 0


def test_user_info_after_a_failover_names_the_new_node_and_keeps_the_online_time(cluster):
    """A user whose node is killed (-9) reconnects to another node: right
    away, userInfo names only the node they are on now, and counts their
    online time from their first login."""
    before = cluster.client("node1")
    first = before.login("user11", features=["multi"])
    asker = cluster.client("node3", "user12")
    since = asker.request("userInfo", {"username": "user11"})["data"]["loginTime"]
    time.sleep(1.1)
    cluster.nodes["node1"].kill()
    again = cluster.client("node2")
    again.login("user11", features=["multi"])
    info = asker.request("userInfo", {"username": "user11"})["data"]
    assert info["nodes"] == ["node2"] and info["nodeId"] == "node2", info
    assert info["loginTime"] == since, (info, first)
    assert info["onlineFor"] >= "00d 00h 00m 01s"
    # and once the dead node's session is gone (its ZooKeeper session expired)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if "node1" not in [s["nodeId"] for s in cluster.servers()]:
            break
        time.sleep(0.2)
    info = asker.request("userInfo", {"username": "user11"})["data"]
    assert info["nodes"] == ["node2"] and info["loginTime"] == since, info


def test_an_edit_while_a_node_is_paused_reaches_its_members_late_or_in_history(cluster):
    """SIGSTOP of the node of a member: the edit is answered and the
    editor goes on while that node is stopped; once the
    node runs again its member sees the edit, live (late) at most once, and
    in history in any case."""
    alice = live_client(cluster, "node1", "user13")
    bob = live_client(cluster, "node2", "user14")
    for client in (alice, bob):
        assert client.request("joinRoom", {"roomName": "room4"})["action"] == "joinRoom"
        client.quiet(0.3)
    sent = alice.request("chat", {"roomName": "room4", "isGroup": True, "message": "befor"})["data"]
    bob.chats(count=1)
    cluster.nodes["node2"].pause()
    try:
        edited = alice.request("edit", {"roomName": "room4", "msgId": sent["msgId"], "message": "before"})
        assert edited["action"] == "edit", edited
        # the next request is answered while node2 cannot answer the notice
        assert alice.request("history", {"roomName": "room4", "limit": 1})["data"]["messages"][0][
            "message"] == "before"
    finally:
        cluster.nodes["node2"].resume()
    page = bob.request("history", {"roomName": "room4", "limit": 1}, timeout=15)["data"]["messages"]
    assert page[0]["message"] == "before" and page[0]["edited"] == edited["data"]["editedAt"]
    late = [f for f in bob.quiet(1.0) + bob.frames if f.get("action") == "messageEdited"]
    assert len(late) <= 1
