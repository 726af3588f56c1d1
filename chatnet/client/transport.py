"""The client's way to a node: gateway lookup, WebSocket connect, reconnect with back-off.

:class:`Link` keeps one WebSocket to some node of the cluster: it asks the
gateway for a node (``lookup()``, a Deferred firing with the gateway's
answer), opens a WebSocket to it (``connector(url, attempt)``), gives up an
attempt that takes longer than ``attempt_timeout`` (connecting and logging in
together) and, when a connection fails or is lost, asks the gateway again
after a back-off.  What happens on the connection is its owner's business
(:class:`LinkOwner`, in practice :class:`chatnet.client.connection.ChatConnection`).

:class:`GatewayClient` and :func:`connect_websocket` are the real ``lookup``
and ``connector`` (Twisted's ``Agent`` and autobahn); tests hand in fakes.
"""

from __future__ import annotations

import random
from typing import Any, Callable
from urllib.parse import urlsplit, urlunsplit

import orjson
from twisted.internet import defer
from twisted.logger import Logger

#: every frame sent and received, for ``--debug-log`` (passwords masked)
trace = Logger(namespace="chatnet.client.frames")


class GatewayError(Exception):
    """The gateway gave no node; ``short`` is for the status bar, ``str()`` the whole story."""

    def __init__(self, short: str, detail: str = ""):
        super().__init__(f"{short}: {detail}" if detail else short)
        self.short = short
        self.detail = detail


def describe_exception(exc: Any) -> str:
    value = getattr(exc, "value", exc)  # a Failure
    if isinstance(value, BaseException):
        text = str(value).strip() or type(value).__name__
        name = type(value).__name__
        if "refused" in text.lower():
            return "connection refused"
        if name in ("TimeoutError", "TCPTimedOutError", "CancelledError"):
            return "timed out"
        if name == "DNSLookupError":
            return "unknown host"
        return text.splitlines()[0][:200]
    return str(value)[:200]


def server_url(server: Any, gateway_host: str | None = None) -> str:
    """The ws:// URL of a gateway answer (``url``, else ``host`` and ``port``)."""
    if not isinstance(server, dict):
        raise ValueError("not a JSON object")
    url = server.get("url")
    if not (isinstance(url, str) and url.startswith(("ws://", "wss://"))):
        host, port = server.get("host"), server.get("port")
        if not host or not isinstance(port, (int, str)) or not str(port).isdigit():
            raise ValueError(f"no url, host or port in {server!r}"[:200])
        if ":" in str(host) and not str(host).startswith("["):
            host = f"[{host}]"
        url = f"ws://{host}:{int(port)}/"
    parts = urlsplit(url)
    if gateway_host and parts.hostname in ("0.0.0.0", "::", ""):
        netloc = gateway_host if ":" not in gateway_host else f"[{gateway_host}]"
        if parts.port:
            netloc += f":{parts.port}"
        url = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
    return url


class Attempt:
    """Callbacks of one WebSocket connection attempt, handed to the connector.

    The connector calls ``opened(transport)`` once the WebSocket is open (the
    transport has ``sendMessage(payload, isBinary=False)`` and
    ``sendClose(code, reason)``), ``message(payload)`` for each text frame,
    ``closed(code, reason)`` when it is closed, ``failed(reason)`` when it
    could not connect at all, and ``pong(payload)`` for a WebSocket pong
    (the transport may have ``sendPing(payload)``).  Calls for an attempt
    the link has given up are ignored.
    """

    def __init__(self, link: "Link", server: dict, url: str):
        self.link = link
        self.server = server
        self.url = url
        self.transport: Any = None
        self.handle: Any = None

    def opened(self, transport: Any) -> None:
        self.link._on_open(self, transport)

    def message(self, payload: bytes | str) -> None:
        self.link._on_message(self, payload)

    def closed(self, code: int | None = 1006, reason: str | None = "") -> None:
        self.link._on_close(self, code, reason)

    def failed(self, reason: Any = "") -> None:
        self.link._on_fail(self, reason)

    def pong(self, payload: bytes) -> None:
        self.link._on_pong(self, payload)


class LinkOwner:
    """What :class:`Link` tells the session that uses it."""

    #: the session's state, for the frame trace
    state: str = "idle"

    def link_state(self, state: str) -> None:
        """The link is in ``state`` now: ``gateway``, ``connecting`` or ``waiting``."""

    def link_notice(self, text: str, kind: str = "system") -> None:
        """Something to tell the user."""

    def link_opened(self) -> None:
        """The WebSocket of the current attempt is open: time to log in."""

    def link_frame(self, action: Any, data: dict, re_id: Any) -> None:
        """A frame on the current connection: its ``action``, ``data`` (a dict) and ``re`` (or None)."""

    def link_lost(self, code: int | None, reason: str | None) -> None:
        """The open connection closed; call :meth:`Link.retry` (or not) to go on."""

    def link_pong(self, payload: bytes) -> None:
        """A WebSocket pong on the current connection."""

    def link_error(self, exc: Any) -> None:
        """A bug in handling the gateway's answer."""


class Link:
    """One WebSocket to some node, found through the gateway and found again when lost.

    ``node_id`` and ``node_url`` name the node of the current (or last)
    attempt; ``transport`` is the open WebSocket (None when there is none);
    ``retry_reason`` and ``retry_at`` tell why and until when the link waits
    before asking the gateway again.  Failures in a row wait ``backoff[n]``
    seconds (± ``jitter``), a connection lost after it was in use
    ``quick_retry`` seconds.
    """

    BACKOFF = (1.0, 2.0, 4.0, 8.0, 15.0, 30.0)

    def __init__(
        self,
        owner: LinkOwner,
        *,
        clock: Any,
        ids: Any,
        lookup: Callable[[], Any],
        connector: Callable[[str, Attempt], Any],
        gateway_host: str | None = None,
        backoff: tuple[float, ...] = BACKOFF,
        quick_retry: float = 0.5,
        jitter: float = 0.2,
        rng: Callable[[], float] = random.random,
        attempt_timeout: float = 20.0,
    ):
        self.owner = owner
        self.clock = clock
        self.ids = ids
        self.lookup = lookup
        self.connector = connector
        self.gateway_host = gateway_host
        self.backoff = tuple(backoff) or (1.0,)
        self.quick_retry = quick_retry
        self.jitter = jitter
        self.rng = rng
        self.attempt_timeout = attempt_timeout

        self.node_id: str | None = None
        self.node_url: str | None = None
        self.transport: Any = None
        self.retry_reason: str | None = None
        self.retry_at: float | None = None

        self._attempt: Attempt | None = None
        self._token: object | None = None
        self._retry_call: Any = None
        self._attempt_timer: Any = None
        self._failures = 0
        self._reported: str | None = None
        self._close_waiter: tuple[Attempt, defer.Deferred] | None = None

    # -- what the session does with it ------------------------------------------

    def start(self) -> None:
        """Ask the gateway for a node now, as after a success."""
        self._failures = 0
        self._reported = None
        self._lookup()

    def established(self) -> None:
        """The node accepted the login: the attempt is over, the next failure waits the least."""
        self._cancel_attempt_timer()
        self._failures = 0
        self._reported = None

    def cancel_timers(self) -> None:
        for name in ("_retry_call", "_attempt_timer"):
            call = getattr(self, name)
            setattr(self, name, None)
            if call is not None and call.active():
                call.cancel()

    def abandon(self, reason: str) -> None:
        """Close the current connection (if any) without waiting for it."""
        attempt, self._attempt = self._attempt, None
        if attempt is not None:
            self._drop(attempt, 1000, reason)
        self.transport = None

    def refused(self, reason: str | None) -> None:
        """The node refused the login: drop it, then stop (``reason`` None) or try again."""
        self._cancel_attempt_timer()
        self.abandon("login failed")
        if reason is None:
            self._token = None
        else:
            self._retry(reason)

    def halt(self) -> None:
        """No more lookups: the answer of one under way is ignored."""
        self._token = None

    def stop(self) -> Attempt | None:
        """Stop for good: no more lookups or retries.  Returns the attempt to close with :meth:`close`."""
        self._token = None
        attempt, self._attempt = self._attempt, None
        self.transport = None
        return attempt

    def close(self, attempt: Attempt | None) -> defer.Deferred:
        """Close ``attempt`` (from :meth:`stop`); fires once closed, at most a second later."""
        d: defer.Deferred = defer.Deferred()
        if attempt is not None and attempt.transport is not None:
            self._close_waiter = (attempt, d)
            try:
                attempt.transport.sendClose(1000, "bye")
            except Exception:
                pass
            self.clock.callLater(1.0, self._close_done)
        else:
            if attempt is not None:
                self._drop(attempt, 1000, "bye")
            d.callback(None)
        return d

    def retry(self, reason: str, *, quick: bool = False, reported: bool = False) -> None:
        """Ask the gateway again after a while; ``reported`` when the user has been told already."""
        if reported:
            self._reported = reason
        self._retry(reason, quick=quick)

    def send(self, action: str, data: dict) -> int:
        """Send a request frame on the open connection; returns its id."""
        rid = self.ids.next()
        trace.info("-> {node} {id} {action} {data}", node=self.node_id, id=rid, action=action,
                   data={k: ("***" if k == "password" else v) for k, v in data.items()})
        self.transport.sendMessage(orjson.dumps({"id": rid, "action": action, "data": data}), isBinary=False)
        return rid

    def ping(self, payload: bytes, after: int) -> bool:
        """A WebSocket ping (after request ``after``); False when the transport cannot ping."""
        send_ping = getattr(self.transport, "sendPing", None)
        if send_ping is None:
            return False
        trace.info("-> ping after {id}", id=after)
        try:
            send_ping(payload)
        except Exception:
            return False
        return True

    # -- gateway and connect ----------------------------------------------------

    def _lookup(self) -> None:
        self._retry_call = None
        token = self._token = object()
        self.owner.link_state("gateway")
        d = defer.maybeDeferred(self.lookup)
        d.addCallbacks(lambda server: self._got_server(token, server),
                       lambda failure: self._lookup_failed(token, failure))
        d.addErrback(self.owner.link_error)

    def _lookup_failed(self, token: object, failure: Any) -> None:
        if token is not self._token:
            return
        exc = failure.value
        if isinstance(exc, GatewayError):
            self._retry(exc.short, str(exc))
        else:
            self._retry("cannot reach gateway", f"cannot reach gateway: {describe_exception(exc)}")

    def _got_server(self, token: object, server: Any) -> None:
        if token is not self._token:
            return
        try:
            url = server_url(server, self.gateway_host)
        except ValueError as exc:
            self._retry("the gateway gave no usable node", f"the gateway gave no usable node: {exc}")
            return
        node = str(server.get("nodeId") or f"{server.get('host')}:{server.get('port')}")
        self.node_id = node
        self.node_url = url
        attempt = Attempt(self, server, url)
        self._attempt = attempt
        self.owner.link_state("connecting")
        self._attempt_timer = self.clock.callLater(self.attempt_timeout, self._attempt_timed_out, attempt)
        try:
            attempt.handle = self.connector(url, attempt)
        except Exception as exc:  # a bad URL, say
            self._on_fail(attempt, describe_exception(exc))

    def _attempt_timed_out(self, attempt: Attempt) -> None:
        self._attempt_timer = None
        if attempt is not self._attempt:
            return
        self._attempt = None
        self._drop(attempt, 1000, "timeout")
        self.transport = None
        what = "no login answer from" if attempt.transport is not None else "timed out connecting to"
        self._retry(f"{what} {self.node_id}")

    def _drop(self, attempt: Attempt, code: int, reason: str) -> None:
        try:
            if attempt.transport is not None:
                attempt.transport.sendClose(code, reason)
            elif attempt.handle is not None and hasattr(attempt.handle, "disconnect"):
                attempt.handle.disconnect()
        except Exception:
            pass

    def _retry(self, reason: str, detail: str | None = None, *, quick: bool = False) -> None:
        if quick:
            delay = self.quick_retry
        else:
            delay = self.backoff[min(self._failures, len(self.backoff) - 1)]
            self._failures += 1
        if self.jitter:
            delay *= 1 + self.jitter * (2 * self.rng() - 1)
        delay = max(0.0, delay)
        self.retry_reason = reason
        if reason != self._reported:
            self._reported = reason
            self.owner.link_notice(f"{detail or reason}; retrying in {max(1, round(delay))}s", "error")
        self._token = None
        self.retry_at = self.clock.seconds() + delay
        self._retry_call = self.clock.callLater(delay, self._lookup)
        self.owner.link_state("waiting")

    def _cancel_attempt_timer(self) -> None:
        timer, self._attempt_timer = self._attempt_timer, None
        if timer is not None and timer.active():
            timer.cancel()

    def _close_done(self) -> None:
        waiter, self._close_waiter = self._close_waiter, None
        if waiter is not None and not waiter[1].called:
            waiter[1].callback(None)

    # -- transport callbacks ----------------------------------------------------

    def _on_fail(self, attempt: Attempt, reason: Any) -> None:
        if attempt is not self._attempt:
            return
        self._attempt = None
        self._cancel_attempt_timer()
        self._retry(f"cannot connect to {self.node_id}",
                    f"cannot connect to {self.node_id} ({attempt.url}): {describe_exception(reason)}")

    def _on_open(self, attempt: Attempt, transport: Any) -> None:
        if attempt is not self._attempt:
            try:
                transport.sendClose(1000, "not needed")
            except Exception:
                pass
            return
        attempt.transport = transport
        self.transport = transport
        self.owner.link_opened()

    def _on_close(self, attempt: Attempt, code: int | None, reason: str | None) -> None:
        if self._close_waiter is not None and self._close_waiter[0] is attempt:
            self._close_done()
            return
        if attempt is not self._attempt:
            return
        self._attempt = None
        self.transport = None
        self._cancel_attempt_timer()
        if attempt.transport is None:
            self._retry(f"cannot connect to {self.node_id}",
                        f"cannot connect to {self.node_id} ({attempt.url}): {reason or code}")
            return
        self.owner.link_lost(code, reason)

    def _on_message(self, attempt: Attempt, payload: bytes | str) -> None:
        trace.info("<- {node} {state}{stale} {frame}", node=attempt.server.get("nodeId", attempt.url),
                   state=self.owner.state, stale="" if attempt is self._attempt else " (stale attempt)",
                   frame=bytes(payload[:500]) if isinstance(payload, (bytes, bytearray)) else payload[:500])
        if attempt is not self._attempt:
            return
        try:
            frame = orjson.loads(payload)
        except orjson.JSONDecodeError:
            self.owner.link_notice("the node sent a frame that is not JSON; ignored", "error")
            return
        if not isinstance(frame, dict):
            return
        data = frame.get("data")
        self.owner.link_frame(frame.get("action"), data if isinstance(data, dict) else {}, frame.get("re"))

    def _on_pong(self, attempt: Attempt, payload: bytes) -> None:
        trace.info("<- pong {payload!r}", payload=payload)
        if attempt is not self._attempt:
            return
        self.owner.link_pong(payload)


# -- the real network: gateway over HTTP, node over autobahn -------------------


class GatewayClient:
    """``GET /server`` on the gateway with ``twisted.web.client.Agent``."""

    def __init__(self, reactor: Any, gateway: str, timeout: float = 10.0):
        from twisted.web.client import Agent

        self.reactor = reactor
        self.gateway = gateway.rstrip("/")
        self.timeout = timeout
        self.agent = Agent(reactor, connectTimeout=timeout)

    def server(self) -> defer.Deferred:
        from twisted.web.client import readBody
        from twisted.web.http_headers import Headers

        url = f"{self.gateway}/server"
        d = self.agent.request(b"GET", url.encode("utf-8"),
                               Headers({b"User-Agent": [b"chatnet-client"], b"Accept": [b"application/json"]}))

        def got(response: Any) -> defer.Deferred:
            body = readBody(response)
            body.addCallback(lambda raw: self._parse(response.code, raw))
            return body

        d.addCallback(got)
        d.addTimeout(self.timeout, self.reactor)

        def explain(failure: Any) -> Any:
            if failure.check(GatewayError):
                return failure
            raise GatewayError("cannot reach gateway", f"{self.gateway}: {describe_exception(failure.value)}")

        d.addErrback(explain)
        return d

    @staticmethod
    def _parse(code: int, raw: bytes) -> dict:
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            body = None
        if code == 503:
            msg = body.get("error") if isinstance(body, dict) else None
            raise GatewayError("no chat node available", f"gateway: {msg or 'no chat node available'}")
        if code != 200 or not isinstance(body, dict):
            raise GatewayError("the gateway gave no node", f"gateway answered {code}")
        return body


def connect_websocket(reactor: Any, url: str, attempt: Attempt, timeout: float = 10.0) -> Any:
    """Open ``url`` with autobahn and feed ``attempt``; returns the connector."""
    from autobahn.twisted.websocket import WebSocketClientFactory, WebSocketClientProtocol, connectWS

    class Protocol(WebSocketClientProtocol):
        def onOpen(self) -> None:
            attempt.opened(self)

        def onMessage(self, payload: bytes, isBinary: bool) -> None:
            if not isBinary:
                attempt.message(payload)

        def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
            attempt.closed(code, reason)

        def onPong(self, payload: bytes) -> None:
            attempt.pong(payload)

    class Factory(WebSocketClientFactory):
        protocol = Protocol

        def clientConnectionFailed(self, connector: Any, reason: Any) -> None:
            attempt.failed(reason)

    factory = Factory(url, reactor=reactor)
    factory.setProtocolOptions(openHandshakeTimeout=timeout, closeHandshakeTimeout=2,
                               autoPingInterval=15, autoPingTimeout=10)
    context = None
    if factory.isSecure:
        from twisted.internet import ssl

        context = ssl.optionsForClientTLS(factory.host)
    return connectWS(factory, context, timeout=timeout)
