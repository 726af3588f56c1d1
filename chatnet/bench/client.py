"""One bench user on one node: a WebSocket client speaking the client
protocol (docs/protocol.md) with as little work per frame as it can, since
the receive path is the hot loop of the room scenario."""

from __future__ import annotations

import collections
import functools
import itertools
import random
import socket
import time
from typing import TYPE_CHECKING, Any, Optional, Tuple

import orjson

from chatnet.adapters.autobahn import compressing
from chatnet.bench.targets import Node
from chatnet.bench.tracker import Key, parse_message_key

if TYPE_CHECKING:
    from chatnet.bench.run import BenchRun


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
def _tls_options(host, ca=None):
    """The TLS client options of the connections to C{host}: the system's
    trust roots, or the PEM certificate in the file C{ca}."""
    from twisted.internet.ssl import Certificate, optionsForClientTLS

    if ca is None:
        return optionsForClientTLS(host)
    with open(ca, "rb") as f:
        return optionsForClientTLS(host, trustRoot=Certificate.loadPEM(f.read()))


@functools.lru_cache(maxsize=None)
def _protocol_class():
    from chatnet.adapters.autobahn import FastClientProtocol

    _cheap_connection_debug_log()

    class BenchProtocol(FastClientProtocol):
        client: "BenchClient" = None  # set right after buildProtocol

        def onOpen(self):
            self.client._opened(self)

        def onMessage(self, payload, isBinary):
            self.client._frame(payload)

        def onClose(self, wasClean, code, reason):
            self.client._closed(code, reason)

    return BenchProtocol


class BenchClient:
    """One logged-in user on one node."""

    def __init__(self, run: "BenchRun", index: int, username: str, node: Node):
        self.run = run
        self.traffic = run.traffic
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
        self.stalled = False  # room --stalled: what it reads is not counted
        self.close_code = None

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

            ep = wrapClientTLS(_tls_options(self.node.host, getattr(run.opts, "ca", None)), ep)
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
        self.compressed = compressing(proto)
        if self._open_d is not None and not self._open_d.called:
            self._open_d.callback(None)

    def _closed(self, code, reason):
        self.close_code = code
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

        def unanswered(failure):
            # a server that never answers (a hung login or join) does not
            # hang the run: the request fails after --connect-timeout
            if failure.check(defer.TimeoutError):
                self.pending.pop(fid, None)
                raise BenchError("timeout", f"no answer to {action} in {self.run.opts.connect_timeout:g} s")
            return failure

        return d.addTimeout(self.run.opts.connect_timeout, self.run.reactor).addErrback(unanswered)

    def send_chat(self, key: Key, data: dict) -> None:
        self.send("chat", data, chat_frame_id(key))

    def _frame(self, payload: bytes) -> None:
        if self.stalled:
            return
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
                    traffic = self.traffic
                    if traffic.order_by_seq:
                        seq = data.get("seq")
                        traffic.on_chat(self, key, seq if isinstance(seq, int) else None)
                    else:
                        traffic.on_chat(self, key)
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
                self.traffic.on_chat_error(self, key_of_chat_frame_id(re_id), code)
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
