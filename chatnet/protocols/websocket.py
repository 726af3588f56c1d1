"""The client WebSocket protocol: one connection of one (eventually logged-in) user.

Requests of a connection are handled one after the other, in the order they
arrived, so that answers and messages keep the client's order. Every failure
becomes an ``error`` frame (docs/protocol.md, "Errors"); nothing a client sends
can raise past this class or affect another connection.
"""
from collections import deque

from autobahn.twisted.websocket import ConnectionDeny, WebSocketServerProtocol
from autobahn.websocket.protocol import WebSocketProtocol
from twisted.internet import defer
from twisted.logger import Logger

from chatnet.errors import ProtocolError, as_protocol_error
from chatnet.protocols import codec
from chatnet.protocols.constants import GOING_AWAY, LOGIN_TIMEOUT, REPLACED
from chatnet.ratelimit import TokenBucket

log = Logger()

# Close codes (RFC 6455 lets applications use 4000-4999 only):

OPEN = WebSocketProtocol.STATE_OPEN
#: how long a closed connection's second logout waits for the request in hand
LOGOUT_WAIT = 10.0


class _Unlimited:
    """The rate limit of every connection when limiting is off."""

    __slots__ = ()

    @staticmethod
    def allow(cost=1.0):
        return True


UNLIMITED = _Unlimited()


class ChatServerProtocol(WebSocketServerProtocol):
    # Defaults as class attributes: an idle connection keeps none of them in
    # its own dictionary (memory per connection, see bench/RESULTS.md).
    record = None
    features = frozenset()
    # while a resume replays history: live chat frames wait here
    held = None
    _replayed = frozenset()
    _hold_timer = None
    bucket = UNLIMITED
    _queue = ()
    _busy = False
    _login_timer = None
    _gone = None
    _lost = False  # onClose ran
    _request_done = None  # after onClose: fires when the request in hand is done
    _ended = False  # logged out after the close

    @property
    def closed(self):
        """True once no frame can be sent any more: a closing handshake has
        begun (either side) or the connection is lost."""
        return self._lost or self.state != OPEN

    def onConnect(self, request):
        config = self.factory.config
        if config.allowed_origins and request.headers.get("origin") is not None:
            # a browser page (non-browser clients send no Origin)
            origin = request.headers["origin"].strip().lower().rstrip("/")
            if origin not in config.allowed_origins:
                raise ConnectionDeny(403, "origin not allowed")
        if config.rate_limit > 0:
            self.bucket = TokenBucket(config.rate_limit, config.rate_burst, self.factory.clock)

    @property
    def gone(self):
        """A Deferred that fires once the connection is closed and its
        session removed (made on first use: most connections never need it)."""
        if self._gone is None:
            self._gone = defer.Deferred()
            if self._ended:
                self._gone.callback(None)
        return self._gone

    def onOpen(self):
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

    def onMessageEnd(self):
        # autobahn's, minus firing its "message" observer signal (nobody
        # listens here), which costs a Deferred and callbacks per frame.
        if not self.failedByMe:
            self._onMessage(b"".join(self.message_data), self.message_is_binary)
        self.message_data = None

    def _next(self):
        while self._queue and not self.closed:
            request = self._queue.popleft()
            self._busy = True
            d = defer.ensureDeferred(self.factory.handlers.handle(self, request))
            d.addErrback(self._failed, request)
            if not d.called:
                d.addBoth(self._done)
                return
            self._busy = False
        self._busy = False

    def _done(self, _):
        self._busy = False
        if self._request_done is not None:
            done, self._request_done = self._request_done, None
            if not done.called:
                done.callback(None)
        elif not self._lost:
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
        """Send a chat frame, or keep it back while a resume replays."""
        if self.held is not None:
            self.held.append((msg_id, payload))
        elif msg_id is not None and msg_id in self._replayed:
            return
        elif prepared is not None:
            if self.state == OPEN:
                self.sendPreparedMessage(prepared)
        else:
            self.sendMessage(payload)

    def hold(self, at_most=None):
        """Keep live chat frames back (until L{release}, or for C{at_most}
        seconds)."""
        if self.held is None:
            self.held = []
            self._replayed = set()
        if self._hold_timer is not None and self._hold_timer.active():
            self._hold_timer.cancel()
        self._hold_timer = None
        if at_most is not None:
            self._hold_timer = self.factory.clock.callLater(at_most, self.release)

    def replay(self, msg_id, payload):
        self._replayed.add(msg_id)
        self.sendMessage(payload)

    def release(self):
        """The replay is done: send what arrived meanwhile, minus what the
        replay already had (also later: a delivery retried to this node)."""
        timer, self._hold_timer = self._hold_timer, None
        if timer is not None and timer.active():
            timer.cancel()
        held, self.held = self.held or [], None
        if self.closed:
            return
        for msg_id, payload in held:
            if msg_id is None or msg_id not in self._replayed:
                self.sendMessage(payload)

    def sendMessage(self, payload, isBinary=False, *args, **kwargs):
        """autobahn's, except that a frame for a connection that is closing
        is dropped instead of raising (a request in hand may still answer,
        a delivery may still arrive)."""
        if self.state == OPEN:
            super().sendMessage(payload, isBinary, *args, **kwargs)

    def send_error(self, error, re=None):
        self.factory.metrics.error_sent(error.code)
        if not self.closed:
            self.sendMessage(codec.encode_error(error, re))

    def replaced(self):
        """A newer login of the same user took over: 409, then close."""
        if self.closed:
            return
        self.send_error(ProtocolError(409, "this session was replaced by a newer login of the same user", "login"))
        record, self.record = self.record, None
        if record is not None:
            self.factory.sessions.remove(record.username, self)
        self.sendClose(REPLACED, "session replaced")

    def going_away(self):
        """The node is stopping: ask the client to reconnect through the gateway."""
        if not self.closed:
            self.sendClose(GOING_AWAY, "node stopping: reconnect through the gateway")

    # -- end -----------------------------------------------------------------

    def onClose(self, wasClean, code, reason):
        self._lost = True
        self._queue = ()
        if self._login_timer is not None and self._login_timer.active():
            self._login_timer.cancel()
        self.factory.connections.discard(self)
        d = defer.ensureDeferred(self._end(self._busy))
        d.addErrback(lambda f: log.failure("logout failed", f))
        d.addBoth(self._logged_out)

    async def _end(self, busy):
        """Log out at once; if a request was in hand, once more when it is
        done: a login that was publishing the session when the client left
        puts it back after the first logout."""
        record = self.record
        if busy:
            done = self._request_done = defer.Deferred()
        await self.logout()
        if not busy:
            return
        if not done.called:
            timer = self.factory.clock.callLater(LOGOUT_WAIT, done.callback, None)
            await done
            if timer.active():
                timer.cancel()
        record, self.record = self.record or record, None
        if record is not None:
            self.factory.presence.announce(record, False)
            await self.factory.directory.unpublish(record)

    def _logged_out(self, _):
        self._ended = True  # from now on, a new `gone` fires at once
        if self._gone is not None and not self._gone.called:
            self._gone.callback(None)

    async def logout(self):
        record, self.record = self.record, None
        factory = self.factory
        if record is None or not factory.sessions.remove(record.username, self):
            return
        factory.presence.announce(record, False)
        await factory.directory.unpublish(record)
        factory.emit("user_offline", record.username, factory.view.node_id)
