"""chatnet.adapters.autobahn against autobahn's own protocol: the same client
frames, in the same pieces, to a server protocol with the short ways and to
autobahn's own (which unmasks the frames itself and restarts its keep-alive
on any data frame); the same messages handed up, the same frames written
(pings' random payloads aside), the same end of the connection and the same
keep-alive timers. The module's own pieces (the frame writer, the unmasker)
against autobahn's too. (Its pin: tests/test_library_internals.py.)"""
import pytest
import txaio
from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from autobahn.websocket.protocol import PreparedMessage
from autobahn.websocket.xormasker import create_xor_masker
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure

from chatnet.adapters import autobahn as adapter
from tests.wire import connected, opening_handshake, pieces

LIMIT = 4096
PING_INTERVAL, PING_TIMEOUT = 10, 5
OPTIONS = dict(
    maxFramePayloadSize=LIMIT, maxMessagePayloadSize=LIMIT, autoFragmentSize=0,
    openHandshakeTimeout=10, closeHandshakeTimeout=3,
    autoPingInterval=PING_INTERVAL, autoPingTimeout=PING_TIMEOUT, failByDrop=False,
)


class Recording:
    """What a test reads of a server protocol: the messages handed up."""

    def onOpen(self):
        self.received = []

    def onMessage(self, payload, isBinary):
        self.received.append((bytes(payload), isBinary))


class Fast(Recording, adapter.FastServerProtocol):
    pass


class Own(Recording, WebSocketServerProtocol):
    pass


class Transport(StringTransport):
    """A StringTransport that, as a TCP transport, lets a protocol
    unregister a producer it did not register."""

    def unregisterProducer(self):
        self.producer = None


class FastFactory(adapter.FastServerFactory):
    protocol = Fast


@pytest.fixture
def clocks():
    """Makes the clock of each connection: of autobahn's timers (through
    txaio) and of the adapter's."""
    before = txaio.config.loop

    def clock():
        txaio.config.loop = Clock()
        return txaio.config.loop

    yield clock
    txaio.config.loop = before


def opened(kind, clock):
    """A server protocol of C{kind} ("fast": the adapter's, with chatnet's
    options; "own": autobahn's) after an opening handshake on a
    StringTransport, its timers on C{clock}."""
    if kind == "fast":
        factory = FastFactory()
        factory.setProtocolOptions(applyMask=False, autoPingRestartOnAnyTraffic=False, **OPTIONS)
    else:
        factory = WebSocketServerFactory()
        factory.protocol = Own
        factory.setProtocolOptions(applyMask=True, autoPingRestartOnAnyTraffic=True, **OPTIONS)
    factory.clock = clock
    protocol, transport = connected(factory, Transport)
    assert opening_handshake(protocol, transport).startswith("HTTP/1.1 101")
    transport.clear()
    return protocol, transport


def client_frame(opcode, payload, fin=True, masked=True, rsv=0, long_form=False, mask=b"\x01\x02\x03\x04"):
    """One frame as a client sends it."""
    first = (0x80 if fin else 0) | (rsv << 4) | opcode
    n = len(payload)
    if n < 126 and not long_form:
        head = bytes((first, (0x80 if masked else 0) | n))
    elif n < 65536:
        head = bytes((first, (0x80 if masked else 0) | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((first, (0x80 if masked else 0) | 127)) + n.to_bytes(8, "big")
    if not masked:
        return head + payload
    return head + mask + create_xor_masker(mask, n).process(payload)


def server_frames(data):
    """The frames a server wrote (unmasked), as (opcode, fin, payload), a
    ping's payload (random) replaced by b"?"."""
    frames, pos = [], 0
    while pos + 2 <= len(data):
        first, second = data[pos], data[pos + 1]
        n, pos = second & 0x7F, pos + 2
        if n == 126:
            n, pos = int.from_bytes(data[pos:pos + 2], "big"), pos + 2
        elif n == 127:
            n, pos = int.from_bytes(data[pos:pos + 8], "big"), pos + 8
        payload, pos = data[pos:pos + n], pos + n
        opcode = first & 0x0F
        frames.append((opcode, bool(first & 0x80), b"?" if opcode == 9 else payload))
    assert pos == len(data), "a frame cut short"
    return frames


def outcome(protocol, transport):
    return {
        "received": protocol.received,
        "written": server_frames(transport.value()),
        "ended": transport.disconnecting,
        "state": protocol.state,
        "ping timeout pending": protocol.autoPingTimeoutCall is not None,
        "next ping pending": protocol.autoPingPendingCall is not None,
    }


texts = st.one_of(
    st.text(max_size=200).map(lambda t: t.encode("utf-8")),
    st.binary(max_size=40),  # mostly not UTF-8
    st.integers(120, 5000).map(lambda n: b"x" * n),  # the 16-bit length form, some over the limit
)


@st.composite
def frames(draw):
    kind = draw(st.sampled_from(["text", "text", "text", "binary", "fragmented", "ping", "pong", "close",
                                 "unmasked", "rsv", "long form", "odd opcode"]))
    payload = draw(texts)
    if kind == "text":
        return client_frame(1, payload)
    if kind == "binary":
        return client_frame(2, payload)
    if kind == "fragmented":
        cut = draw(st.integers(0, len(payload)))
        return client_frame(1, payload[:cut], fin=False) + client_frame(0, payload[cut:])
    if kind == "ping":
        return client_frame(9, payload[:125])
    if kind == "pong":
        return client_frame(10, payload[:125])
    if kind == "close":
        code = draw(st.sampled_from([b"", b"\x03\xe8", b"\x03\xe9", b"\x03\xe8bye", b"\x03\xe8\xff", b"\x00\x01"]))
        return client_frame(8, code)
    if kind == "unmasked":
        return client_frame(1, payload, masked=False)
    if kind == "rsv":
        return client_frame(1, payload, rsv=draw(st.integers(1, 7)))
    if kind == "long form":
        return client_frame(1, payload[:125], long_form=True)
    return client_frame(draw(st.sampled_from([3, 7, 11, 15])), payload[:100])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(frames(), max_size=8), st.lists(st.integers(1, 300), max_size=12), st.booleans())
def test_the_same_frames_give_the_same_messages_frames_and_end(clocks, sent, cuts, ping_first):
    results = []
    for kind in ("own", "fast"):
        clock = clocks()
        protocol, transport = opened(kind, clock)
        if ping_first:
            clock.advance(PING_INTERVAL + 1)  # a ping is sent, its pong awaited
        for piece in pieces(b"".join(sent), cuts):
            if transport.disconnecting:
                break
            protocol.dataReceived(piece)
        results.append(outcome(protocol, transport))
        protocol.connectionLost(Failure(ConnectionDone()))
    own, fast = results
    assert fast == own


@pytest.mark.parametrize("pong_by", ["a data frame", "nothing"])
def test_a_data_frame_ends_the_wait_for_a_pong_as_autobahns_own(clocks, pong_by):
    results = []
    for kind in ("own", "fast"):
        clock = clocks()
        protocol, transport = opened(kind, clock)
        clock.advance(PING_INTERVAL + 1)
        assert protocol.autoPingTimeoutCall is not None
        if pong_by == "a data frame":
            protocol.dataReceived(client_frame(1, b'{"action":"x"}'))
        clock.advance(PING_TIMEOUT + 1)
        results.append(outcome(protocol, transport))
        protocol.connectionLost(Failure(ConnectionDone()))
    own, fast = results
    assert fast == own
    assert fast["ended"] == (pong_by == "nothing")


def test_a_failed_connection_sends_its_close_frame_before_it_ends(clocks):
    """The one difference by design: when a connection failed by the server
    (here: a frame too big, 1009) is dropped, autobahn aborts the TCP
    connection at once, losing what is still unsent; the adapter closes it
    once its writes are sent, and aborts it only if the client does not
    take them within the closing handshake timeout."""
    clock = clocks()
    protocol, transport = opened("fast", clock)
    protocol.dataReceived(client_frame(1, b"x" * (LIMIT + 1)))
    opcode, fin, payload = server_frames(transport.value())[-1]
    assert (opcode, fin, int.from_bytes(payload[:2], "big")) == (8, True, 1009)
    clock.advance(OPTIONS["closeHandshakeTimeout"] + 0.5)  # no closing frame from the client
    assert transport.disconnecting and protocol._drop_timer is not None
    aborted = []
    transport.abortConnection = lambda: aborted.append(True)
    clock.advance(OPTIONS["closeHandshakeTimeout"] + 0.5)  # nor does it read
    assert aborted == [True]
    protocol.connectionLost(Failure(ConnectionDone()))
    assert protocol._drop_timer is None


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65535, 65536, 70000])
def test_text_frame_is_autobahns_server_frame(size):
    payload = b"x" * size
    assert adapter.text_frame(payload) == PreparedMessage(payload, False, False, True).payloadHybi


@given(st.binary(min_size=4, max_size=4), st.binary(max_size=3000), st.lists(st.integers(1, 400), max_size=20))
def test_unmasker_is_rfc_6455_masking_in_any_pieces(mask, payload, cuts):
    """Unmasking a frame's payload in the pieces it arrived in gives what
    autobahn's own masker gives for the whole."""
    unmasker = adapter.Unmasker(mask)
    assert b"".join(unmasker.unmask(p) for p in pieces(payload, cuts) or [b""]) == create_xor_masker(
        mask, len(payload)).process(payload)
