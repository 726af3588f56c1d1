"""Factories of the internal AMP port: the listener and outgoing peer links."""
from twisted.internet.protocol import Factory

from chatnet.protocols.internal import InternalProtocol


class InternalFactory(Factory):
    """Builds an L{InternalProtocol} bound to the node's responder of the cluster's commands.

    @param clock: the reactor (pre-authentication deadline).
    @param identity: on the listening side, what checks the node id a peer
        claims (L{chatnet.cluster.identity.MemberIdentity}); without it no
        peer is admitted. None for outgoing links.
    @param api: the locator of the server API's commands (a gateway's), or
        None.
    """

    noisy = False

    def __init__(self, responder, secret, clock, identity=None, api=None):
        self.responder = responder
        self.api = api
        self.secret = secret
        self.clock = clock
        self.identity = identity

    def buildProtocol(self, addr):
        protocol = InternalProtocol(self.responder, self.secret, self.clock, self.identity, self.api)
        protocol.factory = self
        return protocol
