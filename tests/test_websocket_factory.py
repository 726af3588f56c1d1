"""The client WebSocket factory in-process: a handshake offering
permessage-deflate (as every browser, Node's ws and Python's websockets do)
is answered, with the extension only under --compression deflate."""
import pytest
from twisted.internet.task import Clock
from twisted.python import usage

from chatnet.tap_node import Options
from tests.wire import chat_factory, connected, opening_handshake

OFFER = "permessage-deflate; client_max_window_bits"


def handshake(compression, extensions=OFFER):
    protocol, transport = connected(chat_factory(Clock(), None, compression=compression))
    return opening_handshake(protocol, transport, extensions), protocol


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
