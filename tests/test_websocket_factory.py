"""The client WebSocket factory in-process: a handshake offering
permessage-deflate (as every browser, Node's ws and Python's websockets do)
is answered, with the extension only under --compression deflate."""
import base64
import os

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport
from twisted.internet.task import Clock
from twisted.python import usage

from chatnet.config import NodeConfig
from chatnet.factories.websocket import ChatServerFactory
from chatnet.service.session import SessionService
from chatnet.tap_node import Options

OFFER = "permessage-deflate; client_max_window_bits"


def handshake(compression, extensions=OFFER):
    clock = Clock()
    factory = ChatServerFactory(NodeConfig(compression=compression), clock, None)
    factory.serve(None, SessionService(None, None, None, None, lambda *args: None, clock, None))
    protocol = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
    transport = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 40000))
    protocol.makeConnection(transport)
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
    )
    if extensions:
        request += f"Sec-WebSocket-Extensions: {extensions}\r\n"
    protocol.dataReceived((request + "\r\n").encode())
    head = transport.value().split(b"\r\n\r\n", 1)[0].decode()
    return head, protocol


@pytest.mark.parametrize("extensions", [OFFER, "permessage-deflate", None])
def test_compression_off_answers_without_the_extension(extensions):
    head, protocol = handshake("off", extensions)
    assert head.startswith("HTTP/1.1 101"), head
    assert "sec-websocket-extensions" not in head.lower()
    assert not protocol.compressing


def test_compression_deflate_accepts_the_offer():
    head, protocol = handshake("deflate")
    assert head.startswith("HTTP/1.1 101"), head
    assert "Sec-WebSocket-Extensions: permessage-deflate" in head
    assert protocol.compressing


def test_compression_deflate_without_an_offer_is_plain():
    head, protocol = handshake("deflate", None)
    assert head.startswith("HTTP/1.1 101"), head
    assert "sec-websocket-extensions" not in head.lower()


def test_compression_option():
    def parse(*args):
        options = Options()
        options.parseOptions(["--cluster-secret", "s", *args])
        return options.config()

    assert parse().compression == "off"
    assert parse("--compression", "deflate").compression == "deflate"
    with pytest.raises(usage.UsageError):
        parse("--compression", "gzip")
