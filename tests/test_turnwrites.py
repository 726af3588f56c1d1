"""Writes kept for the end of the reactor turn (chatnet/protocols/turnwrites.py,
chatnet/adapters/twisted/tcp.py), over real loopback TCP: everything
arrives, in order, whatever the socket takes at once, as it does with
Twisted's own writes; closing sends what was kept first."""
import pytest
import pytest_twisted
from hypothesis import given, settings
from hypothesis import strategies as st
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


class TwistedSender(protocol.Protocol):
    """Writes as Twisted's own transport does."""


async def pair(sender_class=Sender):
    received = Collect()
    port = await endpoints.TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(
        protocol.Factory.forProtocol(lambda: received))
    sender = sender_class()
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


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    from chatnet.ops import tls

    return tls.make_self_signed(tmp_path_factory.mktemp("certs"))


async def tls_pair(sender_class, certificate):
    """As L{pair}, over TLS."""
    from twisted.internet import ssl

    key, cert = certificate
    received = Collect()
    port = await endpoints.serverFromString(
        reactor, f"ssl:0:interface=127.0.0.1:privateKey={key}:certKey={cert}").listen(
        protocol.Factory.forProtocol(lambda: received))
    with open(cert, "rb") as f:
        trust = ssl.Certificate.loadPEM(f.read())
    sender = sender_class()
    await endpoints.connectProtocol(endpoints.wrapClientTLS(
        ssl.optionsForClientTLS("localhost", trustRoot=trust),
        endpoints.TCP4ClientEndpoint(reactor, "127.0.0.1", port.getHost().port)), sender)
    return sender, received, port


async def send(sender_class, turns, slow, certificate=None):
    """What the other end reads of C{turns} (lists of writes, one list a
    reactor turn) written by a C{sender_class} (over TLS with
    C{certificate}), its reading paused for a while if C{slow}."""
    if certificate is None:
        sender, received, port = await pair(sender_class)
    else:
        sender, received, port = await tls_pair(sender_class, certificate)
    if sender_class is Sender:  # (the writes are kept: over TLS too)
        from chatnet.adapters.twisted.tcp import TurnWriter

        assert isinstance(getattr(sender.transport.write, "__self__", None), TurnWriter)
    try:
        for turn in turns:
            if slow and received.transport is not None:
                received.transport.pauseProducing()
                reactor.callLater(0.05, received.transport.resumeProducing)
                slow = False
            for data in turn:
                if isinstance(data, list):
                    sender.transport.writeSequence(data)
                else:
                    sender.transport.write(data)
            await task.deferLater(reactor, 0, lambda: None)
        sender.transport.loseConnection()
        return await received.closed
    finally:
        await port.stopListening()


writes = st.one_of(
    st.binary(max_size=300),
    st.integers(1, 400_000).map(lambda n: bytes(range(256)) * (n // 256) + bytes(n % 256)),  # more than a send takes
    st.lists(st.binary(max_size=50), max_size=4),  # a writeSequence
)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.lists(writes, max_size=5), max_size=6), st.booleans())
@pytest_twisted.ensureDeferred
async def test_the_reader_reads_what_it_reads_of_twisteds_own_writes(turns, slow):
    assert await send(Sender, turns, slow) == await send(TwistedSender, turns, slow)


@settings(max_examples=10, deadline=None)
@given(st.lists(st.lists(writes, max_size=5), max_size=5), st.booleans())
@pytest_twisted.ensureDeferred
async def test_over_tls_the_reader_reads_what_it_reads_of_twisteds_own_writes(certificate, turns, slow):
    theirs = await send(TwistedSender, turns, slow, certificate)
    assert await send(Sender, turns, slow, certificate) == theirs == b"".join(
        b"".join(d) if isinstance(d, list) else d for turn in turns for d in turn)


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
    from chatnet.adapters.twisted.tcp import TurnWriter

    with pytest.raises(TypeError):
        TurnWriter(StringTransport(), None).write("text")


def test_calls_at_the_turn_end_come_before_the_writes_of_the_turn(failures_logged):
    from chatnet.protocols.turnwrites import _turns_of

    clock = task.Clock()
    done = []

    class Writer:
        def flush(self):
            done.append("writes")

    def broken():
        raise RuntimeError("broken")

    _turns_of(clock).keep(Writer())
    at_turn_end(clock, lambda: done.append(1))
    at_turn_end(clock, broken)
    at_turn_end(clock, lambda: at_turn_end(clock, lambda: done.append(3)) or done.append(2))
    assert done == []
    clock.advance(0)
    assert done == [1, 2, 3, "writes"]
    assert any(e["log_failure"].check(RuntimeError) for e in failures_logged())
    clock.advance(0)
    assert done == [1, 2, 3, "writes"]


def test_past_the_cap_a_turn_s_writes_go_at_once():
    from chatnet.adapters.twisted.tcp import TURN_CAP, TurnWriter

    class Turns:
        def __init__(self):
            self.kept = []

        def keep(self, writer):
            self.kept.append(writer)

    class Writer(TurnWriter):
        __slots__ = ("flushed",)

        def flush(self):
            self.flushed = (self.flushed if hasattr(self, "flushed") else 0) + self.kept
            self.pending, self.kept = None, 0

    turns = Turns()
    writer = Writer(StringTransport(), turns)
    writer.write(b"x" * (TURN_CAP // 2))
    assert writer.kept == TURN_CAP // 2 and not hasattr(writer, "flushed")
    writer.write(b"x" * (TURN_CAP // 2 + 1))
    assert writer.flushed == TURN_CAP + 1 and writer.pending is None
