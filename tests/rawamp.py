"""A blocking AMP client on a plain socket, byte for byte, for tests that
play a hostile or impersonating peer on a node's internal port."""
import os
import socket
import time

from chatnet.protocols.internal import client_mac


def encode(pairs):
    """An AMP box: (key, value) pairs of bytes, then the empty key."""
    out = []
    for key, value in pairs:
        out.append(len(key).to_bytes(2, "big") + key + len(value).to_bytes(2, "big") + value)
    return b"".join(out) + b"\0\0"


class RawPeer:
    def __init__(self, port, host="127.0.0.1", source="127.0.0.1", timeout=10.0):
        self.sock = socket.create_connection((host, port), timeout=timeout, source_address=(source, 0))
        self.buffer = b""
        self.tags = iter(range(1, 1 << 30))

    def send(self, data):
        self.sock.sendall(data)

    def call(self, command, timeout=10.0, **arguments):
        """Send C{command} with byte-string arguments; the answer box as a
        dict, or None if the connection closed first."""
        tag = b"%d" % next(self.tags)
        self.send(encode([(b"_command", command), (b"_ask", tag), *((k.encode(), v) for k, v in arguments.items())]))
        while True:
            box = self.read_box(timeout)
            if box is None:
                return None
            if box.get(b"_answer") == tag or box.get(b"_error") == tag:
                return box

    def read_box(self, timeout=10.0):
        deadline = time.monotonic() + timeout
        while True:
            parsed = self._parse()
            if parsed is not None:
                return parsed
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no AMP box within {timeout}s")
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(65536)
            except (ConnectionResetError, BrokenPipeError):
                chunk = b""
            except socket.timeout:
                continue
            if not chunk:
                return None
            self.buffer += chunk

    def _parse(self):
        box, at = {}, 0
        data = self.buffer
        while True:
            if len(data) < at + 2:
                return None
            n = int.from_bytes(data[at:at + 2], "big")
            if n == 0:
                self.buffer = data[at + 2:]
                return box
            key = data[at + 2:at + 2 + n]
            at += 2 + n
            if len(data) < at + 2:
                return None
            m = int.from_bytes(data[at:at + 2], "big")
            if len(data) < at + 2 + m:
                return None
            box[key] = data[at + 2:at + 2 + m]
            at += 2 + m

    def login(self, secret, node_id):
        """The handshake as node C{node_id}; the answer box of Authenticate."""
        challenge = self.call(b"Challenge")
        assert challenge is not None and b"nonce" in challenge, challenge
        mac = client_mac(secret, challenge[b"nonce"], node_id)
        return self.call(b"Authenticate", nodeId=node_id.encode(), nonce=os.urandom(32), mac=mac)

    def closed(self, timeout=10.0):
        """True once the node closes the connection (within C{timeout})."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = self.sock.recv(65536)
            except (ConnectionResetError, BrokenPipeError):
                return True
            except socket.timeout:
                continue
            if not chunk:
                return True
        return False

    def close(self):
        self.sock.close()


def endless_box(value_size=60_000):
    """Chunks of one AMP box that never ends: keys a1, a2, ... with big values."""
    i = 0
    while True:
        i += 1
        key = b"a%d" % i
        yield len(key).to_bytes(2, "big") + key + value_size.to_bytes(2, "big") + b"x" * value_size


def flood(peer, limit_bytes, value_size=60_000):
    """Send an endless box until the node closes or C{limit_bytes} went out;
    returns the bytes sent."""
    sent = 0
    peer.sock.settimeout(5)
    for chunk in endless_box(value_size):
        try:
            peer.sock.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError, socket.timeout):
            break
        sent += len(chunk)
        if sent >= limit_bytes:
            break
    return sent


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")
