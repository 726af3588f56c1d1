"""Users under traffic in the end-to-end fault tests: each is a real
client's behaviour (sending again what got no answer, reconnecting through
the gateway when the connection breaks), stepped by one L{Traffic} thread."""
import json
import threading
import time

import websocket

from tests.harness import WsClient

# what a failed connection attempt raises
CONNECT_ERRORS = (ConnectionError, OSError, AssertionError, websocket.WebSocketException, ValueError)


class ReconnectingUser:
    """The connection part of a user (C{username}). A subclass gives C{connect()} (with
    C{reconnect()} for the attempts after a break), C{_send(now)} and
    C{_read()}, and keeps C{pending} (request id -> what was sent) and
    C{retry} (what to send again)."""

    def __init__(self, cluster):
        self.cluster = cluster
        self.client = None
        self.pending = {}
        self.retry = []
        self.next_connect = 0.0

    def node_port(self):
        """The port of the node the gateway hands out."""
        status, body = self.cluster.gateway_get("/server")
        if status != 200:
            raise ConnectionError(f"gateway answered {status}")
        return json.loads(body)["port"]

    def login(self, port=None):
        """A new connection of C{username} to C{port} (else to the node the
        gateway hands out), logged in with C{ack} and C{resume}; C{node}
        is the node's id."""
        client = WsClient(self.node_port() if port is None else port, timeout=5)
        try:
            frame = client.request("login", {"username": self.username, "features": ["ack", "resume"]}, timeout=5)
            if frame["action"] != "login":
                raise ConnectionError(f"login answered {frame}")
        except Exception:
            client.close()
            raise
        self.node = frame["data"]["nodeId"]
        return client

    def reconnect(self):
        self.connect()

    def lost(self, now):
        """The connection broke: what had no answer is sent again later."""
        if self.client is not None:
            self.client.close()
        self.client = None
        self.retry.extend(self.pending.values())
        self.pending.clear()
        self.next_connect = now + 0.3

    def step(self, now):
        if self.client is None:
            if now < self.next_connect:
                return
            try:
                self.reconnect()
            except CONNECT_ERRORS:
                self.next_connect = now + 0.5
                return
        try:
            self._send(now)
            self._read()
        except (OSError, websocket.WebSocketException):
            self.lost(now)
            return
        if self.client.closed:
            self.lost(now)


class Traffic(threading.Thread):
    """Steps every user in turn until halted (C{with traffic:} starts it
    and, at the end, halts it and closes the users' connections)."""

    def __init__(self, users):
        super().__init__(daemon=True)
        self.users = users
        self.lock = threading.Lock()
        self.halt = threading.Event()

    def add(self, user):
        with self.lock:
            self.users.append(user)

    def run(self):
        while not self.halt.is_set():
            with self.lock:
                now = time.monotonic()
                for user in self.users:
                    user.step(now)
            time.sleep(0.003)

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def stop(self):
        self.halt.set()
        self.join(10)
        for user in self.users:
            if user.client is not None:
                user.client.close()
