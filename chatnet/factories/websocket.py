"""The client WebSocket factory: protocol options set in one place, the registry
of connections, and prepared (encode-once) broadcast frames.

The options are carried by the protocol class the factory hands out
(L{chatnet.adapters.autobahn.FastServerFactory}), so that a connection
copies none of them.
"""
from autobahn.websocket.compress import PerMessageDeflateOffer, PerMessageDeflateOfferAccept

from chatnet.adapters.autobahn import FastServerFactory
from chatnet.limits.ratelimit import TokenBucket
from chatnet.protocols.websocket import ChatServerProtocol


def decline_compression(offers):
    """No compression: the handshake answer names no extension."""
    return None


def accept_deflate(offers):
    """Accept the first C{permessage-deflate} offer as the client made it."""
    for offer in offers:
        if isinstance(offer, PerMessageDeflateOffer):
            return PerMessageDeflateOfferAccept(offer)
    return None


class ChatServerFactory(FastServerFactory):
    protocol = ChatServerProtocol

    """The connections' collaborators, all read by the protocol from here:

    @ivar config: the L{chatnet.config.NodeConfig}.
    @ivar clock: the reactor (timers).
    @ivar metrics: the L{chatnet.ops.metrics.NodeMetrics} (error frames sent).
    @ivar actions, session_service: given by L{serve} (see there).
    """

    actions = session_service = None

    def __init__(self, config, clock, metrics):
        super().__init__()
        self.config = config
        self.clock = clock
        self.metrics = metrics
        self.connections = set()
        limit = config.max_frame_bytes
        self.setProtocolOptions(
            maxFramePayloadSize=limit,
            maxMessagePayloadSize=limit,
            autoFragmentSize=0,
            # client frames are unmasked by the protocol (adapters.autobahn.Unmasker)
            applyMask=False,
            openHandshakeTimeout=10,
            closeHandshakeTimeout=3,
            autoPingInterval=config.ping_interval,
            autoPingTimeout=config.ping_timeout,
            # a data frame counts as a pong: ChatServerProtocol._alive, for
            # the frames autobahn reads and those the protocol reads itself
            autoPingRestartOnAnyTraffic=False,
            # a frame too big or not UTF-8 gets its close code (1009, 1007)
            # and a closing handshake instead of a TCP reset
            failByDrop=False,
            perMessageCompressionAccept=accept_deflate if config.compression == "deflate" else decline_compression,
        )

    def frame_bucket(self):
        """A connection's L{TokenBucket} of frames a second
        (C{--rate-limit}, C{--rate-burst}), or None without a limit."""
        config = self.config
        if config.rate_limit <= 0:
            return None
        return TokenBucket(config.rate_limit, config.rate_burst, self.clock)

    def serve(self, actions, session_service):
        """The services of the connections: the
        L{chatnet.actions.ClientActions} (C{actions}) and the
        L{chatnet.service.session.SessionService}. Given once the node
        knows its id, which may be made of the port this factory
        listens on: by L{chatnet.node.ChatNode._start} right after the port
        is bound, before the reactor runs again, hence before any
        connection."""
        self.actions = actions
        self.session_service = session_service
