"""Writes of a reactor turn sent together at its end, straight to the socket.

Twisted's TCP transport buffers each ``write`` and sends on the next
``epoll`` round: ``startWriting`` (an ``epoll_ctl``), the reactor's dispatch
of ``doWrite``, the ``send``, ``stopWriting`` (another ``epoll_ctl``). A node
writes a frame or two per connection per turn, so that machinery cost more
than the frame. A :class:`TurnTransport` keeps the writes of the turn and,
when the turn's work is done (:class:`TurnWriter`, one ``callLater(0)`` for
all connections), sends them in one ``send``; only what the socket does not
take (or anything while Twisted still holds unsent bytes, a producer, TLS)
goes through the transport's own ``write``, which keeps the order.

``loseConnection`` sends what is kept first; ``abortConnection`` drops it,
as it drops what the transport holds.
"""
from twisted.internet import tcp


class TurnWriter:
    """Sends, once per reactor turn, what each :class:`TurnTransport` kept.

    @param clock: the reactor (its C{callLater}).
    """

    def __init__(self, clock):
        self.clock = clock
        self._waiting = []
        self._call = None

    def wrap(self, transport):
        """C{transport} itself if it is not a plain TCP connection (TLS,
        a test's fake), else a L{TurnTransport} around it."""
        if not isinstance(transport, tcp.Connection) or getattr(transport, "TLS", False):
            return transport
        return TurnTransport(transport, self)

    def want(self, transport):
        self._waiting.append(transport)
        if self._call is None:
            self._call = self.clock.callLater(0, self.flush)

    def flush(self):
        self._call = None
        waiting, self._waiting = self._waiting, []
        for transport in waiting:
            transport.flush()


def send_now(transport, data):
    """Send C{data} on TCP C{transport} at once if nothing of it waits in
    the transport; the rest (or all) through its C{write}."""
    if (transport.connected and not transport.disconnecting and not transport._writeDisconnected
            and transport.producer is None and not getattr(transport, "TLS", False)
            and not transport._tempDataBuffer and transport.offset == len(transport.dataBuffer)):
        try:
            sent = transport.socket.send(data)
        except BlockingIOError:
            sent = 0
        except OSError:
            # the connection is going: Twisted's own write finds out and reports it
            sent = 0
        if sent == len(data):
            return
        data = data[sent:]
    transport.write(data)


class TurnTransport:
    """A TCP transport whose writes wait for the end of the reactor turn
    (L{TurnWriter}); everything else is the transport's."""

    __slots__ = ("transport", "_writer", "_kept")

    def __init__(self, transport, writer):
        self.transport = transport
        self._writer = writer
        self._kept = None

    def write(self, data):
        if not data:
            return
        if self._kept is None:
            self._kept = [data]
            self._writer.want(self)
        else:
            self._kept.append(data)

    def writeSequence(self, iovec):
        for data in iovec:
            self.write(data)

    def flush(self):
        kept, self._kept = self._kept, None
        if kept:
            send_now(self.transport, kept[0] if len(kept) == 1 else b"".join(kept))

    def loseConnection(self):
        self.flush()
        self.transport.loseConnection()

    def loseWriteConnection(self):
        self.flush()
        self.transport.loseWriteConnection()

    def abortConnection(self):
        self._kept = None
        self.transport.abortConnection()

    def __getattr__(self, name):
        return getattr(self.transport, name)
