"""Factories of the internal AMP port: the listener and outgoing peer links."""
from twisted.internet.protocol import Factory

from chatnet.protocols.internal import InternalProtocol


class InternalFactory(Factory):
    """Builds an L{InternalProtocol} bound to the node's cluster handler."""

    noisy = False

    def __init__(self, handler, secret):
        self.handler = handler
        self.secret = secret

    def buildProtocol(self, addr):
        protocol = InternalProtocol(self.handler, self.secret)
        protocol.factory = self
        return protocol
