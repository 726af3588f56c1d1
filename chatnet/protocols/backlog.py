"""The outbound backlog of one client connection, and its bound.

A connection whose client does not read keeps what the node writes to it:
first in the kernel's socket buffer, then in the transport's own buffer, in
the node's memory, without end. L{OutboundBacklog} is the connection's
streaming producer (C{transport.registerProducer(backlog, True)}): the
transport calls L{pauseProducing} when its buffer went over its size
(Twisted's C{bufferSize}, 64 KiB) and L{resumeProducing} once it has sent
it all. While paused, every byte handed to the transport is counted (the
count is at the transport itself, so every way to write is covered: the
frames autobahn writes, the frames the protocol frames itself, the writes
kept for the end of the reactor turn, L{chatnet.protocols.turnwrites});
once the count passes C{limit} the connection is too slow, and
C{too_slow()} is called once. It is the connection's to close (close code
4008, docs/protocol.md).

So a connection holds at most about the transport's buffer size, what one
reactor turn writes to it, and C{limit} bytes, whatever its client does; a
client that reads, however slowly, is resumed each time its buffer empties.
"""
from twisted.internet.interfaces import IPushProducer
from zope.interface import implementer


@implementer(IPushProducer)
class OutboundBacklog:
    """@ivar held: bytes handed to the transport since it last paused us
        (0 while not paused).
    @ivar paused: whether the transport's buffer is over its size."""

    __slots__ = ("limit", "too_slow", "held", "paused", "over")

    def __init__(self, limit, too_slow):
        self.limit = limit
        self.too_slow = too_slow
        self.held = 0
        self.paused = False
        self.over = False

    def attach(self, transport):
        """Count what is written to C{transport} (a connection's) and
        register as its producer."""
        write = transport.write
        write_sequence = transport.writeSequence

        def counted_write(data):
            write(data)
            if self.paused:
                self._add(len(data))

        def counted_sequence(sequence):
            sequence = list(sequence)
            write_sequence(sequence)
            if self.paused:
                self._add(sum(map(len, sequence)))

        transport.write = counted_write
        transport.writeSequence = counted_sequence
        transport.registerProducer(self, True)

    def _add(self, n):
        self.held += n
        if self.held > self.limit and not self.over:
            self.over = True
            self.too_slow()

    # -- IPushProducer ---------------------------------------------------------

    def pauseProducing(self):
        self.paused = True

    def resumeProducing(self):
        self.paused = False
        self.held = 0

    def stopProducing(self):
        self.paused = False
