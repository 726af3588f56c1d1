"""Nodes coming and going under room traffic: three real nodes and the
gateway; members of two rooms spread over the nodes, six of them posting
all the time (``ack`` and ``resume``, sending again what got no ack,
reconnecting through the gateway with ``resume`` when their connection
breaks). Meanwhile a fourth node starts and new members log in on it, the
leader is killed (``kill -9``) and another node is stopped (SIGTERM).

Asserted for every member, from what their connections got (live and
replayed): every message acked to its sender after the member joined
arrived, none twice, and on each connection each room in seq order; the
new node delivered its share. The counts are printed (``pytest -s``).
"""
import itertools
import json
import time
from collections import Counter


from tests.harness import ChatCluster, wait_until
from tests.traffic import ReconnectingUser, Traffic

ROOMS = ("room1", "room2")
SEND_EVERY = 0.1
NO_ANSWER = 5.0
SETTLE = 60.0


class Member(ReconnectingUser):
    """One user in both rooms, as a real client would be (C{pending}:
    request id -> [text, room, sent at]; C{retry}: those to send again)."""

    def __init__(self, cluster, username, sends):
        super().__init__(cluster)
        self.username = username
        self.sends = sends
        self.node = None
        self.joined_after = {}  # room -> the seq the join's history ended at
        self.last = {room: 0 for room in ROOMS}  # room -> last seq seen (for resume)
        self.received = Counter()  # msgId -> times, over every connection
        self.out_of_order = []
        self.conn_last = {}  # room -> last seq on this connection
        self.connections = 0
        self.acked = []  # (room, seq, msgId)
        self.counter = itertools.count()
        self.last_send = 0.0
        self.sending = True

    def connect(self, port=None, join=False):
        client = self.login(port)
        self.client, self.conn_last = client, {}
        self.connections += 1
        try:
            if join:
                for room in ROOMS:
                    answer = client.request("joinRoom", {"roomName": room}, timeout=5)
                    assert answer["action"] == "joinRoom", answer
                    history = [f["data"]["seq"] for f in client.frames if f["action"] == "chat"
                               and f["data"]["roomName"] == room]
                    self.joined_after[room] = max(history, default=0)
                    self.last[room] = self.joined_after[room]
                    client.frames = [f for f in client.frames if f["action"] != "chat"]
            else:
                client.send("resume", {"rooms": dict(self.last)})
        except Exception:
            client.close()
            self.client = None
            raise

    def _send(self, now):
        for request_id, item in list(self.pending.items()):
            if now - item[2] > NO_ANSWER:
                del self.pending[request_id]
                self.retry.append(item)
        if not self.sends or self.pending or now - self.last_send < SEND_EVERY:
            return
        if self.retry:
            item = self.retry.pop(0)
        elif self.sending:
            n = next(self.counter)
            item = [f"{self.username} says {n}", ROOMS[n % 2], now]
        else:
            return
        item[2] = self.last_send = now
        request_id = self.client.send("chat", {"roomName": item[1], "isGroup": True, "message": item[0]})
        self.pending[request_id] = item

    def _read(self):
        client = self.client
        while client._read(0.002) is not None:
            pass
        frames, client.frames = client.frames, []
        for frame in frames:
            action, data = frame.get("action"), frame.get("data") or {}
            if action == "ack":
                item = self.pending.pop(frame.get("re"), None)
                if item is not None:
                    self.acked.append((item[1], data["seq"], data["msgId"]))
            elif action == "error" and frame.get("re") in self.pending:
                self.retry.append(self.pending.pop(frame["re"]))
            elif action == "chat" and data.get("roomName") in ROOMS:
                room, seq = data["roomName"], data["seq"]
                self.received[data["msgId"]] += 1
                if seq <= self.conn_last.get(room, 0):
                    self.out_of_order.append((room, self.conn_last[room], seq))
                self.conn_last[room] = seq
                self.last[room] = max(self.last[room], seq)


def test_nodes_join_die_and_stop_under_room_traffic(tmp_path, services, redis_server, mongo_server):
    zookeeper = services.zookeeper()
    cluster = ChatCluster(tmp_path, redis_server, zookeeper, mongo_server, nodes=3, session_timeout=2.0,
                          extra_args=["--rate-limit", "0"]).start(users=20, rooms=2)
    try:
        members = [Member(cluster, f"user{i}", sends=i <= 6) for i in range(1, 13)]
        for i, member in enumerate(members):
            member.connect(port=cluster.port(f"node{i % 3 + 1}"), join=True)
        traffic = Traffic(list(members))
        traffic.start()
        try:
            time.sleep(2)
            # a fourth node joins; new members log in there
            cluster.start_node("node4")
            cluster.wait_for_nodes(4)
            late = [Member(cluster, f"user{i}", sends=i == 13) for i in range(13, 17)]
            for member in late:
                with traffic.lock:
                    member.connect(port=cluster.port("node4"), join=True)
                traffic.add(member)
            time.sleep(2)
            # the leader dies
            leader = cluster.leader()
            assert leader == "node1"
            cluster.nodes["node1"].kill()
            time.sleep(3)
            # another node stops
            cluster.nodes["node2"].stop()
            time.sleep(3)
            with traffic.lock:
                for member in traffic.users:
                    member.sending = False

            def settled():
                with traffic.lock:
                    return all(not m.pending and not m.retry for m in traffic.users) and all(
                        msg_id in m.received for m in traffic.users for msg_id in expected(traffic.users, m))

            wait_until(settled, SETTLE, "every acked message at every member")
            time.sleep(1)  # anything doubled would arrive now
        finally:
            traffic.halt.set()
            traffic.join(10)
        everyone = traffic.users
        acked = [a for m in everyone for a in m.acked]
        summary = {
            "acked": len(acked),
            "delivered": sum(sum(m.received.values()) for m in everyone),
            "expected deliveries": sum(len(expected(everyone, m)) for m in everyone),
            "duplicated": sum(n - 1 for m in everyone for n in m.received.values() if n > 1),
            "out of order": sum(len(m.out_of_order) for m in everyone),
            "reconnections": sum(m.connections - 1 for m in everyone),
        }
        print(json.dumps(summary))
        assert len({msg_id for _, _, msg_id in acked}) == len(acked) > 300
        for member in everyone:
            missing = expected(everyone, member) - set(member.received)
            assert not missing, f"{member.username}: {len(missing)} acked messages never arrived"
            assert not [n for n in member.received.values() if n > 1], f"{member.username}: got some twice"
            assert not member.out_of_order, f"{member.username}: {member.out_of_order[:5]}"
        # the new node served its members the whole time
        assert all(m.connections == 1 and m.node == "node4" for m in late)
        for member in late:
            member.client.close()
        for member in members:
            if member.client is not None:
                member.client.close()
    finally:
        cluster.stop()


def expected(everyone, member):
    """The msgIds of the acked messages meant for C{member}: every room
    message acked after its join's history."""
    return {msg_id for m in everyone for room, seq, msg_id in m.acked if seq > member.joined_after[room]}
