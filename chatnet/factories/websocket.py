"""The client WebSocket factory: protocol options set in one place, the registry
of connections, and prepared (encode-once) broadcast frames."""
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
