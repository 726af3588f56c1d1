"""The client WebSocket protocol: one connection of one (eventually logged-in) user.

Requests of a connection are handled one after the other, in the order they
arrived, so that answers and messages keep the client's order. Every failure
becomes an ``error`` frame (docs/protocol.md, "Errors"); nothing a client sends
can raise past this class or affect another connection. The session of the
connection (login, logout, replacement, the frames a resume holds back) is
its L{chatnet.service.session.Session}.
"""
import socket
from collections import deque

from autobahn.twisted.websocket import ConnectionDeny
from autobahn.websocket.compress import PERMESSAGE_COMPRESSION_EXTENSION
from twisted.internet import defer
from twisted.logger import Logger

from chatnet.adapters.autobahn import OPEN, FastServerProtocol
from chatnet.errors import ProtocolError, as_protocol_error
from chatnet.protocols import codec
from chatnet.protocols.backlog import OutboundBacklog
from chatnet.protocols.constants import DISCONNECTED, GOING_AWAY, LOGIN_TIMEOUT, REPLACED, TOO_SLOW
from chatnet.protocols.turnwrites import send_at_turn_end

log = Logger()


class _Unlimited:
    """The rate limit of every connection when limiting is off."""

    __slots__ = ()

    @staticmethod
    def allow(cost=1.0):
        return True


UNLIMITED = _Unlimited()


class ChatServerProtocol(FastServerProtocol):
    """Frames in and out of one connection; what its login means lives in
    its L{chatnet.service.session.Session} (C{session}, made once the
    opening handshake is done)."""

    # Defaults as class attributes: an idle connection keeps none of them in
    # its own dictionary (memory per connection, see bench/RESULTS.md).
    session = None
    bucket = UNLIMITED
    _queue = ()  # the requests waiting their turn (a deque from the first one)
    _busy = False
    _login_timer = None

    @property
    def record(self):
        """The L{chatnet.service.online.SessionRecord} while logged in, else None."""
        session = self.session
        return session.record if session is not None else None

    @property
    def features(self):
        session = self.session
        return session.features if session is not None else frozenset()

    @property
    def closed(self):
        """True once no frame can be sent any more: a closing handshake has
        begun (either side) or the connection is lost."""
        return self.state != OPEN or (self.session is not None and self.session.finished)

    @property
    def gone(self):
        """A Deferred that fires once the connection is closed and its
        session removed."""
        return self.session.gone if self.session is not None else defer.succeed(None)

    def connectionMade(self):
        super().connectionMade()
        send_at_turn_end(self.transport)
        config = self.factory.config
        if config.client_send_buffer > 0:
            _set_send_buffer(self.transport, config.client_send_buffer)
        if config.max_client_backlog > 0:
            OutboundBacklog(config.max_client_backlog, self.too_slow).attach(self.transport)

    def too_slow(self):
        """The client reads slower than the node writes to it (or more
        arrived for it during a resume than it may be kept): close 4008
        (it resumes after reconnecting); what it did not read is dropped
        with the connection, at the latest when the closing handshake
        times out."""
        self.factory.metrics.slow_client_disconnected()
        if self.state == OPEN:
            self.sendClose(TOO_SLOW, "too slow: reconnect and resume")

    def onConnect(self, request):
        # An offer of an extension with a parameter the node does not
        # understand is declined, not refused (RFC 7692 section 7):
        # autobahn answers it with 400, so it never sees it.
        self.websocket_extensions = [(name, params) for name, params in self.websocket_extensions
                                     if _understood(name, params)]
        config = self.factory.config
        if config.allowed_origins and request.headers.get("origin") is not None:
            # a browser page (non-browser clients send no Origin)
            origin = request.headers["origin"].strip().lower().rstrip("/")
            if origin not in config.allowed_origins:
                raise ConnectionDeny(403, "origin not allowed")
        bucket = self.factory.frame_bucket()
        if bucket is not None:
            self.bucket = bucket

    def onOpen(self):
        self.session = self.factory.session_service.open(self)
        self.factory.connections.add(self)
        timeout = self.factory.config.login_timeout
        if timeout > 0:
            self._login_timer = self.factory.clock.callLater(timeout, self._login_timed_out)

    def _login_timed_out(self):
        self._login_timer = None
        if self.record is None and not self.closed:
            self.send_error(ProtocolError(401, "no login in time; closing"))
            self.sendClose(LOGIN_TIMEOUT, "login timeout")

    # -- incoming ----------------------------------------------------------

    def onMessage(self, payload, isBinary):
        if self.closed:
            return
        if not self.bucket.allow():
            self.send_error(ProtocolError(429, "rate limit exceeded, slow down"))
            return
        try:
            request = codec.decode(payload, isBinary)
        except ProtocolError as e:
            self.send_error(e)
            return
        if type(self._queue) is not deque:
            self._queue = deque()  # the first request of this connection
        self._queue.append(request)
        if not self._busy:
            self._next()

    def _next(self):
        while self._queue and not self.closed:
            request = self._queue.popleft()
            self._busy = True
            d = defer.ensureDeferred(self.factory.actions.handle(self, request))
            d.addErrback(self._failed, request)
            if not d.called:
                d.addBoth(self._done)
                return
            self._busy = False
        self._busy = False

    def _done(self, _):
        self._busy = False
        if self.session.request_finished():
            self._next()

    def _failed(self, failure, request):
        error = as_protocol_error(failure.value)  # a store that is down: 503
        if error is None:
            log.failure("request {action} failed", failure, action=request.action)
            error = ProtocolError(500, "internal error; the request was not carried out", request.action)
        if not self.closed:
            self.send_error(error, request.id)

    # -- outgoing ----------------------------------------------------------

    def answer(self, action, data, request):
        if not self.closed:
            self.sendMessage(codec.encode(action, data, request.id))

    def push(self, payload, msg_id=None, prepared=None):
        """Send a chat frame, unless the session keeps it back (a resume
        replays) or the replay had it."""
        if self.session.keeps(msg_id, payload):
            return
        if prepared is not None:
            self.send_prepared(prepared)  # the frame as prepared once for every connection
        else:
            self.sendMessage(payload)

    def send_error(self, error, re=None):
        self.factory.metrics.error_sent(error.code)
        if not self.closed:
            self.sendMessage(codec.encode_error(error, re))

    def replaced(self):
        """A newer login of the same user took over: 409, then close."""
        if self.closed:
            return
        self.send_error(ProtocolError(409, "this session was replaced by a newer login of the same user", "login"))
        self.session.replaced()
        self.sendClose(REPLACED, "session replaced")

    def disconnected(self):
        """The server API ends this user's sessions: close 4010; the session
        logs out as after any close."""
        if not self.closed:
            self.sendClose(DISCONNECTED, "disconnected by the server")

    def going_away(self):
        """The node is stopping: ask the client to reconnect through the gateway."""
        if not self.closed:
            self.sendClose(GOING_AWAY, "node stopping: reconnect through the gateway")

    # -- end -----------------------------------------------------------------

    def onClose(self, wasClean, code, reason):
        self._queue = ()
        if self._login_timer is not None and self._login_timer.active():
            self._login_timer.cancel()
        self.factory.connections.discard(self)
        if self.session is not None:
            self.session.closed(self._busy)


def _understood(name, params):
    """Whether the node can accept the extension offer C{name} with
    C{params} (a permessage-deflate offer whose parameters it knows)."""
    kind = PERMESSAGE_COMPRESSION_EXTENSION.get(name)
    if kind is None:
        return True  # autobahn passes over the extensions it does not know
    try:
        kind["Offer"].parse(params)
    except Exception:
        return False
    return True


def _set_send_buffer(transport, size):
    """The kernel's send buffer of C{transport}'s socket: C{size} bytes
    (fixed, instead of growing with the connection, up to 4 MiB on Linux,
    while its client does not read)."""
    handle = getattr(transport, "getHandle", lambda: None)()
    if isinstance(handle, socket.socket):
        try:
            handle.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)
        except OSError as e:
            log.warn("cannot set the send buffer of a client connection: {e}", e=e)
