"""Three real chat nodes: routing across nodes, membership, failover, graceful
stop and store faults, asserted from what users see."""
import json
import signal
import socket
import time

import pymongo
import pytest
from bson import ObjectId

from devtools.localservices import redis_command
from tests.harness import ChatCluster, wait_until

SESSION_TIMEOUT = 2.0


@pytest.fixture
def cluster(three_nodes):
    return three_nodes


def stored(cluster, msg_ids):
    client = pymongo.MongoClient(cluster.mongo_url, serverSelectionTimeoutMS=5000)
    db = client.get_default_database()
    docs = list(db.messages.find({"_id": {"$in": [ObjectId(m) for m in msg_ids]}}, {"_id": 1}))
    client.close()
    return [str(d["_id"]) for d in docs]


def test_direct_and_room_chat_across_nodes(cluster):
    a = cluster.client("node1", "user1")
    b = cluster.client("node2", "user2")
    c = cluster.client("node3", "user3")
    a.send("chat", {"to": "user2", "message": "from node1"})
    [got] = b.chats(count=1)
    assert got["data"]["message"] == "from node1" and got["data"]["from"] == "user1"
    for client in (a, b, c):
        assert client.request("joinRoom", {"roomName": "room1"})["action"] == "joinRoom"
    time.sleep(0.2)
    for client in (a, b, c):
        client.chats(0.1)
    c.send("chat", {"roomName": "room1", "isGroup": True, "message": "room across nodes"})
    for client in (a, b, c):
        messages = [f["data"]["message"] for f in client.chats(count=1)]
        assert messages == ["room across nodes"], (client.username, messages)
    info = a.request("userInfo", {"username": "user3"})
    assert info["data"]["nodeId"] == "node3"


def test_login_on_another_node_replaces_session(cluster):
    first = cluster.client("node1", "user4")
    second = cluster.client("node2", "user4")
    first.error(409)
    assert first.wait_closed(5)
    other = cluster.client("node3", "user5")
    other.send("chat", {"to": "user4", "message": "which one?"})
    assert [f["data"]["message"] for f in second.chats(count=1)] == ["which one?"]
    assert other.request("userInfo", {"username": "user4"})["data"]["nodeId"] == "node2"


def test_killed_follower_users_go_offline(cluster):
    leader = cluster.leader()
    follower = next(n for n in cluster.nodes if n != leader)
    survivor = next(n for n in cluster.nodes if n not in (leader, follower))
    victim = cluster.client(follower, "user6")
    watcher = cluster.client(survivor, "user7")
    assert watcher.request("userInfo", {"username": "user6"})["action"] == "userInfo"
    cluster.nodes[follower].kill()
    killed = time.monotonic()

    def offline():
        answer = watcher.request("userInfo", {"username": "user6"})
        return answer["action"] == "error" and answer["data"]["code"] == 404

    wait_until(offline, SESSION_TIMEOUT + 5, "user6 offline")
    watcher.send("chat", {"to": "user6", "message": "still there?"})
    watcher.error(404)
    cluster.wait_for_nodes(2, timeout=SESSION_TIMEOUT + 5, exclude=[follower])
    assert time.monotonic() - killed < SESSION_TIMEOUT + 5
    for _ in range(20):
        status, body = cluster.gateway_get("/server")
        assert json.loads(body)["nodeId"] != follower
    # the leader removed the stale session from redis
    wait_until(lambda: redis_command(redis_port(cluster), "EVAL",
                                     "redis.call('SELECT', ARGV[1]) return redis.call('HEXISTS', KEYS[1], ARGV[2])",
                                     "1", "chatnet:sessions", str(cluster.redis_db), "user6") == 0,
               SESSION_TIMEOUT + 8, "stale session removed")
    victim.close()


def redis_port(cluster):
    return cluster.redis_server.port


def test_leader_kill_loses_nothing(cluster):
    """kill -9 the leader during a stream of room posts and direct messages:
    every accepted message arrives exactly once and is stored once."""
    leader = cluster.leader()
    others = [n for n in cluster.nodes if n != leader]
    senders = [cluster.client(others[0], "user8"), cluster.client(others[1], "user9")]
    receivers = [cluster.client(others[1], "user10"), cluster.client(others[0], "user11")]
    for client in senders + receivers:
        assert client.request("joinRoom", {"roomName": "room2"})["action"] == "joinRoom"
    time.sleep(0.3)
    for client in senders + receivers:
        client.chats(0.1)
    sent = []
    killed_at = None
    for i in range(60):
        if i == 20:
            cluster.nodes[leader].kill()
            killed_at = time.monotonic()
        sender = senders[i % 2]
        room_text, direct_text = f"room-{i}", f"direct-{i}"
        sender.send("chat", {"roomName": "room2", "isGroup": True, "message": room_text})
        sender.send("chat", {"to": receivers[i % 2].username, "message": direct_text})
        sent.append((sender, room_text, direct_text, receivers[i % 2]))
        time.sleep(0.05)
    deadline = time.monotonic() + SESSION_TIMEOUT + 20
    expected_room = {t for _, t, _, _ in sent}
    got = {c.username: [] for c in senders + receivers}
    ids = set()
    while time.monotonic() < deadline:
        for client in senders + receivers:
            for frame in client.chats(0.05):
                got[client.username].append(frame["data"]["message"])
                ids.add(frame["data"]["msgId"])
        if all(expected_room <= set(m) for m in got.values()) and all(
            {d for _, _, d, r in sent if r is receiver} <= set(got[receiver.username]) for receiver in receivers
        ):
            break
    # no error came back: everything was accepted
    for client in senders + receivers:
        assert [f for f in client.frames if f["action"] == "error"] == []
    for client in senders + receivers:
        room_got = [m for m in got[client.username] if m.startswith("room-")]
        assert sorted(room_got) == sorted(expected_room), client.username
    for receiver in receivers:
        direct_got = [m for m in got[receiver.username] if m.startswith("direct-")]
        assert sorted(direct_got) == sorted(d for _, _, d, r in sent if r is receiver)
    assert time.monotonic() - killed_at < SESSION_TIMEOUT + 25
    wait_until(lambda: len(stored(cluster, ids)) == len(ids), 10, "all messages stored")
    assert len(ids) == 120
    new_leader = cluster.wait_for_nodes(2, timeout=SESSION_TIMEOUT + 5, exclude=[leader])
    assert any(n["isLeader"] for n in new_leader)
    # room membership survived the failover
    answer = senders[0].request("listRooms")
    assert {r["roomName"]: r["members"] for r in answer["data"]["rooms"]}["room2"] >= 4


def test_failover_time(cluster):
    """Leader kill to first successful cross-node room delivery."""
    leader = cluster.leader()
    a_node, b_node = [n for n in cluster.nodes if n != leader]
    a, b = cluster.client(a_node, "user12"), cluster.client(b_node, "user13")
    for client in (a, b):
        client.request("joinRoom", {"roomName": "room3"})
    cluster.nodes[leader].kill()
    start = time.monotonic()
    n = 0
    while time.monotonic() - start < SESSION_TIMEOUT + 10:
        n += 1
        a.send("chat", {"roomName": "room3", "isGroup": True, "message": f"probe {n}"})
        if any(f["data"]["message"].startswith("probe") for f in b.chats(0.1)):
            break
    elapsed = time.monotonic() - start
    print(f"failover: leader kill to first cross-node room delivery {elapsed:.2f}s "
          f"(session timeout {SESSION_TIMEOUT}s)")
    assert elapsed < SESSION_TIMEOUT + 2 + 1


def test_graceful_stop(cluster):
    leader = cluster.leader()
    follower = next(n for n in cluster.nodes if n != leader)
    client = cluster.client(follower, "user14")
    other = cluster.client(next(n for n in cluster.nodes if n not in (leader, follower)), "user15")
    process = cluster.nodes[follower]
    start = time.monotonic()
    process.process.send_signal(signal.SIGTERM)
    code = client.wait_closed(10)
    assert code and code[0] == 4001, code
    process.process.wait(10)
    assert time.monotonic() - start < 8
    cluster.wait_for_nodes(2, timeout=5, exclude=[follower])
    answer = other.request("userInfo", {"username": "user14"})
    assert answer["action"] == "error" and answer["data"]["code"] == 404


def test_redis_restart_empty(tmp_path, services, zookeeper_server, mongo_server):
    """Redis comes back empty: nodes reconnect and re-publish their sessions
    and the server list by themselves; users keep chatting."""
    redis = services.redis()
    c = ChatCluster(tmp_path, redis, zookeeper_server, mongo_server, nodes=2,
                    session_timeout=SESSION_TIMEOUT, extra_args=["--rate-limit", "0"]).start()
    try:
        a, b = c.client("node1", "user1"), c.client("node2", "user2")
        a.request("joinRoom", {"roomName": "room1"})
        a.send("chat", {"roomName": "room1", "isGroup": True, "message": "before the restart"})
        [before] = a.chats(count=1)
        assert before["data"]["message"] == "before the restart"
        mongo = pymongo.MongoClient(c.mongo_url, serverSelectionTimeoutMS=5000)
        wait_until(lambda: mongo.get_default_database().messages.count_documents(
            {"_id": ObjectId(before["data"]["msgId"])}) == 1, 15, "the message written to MongoDB")
        mongo.close()
        redis.restart(empty=True)
        c.wait_for_nodes(2, timeout=15)

        def chat_works():
            answer = a.request("userInfo", {"username": "user2"})
            if answer["action"] != "userInfo":
                return False
            a.send("chat", {"to": "user2", "message": "after the restart"})
            return any(f["data"]["message"] == "after the restart" for f in b.chats(1))

        wait_until(chat_works, 15, "chat after redis restart", interval=0.2)
        assert b.request("userInfo", {"username": "user1"})["data"]["nodeId"] == "node1"
        # the room's history, lost with Redis, comes from MongoDB
        assert b.request("joinRoom", {"roomName": "room1"})["action"] == "joinRoom"
        history = [f["data"]["message"] for f in b.chats(0.1)]
        assert history == ["before the restart"], history
    finally:
        c.stop()


def test_internal_port_refuses_strangers(cluster):
    node = cluster.nodes["node1"]
    victim = cluster.client("node1", "user16")
    from chatnet.protocols.amp_commands import Deliver

    box = {b"_command": b"Deliver", b"_ask": b"1", b"msgId": b"x", b"data": b'{"from":"evil"}',
           b"usernames": b"", b"everyone": b"True"}
    payload = b"".join(len(k).to_bytes(2, "big") + k + len(v).to_bytes(2, "big") + v for k, v in box.items()) + b"\x00\x00"
    assert Deliver.commandName == b"Deliver"
    with socket.create_connection(("127.0.0.1", node.internal_port), timeout=5) as s:
        s.sendall(payload)
        s.settimeout(5)
        data = b""
        try:
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        except socket.timeout:
            raise AssertionError("connection left open")
    assert b"_error" in data
    assert victim.chats(0.5) == []
