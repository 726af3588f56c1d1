"""The outbound backlog of a client connection, in-process: the transport
pauses and resumes the connection's producer (as Twisted's does when its
buffer passes 64 KiB and when it is sent), every way the protocol writes is
counted while paused, and past --max-client-backlog the connection is
closed with 4008, once; plus the keep-alive and extension negotiation of
the handshake."""
import struct

import pytest
from autobahn.websocket.compress import PerMessageDeflateOffer
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from chatnet.protocols.backlog import OutboundBacklog
from chatnet.protocols.constants import TOO_SLOW
from tests.wire import chat_factory, connected, opening_handshake


class SlowClients:
    """The one metrics hook the protocol calls here."""

    def __init__(self):
        self.count = 0

    def slow_client_disconnected(self):
        self.count += 1

    def error_sent(self, code):
        pass


def test_only_what_is_written_while_paused_counts():
    calls = []
    backlog = OutboundBacklog(100, lambda: calls.append(1))
    transport = StringTransport()
    backlog.attach(transport)
    assert transport.producer is backlog and transport.streaming
    transport.write(b"x" * 500)  # not paused: the transport's buffer is not full
    assert backlog.held == 0 and not calls
    backlog.pauseProducing()
    transport.writeSequence([b"y" * 60])
    transport.write(b"z" * 40)
    assert backlog.held == 100 and not calls
    backlog.resumeProducing()  # the transport sent everything
    assert backlog.held == 0
    backlog.pauseProducing()
    transport.write(b"z" * 101)
    transport.write(b"z" * 101)
    assert calls == [1]  # once
    assert transport.value() == b"x" * 500 + b"y" * 60 + b"z" * 242  # nothing lost on the way


def open_connection(clock=None, **config):
    metrics = SlowClients()
    protocol, transport = connected(chat_factory(clock or Clock(), metrics, **config))
    assert opening_handshake(protocol, transport).startswith("HTTP/1.1 101")
    transport.clear()
    return protocol, transport, metrics


def close_frames(data):
    """The close codes in the server frames C{data}."""
    codes = []
    while data:
        opcode, n, start = data[0] & 0x0F, data[1] & 0x7F, 2
        if n == 126:
            n, start = struct.unpack("!H", data[2:4])[0], 4
        elif n == 127:
            n, start = struct.unpack("!Q", data[2:10])[0], 10
        if opcode == 0x8:
            codes.append(struct.unpack("!H", data[start:start + 2])[0])
        data = data[start + n:]
    return codes


def test_every_way_of_writing_counts_and_past_the_bound_the_connection_closes_with_4008():
    protocol, transport, metrics = open_connection(max_client_backlog=10_000)
    assert transport.producer is not None
    transport.producer.pauseProducing()  # the client stopped reading
    frame = b'{"action":"chat","data":{"message":"' + b"m" * 1000 + b'"}}'
    prepared = protocol.factory.prepareMessage(frame)
    for _ in range(3):
        protocol.sendMessage(frame)  # framed by the protocol
        protocol.push(frame, None, prepared)  # a room's frame, prepared once
        protocol.sendMessage(frame, True)  # autobahn's own framing (binary)
    assert not close_frames(transport.value())
    for _ in range(2):
        protocol.push(frame, None, prepared)
    assert close_frames(transport.value()) == [TOO_SLOW]
    assert metrics.count == 1
    before = len(transport.value())
    protocol.push(frame, None, prepared)
    protocol.sendMessage(frame)
    assert len(transport.value()) == before  # a closing connection gets nothing more
    assert metrics.count == 1


def test_a_client_that_reads_however_slowly_is_never_closed():
    protocol, transport, metrics = open_connection(max_client_backlog=10_000)
    frame = b"m" * 4000
    for _ in range(50):
        transport.producer.pauseProducing()
        protocol.sendMessage(frame)
        protocol.sendMessage(frame)
        transport.producer.resumeProducing()  # the buffer was sent
    assert not close_frames(transport.value()) and metrics.count == 0


def test_no_bound_registers_no_producer():
    protocol, transport, metrics = open_connection(max_client_backlog=0)
    assert transport.producer is None


def handshake_extensions(compression, extensions):
    protocol, transport = connected(chat_factory(Clock(), SlowClients(), compression=compression))
    return opening_handshake(protocol, transport, extensions), protocol


def test_a_deflate_offer_with_an_unknown_parameter_is_declined_not_refused():
    for compression in ("off", "deflate"):
        head, protocol = handshake_extensions(compression, "permessage-deflate; x_unknown=1")
        assert head.startswith("HTTP/1.1 101"), head
        assert "sec-websocket-extensions" not in head.lower()
        assert not protocol.compressing


def test_a_bad_offer_is_passed_over_for_the_next_good_one():
    head, protocol = handshake_extensions(
        "deflate", "permessage-deflate; server_max_window_bits=99, permessage-deflate; client_max_window_bits")
    assert head.startswith("HTTP/1.1 101"), head
    assert "Sec-WebSocket-Extensions: permessage-deflate" in head
    assert protocol.compressing
    assert isinstance(PerMessageDeflateOffer.parse([]), PerMessageDeflateOffer)

STEPS = st.lists(st.one_of(
    st.tuples(st.just("write"), st.integers(1, 5000)),
    st.tuples(st.just("pause"), st.just(0)),
    st.tuples(st.just("resume"), st.just(0)),
), max_size=200)


@settings(max_examples=300, deadline=None)
@given(STEPS, st.integers(1, 20_000))
def test_the_bound_holds_for_any_sequence_of_writes_pauses_and_resumes(steps, limit):
    """Whatever the transport and the node do, the connection is found too
    slow exactly when the bytes written since the last pause first pass the
    limit (a client that keeps up is never closed), once; nothing written
    is lost or reordered on the way."""
    calls = []
    backlog = OutboundBacklog(limit, lambda: calls.append(backlog.held))
    transport = StringTransport()
    backlog.attach(transport)
    held, over, written = 0, False, []
    for kind, n in steps:
        if kind == "pause":
            backlog.pauseProducing()  # (again: the count goes on)
        elif kind == "resume":
            backlog.resumeProducing()
            held = 0
        else:
            data = bytes([len(written) % 251]) * n
            written.append(data)
            transport.write(data)
            if backlog.paused:
                held += n
                if held > limit and not over:
                    over = True
                    assert calls == [held]
        assert backlog.held == held
    assert len(calls) == (1 if over else 0)
    assert transport.value() == b"".join(written)


def masked(opcode, payload, fin=True):
    n = len(payload)
    assert n < 126
    return bytes([(0x80 if fin else 0) | opcode, 0x80 | n]) + b"\0\0\0\0" + payload  # a zero mask


def opcodes(data):
    """The opcodes of the server frames C{data}."""
    found = []
    while len(data) >= 2:
        n, start = data[1] & 0x7F, 2
        if n == 126:
            n, start = struct.unpack("!H", data[2:4])[0], 4
        found.append(data[0] & 0x0F)
        data = data[start + n:]
    return found


@pytest.mark.parametrize("shape", ["whole", "fragmented", "silent"])
def test_keep_alive_in_process(shape):
    """A fake clock drives autobahn's pings (every second, a second to
    answer): a client that sends a data frame, whole (the protocol's short
    way) or in fragments (autobahn's way), between pings but never answers
    one stays open; one that sends nothing is dropped (aborted, as autobahn
    does on a ping timeout) after its first ping."""
    from txaio.testutil import replace_loop

    clock = Clock()
    with replace_loop(clock):
        protocol, transport, _ = open_connection(ping_interval=1.0, ping_timeout=1.0, clock=clock)
        for _ in range(6):
            clock.advance(0.5)
            clock.advance(0.5)
            if shape == "whole":
                protocol.dataReceived(masked(0x1, b"not json"))
            elif shape == "fragmented":
                protocol.dataReceived(masked(0x1, b"not ", fin=False) + masked(0x0, b"json"))
            if shape == "silent" and transport.disconnecting:
                break
        sent = opcodes(transport.value())
        assert sent.count(0x9) >= 1  # pinged
        if shape == "silent":
            assert transport.disconnecting and protocol.state == protocol.STATE_CLOSED
        else:
            assert not transport.disconnecting and protocol.state == protocol.STATE_OPEN
            assert sent.count(0x1) == 6  # each frame answered (400: not JSON)
