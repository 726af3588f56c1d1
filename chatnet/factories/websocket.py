"""The client WebSocket factory: protocol options set in one place, the registry
of connections, and prepared (encode-once) broadcast frames.

autobahn copies every protocol option (about 40 of them) from the factory
onto each new connection, unless the protocol already has it, and
pretty-prints the list for a debug log line even when debug logging is off:
about 1 ms of CPU and a few KB of instance dictionary per connection. The
factory therefore hands out a protocol class that carries the options as
class attributes (rebuilt whenever they change), so a connection copies
nothing and has nothing to print.
"""
from autobahn.twisted.websocket import WebSocketServerFactory

from chatnet.protocols.websocket import ChatServerProtocol


class ChatServerFactory(WebSocketServerFactory):
    protocol = ChatServerProtocol

    def __init__(self, node):
        super().__init__()
        self.node = node
        self.connections = set()
        limit = node.config.max_frame_bytes
        self.setProtocolOptions(
            maxFramePayloadSize=limit,
            maxMessagePayloadSize=limit,
            autoFragmentSize=0,
            openHandshakeTimeout=10,
            closeHandshakeTimeout=3,
            autoPingInterval=30,
            autoPingTimeout=20,
            perMessageCompressionAccept=lambda offers: None,
        )

    def setProtocolOptions(self, *args, **kwargs):
        super().setProtocolOptions(*args, **kwargs)
        self._options_on_protocol()

    def resetProtocolOptions(self):
        super().resetProtocolOptions()
        self._options_on_protocol()

    def _options_on_protocol(self):
        base = type(self).protocol
        options = {name: getattr(self, name) for name in base.CONFIG_ATTRS}
        self.protocol = type(base.__name__, (base,), {**options, "CONFIG_ATTRS": ()})
