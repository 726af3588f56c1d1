"""Keep-alive against a real node (pings every second, a second to answer):
a data frame is a sign of life however the client cuts its messages
(RFC 6455 5.4: fragmenting must not change the meaning), so a client that
sends data but never answers a ping stays, with whole frames (the node's
short way of reading them) as with fragments (autobahn's way); one that
sends nothing and does not answer is dropped, whichever way it sent
before."""
import json
import os
import struct
import time

import pytest

from tests.harness import ChatCluster
from tests.test_close_e2e import RawClient


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, redis_server, zookeeper_server, mongo_server):
    c = ChatCluster(
        tmp_path_factory.mktemp("cluster"), redis_server, zookeeper_server, mongo_server,
        nodes=1, extra_args=["--rate-limit", "0", "--ping-interval", "1", "--ping-timeout", "1"],
    )
    c.start()
    yield c
    c.stop()


def frame(opcode, payload, fin=True):
    mask = os.urandom(4)
    n = len(payload)
    head = bytes([(0x80 if fin else 0) | opcode])
    head += bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + struct.pack("!H", n)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def message(payload, shape):
    if shape == "whole":
        return frame(0x1, payload)
    return frame(0x1, payload[:10], fin=False) + frame(0x0, payload[10:])


def request(i):
    return b'{"action":"popular","id":%d,"data":{"n":1}}' % i


class Counting(RawClient):
    """Reads frames, counting the pings it never answers."""

    pings = 0

    def until_answer(self, request_id):
        while True:
            opcode, payload = self.read_frame()
            if opcode == 0x9:
                self.pings += 1
            elif opcode == 0x1 and json.loads(payload).get("re") == request_id:
                return
            elif opcode == 0x8:
                raise AssertionError(f"closed: {payload!r} after {self.pings} pings")

    def until_end(self):
        """Read to the end of the connection: the close code, if a close
        frame came first."""
        try:
            while True:
                opcode, payload = self.read_frame()
                if opcode == 0x9:
                    self.pings += 1
                elif opcode == 0x8:
                    return struct.unpack("!H", payload[:2])[0]
        except ConnectionError:
            return None


@pytest.mark.parametrize("shape", ["whole", "fragmented"])
def test_a_client_sending_data_but_never_answering_pings_stays(cluster, shape):
    raw = Counting(cluster.port("node1"), timeout=15)
    raw.sock.sendall(message(b'{"action":"login","id":0,"data":{"username":"user%d"}}'
                             % (3 if shape == "whole" else 4), shape))
    raw.until_answer(0)
    i = 0
    while raw.pings < 4:  # each ping waits 1 s: it would have been dropped at the first
        i += 1
        raw.sock.sendall(message(request(i), shape))
        raw.until_answer(i)
        time.sleep(0.3)
    raw.sock.sendall(message(request(i + 1), shape))
    raw.until_answer(i + 1)
    raw.send_frame(0x8, struct.pack("!H", 1000))
    raw.sock.close()


@pytest.mark.parametrize("shape", ["whole", "fragmented"])
def test_a_client_that_sends_nothing_and_never_answers_is_dropped(cluster, shape):
    raw = Counting(cluster.port("node1"), timeout=15)
    raw.sock.sendall(message(b'{"action":"login","id":0,"data":{"username":"user%d"}}'
                             % (5 if shape == "whole" else 6), shape))
    raw.until_answer(0)
    raw.until_end()
    assert raw.pings >= 1
    raw.sock.close()
