"""Writes kept for the end of the reactor turn (chatnet/protocols/turnwrites.py),
over real loopback TCP: everything arrives, in order, whatever the socket
takes at once; closing sends what was kept first."""
import pytest
import pytest_twisted
from twisted.internet import defer, endpoints, protocol, reactor, task
from twisted.internet.testing import StringTransport

from chatnet.protocols.turnwrites import at_turn_end, send_at_turn_end


class Collect(protocol.Protocol):
    def __init__(self):
        self.data = []
        self.closed = defer.Deferred()

    def dataReceived(self, data):
        self.data.append(data)

    def connectionLost(self, reason):
        self.closed.callback(b"".join(self.data))


class Sender(protocol.Protocol):
    def connectionMade(self):
        send_at_turn_end(self.transport)


async def pair():
    received = Collect()
    port = await endpoints.TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(
        protocol.Factory.forProtocol(lambda: received))
    sender = Sender()
    await endpoints.connectProtocol(endpoints.TCP4ClientEndpoint(reactor, "127.0.0.1", port.getHost().port), sender)
    return sender, received, port


@pytest_twisted.ensureDeferred
async def test_everything_arrives_in_order_and_closing_sends_it_first():
    sender, received, port = await pair()
    try:
        big = bytes(range(256)) * 40_000  # more than a socket takes at once
        pieces = [b"first ", b"second ", big, b" after the big one", b" and the last"]
        for piece in pieces[:3]:
            sender.transport.write(piece)
        sender.transport.writeSequence(pieces[3:])
        sender.transport.loseConnection()
        assert await received.closed == b"".join(pieces)
    finally:
        await port.stopListening()


@pytest_twisted.ensureDeferred
async def test_writes_of_later_turns_follow():
    sender, received, port = await pair()
    try:
        for i in range(50):
            sender.transport.write(b"%d," % i)
            if i % 7 == 0:
                await task.deferLater(reactor, 0, lambda: None)
        sender.transport.loseConnection()
        assert await received.closed == b"".join(b"%d," % i for i in range(50))
    finally:
        await port.stopListening()


@pytest_twisted.ensureDeferred
async def test_an_abort_drops_what_was_kept():
    sender, received, port = await pair()
    try:
        sender.transport.write(b"never sent")
        sender.transport.abortConnection()
        assert await received.closed == b""
    finally:
        await port.stopListening()


def test_other_transports_are_left_as_they_are():
    transport = StringTransport()
    send_at_turn_end(transport)
    transport.write(b"x")
    assert transport.value() == b"x"


class FailingSocket:
    """A socket whose send breaks in a way nobody foresaw."""

    def __init__(self, real):
        self.real = real

    def send(self, data):
        raise RuntimeError("broken")

    def __getattr__(self, name):
        return getattr(self.real, name)


@pytest_twisted.ensureDeferred
async def test_a_connection_that_fails_to_send_is_aborted_and_the_others_go_on(failures_logged):
    broken, broken_received, port1 = await pair()
    sender, received, port2 = await pair()
    try:
        broken.transport.socket = FailingSocket(broken.transport.socket)
        broken.transport.write(b"lost")
        sender.transport.write(b"still ")
        await task.deferLater(reactor, 0.1, lambda: None)  # a turn or more
        sender.transport.write(b"sent")
        sender.transport.loseConnection()
        assert await received.closed == b"still sent"
        assert await broken_received.closed == b""
        assert any(e["log_failure"].check(RuntimeError) for e in failures_logged())
    finally:
        await port1.stopListening()
        await port2.stopListening()


def test_a_string_is_refused_at_the_write_as_twisted_does():
    class Transport:
        pass

    from chatnet.protocols.turnwrites import _Writer

    with pytest.raises(TypeError):
        _Writer(Transport(), None).write("text")


def test_calls_at_the_turn_end_come_before_the_writes_of_the_turn(failures_logged):
    from chatnet.protocols.turnwrites import _turns_of

    clock = task.Clock()
    done = []

    class Writer:
        def flush(self):
            done.append("writes")

    def broken():
        raise RuntimeError("broken")

    _turns_of(clock)._keep(Writer())
    at_turn_end(clock, lambda: done.append(1))
    at_turn_end(clock, broken)
    at_turn_end(clock, lambda: at_turn_end(clock, lambda: done.append(3)) or done.append(2))
    assert done == []
    clock.advance(0)
    assert done == [1, 2, 3, "writes"]
    assert any(e["log_failure"].check(RuntimeError) for e in failures_logged())
    clock.advance(0)
    assert done == [1, 2, 3, "writes"]
