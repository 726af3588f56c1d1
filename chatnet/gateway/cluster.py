"""The gateway's links to the chat nodes, for the server API (docs/api.md).

With the API enabled the gateway is an authenticated member of the cluster's
internal port, of the kind "gateway": it registers in ZooKeeper
(L{chatnet.cluster.gateways.GatewayRegistration}), learns the nodes'
internal addresses there, and logs in to a node as ``gateway:<id>`` with the
cluster secret, from its registered ``internalHost`` (L{Peers}). The nodes
then answer its C{Api*} commands and nothing else.
"""
import random

from twisted.application import service
from twisted.internet import defer, task
from twisted.logger import Logger

from chatnet.cluster.gateways import GatewayRegistration
from chatnet.cluster.identity import GATEWAY_PREFIX
from chatnet.cluster.peers import PeerUnavailable, Peers
from chatnet.protocols import amp_commands as cmd

log = Logger()

#: nodes one API call tries before it gives up (503)
TRIES = 3


class ClusterUnavailable(Exception):
    """No chat node could be asked."""


class NodeLinks(service.Service):
    """@param reactor: the reactor.
    @param zookeeper: ZooKeeper hosts (with the cluster's chroot).
    @param gateway_id: this gateway's id.
    @param secret: the cluster secret (bytes).
    @param internal_host: the address the links leave from, registered in
        ZooKeeper for the nodes to check.
    @param timeout: seconds an API call may take on a node.
    """

    def __init__(self, reactor, zookeeper, gateway_id, secret, internal_host, zookeeper_auth="", timeout=15.0,
                 tls_options=None):
        self.reactor = reactor
        self.peers = Peers(reactor, GATEWAY_PREFIX + gateway_id, secret, None, timeout=timeout,
                           bind_host=internal_host, tls_options=tls_options)
        self.registration = GatewayRegistration(
            zookeeper, gateway_id, {"internalHost": internal_host}, self.peers.update, reactor,
            auth=zookeeper_auth,
        )
        self._starting = None

    def startService(self):
        super().startService()
        self._starting = defer.ensureDeferred(self._start())

    async def _start(self):
        while self.running:
            try:
                await self.registration.start()
                return
            except Exception as e:
                log.warn("gateway not registered in zookeeper yet: {e}", e=e)
                await self.registration.abandon()
                await task.deferLater(self.reactor, 2.0, lambda: None)

    def stopService(self):
        super().stopService()
        self.peers.close()
        d = defer.ensureDeferred(self.registration.stop())
        return d.addErrback(lambda f: log.warn("leaving zookeeper failed: {e}", e=f.getErrorMessage()))

    async def call(self, command, **arguments):
        """Run C{command} on a live node: another one if a node cannot be
        reached (never after the command may have reached it);
        L{ClusterUnavailable} if none could be asked."""
        nodes = list(self.peers.addresses)
        random.shuffle(nodes)
        for node in nodes[:TRIES]:
            try:
                return await self.peers.call(node, command, **arguments)
            except PeerUnavailable as e:
                if e.__cause__ is not None and not _not_sent(e.__cause__):
                    raise ClusterUnavailable(f"node {node} did not answer in time") from e
                log.warn("node {node} unreachable for the server API", node=node)
        raise ClusterUnavailable("no chat node reachable")


def _not_sent(cause):
    """True if the command certainly did not reach the node (the link was
    refused), so that another node may be asked."""
    return isinstance(cause, cmd.NotAuthenticated) or getattr(cause, "errorCode", None) == b"NOT_AUTHENTICATED"
