"""Store faults with real processes: ZooKeeper paused for less than the session
timeout, MongoDB down and back. Each test has stores of its own to break."""
import os
import signal
import time

import pymongo

from tests.harness import ChatCluster, wait_until


def test_zookeeper_brief_outage_changes_nothing(tmp_path, services, redis_server, mongo_server):
    zookeeper = services.zookeeper()
    cluster = ChatCluster(tmp_path, redis_server, zookeeper, mongo_server, nodes=2, session_timeout=8.0).start()
    try:
        leader = cluster.leader()
        a, b = cluster.client("node1", "user1"), cluster.client("node2", "user2")
        os.kill(zookeeper.pid, signal.SIGSTOP)
        try:
            for i in range(6):
                a.send("chat", {"to": "user2", "message": f"during {i}"})
                time.sleep(0.5)
            assert [f["data"]["message"] for f in b.chats(count=6)] == [f"during {i}" for i in range(6)]
        finally:
            os.kill(zookeeper.pid, signal.SIGCONT)
        b.send("chat", {"to": "user1", "message": "after"})
        assert [f["data"]["message"] for f in a.chats(count=1)] == ["after"]
        assert cluster.leader() == leader
        assert len(cluster.servers()) == 2
        for node in cluster.nodes.values():
            text = node.log_path.read_text()
            assert text.count("is the leader") <= 1, node.name
            assert "session lost" not in text
    finally:
        cluster.stop()


def test_mongodb_down_login_503_messages_kept(tmp_path, services, redis_server, zookeeper_server):
    mongo = services.mongo()
    cluster = ChatCluster(tmp_path, redis_server, zookeeper_server, mongo, nodes=2, session_timeout=3.0,
                          extra_args=["--store-timeout", "1"]).start()
    try:
        a, b = cluster.client("node1", "user1"), cluster.client("node2", "user2")
        a.request("joinRoom", {"roomName": "room1"})
        b.request("joinRoom", {"roomName": "room1"})
        mongo.kill()
        late = cluster.client("node1")
        start = time.monotonic()
        answer = late.request("login", {"username": "user3"}, timeout=5)
        assert answer["action"] == "error" and answer["data"]["code"] == 503, answer
        assert time.monotonic() - start < 3
        # users already in keep chatting; their messages wait for MongoDB
        a.send("chat", {"to": "user2", "message": "while mongo is down"})
        a.send("chat", {"roomName": "room1", "isGroup": True, "message": "room while down"})
        got = [f["data"] for f in b.chats(3)]
        assert {d["message"] for d in got} >= {"while mongo is down", "room while down"}
        ids = [d["msgId"] for d in got if d["message"] in ("while mongo is down", "room while down")]
        mongo.start()
        client = pymongo.MongoClient(cluster.mongo_url, serverSelectionTimeoutMS=5000)
        db = client.get_default_database()
        from bson import ObjectId

        wait_until(lambda: db.messages.count_documents({"_id": {"$in": [ObjectId(i) for i in ids]}}) == 2,
                   20, "queued messages written")
        client.close()
        wait_until(lambda: late.request("login", {"username": "user3"})["action"] == "login", 15,
                   "login after mongodb is back", interval=0.5)
    finally:
        cluster.stop()
