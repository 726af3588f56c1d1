"""Writes of a plain TCP connection kept for the end of the reactor turn and
sent with one C{send()} (see L{chatnet.protocols.turnwrites}, which owns
the turns).

Twisted's own parts used: the transport's C{write}, C{writeSequence},
C{loseConnection}, C{loseWriteConnection} and C{abortConnection} are
replaced on the instance (the protocols above write to their transport, as
autobahn, AMP and txredisapi do); C{dataBuffer} and C{_tempDataBuffer}
(whether Twisted still holds bytes of the connection: then it gets the
writes, in order), C{socket} (the one C{send()}), C{connected},
C{disconnecting}, C{TLS} and C{reactor}; C{tcp.Connection}'s own methods
for everything the socket does not take at once.
"""
from twisted.internet import tcp

_PLAIN = (tcp.Server, tcp.Client)


def reactor_of(transport):
    """The reactor of a plain TCP C{transport}, or None for any other."""
    return transport.reactor if type(transport) in _PLAIN else None


class TurnWriter:
    """What one transport keeps for the end of the turn: C{turns} is told
    (C{keep(writer)}) of the first write of each turn, and calls
    L{flush} at the end of it."""

    __slots__ = ("transport", "turns", "pending")

    def __init__(self, transport, turns):
        self.transport = transport
        self.turns = turns
        self.pending = None

    def write(self, data):
        if isinstance(data, str):
            raise TypeError("Data must not be string")  # as Twisted's write, at the call
        if not data:
            return
        if self.pending is None:
            self.pending = [data]
            self.turns.keep(self)
        else:
            self.pending.append(data)

    def writeSequence(self, sequence):
        for data in sequence:
            self.write(data)

    def flush(self):
        pending, self.pending = self.pending, None
        if not pending:
            return
        transport = self.transport
        if transport.dataBuffer or transport._tempDataBuffer:
            # Twisted holds bytes of the connection already (its client is
            # slow): it keeps these writes as they are, by reference (a room's
            # frame is one bytes object for all its members' connections)
            tcp.Connection.writeSequence(transport, pending)
            return
        data = pending[0] if len(pending) == 1 else b"".join(pending)
        if transport.connected and not transport.disconnecting and not transport.TLS:
            try:
                sent = transport.socket.send(data)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                # the connection broke: Twisted's write finds it out and
                # closes the connection as it always does
                sent = 0
            if sent == len(data):
                return
            data = data[sent:]
        tcp.Connection.write(transport, data)

    def loseConnection(self):
        self.flush()
        tcp.Connection.loseConnection(self.transport)

    def loseWriteConnection(self):
        self.flush()
        tcp.Connection.loseWriteConnection(self.transport)

    def abortConnection(self):
        self.pending = None
        tcp.Connection.abortConnection(self.transport)

    def peer(self):
        try:
            return self.transport.getPeer()
        except Exception:
            return "?"


def keep_writes(transport, turns):
    """Make the plain TCP C{transport} keep its writes for the end of the
    turn (L{TurnWriter} with C{turns}); any other transport is left as it
    is. Returns the writer, or None."""
    if type(transport) not in _PLAIN:
        return None
    writer = TurnWriter(transport, turns)
    transport.write = writer.write
    transport.writeSequence = writer.writeSequence
    transport.loseConnection = writer.loseConnection
    transport.loseWriteConnection = writer.loseWriteConnection
    transport.abortConnection = writer.abortConnection
    return writer
