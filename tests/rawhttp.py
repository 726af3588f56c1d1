"""Raw-socket HTTP for the gateway tests: a real ``twistd chatgateway`` that
lists one (made up) chat node, and requests sent byte for byte."""
import http.client
import json
import socket
import time

from devtools.localservices import ChatProcess, free_port, redis_command
from chatnet.stores.redis import SERVERS
from tests.harness import _redis_dbs

NODE = {"nodeId": "node1", "host": "127.0.0.1", "port": 9, "url": "ws://127.0.0.1:9/", "isLeader": True}


def start_gateway(root, redis_server, *args, metrics_port=None):
    """A gateway on a Redis database of its own, listing L{NODE} (without a
    load report, so it never goes stale)."""
    db = next(_redis_dbs)
    redis_command(redis_server.port, "SET", SERVERS, json.dumps({"nodes": [NODE], "staleAfter": 15}), db=db)
    port = free_port()
    extra = ["--metrics", f"tcp:{metrics_port}:interface=127.0.0.1"] if metrics_port else []
    gateway = ChatProcess(
        "chatgateway",
        ["--listen", f"tcp:{port}:interface=127.0.0.1", "--redis", f"redis://127.0.0.1:{redis_server.port}/{db}",
         *extra, *args],
        root / "gateway.log",
        ready_port=port,
    )
    gateway.start(timeout=60)
    gateway.http_port = port
    return gateway


class Answer:
    def __init__(self, response, body):
        self.status = response.status
        self.headers = {k.lower(): v for k, v in response.getheaders()}
        self.all_headers = response.getheaders()
        self.body = body
        self.will_close = response.will_close

    def __repr__(self):
        return f"<{self.status} {self.headers} {self.body[:200]!r}>"


def send(port, data, method="GET", timeout=10.0):
    """Send C{data} (bytes) on a new connection and read one answer: an
    L{Answer}, or None when the server closed the connection without one.
    Raises on a malformed answer and on a timeout."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        try:
            sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused early: its answer may still be readable
        return read_answer(sock, method)


def read_answer(sock, method="GET"):
    response = http.client.HTTPResponse(sock, method=method)
    try:
        response.begin()
    except http.client.RemoteDisconnected:
        return None
    except ConnectionResetError:
        return None
    return Answer(response, response.read())


def closed_within(sock, timeout):
    """Read (and drop) what comes until the server closes C{sock}; True if it
    did within C{timeout} seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            if not sock.recv(65536):
                return True
        except socket.timeout:
            return False
        except ConnectionResetError:
            return True
    return False
