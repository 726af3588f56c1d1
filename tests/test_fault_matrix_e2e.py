"""The fault matrix: three real nodes and the gateway under chat traffic while
a store or a node fails in one of several shapes, asserted from what users see.

Six users (two per node) chat all the time, directly (each with a partner on
another node) and in ``room1``, like a real client: with the ``ack`` and
``resume`` features, sending again what got an error or no answer, and
reconnecting through the gateway (with ``resume``) when their connection
breaks. For each shape we count messages sent, acked, delivered (to recipients
that stayed connected), stored in MongoDB, delivered twice to one connection,
and the longest time a user got no ack; and we assert:

* nothing acked is missing from MongoDB,
* no connection gets a message id twice,
* every recipient that stayed connected on a live node got every acked
  message meant for it,
* every node and the gateway recover by themselves: after the fault ends a
  chat is acked on every live node and ``GET /server`` answers 200 within a
  bounded time.

The figures are printed (``pytest -s``) and are what docs/operations.md's
fault table shows. Two clusters: one whose stores are broken, one whose
ZooKeeper and nodes are.
"""
import itertools
import json
import time
from collections import Counter

import pymongo
import websocket
from bson import ObjectId

from tests.harness import ChatCluster, WsClient, wait_until
from tests.traffic import ReconnectingUser, Traffic

SESSION_TIMEOUT = 2.0
STORE_TIMEOUT = 1.0
SEND_EVERY = 0.3       # seconds between two messages of one user
NO_ANSWER = 5.0        # a request without answer for this long is sent again
RECOVERY_BOUND = 30.0  # seconds after the fault ends by which everything serves again
ROOM = "room1"


class Message:
    __slots__ = ("key", "sender", "to", "room", "text", "first_sent", "sent_at", "msg_id", "acked_at")

    def __init__(self, key, sender, to, room, text, now):
        self.key, self.sender, self.to, self.room, self.text = key, sender, to, room, text
        self.first_sent = self.sent_at = now
        self.msg_id = None
        self.acked_at = None


class Chatter(ReconnectingUser):
    """One user as a real client would be; driven by L{Traffic}'s thread
    (C{pending}: request id -> Message waiting for its answer; C{retry}:
    Messages to send again)."""

    def __init__(self, cluster, username, partner, node):
        super().__init__(cluster)
        self.username = username
        self.partner = partner
        self.node = node
        self.by_request = {}    # every request id -> Message (late acks count too)
        self.messages = []      # every Message of this user
        self.received = Counter()  # msgId -> times, this connection
        self.got = set()        # msgIds received on any connection
        self.duplicates = 0
        self.seqs = {"rooms": {}, "conversations": {}}
        self.last_send = 0.0
        self.last_ack = None
        self.longest_without_ack = 0.0
        self.broken = False     # its connection broke during the current shape
        self.counter = itertools.count()
        self.sending = True
        self.log = []

    # -- connection ----------------------------------------------------------

    def connect(self, port=None, resume=False):
        client = self.login(port)
        try:
            if resume:
                client.send("resume", self.seqs)
        except Exception:
            client.close()
            raise
        self.client = client
        self.received = Counter()

    def reconnect(self):
        self.connect(resume=True)

    def lost(self, now):
        super().lost(now)
        self.broken = True

    def _send(self, now):
        for request_id, message in list(self.pending.items()):
            if now - message.sent_at > NO_ANSWER:
                del self.pending[request_id]
                self.retry.append(message)
        if self.pending or now - self.last_send < SEND_EVERY:
            return
        if self.retry:
            message = self.retry.pop(0)
        elif self.sending:
            n = next(self.counter)
            room = n % 2 == 1
            message = Message(f"{self.username}-{n}", self.username, None if room else self.partner,
                              ROOM if room else None, f"{self.username} says {n}", now)
            self.messages.append(message)
        else:
            return
        data = {"message": message.text}
        if message.room:
            data.update(roomName=message.room, isGroup=True)
        else:
            data["to"] = message.to
        message.sent_at = self.last_send = now
        request_id = self.client.send("chat", data)
        self.pending[request_id] = message
        self.by_request[request_id] = message

    def _read(self):
        client = self.client
        while client._read(0.002) is not None:
            pass
        frames, client.frames = client.frames, []
        now = time.monotonic()
        for frame in frames:
            action, data = frame.get("action"), frame.get("data") or {}
            if action == "ack":
                message = self.by_request.get(frame.get("re"))
                self.pending.pop(frame.get("re"), None)
                if message is not None and message.msg_id is None:
                    message.msg_id, message.acked_at = data["msgId"], now
                    if message in self.retry:
                        self.retry.remove(message)
                    if not message.room:
                        self._seen("conversations", message.to, data["seq"])
                    self._acked(now)
            elif action == "error" and frame.get("re") in self.pending:
                message = self.pending.pop(frame["re"])
                self.retry.append(message)
            elif action == "chat":
                msg_id = data["msgId"]
                self.received[msg_id] += 1
                if self.received[msg_id] > 1:
                    self.duplicates += 1
                self.got.add(msg_id)
                self.log.append((round(now, 2), data.get("roomName"), data.get("from"), data.get("seq"), msg_id))
                if data.get("roomName"):
                    self._seen("rooms", data["roomName"], data["seq"])
                else:
                    self._seen("conversations", data["from"], data["seq"])

    def _seen(self, kind, name, seq):
        known = self.seqs[kind]
        known[name] = max(known.get(name, 0), seq)

    def _acked(self, now):
        if self.last_ack is not None:
            self.longest_without_ack = max(self.longest_without_ack, now - self.last_ack)
        self.last_ack = now

    def start_shape(self, now):
        self.broken = self.client is None
        self.longest_without_ack = 0.0
        self.last_ack = now
        self.first = len(self.messages)


def gateway_ok(cluster):
    try:
        return cluster.gateway_get("/server")[0] == 200
    except OSError:
        return False


def probe(cluster, node):
    """A chat is acked on C{node} (a fresh connection of a user of its own)."""
    try:
        client = WsClient(cluster.port(node), timeout=3)
    except OSError:
        return False
    try:
        frame = client.request("login", {"username": f"user{20 - int(node[-1])}", "features": ["ack"]}, timeout=3)
        if frame["action"] != "login":
            return False
        if client.request("joinRoom", {"roomName": "room2"}, timeout=3)["action"] != "joinRoom":
            return False
        frame = client.request("chat", {"roomName": "room2", "isGroup": True, "message": "probe"}, timeout=3)
        return frame["action"] == "ack"
    except (AssertionError, OSError, websocket.WebSocketException):
        return False
    finally:
        client.close()


class Matrix:
    """One cluster under traffic; :meth:`shape` runs one fault and measures it."""

    def __init__(self, cluster):
        self.cluster = cluster
        nodes = sorted(cluster.nodes)
        self.chatters = []
        for i in range(6):
            node = nodes[i % 3]
            partner = f"user{(i + 1) % 6 + 1}"  # on the next node
            self.chatters.append(Chatter(cluster, f"user{i + 1}", partner, node))
        for chatter in self.chatters:
            chatter.connect(port=cluster.port(chatter.node))
            frame = chatter.client.request("joinRoom", {"roomName": ROOM}, timeout=5)
            assert frame["action"] == "joinRoom", frame
            chatter.client.frames.clear()
        self.traffic = Traffic(self.chatters)
        self.rows = []

    def live_nodes(self):
        return [n for n, p in self.cluster.nodes.items() if p.running]

    def shape(self, name, fault, warm=1.5, settle=1.5):
        """Run C{fault()} (it returns once the fault is over) under traffic."""
        with self.traffic.lock:
            now = time.monotonic()
            for chatter in self.chatters:
                chatter.start_shape(now)
                chatter.sending = True
        time.sleep(warm)
        fault()
        ended = time.monotonic()
        wait_until(lambda: gateway_ok(self.cluster), RECOVERY_BOUND, f"{name}: GET /server answering 200")

        def everyone_acked():
            with self.traffic.lock:
                return all(c.last_ack is not None and c.last_ack > ended for c in self.chatters)

        wait_until(everyone_acked, RECOVERY_BOUND, f"{name}: every user's chats acked again")
        for node in self.live_nodes():
            wait_until(lambda: probe(self.cluster, node), RECOVERY_BOUND, f"{name}: a chat acked on {node}")
        recovered = time.monotonic() - ended
        time.sleep(settle)
        with self.traffic.lock:
            for chatter in self.chatters:
                chatter.sending = False
        row = self.check(name, recovered)
        self.rows.append(row)
        print(json.dumps(row))
        return row

    def _expected(self):
        """(message, recipient chatter) for every acked message of this shape
        whose recipient stayed connected."""
        by_name = {c.username: c for c in self.chatters}
        pairs = []
        for chatter in self.chatters:
            for message in chatter.messages[chatter.first:]:
                if message.msg_id is None:
                    continue
                recipients = self.chatters if message.room else [by_name[message.to]]
                pairs.extend((message, r) for r in recipients if not r.broken)
        return pairs

    def check(self, name, recovered):
        def all_delivered():
            with self.traffic.lock:
                return all(m.msg_id in r.got for m, r in self._expected())

        def all_answered():
            with self.traffic.lock:
                return not any(c.pending for c in self.chatters)

        # what is still in flight arrives (the router retries for a while)
        try:
            wait_until(lambda: all_answered() and all_delivered(), 25, f"{name}: deliveries")
        except AssertionError:
            pass
        with self.traffic.lock:
            messages = [m for c in self.chatters for m in c.messages[c.first:]]
            acked = [m for m in messages if m.msg_id is not None]
            expected = self._expected()
            missing = [(m.msg_id, m.text, r.username) for m, r in expected if m.msg_id not in r.got]
            duplicates = sum(c.duplicates for c in self.chatters)
            for c in self.chatters:
                c.duplicates = 0
            longest = max(c.longest_without_ack for c in self.chatters)
            broken = sorted(c.username for c in self.chatters if c.broken)
        ids = [ObjectId(m.msg_id) for m in acked]
        client = pymongo.MongoClient(self.cluster.mongo_url, serverSelectionTimeoutMS=5000)
        try:
            db = client.get_default_database()

            def stored():
                return {str(d["_id"]) for d in db.messages.find({"_id": {"$in": ids}}, {"_id": 1})}

            try:
                wait_until(lambda: len(stored()) == len(ids), 30, f"{name}: acked messages stored in MongoDB")
            except AssertionError:
                lost = sorted(m.msg_id for m in acked if m.msg_id not in stored())
                raise AssertionError(f"{name}: {len(lost)} of {len(ids)} acked messages not in MongoDB: {lost[:10]}")
            in_mongo = len(stored())
        finally:
            client.close()
        row = {
            "shape": name,
            "sent": len(messages),
            "acked": len(acked),
            "delivered": len(expected) - len(missing),
            "expected": len(expected),
            "stored": in_mongo,
            "duplicated": duplicates,
            "longest_no_ack_s": round(longest, 1),
            "recovered_s": round(recovered, 1),
            "reconnected": broken,
        }
        if duplicates or missing:
            dump = {c.username: {"log": c.log, "sent": [(m.text, m.msg_id, m.first_sent, m.acked_at) for m in c.messages]}
                    for c in self.chatters}
            (self.cluster.root / "traffic.json").write_text(json.dumps(dump))
        assert duplicates == 0, row
        assert not missing, (row, missing[:10])
        return row


def test_store_faults_under_traffic(tmp_path, services):
    redis, mongo = services.redis(), services.mongo()
    zookeeper = services.zookeeper()
    cluster = ChatCluster(tmp_path, redis, zookeeper, mongo, nodes=3, session_timeout=SESSION_TIMEOUT,
                          extra_args=["--rate-limit", "0", "--store-timeout", str(STORE_TIMEOUT)]).start()
    paused = []
    try:
        matrix = Matrix(cluster)
        with matrix.traffic:

            def redis_stall():
                redis.pause()
                paused.append(redis)
                time.sleep(STORE_TIMEOUT * 3)
                redis.resume()

            def redis_stall_kill_restart():
                redis.pause()
                time.sleep(STORE_TIMEOUT * 3)
                redis.kill()
                redis.start()

            def redis_kill_restart():
                redis.kill()
                redis.start()

            def mongo_down():
                mongo.kill()
                time.sleep(10)
                mongo.start()

            matrix.shape("redis stall 3 s", redis_stall)
            matrix.shape("redis stall 3 s, kill, restart empty", redis_stall_kill_restart)
            matrix.shape("redis kill, restart empty", redis_kill_restart)
            matrix.shape("mongodb down 10 s", mongo_down)
    finally:
        for server in paused:
            server.resume()
        cluster.stop()


def test_cluster_faults_under_traffic(tmp_path, services, redis_server, mongo_server):
    zookeeper = services.zookeeper()
    cluster = ChatCluster(tmp_path, redis_server, zookeeper, mongo_server, nodes=3, session_timeout=SESSION_TIMEOUT,
                          extra_args=["--rate-limit", "0", "--store-timeout", str(STORE_TIMEOUT)]).start()
    paused = []
    try:
        matrix = Matrix(cluster)
        with matrix.traffic:

            def zookeeper_pause():
                zookeeper.pause()
                paused.append(zookeeper)
                time.sleep(SESSION_TIMEOUT * 3)
                zookeeper.resume()

            def kill(leader):
                def fault():
                    current = cluster.leader()
                    node = current if leader else next(n for n in sorted(cluster.nodes) if n != current)
                    cluster.nodes[node].kill()
                    matrix.killed = node
                return fault

            matrix.shape(f"zookeeper paused {SESSION_TIMEOUT * 3:.0f} s (session timeout {SESSION_TIMEOUT:.0f} s)",
                         zookeeper_pause)
            matrix.shape("follower kill -9", kill(leader=False))
            cluster.start_node(matrix.killed)
            cluster.wait_for_nodes(3)
            matrix.shape("leader kill -9", kill(leader=True))
    finally:
        for server in paused:
            server.resume()
        cluster.stop()
