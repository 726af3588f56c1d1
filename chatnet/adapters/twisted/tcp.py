"""Writes of a connection kept for the end of the reactor turn (see
L{chatnet.protocols.turnwrites}, which owns the turns): a plain TCP
connection sends them with one C{send()}; a TLS connection encrypts them
with one write to its TLS layer, whose TCP connection then sends them with
one C{send()}.

Twisted's own parts used: the transport's C{write}, C{writeSequence},
C{loseConnection}, C{loseWriteConnection} and C{abortConnection} are
replaced on the instance (the protocols above write to their transport, as
autobahn, AMP and txredisapi do), the class's own methods doing the rest;
of a plain TCP connection, C{dataBuffer} and C{_tempDataBuffer} (whether
Twisted still holds bytes of the connection: then it gets the writes, in
order), C{socket} (the one C{send()}), C{connected}, C{disconnecting},
C{TLS} and C{reactor}; of a TLS connection
(L{twisted.protocols.tls.TLSMemoryBIOProtocol}), its C{transport}: the TCP
connection under it.
"""
from twisted.internet import tcp
from twisted.protocols.tls import TLSMemoryBIOProtocol

_PLAIN = (tcp.Server, tcp.Client)

#: bytes one connection may keep within a turn: past it, what it kept is
#: sent at once (so that a turn's writes never hold more than this per
#: connection beyond what Twisted holds)
TURN_CAP = 64 * 1024


def _plain_under(transport):
    """The plain TCP connection C{transport} is, or is the TLS layer of;
    else None."""
    if type(transport) in _PLAIN:
        return transport
    if isinstance(transport, TLSMemoryBIOProtocol) and type(transport.transport) in _PLAIN:
        return transport.transport
    return None


class TurnWriter:
    """What one transport keeps for the end of the turn: C{turns} is told
    (C{keep(writer)}) of the first write of each turn, and calls
    L{flush} at the end of it; past L{TURN_CAP} bytes kept, it flushes at
    once. C{transport}'s class's own methods send: straight to the socket
    first for a plain TCP connection, as one write otherwise."""

    __slots__ = ("transport", "turns", "pending", "kept", "own")

    def __init__(self, transport, turns):
        self.transport = transport
        self.turns = turns
        self.pending = None
        self.kept = 0  # bytes in pending
        self.own = type(transport)  # its class: the methods that send

    def write(self, data):
        if isinstance(data, str):
            raise TypeError("Data must not be string")  # as Twisted's write, at the call
        if not data:
            return
        if self.pending is None:
            self.pending = [data]
            self.kept = len(data)
            self.turns.keep(self)
        else:
            self.pending.append(data)
            self.kept += len(data)
        if self.kept > TURN_CAP:
            self.flush()

    def writeSequence(self, sequence):
        for data in sequence:
            self.write(data)

    def flush(self):
        pending, self.pending = self.pending, None
        self.kept = 0
        if not pending:
            return
        transport = self.transport
        if self.own not in _PLAIN:
            # one write to the TLS layer: one record to encrypt, not one a frame
            self.own.write(transport, pending[0] if len(pending) == 1 else b"".join(pending))
            return
        if transport.dataBuffer or transport._tempDataBuffer:
            # Twisted holds bytes of the connection already (its client is
            # slow): it keeps these writes as they are, by reference (a room's
            # frame is one bytes object for all its members' connections)
            self.own.writeSequence(transport, pending)
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
        self.own.write(transport, data)

    def loseConnection(self):
        self.flush()
        self.own.loseConnection(self.transport)

    def loseWriteConnection(self):
        self.flush()
        self.own.loseWriteConnection(self.transport)

    def abortConnection(self):
        self.pending, self.kept = None, 0
        self.own.abortConnection(self.transport)

    def peer(self):
        try:
            return self.transport.getPeer()
        except Exception:
            return "?"


def _keep(transport, turns):
    writer = TurnWriter(transport, turns)
    transport.write = writer.write
    transport.writeSequence = writer.writeSequence
    transport.loseConnection = writer.loseConnection
    if hasattr(writer.own, "loseWriteConnection"):
        transport.loseWriteConnection = writer.loseWriteConnection
    transport.abortConnection = writer.abortConnection
    return writer


def keep_writes(transport, turns_of):
    """Make C{transport} keep its writes for the end of the turn
    (L{TurnWriter} with C{turns_of(reactor)}, the turns of its reactor): a
    plain TCP connection, or a TLS connection over TCP (its TLS layer and
    the TCP connection under it); any other transport is left as it is.
    Returns the writer, or None."""
    plain = _plain_under(transport)
    if plain is None:
        return None
    turns = turns_of(plain.reactor)
    if plain is not transport:
        _keep(plain, turns)  # the encrypted bytes
    return _keep(transport, turns)
