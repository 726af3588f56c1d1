"""Load generator for a chatnet cluster (console script ``chatnet-bench``).

It speaks the client wire protocol (docs in ``PROTOCOL.md``) to any cluster,
given either the gateway URL (``--gateway``) or the chat nodes' WebSocket URLs
(``--nodes``), and runs one scenario:

``direct``
    ``--pairs`` sender/receiver pairs, sender and receiver of a pair on
    different nodes, each sender keeping ``--window`` messages in flight (a
    message is in flight until its receiver has it).
``room``
    ``--members`` members of one room spread over the nodes, the first
    ``--senders`` of them sending; a room sender keeps ``--window`` messages in
    flight, measured by its own echo.
``connections``
    ``--clients`` idle logged-in clients on one node; reports the node's
    resident memory per connection.
``filter``
    the profanity filter alone (``bench.filter_bench``), no cluster needed.

Every run prints one JSON line on stdout with at least ``sent``,
``delivered``, ``lost``, ``duplicated``, ``msgs_per_s``, ``p50_ms``,
``p99_ms``, ``seconds`` and ``command``.

Latency is send-to-receive, both ends read from ``time.perf_counter()`` in this
process. Each message text is ``bench:<run>:<sender>:<n>``: the run token tells
this run's messages from room history and from other runs, ``(sender, n)`` is
the key under which the send time and the expected recipients are kept.

The server's per-connection rate limit must be off for the traffic scenarios
(start the nodes with ``--rate-limit 0``); an error 429 is reported with a hint.

Python use: ``run(argv) -> dict`` (starts and stops the reactor, or falls back
to a subprocess when the reactor cannot be started again), or
``run_async(argv) -> Deferred[dict]`` inside a running reactor.
"""

from __future__ import annotations

import argparse
import collections
import functools
import itertools
import json
import math
import os
import random
import shlex
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple
from urllib.parse import urlsplit, urlunsplit

import orjson

SCENARIOS = ("direct", "room", "connections", "filter")

#: keys every result line carries (``None`` where a scenario has no value)
RESULT_KEYS = (
    "scenario",
    "sent",
    "delivered",
    "lost",
    "duplicated",
    "msgs_per_s",
    "p50_ms",
    "p99_ms",
    "seconds",
)

RATE_LIMIT_HINT = (
    "the server answered error 429 (rate limit): start the benchmark cluster "
    "with --rate-limit 0"
)
CREATE_USERS_HINT = (
    "logins were refused (401): the bench users may not exist; "
    "pass --create-users --mongo mongodb://HOST:PORT/DB, or use --user-prefix user "
    "(demo users user1..user99)"
)

# A message key: (sender index, sequence number of that sender).
Key = Tuple[int, int]


# ---------------------------------------------------------------------------
# accounting (no I/O: unit-tested on its own)
# ---------------------------------------------------------------------------


def percentile(sorted_values: Sequence[float], p: float) -> Optional[float]:
    """The ``p``-th percentile (0..100) of ascending ``sorted_values``.

    Nearest-rank method: the smallest value such that at least ``p`` percent
    of the values are less than or equal to it. ``None`` for no values.
    """
    n = len(sorted_values)
    if n == 0:
        return None
    if p <= 0:
        return sorted_values[0]
    if p >= 100:
        return sorted_values[-1]
    rank = math.ceil(p / 100.0 * n)
    return sorted_values[max(0, min(n, rank) - 1)]


# delivery outcomes returned by Tracker.on_receive
NEW = "new"
DUPLICATE = "duplicate"
UNEXPECTED = "unexpected"  # this run's message, delivered to someone not meant
UNKNOWN = "unknown"  # key never sent (or already forgotten)


class _Msg:
    __slots__ = ("sent_at", "expected", "got", "measured", "rejected")

    def __init__(self, sent_at: float, expected, measured: bool):
        self.sent_at = sent_at
        self.expected = expected
        self.got: set = set()
        self.measured = measured
        self.rejected = False


class Tracker:
    """Send/receive accounting for one run.

    ``on_send(key, recipients, t)`` records a message that must reach every
    recipient in ``recipients`` (any container supporting ``in`` and ``len``;
    share one frozenset between the messages of a room). ``on_receive(key,
    recipient, t)`` records one delivery and says whether it was new, a
    duplicate, unexpected or unknown.

    ``delivered`` counts distinct (message, expected recipient) deliveries;
    ``lost`` = expected deliveries - delivered, read after the drain period;
    ``duplicated`` counts every extra copy a recipient got.

    Latencies (ms) are kept for deliveries of messages sent while measuring
    (``start_measure``/``stop_measure``), and ``window_deliveries`` counts the
    deliveries that arrived while measuring, for the throughput.
    """

    def __init__(self) -> None:
        self.msgs: Dict[Any, _Msg] = {}
        self.latencies: List[float] = []
        self.sent = 0
        self.expected = 0
        self.delivered = 0
        self.duplicated = 0
        self.unexpected = 0
        self.unknown = 0
        self.rejected = 0
        self.reordered = 0
        self._last_n: Dict[Tuple[Any, Any], int] = {}
        self.measuring = False
        self.measure_start: Optional[float] = None
        self.measure_end: Optional[float] = None
        self.window_deliveries = 0
        self.window_sent = 0

    # measurement window -------------------------------------------------
    def start_measure(self, t: float) -> None:
        self.measuring = True
        self.measure_start = t

    def stop_measure(self, t: float) -> None:
        if self.measuring:
            self.measuring = False
            self.measure_end = t

    # events ---------------------------------------------------------------
    def on_send(self, key, recipients, t: float) -> None:
        if key in self.msgs:
            raise ValueError(f"key {key!r} sent twice")
        self.msgs[key] = _Msg(t, recipients, self.measuring)
        self.sent += 1
        self.expected += len(recipients)
        if self.measuring:
            self.window_sent += 1

    def on_reject(self, key) -> None:
        """The server refused ``key`` with an error: it stays lost."""
        m = self.msgs.get(key)
        if m is not None and not m.rejected:
            m.rejected = True
            self.rejected += 1

    def on_receive(self, key, recipient, t: float) -> str:
        m = self.msgs.get(key)
        if m is None:
            self.unknown += 1
            return UNKNOWN
        if recipient not in m.expected:
            self.unexpected += 1
            return UNEXPECTED
        if recipient in m.got:
            self.duplicated += 1
            return DUPLICATE
        m.got.add(recipient)
        self.delivered += 1
        if self.measuring:
            self.window_deliveries += 1
        if m.measured:
            self.latencies.append((t - m.sent_at) * 1000.0)
        if isinstance(key, tuple) and len(key) == 2:
            stream = (key[0], recipient)
            last = self._last_n.get(stream)
            if last is not None and key[1] < last:
                self.reordered += 1
            else:
                self._last_n[stream] = key[1]
        return NEW

    # results --------------------------------------------------------------
    @property
    def lost(self) -> int:
        return self.expected - self.delivered

    @property
    def pending(self) -> int:
        """Expected deliveries not seen yet (the same number as ``lost``)."""
        return self.expected - self.delivered

    def lost_messages(self) -> int:
        """Messages that missed at least one recipient."""
        return sum(1 for m in self.msgs.values() if len(m.got) < len(m.expected))

    def throughput(self) -> Optional[float]:
        if self.measure_start is None or self.measure_end is None:
            return None
        span = self.measure_end - self.measure_start
        if span <= 0:
            return None
        return self.window_deliveries / span

    def summary(self) -> Dict[str, Any]:
        lat = sorted(self.latencies)
        rate = self.throughput()
        span = None
        if self.measure_start is not None and self.measure_end is not None:
            span = self.measure_end - self.measure_start
        return {
            "sent": self.sent,
            "expected": self.expected,
            "delivered": self.delivered,
            "lost": self.lost,
            "lost_messages": self.lost_messages(),
            "duplicated": self.duplicated,
            "unexpected": self.unexpected,
            "rejected": self.rejected,
            "reordered": self.reordered,
            "msgs_per_s": _round(rate, 1),
            "sent_per_s": _round(self.window_sent / span, 1) if span else None,
            "p50_ms": _round(percentile(lat, 50), 3),
            "p90_ms": _round(percentile(lat, 90), 3),
            "p99_ms": _round(percentile(lat, 99), 3),
            "max_ms": _round(lat[-1] if lat else None, 3),
            "mean_ms": _round(sum(lat) / len(lat) if lat else None, 3),
            "latency_samples": len(lat),
            "seconds": _round(span, 3),
        }


def _round(v, digits):
    return None if v is None else round(v, digits)


def message_text(token: str, sender: int, n: int, size: int = 0) -> str:
    """The text of message ``n`` of ``sender``, padded to ``size`` characters."""
    text = f"bench:{token}:{sender}:{n}"
    if len(text) < size:
        text += ":" + "." * (size - len(text) - 1)
    return text


def parse_message_key(prefix: str, text: Any) -> Optional[Key]:
    """``(sender, n)`` from a text made by :func:`message_text`, or ``None``
    when ``text`` does not belong to the run whose prefix is
    ``bench:<token>:``."""
    if not isinstance(text, str) or not text.startswith(prefix):
        return None
    parts = text[len(prefix):].split(":", 2)
    if len(parts) < 2:
        return None
    try:
        return (int(parts[0]), int(parts[1]))
    except ValueError:
        return None


def spread(count: int, nodes: int, offset: int = 0) -> List[int]:
    """Round-robin node index for ``count`` clients over ``nodes`` nodes."""
    if nodes <= 0:
        raise ValueError("no nodes")
    return [(i + offset) % nodes for i in range(count)]


def user_names(prefix: str, start: int, count: int) -> List[str]:
    return [f"{prefix}{start + i}" for i in range(count)]


# ---------------------------------------------------------------------------
# options
# ---------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="chatnet-bench",
        description="Load generator for a chatnet cluster. Prints one JSON line "
        "with sent, delivered, lost, duplicated, msgs_per_s, p50_ms, p99_ms, "
        "seconds. Traffic scenarios need the nodes started with --rate-limit 0.",
    )
    p.add_argument("scenario", choices=SCENARIOS)
    where = p.add_argument_group("cluster")
    where.add_argument("--gateway", help="gateway base URL, e.g. http://127.0.0.1:8080")
    where.add_argument(
        "--nodes",
        help="comma-separated node WebSocket URLs (ws://h:p/,ws://h:p/) instead of --gateway",
    )
    where.add_argument("--connect-timeout", type=float, default=30.0, metavar="S")
    traffic = p.add_argument_group("traffic")
    traffic.add_argument("--duration", type=float, default=10.0, metavar="S",
                         help="seconds of sending (connections: seconds to hold the clients idle)")
    traffic.add_argument("--warmup", type=float, default=1.0, metavar="S",
                         help="seconds of sending left out of latency and throughput (default 1)")
    traffic.add_argument("--drain", type=float, default=5.0, metavar="S",
                         help="seconds to wait for deliveries after sending stops (default 5)")
    traffic.add_argument("--msg-timeout", type=float, default=5.0, metavar="S",
                         help="a message still in flight after S seconds frees its window slot")
    traffic.add_argument("--settle", type=float, default=0.5, metavar="S",
                         help="pause between logins/joins and the first message")
    traffic.add_argument("--pairs", type=int, default=20, help="direct: sender/receiver pairs")
    traffic.add_argument("--window", type=int, default=5,
                         help="messages in flight per sender (0 with --rate: no limit)")
    traffic.add_argument("--members", type=int, default=30, help="room: members")
    traffic.add_argument("--senders", type=int, default=3, help="room: senders among the members")
    traffic.add_argument("--room", default="room1", help="room: room name (default room1)")
    traffic.add_argument("--rate", type=float, default=0.0,
                         help="messages/s per sender, 0 = as fast as the window allows")
    traffic.add_argument("--compression", choices=("off", "deflate"), default="off",
                         help="deflate: every client offers permessage-deflate and accepts it "
                              "(the nodes need --compression deflate to take it)")
    traffic.add_argument("--size", type=int, default=0, metavar="CHARS",
                         help="pad each message text to this many characters")
    conns = p.add_argument_group("connections")
    conns.add_argument("--clients", type=int, default=1000, help="connections: idle clients")
    conns.add_argument("--node", help="connections: nodeId (or index in the node list, or URL)")
    conns.add_argument("--node-pid", type=int, help="connections: pid of the node process")
    conns.add_argument("--connect-concurrency", type=int, default=500, metavar="N",
                       help="connections opened at a time (default 500)")
    users = p.add_argument_group("users")
    users.add_argument("--user-prefix",
                       help="user names are PREFIX<N>; default 'user' (demo users) when "
                       "99 or fewer are needed, else 'bench'")
    users.add_argument("--user-start", type=int, default=1, metavar="N")
    users.add_argument("--create-users", action="store_true",
                       help="insert the users into MongoDB first (needs --mongo)")
    users.add_argument("--mongo", metavar="URL", help="MongoDB URL, e.g. mongodb://127.0.0.1:27017/chatnet")
    out = p.add_argument_group("output")
    out.add_argument("--json", action="store_true", help="stdout is exactly one JSON line")
    out.add_argument("--progress", type=float, default=2.0, metavar="S",
                     help="progress line on stderr every S seconds for long runs (0: none)")
    out.add_argument("--quiet", action="store_true", help="no progress or notes on stderr")
    return p


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    opts = build_parser().parse_args(list(argv) if argv is not None else None)
    if opts.scenario in ("direct", "room", "connections") and not (opts.gateway or opts.nodes):
        build_parser().error(f"{opts.scenario} needs --gateway URL or --nodes URLS")
    if opts.scenario == "direct" and opts.pairs < 1:
        build_parser().error("--pairs must be at least 1")
    if opts.scenario == "room":
        if opts.members < 1 or opts.senders < 1:
            build_parser().error("--members and --senders must be at least 1")
        if opts.senders > opts.members:
            build_parser().error("--senders cannot exceed --members")
    if opts.window < 0 or (opts.window == 0 and opts.rate <= 0):
        build_parser().error("--window must be at least 1 (0 only with --rate)")
    if opts.create_users and not opts.mongo:
        build_parser().error("--create-users needs --mongo URL")
    return opts


def command_line(argv: Sequence[str]) -> str:
    return shlex.join(["chatnet-bench", *argv])


def users_needed(opts) -> int:
    if opts.scenario == "direct":
        return 2 * opts.pairs
    if opts.scenario == "room":
        return opts.members
    if opts.scenario == "connections":
        return opts.clients
    return 0


def user_prefix(opts) -> str:
    if opts.user_prefix:
        return opts.user_prefix
    return "user" if opts.user_start + users_needed(opts) - 1 <= 99 else "bench"


# ---------------------------------------------------------------------------
# nodes
# ---------------------------------------------------------------------------


@dataclass
class Node:
    url: str
    host: str
    port: int
    nodeId: Optional[str] = None
    secure: bool = False
    path: str = "/"
    ip: Optional[str] = None
    family: int = socket.AF_INET
    extra: Dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.nodeId or f"{self.host}:{self.port}"


def node_from_url(url: str) -> Node:
    url = url.strip()
    if "://" not in url:
        url = "ws://" + url
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme in ("http", "https"):
        scheme = "ws" if scheme == "http" else "wss"
    if scheme not in ("ws", "wss"):
        raise ValueError(f"not a WebSocket URL: {url}")
    secure = scheme == "wss"
    port = parts.port or (443 if secure else 80)
    host = parts.hostname or "127.0.0.1"
    path = parts.path or "/"
    norm = urlunsplit((scheme, parts.netloc, path, parts.query, ""))
    return Node(url=norm, host=host, port=port, secure=secure, path=path)


def nodes_from_gateway_answer(answer: Any, gateway_url: str) -> List[Node]:
    """Nodes from the JSON of ``GET /server?all=1``."""
    if not isinstance(answer, list):
        raise ValueError(f"gateway answer is not a list: {answer!r:.200}")
    gw_host = urlsplit(gateway_url).hostname or "127.0.0.1"
    nodes = []
    for item in answer:
        if not isinstance(item, dict):
            continue
        host = item.get("host") or gw_host
        if host in ("0.0.0.0", "::", "[::]"):
            host = gw_host
        if item.get("url"):
            node = node_from_url(str(item["url"]))
        else:
            h = f"[{host}]" if ":" in host and not host.startswith("[") else host
            node = node_from_url(f"ws://{h}:{int(item['port'])}/")
        node.nodeId = item.get("nodeId")
        node.extra = {k: item[k] for k in ("isLeader", "connections") if k in item}
        nodes.append(node)
    return nodes


def gateway_base(url: str) -> str:
    if "://" not in url:
        url = "http://" + url
    url = url.rstrip("/")
    if url.endswith("/server"):
        url = url[: -len("/server")]
    return url


def _read_body(response):
    """Deferred firing with the whole body of a twisted.web client response."""
    from twisted.internet import defer, protocol
    from twisted.web.client import PotentialDataLoss, ResponseDone

    d = defer.Deferred()

    class Collect(protocol.Protocol):
        def __init__(self):
            self.chunks = []

        def dataReceived(self, data):
            self.chunks.append(data)

        def connectionLost(self, reason=protocol.connectionDone):
            if reason.check(ResponseDone, PotentialDataLoss):
                d.callback(b"".join(self.chunks))
            else:
                d.errback(reason)

    response.deliverBody(Collect())
    return d


def resolve(node: Node) -> None:
    infos = socket.getaddrinfo(node.host, node.port, type=socket.SOCK_STREAM)
    infos.sort(key=lambda i: 0 if i[0] == socket.AF_INET else 1)
    family, _, _, _, addr = infos[0]
    node.family = family
    node.ip = addr[0]


# ---------------------------------------------------------------------------
# process memory
# ---------------------------------------------------------------------------


def read_rss_kb(pid: int) -> Optional[int]:
    """VmRSS of ``pid`` in KiB, from /proc; ``None`` if unreadable."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def _listening_inodes(port: int) -> set:
    inodes = set()
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path) as f:
                next(f, None)
                for line in f:
                    parts = line.split()
                    if len(parts) < 10 or parts[3] != "0A":  # 0A = LISTEN
                        continue
                    if int(parts[1].rsplit(":", 1)[1], 16) == port:
                        inodes.add(parts[9])
        except OSError:
            continue
    return inodes


def find_listening_pid(port: int) -> Optional[int]:
    """Best effort: the pid of a local process listening on TCP ``port``."""
    inodes = _listening_inodes(port)
    if not inodes:
        return None
    targets = {f"socket:[{i}]" for i in inodes}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fd_dir = f"/proc/{entry}/fd"
        try:
            for fd in os.listdir(fd_dir):
                try:
                    if os.readlink(f"{fd_dir}/{fd}") in targets:
                        return int(entry)
                except OSError:
                    continue
        except OSError:
            continue
    return None


def raise_nofile(wanted: int) -> Tuple[int, int]:
    """Raise RLIMIT_NOFILE towards ``wanted``; return the (soft, hard) now in force."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not Linux
        return (-1, -1)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        if hard != resource.RLIM_INFINITY and hard < wanted:
            try:  # works as root
                resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, wanted))
                target = None
            except (ValueError, OSError):
                pass
        if target is not None:
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            except (ValueError, OSError):
                pass
    return resource.getrlimit(resource.RLIMIT_NOFILE)


# ---------------------------------------------------------------------------
# users in MongoDB
# ---------------------------------------------------------------------------


def create_users(mongo_url: str, names: Iterable[str]) -> int:
    """Insert the users that are missing (no password); return how many were added."""
    import pymongo

    client = pymongo.MongoClient(mongo_url, serverSelectionTimeoutMS=10000)
    try:
        db = client.get_default_database(default="chatnet")
        ops = [
            pymongo.UpdateOne({"username": n}, {"$setOnInsert": {"username": n}}, upsert=True)
            for n in names
        ]
        added = 0
        for i in range(0, len(ops), 5000):
            res = db.users.bulk_write(ops[i : i + 5000], ordered=False)
            added += res.upserted_count
        return added
    finally:
        client.close()


# ---------------------------------------------------------------------------
# WebSocket client
# ---------------------------------------------------------------------------


class BenchError(Exception):
    def __init__(self, code: Any, message: str = "", ext: str = ""):
        super().__init__(f"{code} {message}".strip())
        self.code = code
        self.message = message
        self.ext = ext


# request ids look like the old client's (ms * 1000 + a little), about 1.8e15;
# a chat frame's id encodes its message key above 2**52 (still below 2**53, so
# any JSON reader keeps it exact), so an error answering it needs no lookup
_frame_ids = itertools.count(int(time.time() * 1000) * 1000 + random.randrange(1000))
CHAT_ID_BASE = 1 << 52
_N_BITS = 26


def chat_frame_id(key: Key) -> int:
    return CHAT_ID_BASE + (key[0] << _N_BITS) + key[1]


def key_of_chat_frame_id(fid: Any) -> Optional[Key]:
    if not isinstance(fid, int) or not CHAT_ID_BASE <= fid < 2 * CHAT_ID_BASE:
        return None
    off = fid - CHAT_ID_BASE
    return (off >> _N_BITS, off & ((1 << _N_BITS) - 1))


def _cheap_connection_debug_log() -> None:
    """autobahn pretty-prints every connection's options for a debug log line
    whether or not debug logging is on (about 1 ms of CPU per connection, most
    of the client-side cost of opening 10,000 connections); a plain ``repr``
    gives the same information for a fraction of it."""
    import pprint

    from autobahn.websocket import protocol as ab_protocol

    if getattr(ab_protocol, "pformat", None) is pprint.pformat:
        ab_protocol.pformat = repr


def _accept_deflate(response):
    """Accept the node's permessage-deflate answer as it is."""
    from autobahn.websocket.compress import PerMessageDeflateResponse, PerMessageDeflateResponseAccept

    if isinstance(response, PerMessageDeflateResponse):
        return PerMessageDeflateResponseAccept(response)
    return None


@functools.lru_cache(maxsize=None)
def _protocol_class():
    from autobahn.twisted.websocket import WebSocketClientProtocol

    _cheap_connection_debug_log()

    class BenchProtocol(WebSocketClientProtocol):
        client: "BenchClient" = None  # set right after buildProtocol

        def onOpen(self):
            self.client._opened(self)

        def onMessage(self, payload, isBinary):
            self.client._frame(payload)

        def onMessageEnd(self):
            # the same as autobahn's, without firing the "message" observer
            # signal, which costs a future per frame: the receive path is the
            # hot loop of the room scenario
            if not self.failedByMe:
                self.client._frame(b"".join(self.message_data))
            self.message_data = None

        def onClose(self, wasClean, code, reason):
            self.client._closed(code, reason)

    return BenchProtocol


class BenchClient:
    """One logged-in user on one node."""

    def __init__(self, run: "BenchRun", index: int, username: str, node: Node):
        self.run = run
        self.index = index
        self.username = username
        self.node = node
        self.proto = None
        self.connected = False
        self.closed = False
        self.logged_in = False
        self.nodeId: Optional[str] = None
        self.pending: "collections.OrderedDict[int, Tuple[str, Any]]" = collections.OrderedDict()
        self._open_d = None
        self.login_latency: Optional[float] = None
        self.compressed = False  # permessage-deflate negotiated

    # connection -----------------------------------------------------------
    def connect(self):
        """Deferred firing with the login answer's data once logged in."""
        from twisted.internet import defer
        from twisted.internet.endpoints import TCP4ClientEndpoint, TCP6ClientEndpoint, connectProtocol

        run = self.run
        proto = run.factory_for(self.node).buildProtocol(None)
        proto.client = self
        self.proto = proto
        self._open_d = defer.Deferred()
        ep_cls = TCP6ClientEndpoint if self.node.family == socket.AF_INET6 else TCP4ClientEndpoint
        ep = ep_cls(run.reactor, self.node.ip or self.node.host, self.node.port,
                    timeout=run.opts.connect_timeout)
        if self.node.secure:
            from twisted.internet.endpoints import wrapClientTLS
            from twisted.internet.ssl import optionsForClientTLS

            ep = wrapClientTLS(optionsForClientTLS(self.node.host), ep)
        t0 = time.perf_counter()
        d = connectProtocol(ep, proto)

        def tcp_failed(f):
            if not self._open_d.called:
                self._open_d.errback(f)

        d.addErrback(tcp_failed)
        opened = self._open_d

        def login(_):
            return self.request("login", {"username": self.username})

        def logged(data):
            self.logged_in = True
            self.login_latency = time.perf_counter() - t0
            if isinstance(data, dict):
                self.nodeId = data.get("nodeId")
            return data

        opened.addCallback(login)
        opened.addCallback(logged)
        return opened

    def _opened(self, proto):
        self.connected = True
        self.compressed = proto._perMessageCompress is not None
        if self._open_d is not None and not self._open_d.called:
            self._open_d.callback(None)

    def _closed(self, code, reason):
        was_connected = self.connected
        self.connected = False
        self.closed = True
        err = ConnectionError(f"WebSocket closed ({code} {reason or ''})".strip())
        if self._open_d is not None and not self._open_d.called:
            self._open_d.errback(err)
        pending, self.pending = self.pending, collections.OrderedDict()
        for _action, d in pending.values():
            if not d.called:
                d.errback(err)
        if was_connected and self.logged_in:
            self.run.client_lost(self, code, reason)

    def close(self):
        if self.proto is not None and self.connected:
            try:
                self.proto.sendClose()
            except Exception:  # noqa: BLE001 - already going away
                pass

    def abort(self):
        if self.proto is not None and self.proto.transport is not None and not self.closed:
            try:
                self.proto.transport.abortConnection()
            except Exception:  # noqa: BLE001
                pass

    # frames -----------------------------------------------------------------
    def send(self, action: str, data: dict, fid: Optional[int] = None) -> int:
        if fid is None:
            fid = next(_frame_ids)
        self.proto.sendMessage(orjson.dumps({"id": fid, "action": action, "data": data}), False)
        return fid

    def request(self, action: str, data: dict):
        from twisted.internet import defer

        d = defer.Deferred()
        if not self.connected:
            d.errback(ConnectionError("not connected"))
            return d
        fid = self.send(action, data)
        self.pending[fid] = (action, d)
        return d

    def send_chat(self, key: Key, data: dict) -> None:
        self.send("chat", data, chat_frame_id(key))

    def _frame(self, payload: bytes) -> None:
        run = self.run
        try:
            msg = orjson.loads(payload)
            action = msg.get("action")
        except (orjson.JSONDecodeError, AttributeError):
            run.count_error("bad-frame")
            return
        if action == "chat":
            data = msg.get("data")
            if isinstance(data, dict):
                key = parse_message_key(run.prefix, data.get("message"))
                if key is not None:
                    run.on_chat(self, key)
            return
        re_id = msg.get("re")
        if action == "error":
            data = msg.get("data") if isinstance(msg.get("data"), dict) else {}
            code = data.get("code")
            run.count_error(code, data.get("message"))
            if re_id is not None and re_id in self.pending:
                _a, d = self.pending.pop(re_id)
                d.errback(BenchError(code, data.get("message", ""), data.get("ext", "")))
            elif key_of_chat_frame_id(re_id) is not None:
                run.on_chat_error(self, key_of_chat_frame_id(re_id), code)
            elif re_id is None and self.pending:
                # a server without the "re" extension: the oldest request
                _fid, (_a, d) = self.pending.popitem(last=False)
                d.errback(BenchError(code, data.get("message", ""), data.get("ext", "")))
            return
        if re_id is not None and re_id in self.pending:
            _a, d = self.pending.pop(re_id)
            d.callback(msg.get("data"))
            return
        if re_id is None:
            for fid, (a, d) in self.pending.items():
                if a == action:
                    del self.pending[fid]
                    d.callback(msg.get("data"))
                    return


# ---------------------------------------------------------------------------
# a run
# ---------------------------------------------------------------------------


class Sender:
    __slots__ = ("client", "index", "recipients", "data", "n", "inflight", "loop")

    def __init__(self, client: BenchClient, recipients, data: dict):
        self.client = client
        self.index = client.index
        self.recipients = recipients
        self.data = data  # the chat data without "message"
        self.n = 0
        self.inflight: Dict[Key, float] = {}
        self.loop = None


class BenchRun:
    def __init__(self, opts: argparse.Namespace, argv: Sequence[str], reactor=None):
        if reactor is None:
            from twisted.internet import reactor as _reactor

            reactor = _reactor
        self.reactor = reactor
        self.opts = opts
        self.argv = list(argv)
        self.token = f"{int(time.time()) % 100000:05d}{random.randrange(10000):04d}"
        self.prefix = f"bench:{self.token}:"
        self.tracker = Tracker()
        self.errors: collections.Counter = collections.Counter()
        self.error_messages: Dict[Any, str] = {}
        self.notes: List[str] = []
        self.nodes: List[Node] = []
        self.clients: List[BenchClient] = []
        self.senders: Dict[int, Sender] = {}
        self.release_on_own_echo = False
        self.sending = False
        self.timeouts = 0
        self.disconnects = 0
        self.t_start = time.perf_counter()
        self._factories: Dict[str, Any] = {}
        self._progress_loop = None
        self._progress_tty = False
        self._progress_printed = False
        self._stop_early = None
        self.phase = "setup"

    # notes and errors -------------------------------------------------------
    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)
            self.log(text)

    def log(self, text: str) -> None:
        if not self.opts.quiet:
            self._end_progress_line()
            print(f"chatnet-bench: {text}", file=sys.stderr, flush=True)

    def count_error(self, code, message=None) -> None:
        self.errors[code] += 1
        if message and code not in self.error_messages:
            self.error_messages[code] = str(message)[:200]
        if code == 429:
            self.note(RATE_LIMIT_HINT)
        elif code == 409:
            self.note("a bench session was replaced by another login of the same user (409): "
                      "is another run or client using these users?")

    def client_lost(self, client: BenchClient, code, reason) -> None:
        self.disconnects += 1

    # websocket ------------------------------------------------------------------
    def factory_for(self, node: Node):
        f = self._factories.get(node.url)
        if f is None:
            from autobahn.twisted.websocket import WebSocketClientFactory

            f = WebSocketClientFactory(node.url, reactor=self.reactor)
            f.protocol = _protocol_class()
            f.setProtocolOptions(
                utf8validateIncoming=False,
                openHandshakeTimeout=self.opts.connect_timeout,
                closeHandshakeTimeout=2,
                autoPingInterval=0,
                tcpNoDelay=True,
            )
            if self.opts.compression == "deflate":
                from autobahn.websocket.compress import PerMessageDeflateOffer

                f.setProtocolOptions(
                    perMessageCompressionOffers=[PerMessageDeflateOffer()],
                    perMessageCompressionAccept=_accept_deflate,
                )
            f.noisy = False
            self._factories[node.url] = f
        return f

    # discovery --------------------------------------------------------------
    async def discover(self) -> List[Node]:
        opts = self.opts
        if opts.nodes:
            nodes = [node_from_url(u) for u in opts.nodes.split(",") if u.strip()]
        else:
            from twisted.web.client import Agent

            base = gateway_base(opts.gateway)
            agent = Agent(self.reactor, connectTimeout=opts.connect_timeout)
            resp = await agent.request(b"GET", (base + "/server?all=1").encode())
            body = await _read_body(resp)
            if resp.code != 200:
                raise RuntimeError(f"gateway answered {resp.code}: {body[:200]!r}")
            nodes = nodes_from_gateway_answer(orjson.loads(body), base)
        if not nodes:
            raise RuntimeError("no chat node available")
        for node in nodes:
            resolve(node)
        self.nodes = nodes
        return nodes

    # clients ------------------------------------------------------------------
    def make_clients(self, node_indexes: Sequence[int]) -> List[BenchClient]:
        names = user_names(user_prefix(self.opts), self.opts.user_start, len(node_indexes))
        self.clients = [
            BenchClient(self, i, names[i], self.nodes[n]) for i, n in enumerate(node_indexes)
        ]
        return self.clients

    async def maybe_create_users(self) -> None:
        if not self.opts.create_users:
            return
        from twisted.internet.threads import deferToThreadPool

        names = [c.username for c in self.clients]
        pool = self.reactor.getThreadPool()
        added = await deferToThreadPool(self.reactor, pool, create_users, self.opts.mongo, names)
        self.log(f"created {added} users in MongoDB ({len(names) - added} existed)")

    async def login_all(self, clients: Sequence[BenchClient]) -> Tuple[int, collections.Counter]:
        """Connect and log in ``clients``, at most --connect-concurrency at a time."""
        from twisted.internet import defer

        sem = defer.DeferredSemaphore(max(1, self.opts.connect_concurrency))
        failures: collections.Counter = collections.Counter()
        ok = 0

        def failed(f):
            e = f.value
            if isinstance(e, BenchError):
                failures[f"error {e.code} {e.message}".strip()] += 1
            else:
                failures[f"{type(e).__name__}: {e}"[:160]] += 1
            return False

        ds = [sem.run(c.connect).addCallbacks(lambda _: True, failed) for c in clients]
        results = await defer.gatherResults(ds)
        ok = sum(1 for r in results if r)
        if failures:
            top = ", ".join(f"{n}x {why}" for why, n in failures.most_common(3))
            self.note(f"{len(clients) - ok} of {len(clients)} clients failed to log in: {top}")
            if any(why.startswith("error 401") for why in failures):
                self.note(CREATE_USERS_HINT)
            if any("Too many open files" in why or "EMFILE" in why for why in failures):
                self.note("out of file descriptors in the load generator (ulimit -n)")
        return ok, failures

    def node_counts(self) -> Dict[str, int]:
        c: collections.Counter = collections.Counter()
        for cl in self.clients:
            if cl.logged_in:
                c[cl.nodeId or cl.node.name] += 1
        return dict(sorted(c.items()))

    async def close_all(self, timeout: float = 3.0) -> None:
        for c in self.clients:
            c.close()
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline and any(c.connected for c in self.clients):
            await self.sleep(0.05)
        for c in self.clients:
            if not c.closed:
                c.abort()

    # time -----------------------------------------------------------------------
    def sleep(self, seconds: float):
        from twisted.internet import task

        return task.deferLater(self.reactor, max(0.0, seconds), lambda: None)

    async def send_phase(self, seconds: float) -> None:
        """Sleep ``seconds`` or until :meth:`stop_early`."""
        from twisted.internet import defer

        d = defer.Deferred()
        self._stop_early = d
        call = self.reactor.callLater(max(0.0, seconds), lambda: d.called or d.callback(None))
        await d
        if call.active():
            call.cancel()
        self._stop_early = None

    def stop_early(self) -> bool:
        d = self._stop_early
        if d is not None and not d.called:
            self.note("interrupted: the send phase was cut short, then drained")
            d.callback(None)
            return True
        return False

    # progress -------------------------------------------------------------------
    def start_progress(self) -> None:
        if self.opts.progress <= 0 or self.opts.quiet:
            return
        from twisted.internet import task

        self._progress_tty = sys.stderr.isatty()
        self._progress_loop = task.LoopingCall(self._progress)
        self._progress_loop.clock = self.reactor
        self._progress_loop.start(self.opts.progress, now=False)
        self._last_progress = (time.perf_counter(), 0, 0)

    def stop_progress(self) -> None:
        if self._progress_loop is not None and self._progress_loop.running:
            self._progress_loop.stop()
        self._end_progress_line()

    def _end_progress_line(self) -> None:
        if self._progress_tty and self._progress_printed:
            print(file=sys.stderr, flush=True)
            self._progress_printed = False

    def progress_text(self) -> str:
        t = self.tracker
        now = time.perf_counter()
        t0, d0, s0 = self._last_progress
        dt = max(1e-9, now - t0)
        rate = (t.delivered - d0) / dt
        srate = (t.sent - s0) / dt
        self._last_progress = (now, t.delivered, t.sent)
        inflight = sum(len(s.inflight) for s in self.senders.values())
        connected = sum(1 for c in self.clients if c.logged_in and c.connected)
        errs = sum(self.errors.values())
        if self.opts.scenario == "connections":
            failed = sum(1 for c in self.clients if c.closed and not c.connected)
            return (f"[connections {self.phase} {now - self.t_start:6.1f}s] "
                    f"logged in={connected}/{len(self.clients)} closed={failed} errors={errs}")
        return (f"[{self.opts.scenario} {self.phase} {now - self.t_start:6.1f}s] "
                f"clients={connected}/{len(self.clients)} sent={t.sent} ({srate:,.0f}/s) "
                f"delivered={t.delivered} ({rate:,.0f}/s) inflight={inflight} "
                f"pending={t.pending} errors={errs}")

    def _progress(self) -> None:
        if time.perf_counter() - self.t_start < 3.0:
            return
        text = self.progress_text()
        if self._progress_tty:
            sys.stderr.write("\r\x1b[K" + text)
            sys.stderr.flush()
            self._progress_printed = True
        else:
            print(text, file=sys.stderr, flush=True)

    # traffic ----------------------------------------------------------------------
    def send_one(self, s: Sender) -> None:
        n = s.n
        s.n += 1
        key = (s.index, n)
        data = dict(s.data)
        data["message"] = message_text(self.token, s.index, n, self.opts.size)
        if "to" in data:
            data["ts"] = int(time.time() * 1000)
        t = time.perf_counter()
        self.tracker.on_send(key, s.recipients, t)
        s.inflight[key] = t
        s.client.send_chat(key, data)

    def fill(self, s: Sender) -> None:
        """Top up the sender's window (window mode)."""
        if not self.sending or not s.client.connected:
            return
        w = self.opts.window
        while len(s.inflight) < w and self.sending:
            self.send_one(s)

    def tick(self, s: Sender) -> None:
        """One paced send (rate mode)."""
        if not self.sending or not s.client.connected:
            return
        if self.opts.window and len(s.inflight) >= self.opts.window:
            return
        self.send_one(s)

    def on_chat(self, client: BenchClient, key: Key) -> None:
        status = self.tracker.on_receive(key, client.index, time.perf_counter())
        if status != NEW:
            return
        s = self.senders.get(key[0])
        if s is None:
            return
        if self.release_on_own_echo and client.index != s.index:
            return
        if s.inflight.pop(key, None) is not None and self.opts.rate <= 0:
            self.fill(s)

    def on_chat_error(self, client: BenchClient, key: Key, code) -> None:
        self.tracker.on_reject(key)
        s = self.senders.get(key[0])
        if s is not None and s.inflight.pop(key, None) is not None and self.opts.rate <= 0:
            # refill later, so that a refusing server is not flooded
            self.reactor.callLater(0.1, self.fill, s)

    def sweep(self) -> None:
        """Free window slots held by messages older than --msg-timeout."""
        limit = time.perf_counter() - self.opts.msg_timeout
        for s in self.senders.values():
            expired = []
            for key, t in s.inflight.items():
                if t > limit:
                    break
                expired.append(key)
            for key in expired:
                del s.inflight[key]
            if expired:
                self.timeouts += len(expired)
                if self.opts.rate <= 0:
                    self.fill(s)

    async def traffic(self, senders: List[Sender]) -> None:
        """Send for --duration (the first --warmup seconds unmeasured), then
        drain for up to --drain seconds."""
        from twisted.internet import task

        opts = self.opts
        warmup = opts.warmup
        if warmup >= opts.duration:
            if warmup > 0:
                self.note("--warmup is not shorter than --duration: no warm-up")
            warmup = 0.0
        self.senders = {s.index: s for s in senders}
        sweeper = task.LoopingCall(self.sweep)
        sweeper.clock = self.reactor
        sweeper.start(0.25, now=False)
        starts = []
        self.sending = True
        try:
            if warmup > 0:
                self.phase = "warmup"
            else:
                self.phase = "send"
                self.tracker.start_measure(time.perf_counter())
            if opts.rate > 0:
                for i, s in enumerate(senders):
                    s.loop = task.LoopingCall(self.tick, s)
                    s.loop.clock = self.reactor
                    # stagger the senders over one interval
                    starts.append(self.reactor.callLater(
                        i / (opts.rate * len(senders)), s.loop.start, 1.0 / opts.rate))
            else:
                for s in senders:
                    self.fill(s)
            if warmup > 0:
                await self.send_phase(warmup)
                self.tracker.start_measure(time.perf_counter())
                self.phase = "send"
            await self.send_phase(opts.duration - warmup)
        finally:
            self.sending = False
            self.tracker.stop_measure(time.perf_counter())
            for call in starts:
                if call.active():
                    call.cancel()
            for s in senders:
                if s.loop is not None and s.loop.running:
                    s.loop.stop()
        try:
            self.phase = "drain"
            deadline = time.perf_counter() + opts.drain
            while self.tracker.pending > 0 and time.perf_counter() < deadline:
                await self.sleep(0.02)
            # copies arriving late show up as duplicates
            await self.sleep(min(0.2, opts.drain))
        finally:
            if sweeper.running:
                sweeper.stop()

    # results ------------------------------------------------------------------------
    def base_result(self) -> Dict[str, Any]:
        r: Dict[str, Any] = {k: None for k in RESULT_KEYS}
        r["scenario"] = self.opts.scenario
        return r

    def finish(self, r: Dict[str, Any]) -> Dict[str, Any]:
        r["errors"] = {str(k): v for k, v in sorted(self.errors.items(), key=lambda kv: str(kv[0]))}
        if self.error_messages:
            r["error_messages"] = {str(k): v for k, v in self.error_messages.items()}
        r["run"] = self.token
        r["wall_seconds"] = round(time.perf_counter() - self.t_start, 3)
        if self.clients:
            r["compression"] = self.opts.compression
            r["compressed_connections"] = sum(1 for c in self.clients if c.compressed)
            if self.opts.compression == "deflate" and r["compressed_connections"] < len(self.clients):
                self.note("some nodes declined permessage-deflate: start them with --compression deflate")
        r["notes"] = list(self.notes)
        r["command"] = command_line(self.argv)
        return r


# ---------------------------------------------------------------------------
# scenarios
# ---------------------------------------------------------------------------


def _traffic_params(opts) -> Dict[str, Any]:
    return {
        "duration": opts.duration,
        "warmup": opts.warmup,
        "drain": opts.drain,
        "window": opts.window,
        "rate": opts.rate,
        "size": opts.size,
    }


async def scenario_direct(run: BenchRun) -> Dict[str, Any]:
    opts = run.opts
    nodes = await run.discover()
    k = len(nodes)
    if k < 2:
        run.note("only one node: the pairs share it")
    # sender of pair i on node i % k, its receiver on the next node
    idx = []
    for i in range(opts.pairs):
        idx.append(i % k)
        idx.append((i + 1) % k)
    clients = run.make_clients(idx)
    await run.maybe_create_users()
    run.start_progress()
    run.phase = "login"
    ok, _failures = await run.login_all(clients)
    pairs = []
    same_node = 0
    for i in range(opts.pairs):
        snd, rcv = clients[2 * i], clients[2 * i + 1]
        if snd.logged_in and rcv.logged_in:
            pairs.append((snd, rcv))
            if snd.nodeId and snd.nodeId == rcv.nodeId and k > 1:
                same_node += 1
    r = run.base_result()
    if not pairs:
        run.stop_progress()
        await run.close_all()
        r["error"] = "no pair could log in"
        return run.finish(r)
    await run.sleep(opts.settle)
    senders = [
        Sender(snd, frozenset((rcv.index,)), {"to": rcv.username, "format": "text"})
        for snd, rcv in pairs
    ]
    await run.traffic(senders)
    run.stop_progress()
    r.update(run.tracker.summary())
    r.update({
        "pairs": len(pairs),
        "pairs_requested": opts.pairs,
        "same_node_pairs": same_node,
        "timeouts": run.timeouts,
        "disconnects": run.disconnects,
        "nodes": run.node_counts(),
        "params": _traffic_params(opts),
    })
    await run.close_all()
    return run.finish(r)


async def scenario_room(run: BenchRun) -> Dict[str, Any]:
    from twisted.internet import defer

    opts = run.opts
    nodes = await run.discover()
    clients = run.make_clients(spread(opts.members, len(nodes)))
    await run.maybe_create_users()
    run.start_progress()
    run.phase = "login"
    await run.login_all(clients)
    members = [c for c in clients if c.logged_in]
    r = run.base_result()
    if not members:
        run.stop_progress()
        await run.close_all()
        r["error"] = "no member could log in"
        return run.finish(r)
    run.phase = "join"
    join_failures: collections.Counter = collections.Counter()

    def join_failed(f):
        join_failures[str(f.value)[:120]] += 1
        return False

    results = await defer.gatherResults([
        c.request("joinRoom", {"roomName": opts.room, "username": c.username})
        .addCallbacks(lambda _data: True, join_failed)
        for c in members
    ])
    joined = [c for c, ok in zip(members, results) if ok and c.connected]
    if join_failures:
        run.note(f"{sum(join_failures.values())} joinRoom failures: "
                 + ", ".join(f"{n}x {w}" for w, n in join_failures.most_common(3)))
    if not joined:
        run.stop_progress()
        await run.close_all()
        r["error"] = f"no member could join {opts.room}"
        return run.finish(r)
    await run.sleep(opts.settle)
    recipients = frozenset(c.index for c in joined)
    # the first members are on different nodes (round-robin)
    sending = [c for c in joined][: opts.senders]
    senders = [Sender(c, recipients, {"roomName": opts.room, "isGroup": True, "format": "text"})
               for c in sending]
    run.release_on_own_echo = True
    await run.traffic(senders)
    run.stop_progress()
    r.update(run.tracker.summary())
    r.update({
        "members": len(joined),
        "members_requested": opts.members,
        "senders": len(senders),
        "room": opts.room,
        "timeouts": run.timeouts,
        "disconnects": run.disconnects,
        "nodes": run.node_counts(),
        "params": _traffic_params(opts),
    })
    await run.close_all()
    return run.finish(r)


def pick_node(nodes: List[Node], wanted: Optional[str]) -> Node:
    if not wanted:
        return nodes[0]
    for n in nodes:
        if n.nodeId == wanted or n.url == wanted or f"{n.host}:{n.port}" == wanted:
            return n
    if wanted.isdigit() and int(wanted) < len(nodes):
        return nodes[int(wanted)]
    if "://" in wanted:
        return node_from_url(wanted)
    raise RuntimeError(f"node {wanted!r} not among {[n.name for n in nodes]}")


async def scenario_connections(run: BenchRun) -> Dict[str, Any]:
    opts = run.opts
    nodes = await run.discover()
    node = pick_node(nodes, opts.node)
    if node.ip is None:
        resolve(node)
    run.nodes = [node]
    soft, hard = raise_nofile(opts.clients + 256)
    if 0 <= soft < opts.clients + 64:
        run.note(f"file descriptor limit {soft} (hard {hard}) is below {opts.clients} "
                 "clients: raise it with ulimit -n")
    pid = opts.node_pid
    if pid is None:
        pid = find_listening_pid(node.port)
        if pid is None:
            run.note(f"could not find the process listening on port {node.port}: "
                     "pass --node-pid PID for the memory figure")
    if pid is not None and pid == os.getpid():
        run.note("the node runs in this process: its RSS includes the load generator")
    clients = run.make_clients([0] * opts.clients)
    await run.maybe_create_users()
    rss_before = read_rss_kb(pid) if pid else None
    run.start_progress()
    run.phase = "connect"
    t0 = time.perf_counter()
    ok, failures = await run.login_all(clients)
    t1 = time.perf_counter()
    if ok < opts.clients and not any(w.startswith("error 401") for w in failures):
        run.note("some connections failed: the node may be out of file descriptors "
                 "(raise its ulimit -n) or its accept backlog is full")
    run.phase = "idle"
    await run.send_phase(opts.duration)
    rss_after = read_rss_kb(pid) if pid else None
    alive = sum(1 for c in clients if c.logged_in and c.connected)
    run.stop_progress()
    lat = sorted(c.login_latency * 1000.0 for c in clients if c.login_latency is not None)
    r = run.base_result()
    per_conn = None
    if rss_before is not None and rss_after is not None and alive > 0:
        per_conn = round((rss_after - rss_before) / alive, 2)
    r.update({
        "sent": len(clients),
        "delivered": ok,
        "lost": len(clients) - ok,
        "duplicated": 0,
        "msgs_per_s": round(ok / (t1 - t0), 1) if t1 > t0 else None,
        "p50_ms": _round(percentile(lat, 50), 3),
        "p99_ms": _round(percentile(lat, 99), 3),
        "max_ms": _round(lat[-1] if lat else None, 3),
        "seconds": round(t1 - t0, 3),
        "clients": opts.clients,
        "logged_in": ok,
        "alive": alive,
        "failures": dict(failures.most_common(10)),
        "node": node.name,
        "node_url": node.url,
        "node_pid": pid,
        "rss_before_kb": rss_before,
        "rss_after_kb": rss_after,
        "rss_per_conn_kb": per_conn,
        "hold_seconds": opts.duration,
        "nodes": run.node_counts(),
        "nofile_limit": soft,
    })
    if alive < ok:
        run.note(f"{ok - alive} clients were disconnected while idle")
    already = node.extra.get("connections")
    if isinstance(already, int) and already > 0:
        run.note(f"the node already had {already} connections: for a clean memory "
                 "figure use a freshly started node")
    if per_conn is not None and per_conn <= 0:
        run.note("the node's RSS did not grow: it is reusing memory freed earlier; "
                 "measure on a freshly started node")
    await run.close_all(timeout=5.0)
    return run.finish(r)


def scenario_filter(opts, argv) -> Dict[str, Any]:
    r: Dict[str, Any] = {k: None for k in RESULT_KEYS}
    r["scenario"] = "filter"
    r["command"] = command_line(argv)
    try:
        from bench.filter_bench import run_filter_bench  # imported only for this scenario
    except ImportError as e:
        r["error"] = f"the filter benchmark is not available: {e}"
        return r
    t0 = time.perf_counter()
    res = run_filter_bench(opts.duration)
    r["seconds"] = round(time.perf_counter() - t0, 3)
    if isinstance(res, dict):
        r.update(res)
    if r.get("msgs_per_s") is None and r.get("messages") and r.get("seconds"):
        r["msgs_per_s"] = round(r["messages"] / r["seconds"], 1)
    r["scenario"] = "filter"
    r["command"] = command_line(argv)
    return r


SCENARIO_FUNCS = {
    "direct": scenario_direct,
    "room": scenario_room,
    "connections": scenario_connections,
}


# ---------------------------------------------------------------------------
# entry points
# ---------------------------------------------------------------------------


def run_async(argv: Sequence[str], reactor=None):
    """Run one scenario inside a running reactor: Deferred firing with the result dict."""
    from twisted.internet import defer

    argv = list(argv)
    opts = parse_args(argv)
    if opts.scenario == "filter":
        return defer.maybeDeferred(scenario_filter, opts, argv)
    run = BenchRun(opts, argv, reactor)
    return defer.Deferred.fromCoroutine(_guarded(run))


async def _guarded(run: BenchRun) -> Dict[str, Any]:
    try:
        return await SCENARIO_FUNCS[run.opts.scenario](run)
    except Exception as e:  # noqa: BLE001 - reported in the result line
        run.stop_progress()
        try:
            await run.close_all(timeout=1.0)
        except Exception:  # noqa: BLE001
            pass
        r = run.base_result()
        r["error"] = f"{type(e).__name__}: {e}"
        return run.finish(r)


_current_run: List[BenchRun] = []


def run(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    """Run one scenario and return its result dict.

    Starts the reactor and stops it when done. If this process's reactor has
    already run (it cannot be started again), the run happens in a subprocess
    (``python -m bench.loadgen ... --json``). Inside a running reactor use
    :func:`run_async`.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    opts = parse_args(argv)
    if opts.scenario == "filter":
        return scenario_filter(opts, argv)
    from twisted.internet import reactor

    if reactor.running:
        raise RuntimeError("the reactor is running: use run_async(argv)")
    if getattr(reactor, "_startedBefore", False):
        return run_subprocess(argv)
    from twisted.internet import defer

    bench = BenchRun(opts, argv, reactor)
    _current_run.append(bench)
    box: Dict[str, Any] = {}

    def done(result):
        box["result"] = result
        reactor.stop()

    def start():
        d = defer.Deferred.fromCoroutine(_guarded(bench))
        d.addBoth(done)
        if hasattr(signal, "SIGINT"):
            signal.signal(signal.SIGINT, _interrupt)

    reactor.callWhenRunning(start)
    try:
        reactor.run()
    finally:
        _current_run.remove(bench)
    result = box.get("result")
    if isinstance(result, BaseException) or result is None:
        r = bench.base_result()
        r["error"] = f"interrupted: {result!r}" if result is not None else "interrupted"
        return bench.finish(r)
    if not isinstance(result, dict):  # a Failure
        r = bench.base_result()
        r["error"] = str(getattr(result, "value", result))
        return bench.finish(r)
    return result


def _interrupt(signum, frame):
    """First Ctrl-C ends the send phase (results still printed); the next stops."""
    from twisted.internet import reactor

    for b in _current_run:
        if b.stop_early():
            return
    reactor.callFromThread(reactor.stop)


def run_subprocess(argv: Sequence[str], timeout: Optional[float] = None) -> Dict[str, Any]:
    """Run in a fresh interpreter and parse its JSON line."""
    args = list(argv)
    if "--json" not in args:
        args.append("--json")
    env = dict(os.environ)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    proc = subprocess.run([sys.executable, "-m", "bench.loadgen", *args], env=env,
                          capture_output=True, text=True, timeout=timeout)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        raise RuntimeError(f"chatnet-bench exited {proc.returncode}: {proc.stderr[-2000:]}")
    result = json.loads(lines[-1])
    result["command"] = command_line(argv)
    return result


def human_summary(r: Dict[str, Any]) -> str:
    lines = [f"scenario     {r.get('scenario')}"]
    for k in ("sent", "delivered", "lost", "duplicated", "msgs_per_s", "p50_ms", "p99_ms",
              "seconds", "rss_per_conn_kb", "error"):
        if r.get(k) is not None:
            lines.append(f"{k:<12} {r[k]}")
    for n in r.get("notes") or ():
        lines.append(f"note         {n}")
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    opts = parse_args(argv)
    result = run(argv)
    if not opts.json:
        print(human_summary(result))
    sys.stdout.write(json.dumps(result, separators=(", ", ": ")) + "\n")
    sys.stdout.flush()
    return 1 if result.get("error") else 0


if __name__ == "__main__":
    sys.exit(main())
