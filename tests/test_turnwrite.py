"""Writes kept for the end of the reactor turn (chatnet/protocols/turnwrite.py),
over real loopback TCP connections: nothing leaves before the turn ends,
everything leaves in order, closing sends what is kept, aborting drops it,
and what the socket does not take goes through the transport."""
import pytest_twisted
from twisted.internet import defer, protocol, reactor, task
from twisted.internet.testing import StringTransport

from chatnet.protocols.turnwrite import TurnTransport, TurnWriter


class Collect(protocol.Protocol):
    def __init__(self):
        self.data = bytearray()
        self.lost = defer.Deferred()
        self.received = None

    def dataReceived(self, data):
        self.data += data
        if self.received is not None and len(self.data) >= self.received[0]:
            d, self.received = self.received[1], None
            d.callback(bytes(self.data))

    def wait_for(self, n):
        d = defer.Deferred()
        if len(self.data) >= n:
            d.callback(bytes(self.data))
        else:
            self.received = (n, d)
        return d.addTimeout(10, reactor)

    def connectionLost(self, reason):
        self.lost.callback(None)


class Server(protocol.Protocol):
    def connectionMade(self):
        self.factory.made.callback(self)


async def connection(writer):
    """(the server side's protocol with its transport wrapped, the client's Collect)."""
    factory = protocol.Factory.forProtocol(Server)
    factory.made = defer.Deferred()
    port = reactor.listenTCP(0, factory, interface="127.0.0.1")
    client = Collect()
    await protocol.ClientCreator(reactor, lambda: client).connectTCP("127.0.0.1", port.getHost().port)
    server = await factory.made.addTimeout(10, reactor)
    server.transport = writer.wrap(server.transport)
    assert isinstance(server.transport, TurnTransport)
    return port, server, client


def test_a_transport_that_is_not_plain_tcp_is_left_alone():
    t = StringTransport()
    assert TurnWriter(task.Clock()).wrap(t) is t


@pytest_twisted.ensureDeferred
async def test_the_writes_of_a_turn_leave_together_at_its_end():
    clock = task.Clock()
    port, server, client = await connection(TurnWriter(clock))
    try:
        sends = []
        real_send = server.transport.transport.socket.send

        class Socket:
            def send(self, data):
                sends.append(bytes(data))
                return real_send(data)

            def __getattr__(self, name):
                return getattr(server.transport.transport.socket, name)

        tcp = server.transport.transport
        tcp.socket, original = Socket(), tcp.socket
        try:
            server.transport.write(b"one,")
            server.transport.writeSequence([b"two,", b"", b"three"])
            assert sends == []  # kept until the turn's end
            clock.advance(0)
            assert sends == [b"one,two,three"]
        finally:
            tcp.socket = original
        assert await client.wait_for(13) == b"one,two,three"
        # the next turn's writes come after
        server.transport.write(b"|four")
        clock.advance(0)
        assert await client.wait_for(18) == b"one,two,three|four"
    finally:
        server.transport.abortConnection()
        await port.stopListening()


@pytest_twisted.ensureDeferred
async def test_closing_sends_what_is_kept_first():
    port, server, client = await connection(TurnWriter(task.Clock()))  # its turn never ends
    try:
        server.transport.write(b"last words")
        server.transport.loseConnection()
        await client.lost.addTimeout(10, reactor)
        assert bytes(client.data) == b"last words"
    finally:
        await port.stopListening()


@pytest_twisted.ensureDeferred
async def test_aborting_drops_what_is_kept():
    clock = task.Clock()
    port, server, client = await connection(TurnWriter(clock))
    try:
        server.transport.write(b"never")
        server.transport.abortConnection()
        clock.advance(0)
        await client.lost.addTimeout(10, reactor)
        assert bytes(client.data) == b""
    finally:
        await port.stopListening()


@pytest_twisted.ensureDeferred
async def test_what_the_socket_does_not_take_follows_in_order():
    clock = task.Clock()
    port, server, client = await connection(TurnWriter(clock))
    try:
        big = bytes(range(256)) * (32 * 1024)  # 8 MiB: more than a socket buffer
        server.transport.write(big)
        clock.advance(0)
        # the rest waits in the transport: a later turn's write goes after it
        assert server.transport.transport._tempDataLen > 0
        server.transport.write(b"after")
        clock.advance(0)
        got = await client.wait_for(len(big) + 5)
        assert got == big + b"after"
    finally:
        server.transport.abortConnection()
        await port.stopListening()


@pytest_twisted.ensureDeferred
async def test_writes_after_the_connection_is_gone_are_dropped():
    clock = task.Clock()
    port, server, client = await connection(TurnWriter(clock))
    try:
        server.transport.abortConnection()
        await client.lost.addTimeout(10, reactor)
        await task.deferLater(reactor, 0.05, lambda: None)
        server.transport.write(b"late")
        clock.advance(0)  # no error
        assert bytes(client.data) == b""
    finally:
        await port.stopListening()
