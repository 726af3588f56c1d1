"""Clients that stop reading, against a real node: 100 members of a busy room
connect with a small receive buffer (SO_RCVBUF), log in and never read
again, while others post 2 KB messages to it at full speed. The node closes
each stalled connection (4008, or the TCP end after it: a client that does
not read never sees the close frame) once its backlog passes
--max-client-backlog (1 MiB by default), counts them
(chatnet_slow_client_disconnects_total), grows by at most 64 MiB while they
pile up, keeps answering, and every member that reads gets every message;
a stalled one that comes back resumes what it missed."""
import json
import socket
import struct
import threading
import time
import urllib.request

import pytest
import websocket

from devtools.localservices import free_port
from tests.harness import ChatCluster, WsClient, wait_until

STALLED = 100
PER_POSTER = 600
ROOM2_EVERY = 100  # every 100th message of a poster goes to room2
BUSY = 2 * (PER_POSTER - PER_POSTER // ROOM2_EVERY)  # messages to the busy room
TEXT = ("lorem ipsum dolor sit amet " * 80)[:2000]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, redis_server, zookeeper_server, mongo_server):
    metrics_port = free_port()
    c = ChatCluster(
        tmp_path_factory.mktemp("cluster"), redis_server, zookeeper_server, mongo_server, nodes=1,
        # the kernel's send buffer fixed at 128 KiB (it would otherwise grow
        # to 4 MiB for each stalled client before the node holds anything)
        extra_args=["--rate-limit", "0", "--client-send-buffer", "131072",
                    "--metrics", f"tcp:{metrics_port}:interface=127.0.0.1"],
    )
    c.metrics_port = metrics_port
    c.start(users=STALLED + 20)
    yield c
    c.stop()


def rss_bytes(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def metric(cluster, name):
    text = urllib.request.urlopen(f"http://127.0.0.1:{cluster.metrics_port}/metrics", timeout=10).read().decode()
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


class Stalled:
    """A raw WebSocket client with a 4 KiB receive buffer that logs in, maybe
    joins a room, and then never reads again."""

    def __init__(self, port, username, join=None, features=()):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.settimeout(15)
        self.sock.connect(("127.0.0.1", port))
        self.sock.sendall(
            (f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        self.buffer = b""
        while b"\r\n\r\n" not in self.buffer:
            self.buffer += self.sock.recv(4096)
        self.buffer = self.buffer.split(b"\r\n\r\n", 1)[1]
        self.request(1, "login", {"username": username, "features": list(features)})
        if join:
            self.request(2, "joinRoom", {"roomName": join})

    def request(self, request_id, action, data):
        payload = json.dumps({"id": request_id, "action": action, "data": data}).encode()
        assert len(payload) < 126
        self.sock.sendall(bytes([0x81, 0x80 | len(payload)]) + b"\0\0\0\0" + payload)  # a zero mask
        while True:
            opcode, body = self.frame()
            if opcode == 0x1 and json.loads(body).get("re") == request_id:
                assert json.loads(body)["action"] == action, body
                return

    def frame(self):
        while True:
            if len(self.buffer) >= 2:
                n, start = self.buffer[1] & 0x7F, 2
                if n == 126 and len(self.buffer) >= 4:
                    n, start = struct.unpack("!H", self.buffer[2:4])[0], 4
                elif n == 127 and len(self.buffer) >= 10:
                    n, start = struct.unpack("!Q", self.buffer[2:10])[0], 10
                if n < 126 or start > 2:
                    if len(self.buffer) >= start + n:
                        opcode, body = self.buffer[0] & 0x0F, self.buffer[start:start + n]
                        self.buffer = self.buffer[start + n:]
                        return opcode, body
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("end of stream")
            self.buffer += data

    def ended(self):
        """Read what is left: the close code if a close frame came, else
        None; returns once the node ended the TCP connection."""
        code = None
        try:
            while True:
                opcode, body = self.frame()
                if opcode == 0x8:
                    code = struct.unpack("!H", body[:2])[0]
        except ConnectionError:  # the end, or a reset
            return code


class Member(threading.Thread):
    """A member that reads everything; a poster also sends its messages
    (with acks), in batches, reading between them."""

    def __init__(self, port, username, post=0):
        super().__init__(daemon=True)
        self.ws = websocket.create_connection(f"ws://127.0.0.1:{port}/", timeout=30)
        self.username = username
        self.post = post
        self.seen = set()  # msgIds of the busy room's messages
        self.sent = {}  # request id -> room
        self.acked = []  # (room, msgId, seq)
        self.closed = None
        self.error = None
        self._call(1, "login", {"username": username, "features": ["ack"]})
        self._call(2, "joinRoom", {"roomName": "room1"})
        if post:
            self._call(3, "joinRoom", {"roomName": "room2"})

    def _call(self, request_id, action, data):
        self.ws.send(json.dumps({"id": request_id, "action": action, "data": data}))
        while True:
            frame = self._read()
            if frame.get("re") == request_id:
                assert frame["action"] == action, frame
                return frame

    def _read(self):
        opcode, payload = self.ws.recv_data()
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            self.closed = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
            raise AssertionError(f"{self.username} closed with {self.closed}")
        frame = json.loads(payload)
        if frame.get("action") == "chat" and frame["data"].get("roomName") == "room1":
            self.seen.add(frame["data"]["msgId"])
        elif frame.get("action") == "ack":
            self.acked.append((self.sent[frame["re"]], frame["data"]["msgId"], frame["data"]["seq"]))
        return frame

    def run(self):
        try:
            for batch in range(0, self.post, 25):
                for i in range(batch, min(self.post, batch + 25)):
                    room = "room2" if i % ROOM2_EVERY == 0 else "room1"
                    self.sent[100 + i] = room
                    self.ws.send(json.dumps({"id": 100 + i, "action": "chat", "data": {
                        "roomName": room, "isGroup": True, "message": f"{self.username} {i} {room} {TEXT}"}}))
                while len(self.acked) < min(self.post, batch + 25):
                    self._read()
            while len(self.seen) < BUSY:
                self._read()
        except Exception as e:  # reported by the test
            self.error = e


def test_stalled_members_are_closed_readers_get_everything_and_the_node_answers(cluster):
    port = cluster.port("node1")
    pid = cluster.nodes["node1"].pid
    users = [f"user{i}" for i in range(21, 21 + STALLED)]
    # one stalled member comes back later: it is also in room2, which gets
    # a few messages while it is stalled
    stalled = [Stalled(port, users[0], join="room1", features=["resume"])]
    stalled[0].request(3, "joinRoom", {"roomName": "room2"})
    stalled += [Stalled(port, u, join="room1") for u in users[1:]]
    posters = [Member(port, f"user{i}", post=PER_POSTER) for i in (1, 2)]
    readers = [Member(port, f"user{i}") for i in (3, 4)]
    before = rss_bytes(pid)
    peak = [before]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], rss_bytes(pid))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    for member in readers + posters:
        member.start()
    for member in readers + posters:
        member.join(300)
    done.set()
    sampler.join()
    for member in readers + posters:
        assert member.error is None, (member.username, member.error)
    acked_busy = {msg_id for p in posters for room, msg_id, seq in p.acked if room == "room1"}
    assert len(acked_busy) == BUSY
    for member in readers + posters:
        assert member.seen == acked_busy, member.username  # every member that reads gets every message
    growth = peak[0] - before
    assert growth <= 64 * 1024 * 1024, f"node RSS grew by {growth / 2**20:.1f} MiB"
    # every stalled connection was closed: 4008, or the end after it
    wait_until(lambda: metric(cluster, "chatnet_slow_client_disconnects_total") >= STALLED, 30,
               "every stalled connection counted as too slow")
    for s in stalled:
        assert s.ended() in (None, 4008)
        s.sock.close()
    # the node answers
    fresh = cluster.client(username="user5")
    assert fresh.request("popular", {"n": 1})["action"] == "popular"
    # the stalled member that comes back resumes room2 whole
    room2 = sorted(seq for p in posters for room, msg_id, seq in p.acked if room == "room2")
    back = WsClient(port)
    back.login(users[0], features=["resume"])
    answer = back.request("resume", {"rooms": {"room2": room2[0] - 1}})
    assert answer["action"] == "resume", answer
    assert answer["data"]["replayed"] == len(room2) and not answer["data"]["tooOld"], answer
    assert "Traceback" not in cluster.nodes["node1"].log_path.read_text()
