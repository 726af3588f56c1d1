"""The write-behind log when MongoDB stops answering, against real processes:
the SecantusDB process is stopped (SIGSTOP) while a client posts. Accepted
messages wait in the node's memory up to --max-message-log-bytes; past it
every new message is refused with 503 (nothing accepted, nothing queued),
never an unbounded queue. After SIGCONT the log is written by itself, new
messages are accepted again, and every acked message is in MongoDB."""
import os
import signal

import pymongo
from bson import ObjectId

from tests.harness import ChatCluster, wait_until


def test_a_stopped_mongodb_fills_the_log_to_its_bound_then_503_and_recovery(tmp_path, services, redis_server,
                                                                           zookeeper_server):
    mongo = services.mongo()
    cluster = ChatCluster(tmp_path, redis_server, zookeeper_server, mongo, nodes=1,
                          extra_args=["--store-timeout", "1", "--rate-limit", "0",
                                      "--max-message-log-bytes", "100000"]).start()
    try:
        a = cluster.client("node1")
        a.login("user1", features=["ack"])
        b = cluster.client("node1", "user2")
        for c in (a, b):
            assert c.request("joinRoom", {"roomName": "room1"})["action"] == "joinRoom"
        acked = []

        def post(text):
            frame = a.request("chat", {"roomName": "room1", "isGroup": True, "message": text})
            if frame["action"] == "ack":
                acked.append(frame["data"]["msgId"])
                return "ack"
            assert frame["action"] == "error" and frame["data"]["code"] == 503, frame
            return 503

        assert post("before") == "ack"  # the first post to a room reads the mute from MongoDB
        os.kill(mongo.pid, signal.SIGSTOP)
        try:
            answers = [post(f"while stopped {i} " + "x" * 200) for i in range(200)]
        finally:
            os.kill(mongo.pid, signal.SIGCONT)
        first_refused = answers.index(503)
        # each message counts 1024 bytes + 4 a character: about 50 fit in 100000
        assert 30 <= first_refused <= 80, answers
        assert set(answers[first_refused:]) == {503}, answers  # refused until MongoDB takes some
        assert len(acked) == 1 + first_refused
        # the reader got exactly the acked ones
        got = [f["data"]["msgId"] for f in b.chats(count=len(acked), timeout=10)]
        assert got == acked
        # recovery by itself
        wait_until(lambda: post("after") == "ack", 30, "a message accepted after MongoDB is back", interval=0.5)
        client = pymongo.MongoClient(cluster.mongo_url, serverSelectionTimeoutMS=5000)
        db = client.get_default_database()
        wait_until(lambda: db.messages.count_documents({"_id": {"$in": [ObjectId(i) for i in acked]}})
                   == len(acked), 30, "every acked message stored")
        client.close()
    finally:
        cluster.stop()
