"""Redis without a single point of failure: two real nodes and the gateway
on a Redis Sentinel group (primary, replica, three sentinels), chat traffic,
and ``kill -9`` of the primary, after the replica stopped receiving its
writes for a moment (as the tail of an asynchronous replication does): the
seqs taken then are lost with the primary.

Four users (two per node) send, one at a time and with the ``ack`` feature,
direct messages to a partner on the other node and messages to a room they
joined; what gets an error or no answer is sent again. After the primary is
killed, the sentinels promote the replica; the cluster must go on by itself
(every user's chats acked again, ``GET /server`` answering 200, within a
bound) and no seq may be given twice in any channel: neither in the acks nor
in MongoDB.
"""
import json
import time
from collections import defaultdict

import pymongo
import websocket

from chatnet.domain.messages import dm_channel, room_channel
from tests.harness import ChatCluster, WsClient, wait_until
from tests.sentinel import SentinelGroup
from tests.traffic import Traffic

ROOM = "room1"
SEND_EVERY = 0.05
NO_ANSWER = 5.0
RECOVERY_BOUND = 30.0


class User:
    """One user on one node: one chat in flight at a time."""

    def __init__(self, cluster, username, partner, node):
        self.cluster = cluster
        self.username = username
        self.partner = partner
        self.node = node
        self.client = None
        self.pending = None  # (request id, channel, sent at)
        self.count = 0
        self.last_send = 0.0
        self.acks = []  # (monotonic time, channel, seq, msgId)
        self.errors = 0
        self.reconnects = 0
        self.sending = True

    def connect(self):
        client = WsClient(self.cluster.port(self.node), timeout=5)
        try:
            frame = client.request("login", {"username": self.username, "features": ["ack"]}, timeout=5)
            assert frame["action"] == "login", frame
            frame = client.request("joinRoom", {"roomName": ROOM}, timeout=5)
            assert frame["action"] == "joinRoom", frame
        except BaseException:
            client.close()
            raise
        client.frames.clear()
        self.client = client

    def step(self, now):
        if self.client is None or self.client.closed:
            if self.client is not None:
                self.client.close()
                self.client = None
                self.reconnects += 1
            try:
                self.connect()
            except (AssertionError, OSError, websocket.WebSocketException):
                return
            self.pending = None
        try:
            self._read(now)
            self._send(now)
        except (OSError, websocket.WebSocketException):
            self.client.closed = self.client.closed or (1006, "")

    def _send(self, now):
        if self.pending and now - self.pending[2] > NO_ANSWER:
            self.pending = None  # sent again: a new message
        if self.pending or not self.sending or now - self.last_send < SEND_EVERY:
            return
        self.count += 1
        text = f"{self.username} says {self.count}"
        if self.count % 2:
            data, channel = {"roomName": ROOM, "isGroup": True, "message": text}, room_channel(ROOM)
        else:
            data, channel = {"to": self.partner, "message": text}, dm_channel(self.username, self.partner)
        self.pending = (self.client.send("chat", data), channel, now)
        self.last_send = now

    def _read(self, now):
        while self.client._read(0.001) is not None:
            pass
        frames, self.client.frames = self.client.frames, []
        for frame in frames:
            action, data = frame.get("action"), frame.get("data") or {}
            if self.pending is None or frame.get("re") != self.pending[0]:
                continue
            if action == "ack":
                self.acks.append((now, self.pending[1], data["seq"], data["msgId"]))
                self.pending = None
            elif action == "error":
                self.errors += 1
                self.pending = None


def gateway_ok(cluster):
    try:
        return cluster.gateway_get("/server")[0] == 200
    except OSError:
        return False


def test_the_cluster_goes_on_after_the_primary_is_killed(tmp_path, zookeeper_server, mongo_server):
    group = SentinelGroup(tmp_path / "sentinel").start()
    cluster = ChatCluster(tmp_path, group.primary, zookeeper_server, mongo_server, nodes=2, session_timeout=2.0,
                          extra_args=["--rate-limit", "0", "--store-timeout", "1"], redis_url=group.url(db=0))
    traffic = None
    try:
        cluster.start()
        processes = [*cluster.nodes.values(), cluster.gateway]
        users = [User(cluster, "user1", "user3", "node1"), User(cluster, "user2", "user4", "node1"),
                 User(cluster, "user3", "user1", "node2"), User(cluster, "user4", "user2", "node2")]
        for user in users:
            user.connect()
        traffic = Traffic(users)
        traffic.start()

        def acked_since(moment, count=1):
            with traffic.lock:
                return all(sum(1 for a in u.acks if a[0] > moment) >= count for u in users)

        wait_until(lambda: acked_since(0, 10), 30, "every user's first chats acked")
        # the replica falls behind: the seqs taken from now on are acked
        # (and stored in MongoDB) but never reach it
        group.cut_replication()
        cut = time.monotonic()
        wait_until(lambda: acked_since(cut, 5), 30, "every user's chats acked while the replica is behind")
        marks = [p.log_mark() for p in processes]
        killed = time.monotonic()
        group.primary.kill()
        group.wait_for_master(group.replica, timeout=RECOVERY_BOUND)
        promoted = time.monotonic()
        wait_until(lambda: acked_since(killed, 5), RECOVERY_BOUND, "every user's chats acked again after the failover")
        wait_until(lambda: gateway_ok(cluster), RECOVERY_BOUND, "GET /server answering 200")
        recovered = time.monotonic()
        with traffic.lock:
            for user in users:
                user.sending = False
        wait_until(lambda: all(u.pending is None for u in users), 15, "the last chats answered")
        traffic.stop()

        acks = [a for u in users for a in u.acks]
        seqs = defaultdict(lambda: defaultdict(set))  # channel -> seq -> msgIds
        for _, channel, seq, msg_id in acks:
            seqs[channel][seq].add(msg_id)
        given_twice = {ch: {s: ids for s, ids in by_seq.items() if len(ids) > 1} for ch, by_seq in seqs.items()}
        given_twice = {ch: d for ch, d in given_twice.items() if d}
        assert not given_twice, f"seqs acked for more than one message: {given_twice}"

        client = pymongo.MongoClient(cluster.mongo_url, serverSelectionTimeoutMS=5000)
        try:
            db = client.get_default_database()
            ids = {a[3] for a in acks}

            def stored():
                return list(db.messages.find({"channel": {"$in": list(seqs)}}, {"_id": 1, "channel": 1, "seq": 1}))

            wait_until(lambda: ids <= {str(d["_id"]) for d in stored()}, 30, "every acked message in MongoDB")
            in_mongo = defaultdict(lambda: defaultdict(set))
            for doc in stored():
                in_mongo[doc["channel"]][doc["seq"]].add(str(doc["_id"]))
            twice = {ch: {s: ids for s, ids in by_seq.items() if len(ids) > 1} for ch, by_seq in in_mongo.items()}
            twice = {ch: d for ch, d in twice.items() if d}
            assert not twice, f"seqs stored for more than one message: {twice}"
        finally:
            client.close()

        # the first process to connect to the promoted replica (a node or the
        # gateway) noticed the new data set: every counter was restored
        noticed = [p.name for p, mark in zip(processes, marks)
                   if "a new data set" in _log_since(p, mark)]
        assert noticed, "no process noticed the new data set"
        print(json.dumps({
            "acked": len(acks),
            "acked_unreplicated": sum(1 for a in acks if cut < a[0] <= killed),
            "acked_after_kill": sum(1 for a in acks if a[0] > killed),
            "errors": sum(u.errors for u in users),
            "reconnects": sum(u.reconnects for u in users),
            "noticed_by": noticed,
            "promoted_after_s": round(promoted - killed, 1),
            "recovered_after_s": round(recovered - killed, 1),
            "longest_without_ack_s": round(max(_longest_gap(u.acks) for u in users), 1),
            "channels": {ch: [min(by_seq), max(by_seq), len(by_seq)] for ch, by_seq in seqs.items()},
        }))
    finally:
        if traffic is not None and traffic.is_alive():
            traffic.stop()
        cluster.stop()
        group.stop()


def _log_since(process, mark):
    from devtools.localservices import _read_log_since

    return _read_log_since(process.log_path, mark).decode("utf-8", "replace")


def _longest_gap(acks):
    times = sorted(a[0] for a in acks)
    return max((b - a for a, b in zip(times, times[1:])), default=0.0)
