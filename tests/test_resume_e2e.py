"""Nothing a client sends stops persistence, and a resume never skips a
message without saying so: real node processes, real stores.

* a chat with a ts MongoDB cannot store is refused (400), one far from the
  server clock gets the server's ts, and the node's later messages are
  stored;
* resume right after bursts of 120 and 600 acked messages (most of them
  still in the write-behind log): a complete, gap-free replay, or tooOld;
  never a partial one;
* the offline summary comes after the queued messages, also while a resume
  holds them back.
"""
import time

import pymongo
import pytest
from bson import ObjectId

from tests.harness import ChatCluster, WsClient, wait_until


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, redis_server, zookeeper_server, mongo_server):
    c = ChatCluster(tmp_path_factory.mktemp("resume"), redis_server, zookeeper_server, mongo_server, nodes=2,
                    extra_args=["--rate-limit", "0"])
    c.start()
    yield c
    c.stop()


@pytest.fixture(scope="module")
def db(cluster):
    client = pymongo.MongoClient(cluster.mongo_url, serverSelectionTimeoutMS=5000)
    yield client.get_default_database()
    client.close()


def login(client, username, features):
    frame = client.request("login", {"username": username, "features": features})
    assert frame["action"] == "login", frame
    return frame["data"]


def burst(client, room, count):
    """Send C{count} room messages as fast as possible; their acks."""
    assert client.request("joinRoom", {"roomName": room})["action"] == "joinRoom"
    ids = [client.send("chat", {"roomName": room, "isGroup": True, "message": f"burst {i}"}) for i in range(count)]
    acks = [client.answer(i, timeout=30) for i in ids]
    assert all(a["action"] == "ack" for a in acks), [a for a in acks if a["action"] != "ack"][:3]
    return [a["data"] for a in acks]


def resume(cluster, node, username, rooms):
    """Log in with resume and resume C{rooms}; the answer and the replayed
    chat frames' data."""
    member = cluster.client(node, username)
    for room in rooms:
        assert member.request("joinRoom", {"roomName": room})["action"] == "joinRoom"
    member.close()
    member.wait_closed(5)
    client = cluster.client(node)
    login(client, username, ["resume"])
    answer = client.request("resume", {"rooms": rooms}, timeout=30)
    assert answer["action"] == "resume", answer
    replayed = [f["data"] for f in client.frames if f.get("action") == "chat"]
    client.close()
    return answer["data"], replayed


def assert_whole_or_too_old(room, last_seen, current, answer, replayed):
    """Never a partial replay: every seq after C{last_seen} up to C{current}, in order, or tooOld."""
    mine = [d["seq"] for d in replayed if d["roomName"] == room]
    if {"roomName": room} in answer["tooOld"]:
        assert mine == [], (room, mine[:5])
    else:
        assert mine == list(range(last_seen + 1, current + 1)), (room, last_seen, current, mine[:5], len(mine))


def test_unstorable_ts_is_refused_and_persistence_goes_on(cluster, db):
    client = cluster.client("node1")
    login(client, "user1", ["ack"])
    answer = client.request("chat", {"to": "user1", "message": "huge ts", "ts": 9223372036854775808})
    assert answer["action"] == "error" and answer["data"]["code"] == 400, answer
    before = int(time.time() * 1000)
    far = client.request("chat", {"to": "user1", "message": "far ts", "ts": 5})
    assert far["action"] == "ack" and far["data"]["ts"] >= before - 1000, far
    near = client.request("chat", {"to": "user1", "message": "near ts", "ts": before - 60_000})
    assert near["action"] == "ack" and near["data"]["ts"] == before - 60_000, near
    ids = [ObjectId(far["data"]["msgId"]), ObjectId(near["data"]["msgId"])]
    wait_until(lambda: db.messages.count_documents({"_id": {"$in": ids}}) == 2, 15, "later messages stored")
    stored = db.messages.find_one({"_id": ids[0]})
    assert stored["ts"] == far["data"]["ts"]
    client.close()


@pytest.mark.parametrize("node", ["node1", "node2"])
def test_resume_right_after_a_burst_of_120(cluster, node):
    room = "room1" if node == "node1" else "room2"
    sender = cluster.client("node1")
    login(sender, "user2", ["ack"])
    acks = burst(sender, room, 120)
    seqs = [a["seq"] for a in acks]
    assert seqs == list(range(seqs[0], seqs[0] + 120))
    last_seen, current = seqs[0] - 1, seqs[-1]
    answer, replayed = resume(cluster, node, "user3", {room: last_seen})
    assert answer["tooOld"] == [], answer
    assert_whole_or_too_old(room, last_seen, current, answer, replayed)
    assert answer["replayed"] == 120
    sender.close()


def test_resume_after_a_burst_of_600(cluster):
    sender = cluster.client("node1")
    login(sender, "user4", ["ack"])
    acks = burst(sender, "room3", 600)
    seqs = [a["seq"] for a in acks]
    first, current = seqs[0], seqs[-1]
    assert seqs == list(range(first, current + 1))
    # more than 500 missed: tooOld, not a replay with a hole
    answer, replayed = resume(cluster, "node1", "user5", {"room3": first - 1})
    assert answer == {"replayed": 0, "tooOld": [{"roomName": "room3"}]}, answer
    assert replayed == []
    # 500 missed exactly: every one of them
    answer, replayed = resume(cluster, "node2", "user5", {"room3": current - 500})
    assert answer["tooOld"] == [] and answer["replayed"] == 500, answer
    assert_whole_or_too_old("room3", current - 500, current, answer, replayed)
    answer, replayed = resume(cluster, "node1", "user5", {"room3": current - 501})
    assert answer["tooOld"] == [{"roomName": "room3"}], answer
    sender.close()


@pytest.mark.parametrize("send_resume", [True, False])
def test_offline_summary_comes_after_the_queued_messages(cluster, send_resume):
    target = "user7" if send_resume else "user8"
    sender = cluster.client("node1")
    login(sender, "user6", ["offline"])
    queued = []
    for i in range(12):
        answer = sender.request("chat", {"to": target, "message": f"while away {i}"})
        assert answer["action"] == "queued", answer
        queued.append(answer["data"]["msgId"])
    client = WsClient(cluster.port("node2"))
    login(client, target, ["offline", "resume"])
    if send_resume:
        answer = client.request("resume", {"conversations": {"user6": 0}}, timeout=10)
        assert answer["action"] == "resume" and answer["data"]["tooOld"] == [], answer
    summary = client.expect(action="offline", timeout=10)
    assert summary["data"] == {"delivered": 12, "dropped": 0}
    before = [f["data"]["msgId"] for f in client.frames if f.get("action") == "chat"]
    assert before == queued  # every one, once, in order, before the summary
    client.frames.clear()
    assert [f for f in client.chats(0.5) if f["data"]["msgId"] in queued] == []
    client.close()
    sender.close()


def test_resume_names_are_capped(cluster):
    client = cluster.client("node1")
    login(client, "user9", ["resume"])
    rooms = {f"no-such-room-{i}": 0 for i in range(60)}
    conversations = {f"nobody-{i}": 0 for i in range(41)}
    answer = client.request("resume", {"rooms": rooms, "conversations": conversations})
    assert answer["action"] == "error" and answer["data"]["code"] == 400, answer
    answer = client.request("resume", {"rooms": {f"no-such-room-{i}": 0 for i in range(1000)}})
    assert answer["action"] == "error" and answer["data"]["code"] == 400, answer
    # 100 names are fine (rooms must be the user's own: conversations here)
    answer = client.request("resume", {"conversations": {f"nobody-{i}": 0 for i in range(100)}})
    assert answer["data"] == {"replayed": 0, "tooOld": []}, answer
    answer = client.request("resume", {"rooms": {"room1": 2**63}})
    assert answer["action"] == "error" and answer["data"]["code"] == 400, answer
    client.close()
