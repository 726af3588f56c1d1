"""A user's room membership and moderation state on a real two-node cluster
when one node learns of a change late or never (docs/design.md, "Room
state across the nodes"): the user has a ``multi`` session on node1 (the
laptop) and on node2 (the phone); node2 is stopped (SIGSTOP) past the
ZooKeeper session timeout, so node1 sees it leave and tells it nothing, while
the change is made on node1; node2 is resumed and registers again. The
phone then follows what MongoDB stores: a room joined meanwhile reaches it,
a ban or a kick stops the room and refuses its posts (403), a mute refuses
its posts. The last test stops node1 instead, so that a join is handled
before node1 hears of the phone's login."""
import pytest

from tests.harness import ChatCluster, wait_until

MULTI = {"features": ["ack", "multi"]}


@pytest.fixture
def two_nodes(tmp_path, redis_server, zookeeper_server, mongo_server):
    cluster = ChatCluster(tmp_path, redis_server, zookeeper_server, mongo_server, nodes=2,
                          session_timeout=2.0, extra_args=["--rate-limit", "0"])
    cluster.start()
    yield cluster
    for node in cluster.nodes.values():
        node.resume()
    cluster.stop()


def is_error(frame, code):
    return frame["action"] == "error" and frame["data"]["code"] == code


def post(client, room, text):
    return client.request("chat", {"roomName": room, "isGroup": True, "message": text}, timeout=15)


def room_texts(client, room, timeout=0.5, count=None):
    return [c["data"]["message"] for c in client.chats(timeout=timeout, count=count)
            if c["data"]["roomName"] == room]


def both_sessions(cluster, username):
    laptop = cluster.client("node1")
    laptop.login(username, **MULTI)
    phone = cluster.client("node2")
    phone.login(username, **MULTI)
    return laptop, phone


def user(cluster, node, username):
    client = cluster.client(node)
    client.login(username, features=["ack"])
    return client


def joined(client, room):
    frame = client.request("joinRoom", {"roomName": room})
    assert frame["action"] == "joinRoom", frame
    client.chats(timeout=0.3)  # the room's history


def gets_the_room(sender, receiver, room, tag):
    """Wait until a message that C{sender} posts to C{room} reaches
    C{receiver} (one post every half second)."""
    sent = []

    def arrived():
        text = f"{tag} {len(sent)}"
        sent.append(text)
        assert post(sender, room, text)["action"] == "ack"
        return set(room_texts(receiver, room, timeout=0.5)) & set(sent)

    return wait_until(arrived, 20, f"a message of {room} on {receiver.username}'s session")


def stops_getting_the_room(sender, witness, receiver, room, tag):
    """Wait until a message that C{sender} posts to C{room} reaches
    C{witness} and not C{receiver} (one post every half second or so)."""
    sent = []

    def stopped():
        text = f"{tag} {len(sent)}"
        sent.append(text)
        assert post(sender, room, text)["action"] == "ack"
        wait_until(lambda: text in room_texts(witness, room, timeout=0.2), 15, f"{text} on the witness")
        return text not in room_texts(receiver, room, timeout=0.5)

    return wait_until(stopped, 20, f"the end of {room} on {receiver.username}'s session")


def stop_node2_until_node1_forgets_it(cluster):
    """SIGSTOP node2 until the cluster sees it gone (its ZooKeeper session
    expired: node1 tells it nothing more)."""
    cluster.nodes["node2"].pause()
    cluster.wait_for_nodes(1, exclude=("node2",))


def resume_node2(cluster):
    """SIGCONT node2; it registers again."""
    cluster.nodes["node2"].resume()
    cluster.wait_for_nodes(2)


def test_a_room_joined_while_node2_was_stopped_reaches_the_session_there(two_nodes):
    laptop, phone = both_sessions(two_nodes, "user1")
    poster = user(two_nodes, "node1", "user2")
    joined(poster, "room2")

    stop_node2_until_node1_forgets_it(two_nodes)
    joined(laptop, "room2")
    resume_node2(two_nodes)

    # (today's sessions kept the rooms they had at login for good)
    gets_the_room(poster, phone, "room2", "after the join")
    assert room_texts(laptop, "room2", count=1)
    assert post(phone, "room2", "from the phone")["action"] == "ack"


def test_a_ban_and_a_kick_while_node2_was_stopped_are_enforced_there(two_nodes):
    owner = user(two_nodes, "node1", "user5")
    for room in ("banroom", "kickroom"):
        assert owner.request("createRoom", {"roomName": room})["action"] == "createRoom"
    witness = user(two_nodes, "node2", "user6")
    laptop, phone = both_sessions(two_nodes, "user1")
    other_laptop, other_phone = both_sessions(two_nodes, "user2")
    joined(witness, "banroom")
    joined(witness, "kickroom")
    joined(laptop, "banroom")
    joined(other_laptop, "kickroom")
    # both phones get their room and may post to it
    gets_the_room(owner, phone, "banroom", "before the ban")
    gets_the_room(owner, other_phone, "kickroom", "before the kick")
    assert post(phone, "banroom", "phone before")["action"] == "ack"
    assert post(other_phone, "kickroom", "phone before")["action"] == "ack"

    stop_node2_until_node1_forgets_it(two_nodes)
    assert owner.request("ban", {"roomName": "banroom", "username": "user1"})["action"] == "ban"
    assert owner.request("kick", {"roomName": "kickroom", "username": "user2"})["action"] == "kick"
    resume_node2(two_nodes)
    for client in (witness, phone, other_phone):
        client.chats(timeout=0.5)

    # the kicked user's phone, which posts nothing, stops getting the room
    # (node2 reads the changed state by itself); its other member still gets it
    stops_getting_the_room(owner, witness, other_phone, "kickroom", "after the kick")
    # the banned user's phone posts at once: refused on node2 as on node1,
    # although node2 was never told, and it gets the room no more
    for session, room in ((phone, "banroom"), (laptop, "banroom"), (other_phone, "kickroom"),
                          (other_laptop, "kickroom")):
        refused = post(session, room, "still here?")
        assert is_error(refused, 403), (room, refused)
    assert post(owner, "banroom", "banroom after")["action"] == "ack"
    assert room_texts(witness, "banroom", count=1) == ["banroom after"]
    assert room_texts(phone, "banroom", timeout=1.0) == []


def test_a_mute_while_node2_was_stopped_is_enforced_there(two_nodes):
    owner = user(two_nodes, "node1", "user5")
    assert owner.request("createRoom", {"roomName": "muteroom"})["action"] == "createRoom"
    laptop, phone = both_sessions(two_nodes, "user1")
    joined(laptop, "muteroom")
    gets_the_room(owner, phone, "muteroom", "before the mute")
    # node2 knows the phone's mute in the room (none) from its first post
    assert post(phone, "muteroom", "phone before")["action"] == "ack"

    stop_node2_until_node1_forgets_it(two_nodes)
    muted = owner.request("mute", {"roomName": "muteroom", "username": "user1", "seconds": 600})
    assert muted["action"] == "mute", muted
    resume_node2(two_nodes)
    for session in (laptop, phone):
        session.chats(timeout=0.5)

    for session in (laptop, phone):
        refused = post(session, "muteroom", "let me speak")
        assert is_error(refused, 403) and "muted" in refused["data"]["message"], refused
    # still a member: the room reaches both
    assert post(owner, "muteroom", "while muted")["action"] == "ack"
    for session in (laptop, phone):
        assert room_texts(session, "muteroom", count=1) == ["while muted"]


def test_a_join_made_before_the_login_announcement_landed_reaches_the_new_session(two_nodes):
    """node1 is stopped past the ZooKeeper timeout, so node2 announces the
    phone's login to nobody; the laptop's join waits in node1's socket and
    is handled as soon as node1 runs again, before node1 registers again
    and hears of the phone (the announcement lands after the join)."""
    laptop = two_nodes.client("node1")
    laptop.login("user1", **MULTI)
    poster = user(two_nodes, "node1", "user2")
    joined(poster, "room4")
    two_nodes.nodes["node1"].pause()
    try:
        two_nodes.wait_for_nodes(1, exclude=("node1",))
        phone = two_nodes.client("node2")
        phone.login("user1", **MULTI)
        join = laptop.send("joinRoom", {"roomName": "room4"})
    finally:
        two_nodes.nodes["node1"].resume()
    assert laptop.answer(join, timeout=15)["action"] == "joinRoom"
    two_nodes.wait_for_nodes(2)

    gets_the_room(poster, phone, "room4", "after the join")
