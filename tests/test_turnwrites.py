"""Writes kept for the end of the reactor turn (chatnet/protocols/turnwrites.py),
over real loopback TCP: everything arrives, in order, whatever the socket
takes at once; closing sends what was kept first."""
import pytest_twisted
from twisted.internet import defer, endpoints, protocol, reactor
from twisted.internet.testing import StringTransport

from chatnet.protocols.turnwrites import send_at_turn_end


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
                await defer.Deferred(lambda d: None).addTimeout(0, reactor).addErrback(lambda f: None)
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
