"""What the in-process tests of the protocols give a connection: bytes in
pieces, a WebSocket opening handshake, the client factory of the node and
a connection of it."""
import base64
import os

from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport

from chatnet.config import NodeConfig
from chatnet.factories.websocket import ChatServerFactory
from chatnet.service.session import SessionService


def pieces(data, cuts):
    """C{data} cut into pieces of the lengths C{cuts} (then the rest), the
    empty ones left out."""
    out, rest = [], data
    for cut in cuts:
        out.append(rest[:cut])
        rest = rest[cut:]
    out.append(rest)
    return [p for p in out if p]


def opening_handshake(protocol, transport, extensions=None):
    """Send the server C{protocol} (connected to the StringTransport
    C{transport}) a client's opening handshake, offering C{extensions}
    (a C{Sec-WebSocket-Extensions} value) if given; the head of its answer
    (C{str}). The answer stays in C{transport}."""
    key = base64.b64encode(os.urandom(16)).decode()
    request = ("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n")
    if extensions:
        request += f"Sec-WebSocket-Extensions: {extensions}\r\n"
    protocol.dataReceived((request + "\r\n").encode())
    return transport.value().split(b"\r\n\r\n", 1)[0].decode()


def chat_factory(clock, metrics, **config):
    """The node's client factory (C{NodeConfig(**config)}), serving
    connections that do not log in: their session needs none of its
    collaborators."""
    factory = ChatServerFactory(NodeConfig(**config), clock, metrics)
    factory.serve(None, SessionService(None, None, None, None, lambda *args: None, clock, None))
    return factory


def connected(factory, transport_class=StringTransport):
    """A protocol of C{factory}, connected to a C{transport_class}
    (a StringTransport); (protocol, transport)."""
    address = IPv4Address("TCP", "127.0.0.1", 40000)
    protocol = factory.buildProtocol(address)
    transport = transport_class(peerAddress=address)
    protocol.makeConnection(transport)
    return protocol, transport
