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
A TLS connection keeps its writes the same way, above its TLS layer (one
record encrypted a turn instead of one a frame) and below it (the
encrypted bytes sent with one C{send()}); what this takes of Twisted's
transports is in L{chatnet.adapters.twisted.tcp}. A connection whose sending fails in an
unforeseen way is aborted (its byte stream would have a gap) and logged;
the other connections of the turn are sent as usual.

L{at_turn_end} runs a call at the end of the turn, before the writes kept
are sent: work gathered over the turn (the messages to accept in one Redis
call, L{chatnet.service.accept}) is done once, and what it writes leaves in the
same turn.
"""
from twisted.logger import Logger

from chatnet.adapters.twisted.tcp import keep_writes

log = Logger()


class _Turns:
    """The connections of one reactor with bytes kept for the end of the
    turn."""

    def __init__(self, reactor):
        self.reactor = reactor
        self._waiting = []
        self._first = []  # calls to make before the writes are sent
        self._call = None
        self._flushing = False  # the writes are being sent (more join them)

    def keep(self, writer):
        """C{writer} (a L{chatnet.adapters.twisted.tcp.TurnWriter}) has
        bytes to send at the end of this turn."""
        self._waiting.append(writer)
        if not self._flushing:
            self._schedule()

    def before(self, f):
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
        # (a TLS connection's writes, flushed, are writes of the TCP
        # connection under it: they go in the same turn)
        self._flushing = True
        try:
            self._send_waiting()
        finally:
            self._flushing = False

    def _send_waiting(self):
        while self._waiting:
            waiting, self._waiting = self._waiting, []
            for writer in waiting:
                try:
                    writer.flush()
                except Exception:
                    log.failure("sending to {peer} failed; the connection is aborted", peer=writer.peer())
                    writer.abortConnection()


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
    _turns_of(reactor).before(f)


def send_at_turn_end(transport):
    """Make C{transport} (a connection's) keep its writes for the end of
    the turn of its reactor: a plain TCP connection, or a TLS one over TCP
    (above and below its TLS layer); any other is left as it is."""
    keep_writes(transport, _turns_of)
