"""How connections end, against a real node: the documented close codes for a
frame over the size limit (1009) and for invalid UTF-8 (1007), each with a
closing handshake rather than a TCP reset, and a client that closes is
answered with a close frame and is offline at once, however its close
crosses the requests still in hand."""
import base64
import json
import os
import socket
import struct
import time

import pytest

from tests.harness import ChatCluster

FRAME_LIMIT = 4096


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, redis_server, zookeeper_server, mongo_server):
    c = ChatCluster(
        tmp_path_factory.mktemp("cluster"), redis_server, zookeeper_server, mongo_server,
        nodes=1, extra_args=["--rate-limit", "0", "--max-frame-bytes", str(FRAME_LIMIT)],
    )
    c.start()
    yield c
    c.stop()


class RawClient:
    """A WebSocket client written out by hand: it sends any frame and reads
    the server's frames, close frames included, off the socket."""

    def __init__(self, port, timeout=10.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            (f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode()
        )
        self.buffer = b""
        while b"\r\n\r\n" not in self.buffer:
            self.buffer += self._recv()
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 101"), head

    def _recv(self):
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("the server closed the TCP connection")
        return data

    def _exactly(self, n):
        while len(self.buffer) < n:
            self.buffer += self._recv()
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    def send_frame(self, opcode, payload, length=None):
        """One masked frame; C{length} (default: the payload's) is what the header says."""
        length = len(payload) if length is None else length
        header = bytes([0x80 | opcode])
        if length < 126:
            header += bytes([0x80 | length])
        elif length < 65536:
            header += bytes([0x80 | 126]) + struct.pack("!H", length)
        else:
            header += bytes([0x80 | 127]) + struct.pack("!Q", length)
        mask = os.urandom(4)
        self.sock.sendall(header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    def read_frame(self):
        first, second = self._exactly(2)
        length = second & 0x7F
        if length == 126:
            (length,) = struct.unpack("!H", self._exactly(2))
        elif length == 127:
            (length,) = struct.unpack("!Q", self._exactly(8))
        return first & 0x0F, self._exactly(length)

    def close_code(self):
        """Read up to the server's close frame: its code."""
        while True:
            opcode, payload = self.read_frame()
            if opcode == 0x8:
                return struct.unpack("!H", payload[:2])[0]

    def finish_close(self):
        """Answer the close; the server then ends the TCP connection (at
        once, as servers do once the closing handshake is complete)."""
        self.send_frame(0x8, struct.pack("!H", 1000))
        try:
            assert self.sock.recv(100) == b""
        except ConnectionResetError:
            pass
        self.sock.close()


def test_frame_over_the_limit_is_closed_with_1009(cluster):
    raw = RawClient(cluster.port("node1"))
    raw.send_frame(0x1, b"x" * (FRAME_LIMIT + 1))
    assert raw.close_code() == 1009
    raw.finish_close()
    assert cluster.client(username="user1").request("popular", {"n": 1})["action"] == "popular"


def test_frame_header_over_the_limit_is_closed_with_1009_before_its_payload(cluster):
    raw = RawClient(cluster.port("node1"))
    raw.send_frame(0x1, b"", length=100 * 1024 * 1024)  # the header only
    assert raw.close_code() == 1009
    raw.sock.close()


@pytest.mark.parametrize("payload", [b"\xff\xfe", b'{"action": "login", "data": {"username": "\xc3"}}', b"\xed\xa0\x80"])
def test_invalid_utf8_is_closed_with_1007(cluster, payload):
    raw = RawClient(cluster.port("node1"))
    raw.send_frame(0x1, payload)
    assert raw.close_code() == 1007
    raw.finish_close()


def test_a_closing_client_gets_a_close_frame_and_is_offline_at_once(cluster):
    """A client with every extension joins two rooms and closes, with the
    close crossing its requests at every point of the way (login, joins):
    each time it gets a close frame, and another client sees it offline at
    once and for good."""
    watcher = cluster.client(username="user1")
    users = [f"user{n}" for n in range(2, 12)]
    features = ["ack", "offline", "resume"]
    for i in range(200):
        username = users[i % len(users)]
        c = cluster.client()
        c.send("login", {"username": username, "features": features})
        c.send("joinRoom", {"roomName": "room1"})
        c.send("joinRoom", {"roomName": "room2"})
        if i % 5 == 4:
            c.expect(lambda f: f["data"].get("roomName") == "room2", action="joinRoom")
        else:
            # 0 to 20 ms: the close lands anywhere in the login or the joins
            # (a close during the login's publishing left the user online)
            time.sleep((i * 7 % 40) / 2000)
        c.ws.send_close(1000, b"bye")
        assert c.wait_closed(5) == (1000, ""), f"round {i}: no close frame back"
        c.close()
        deadline = time.monotonic() + 3
        while True:
            info = watcher.request("userInfo", {"username": username})
            if info["action"] == "error":
                assert info["data"]["code"] == 404, info
                break
            assert time.monotonic() < deadline, f"round {i}: {username} still online after closing: {info}"
    for username in users:
        info = watcher.request("userInfo", {"username": username})
        assert info["action"] == "error" and info["data"]["code"] == 404, info


def test_frames_in_every_shape_are_read(cluster):
    """Whole frames (short and 16-bit lengths), several in one write, one
    cut across writes, a fragmented message with a ping between its
    fragments: each request is answered, in order."""
    raw = RawClient(cluster.port("node1"))

    def frame(opcode, payload, fin=True):
        mask = os.urandom(4)
        n = len(payload)
        head = bytes([(0x80 if fin else 0) | opcode])
        head += bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + struct.pack("!H", n)
        return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))

    def request(i, pad=0):
        return ('{"action":"popular","id":%d,"data":{"n":1},"pad":"%s"}' % (i, "x" * pad)).encode()

    raw.sock.sendall(frame(0x1, b'{"action":"login","id":0,"data":{"username":"user7"}}'))
    raw.sock.sendall(frame(0x1, request(1)) + frame(0x1, request(2, pad=300)) + frame(0x1, request(3)))
    cut = frame(0x1, request(4, pad=1000))
    raw.sock.sendall(cut[:3])
    time.sleep(0.1)
    raw.sock.sendall(cut[3:700])
    time.sleep(0.1)
    raw.sock.sendall(cut[700:])
    whole = request(5, pad=50)
    raw.sock.sendall(frame(0x1, whole[:20], fin=False) + frame(0x9, b"ping") + frame(0x0, whole[20:40], fin=False)
                     + frame(0x0, whole[40:]))
    answered = []
    while len(answered) < 6:
        opcode, payload = raw.read_frame()
        if opcode == 0x1:
            answered.append(json.loads(payload).get("re"))
        elif opcode == 0xA:
            assert payload == b"ping"
    assert answered == [0, 1, 2, 3, 4, 5]
    raw.send_frame(0x8, struct.pack("!H", 1000))
    raw.sock.close()


@pytest.mark.parametrize("close, code", [
    (struct.pack("!H", 999), 1002),  # a close code no endpoint may send
    (struct.pack("!H", 1004), 1002),  # a reserved one
    (struct.pack("!H", 1000) + b"\xff\xfe", 1007),  # a reason that is not UTF-8
])
def test_a_bad_close_frame_gets_its_close_code_before_the_tcp_connection_ends(cluster, close, code):
    """The node fails the connection with the close code of the fault, and
    that close frame reaches the client before the TCP connection ends
    (it used to be dropped with the connection, aborted at once)."""
    raw = RawClient(cluster.port("node1"))
    raw.send_frame(0x1, b'{"action":"login","id":1,"data":{"username":"user9"}}')
    raw.send_frame(0x8, close)
    assert raw.close_code() == code  # read before the end of the stream
    try:
        assert raw.sock.recv(100) == b""
    except ConnectionResetError:
        pass
    raw.sock.close()


def test_python_websockets_offering_deflate_with_an_unknown_parameter_opens_without_it(cluster):
    """RFC 7692 section 7: an offer the server does not understand is
    declined (the connection opens without the extension), not refused."""
    import asyncio

    from websockets.asyncio.client import connect

    async def run():
        async with connect(f"ws://127.0.0.1:{cluster.port('node1')}/", compression=None,
                           additional_headers={"Sec-WebSocket-Extensions": "permessage-deflate; x-unknown=1"},
                           open_timeout=10) as ws:
            assert ws.response.status_code == 101
            assert "Sec-WebSocket-Extensions" not in ws.response.headers
            await ws.send(json.dumps({"id": 1, "action": "login", "data": {"username": "user8"}}))
            return json.loads(await asyncio.wait_for(ws.recv(), 10))

    answer = asyncio.run(run())
    assert answer["action"] == "login" and answer["re"] == 1, answer
