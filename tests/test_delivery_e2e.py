"""Delivery guarantees (extensions switched on by the client): acks with
message ids and seqs, offline messages, resume after reconnect; and that an
old client sees none of it. Real three-node cluster."""
import json
import time

import pytest

from tests.harness import ChatCluster, WsClient

SESSION_TIMEOUT = 2.0


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, redis_server, zookeeper_server, mongo_server):
    c = ChatCluster(tmp_path_factory.mktemp("delivery"), redis_server, zookeeper_server, mongo_server, nodes=3,
                    session_timeout=SESSION_TIMEOUT, extra_args=["--rate-limit", "0", "--offline-limit", "3"])
    c.start()
    yield c
    c.stop()


def login(client, username, features):
    frame = client.request("login", {"username": username, "features": features})
    assert frame["action"] == "login", frame
    client.username = username
    return frame["data"]


def test_old_client_sees_no_extension(cluster):
    old = cluster.client("node1", "user1")
    peer = cluster.client("node2", "user2")
    answer = old.request("login", {"username": "user1"})
    assert "features" not in answer["data"]
    old.send("chat", {"to": "user2", "message": "plain"})
    assert [f["data"]["message"] for f in peer.chats(count=1)] == ["plain"]
    assert old.quiet(0.3) == []
    old.send("chat", {"to": "user40", "message": "anyone?"})
    old.error(404)
    old.send("resume", {"rooms": {"room1": 0}})
    old.error(400)


def test_ack_ids_and_gap_free_seqs(cluster):
    a = cluster.client("node1")
    assert login(a, "user3", ["ack", "nonsense"])["features"] == ["ack"]
    b = cluster.client("node3", "user4")
    acks = []
    for i in range(5):
        request_id = a.send("chat", {"to": "user4", "message": f"m{i}"})
        ack = a.answer(request_id)
        assert ack["action"] == "ack" and ack["re"] == request_id
        acks.append(ack["data"])
    got = b.chats(count=5)
    assert [f["data"]["msgId"] for f in got] == [ack["msgId"] for ack in acks]
    seqs = [f["data"]["seq"] for f in got]
    assert seqs == list(range(seqs[0], seqs[0] + 5))
    assert [ack["seq"] for ack in acks] == seqs


def test_offline_messages_queued_and_delivered_once(cluster):
    a = cluster.client("node1")
    login(a, "user5", ["offline"])
    for i in range(2):
        answer = a.request("chat", {"to": "user6", "message": f"while away {i}"})
        assert answer["action"] == "queued", answer
        assert answer["data"]["to"] == "user6" and answer["data"]["seq"] >= 1
    a.send("chat", {"to": "nobody-at-all", "message": "x"})
    a.error(404)
    b = cluster.client("node2")
    login(b, "user6", ["offline"])
    got = b.chats(count=2)
    assert [f["data"]["message"] for f in got] == ["while away 0", "while away 1"]
    assert all(f["data"]["from"] == "user5" for f in got)
    b.close()
    again = cluster.client("node3", "user6")
    assert again.chats(1) == []


def test_offline_queue_is_bounded(cluster):
    a = cluster.client("node1")
    login(a, "user7", ["offline"])
    for i in range(5):
        assert a.request("chat", {"to": "user8", "message": f"q{i}"})["action"] == "queued"
    b = cluster.client("node3")
    login(b, "user8", ["offline"])
    assert [f["data"]["message"] for f in b.chats(count=3)] == ["q2", "q3", "q4"]
    notice = b.expect(action="offline", timeout=2)
    assert notice["data"] == {"delivered": 3, "dropped": 2}


def test_resume_after_node_kill(cluster):
    """A client whose node is killed mid-stream reconnects through the
    gateway, resumes, and ends with every room message exactly once and in
    seq order."""
    leader = cluster.leader()
    victim_node = next(n for n in cluster.nodes if n != leader)
    sender_node = next(n for n in cluster.nodes if n not in (leader, victim_node))
    reader = WsClient(cluster.port(victim_node))
    login(reader, "user9", ["resume", "ack"])
    assert reader.request("joinRoom", {"roomName": "room4"})["action"] == "joinRoom"
    reader.chats(0.2)
    sender = cluster.client(sender_node, "user10")
    assert sender.request("joinRoom", {"roomName": "room4"})["action"] == "joinRoom"  # only members post
    sent, seqs = 0, []
    for i in range(30):
        sender.send("chat", {"roomName": "room4", "isGroup": True, "message": f"stream {i}"})
        sent += 1
    seqs += [f["data"]["seq"] for f in reader.chats(1) if f["data"]["message"].startswith("stream")]
    assert seqs
    cluster.nodes[victim_node].kill()
    for i in range(30, 60):
        sender.send("chat", {"roomName": "room4", "isGroup": True, "message": f"stream {i}"})
        time.sleep(0.01)
    # reconnect through the gateway: it may still name the dead node for a moment
    deadline = time.monotonic() + SESSION_TIMEOUT + 10
    again = None
    while again is None and time.monotonic() < deadline:
        status, body = cluster.gateway_get("/server")
        if status == 200:
            try:
                again = WsClient(json.loads(body)["port"])
            except OSError:
                time.sleep(0.2)
    assert again is not None
    login(again, "user9", ["resume"])
    for i in range(60, 70):
        sender.send("chat", {"roomName": "room4", "isGroup": True, "message": f"stream {i}"})
    answer = again.request("resume", {"rooms": {"room4": seqs[-1]}})
    assert answer["action"] == "resume" and answer["data"]["tooOld"] == [], answer
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        seqs += [f["data"]["seq"] for f in again.chats(0.3) if f["data"]["message"].startswith("stream")]
        if len(seqs) >= 70:
            break
    assert seqs == list(range(seqs[0], seqs[0] + 70)), seqs


def test_resume_with_nothing_missed(cluster):
    client = cluster.client("node1")
    login(client, "user11", ["resume"])
    assert client.request("joinRoom", {"roomName": "room5"})["action"] == "joinRoom"  # only members resume
    answer = client.request("resume", {"rooms": {"room5": 10**6}, "conversations": {"user12": 0}})
    assert answer["data"] == {"replayed": 0, "tooOld": []}
    client.send("resume", {"rooms": {"room5": "x"}})
    client.error(400)
