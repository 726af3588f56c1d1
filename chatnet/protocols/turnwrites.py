"""Writes sent once per reactor turn, straight to the socket.

Twisted's TCP transport sends what is written on the next turn: each write
asks epoll to watch the socket for writing (a system call), the next poll
reports it writable, the transport sends, and asks epoll to stop watching
(another system call). A node writes to many connections every turn (the
acks and chat frames of its clients, the Redis commands, the calls to other
nodes), and that round cost more CPU than the send itself (measured: a
ping-pong over loopback took 40 us of CPU per message with Twisted's
writes, 28 us with this).

L{send_at_turn_end} gives a connection's transport a write that keeps what
is written during the turn and sends it all with one C{send()} at the end
of the turn (a call scheduled for when the reactor's I/O of the turn is
done, before it polls again). Only what the socket does not take at once
goes Twisted's way (the rest keeps its order: nothing is sent straight
while Twisted still holds bytes of the connection; the writes of a turn
are then handed to it one by one, not joined, so that a frame written to
many connections stays one object in memory however many of them do not
read). Closing the connection
sends what is kept first; aborting it drops it, as Twisted's abort does.
Only plain TCP transports are changed (a TLS connection writes through its
TLS layer, which is left as it is). A connection whose sending fails in an
unforeseen way is aborted (its byte stream would have a gap) and logged;
the other connections of the turn are sent as usual.

L{at_turn_end} runs a call at the end of the turn, before the writes kept
are sent: work gathered over the turn (the messages to accept in one Redis
call, L{chatnet.service.accept}) is done once, and what it writes leaves in the
same turn.
"""
from twisted.internet import tcp
from twisted.logger import Logger

log = Logger()


class _Turns:
    """The connections of one reactor with bytes kept for the end of the
    turn."""

    def __init__(self, reactor):
        self.reactor = reactor
        self._waiting = []
        self._first = []  # calls to make before the writes are sent
        self._call = None

    def _keep(self, writer):
        self._waiting.append(writer)
        self._schedule()

    def _before(self, f):
        self._first.append(f)
        self._schedule()

    def _schedule(self):
        if self._call is None:
            self._call = self.reactor.callLater(0, self._flush)

    def _flush(self):
        while self._first:
            first, self._first = self._first, []
            for f in first:
                try:
                    f()
                except Exception:
                    log.failure("a call at the end of the turn failed")
        self._call = None
        waiting, self._waiting = self._waiting, []
        for writer in waiting:
            try:
                writer.flush()
            except Exception:
                log.failure("sending to {peer} failed; the connection is aborted", peer=writer.peer())
                writer.abortConnection()


class _Writer:
    """What one transport keeps for the end of the turn."""

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
            self.turns._keep(self)
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


_turns = {}  # reactor -> its _Turns


def _turns_of(reactor):
    turns = _turns.get(reactor)
    if turns is None:
        turns = _turns[reactor] = _Turns(reactor)
    return turns


def at_turn_end(reactor, f):
    """Call C{f()} at the end of the current turn of C{reactor}, before the
    writes kept for the turn are sent (what C{f} writes goes with them).
    An exception of C{f} is logged."""
    _turns_of(reactor)._before(f)


def send_at_turn_end(transport):
    """Make C{transport} (a connection's) keep its writes for the end of
    the turn of its reactor; anything but a plain TCP connection is left as
    it is."""
    if type(transport) not in (tcp.Server, tcp.Client):
        return
    turns = _turns_of(transport.reactor)
    writer = _Writer(transport, turns)
    transport.write = writer.write
    transport.writeSequence = writer.writeSequence
    transport.loseConnection = writer.loseConnection
    transport.loseWriteConnection = writer.loseWriteConnection
    transport.abortConnection = writer.abortConnection
