"""Links to the other nodes of the cluster, one authenticated AMP connection each.

Connections are opened on first use and dropped when a node leaves the
membership. A call to a node that cannot be reached raises
:class:`PeerUnavailable`; callers decide whether to retry elsewhere.

Outgoing connections leave from C{bind_host} (the node's internal
interface), the address the other nodes check against the
C{internalHost} we registered. A node that does not know us yet (it has not
seen our registration in ZooKeeper) answers C{UNKNOWN_NODE}: the link is
tried again every C{retry_interval} seconds for C{join_grace} seconds.
"""
from twisted.internet import defer, task
from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS
from twisted.internet.error import ConnectionClosed
from twisted.logger import Logger
from twisted.protocols.amp import RemoteAmpError

from chatnet.errors import PeerUnavailable
from chatnet.factories.internal import InternalFactory
from chatnet.protocols import amp_commands as cmd

log = Logger()


class Peers:
    def __init__(self, reactor, node_id, secret, handler, timeout=5.0, tls_options=None, bind_host=None,
                 join_grace=10.0, retry_interval=0.5, metrics=None):
        self.reactor = reactor
        self.node_id = node_id
        self.timeout = timeout
        self.factory = InternalFactory(handler, secret, reactor)
        self.tls_options = tls_options
        self.bind_host = bind_host
        self.join_grace = join_grace
        self.retry_interval = retry_interval
        self.metrics = metrics  # chatnet.ops.metrics.NodeMetrics
        self.addresses = {}
        self.links = {}
        self.connecting = {}
        # nodes whose link broke, or could not be made, since the last
        # link to them: they may have died (L{lost_link})
        self.lost = set()

    def update(self, members):
        """C{members}: node id -> member info with C{internalHost},
        C{internalPort}. Links to nodes that left are closed."""
        self.addresses = {
            node: (info["internalHost"], info["internalPort"])
            for node, info in members.items()
            if node != self.node_id
        }
        for node in [n for n in self.links if n not in self.addresses]:
            self._drop(node)
        self.lost &= set(self.addresses)

    def _drop(self, node):
        protocol = self.links.pop(node, None)
        if protocol is not None and protocol.transport is not None:
            protocol.transport.loseConnection()

    async def _link(self, node):
        """The link to C{node}. Callers waiting for the same new link get it
        in the order they asked, so their calls keep that order on the wire."""
        protocol = self.links.get(node)
        if protocol is not None:
            return protocol
        if node not in self.addresses:
            raise PeerUnavailable(node)
        waiter = defer.Deferred()
        if node in self.connecting:
            self.connecting[node].append(waiter)
        else:
            self.connecting[node] = [waiter]
            defer.ensureDeferred(self._establish(node))
        return await waiter

    async def _establish(self, node):
        give_up = self.reactor.seconds() + self.join_grace
        while True:
            try:
                protocol = await self._connect(node)
                break
            except PeerUnavailable as e:
                not_yet = isinstance(e.__cause__, cmd.UnknownNode)
                if not_yet and node in self.addresses and self.reactor.seconds() < give_up:
                    await task.deferLater(self.reactor, self.retry_interval, lambda: None)
                    continue
                for waiter in self.connecting.pop(node):
                    waiter.errback(PeerUnavailable(node))
                self.lost.add(node)
                return
        if node in self.addresses:
            self.links[node] = protocol
            self.lost.discard(node)
        for waiter in self.connecting.pop(node):
            waiter.callback(protocol)

    async def _connect(self, node):
        host, port = self.addresses[node]
        bind = (self.bind_host, 0) if self.bind_host else None
        endpoint = HostnameEndpoint(self.reactor, host, port, timeout=self.timeout, bindAddress=bind)
        if self.tls_options is not None:
            endpoint = wrapClientTLS(self.tls_options(host), endpoint)
        try:
            protocol = await endpoint.connect(self.factory)
        except Exception as e:
            log.warn("cannot reach node {node} at {host}:{port}: {e}", node=node, host=host, port=port, e=e)
            raise PeerUnavailable(node) from e
        try:
            login = defer.Deferred.fromCoroutine(protocol.login(self.node_id))
            await login.addTimeout(self.timeout, self.reactor)
        except Exception as e:
            log.warn("node {node} refused the cluster handshake: {e}", node=node, e=e)
            protocol.transport.loseConnection()
            raise PeerUnavailable(node) from e
        protocol.peerNodeId = node
        protocol.onLost = lambda: self._lost(node, protocol)
        return protocol

    def _lost(self, node, protocol):
        if self.links.get(node) is protocol:
            self.links.pop(node)
            self.lost.add(node)

    def lost_link(self, node):
        """Whether the last link to C{node} broke (or could not be made)
        and no new one was made since: a sign that it died, before
        ZooKeeper says so."""
        return node in self.lost
    def call(self, node, command, **arguments):
        """Run C{command} on C{node}: a Deferred of its answer, which fails
        with L{PeerUnavailable} if the node cannot be reached or the link
        breaks before the answer. (No coroutine when the link is up: the
        calls that carry messages are made many times a second.)"""
        protocol = self.links.get(node)
        if protocol is None:
            return defer.ensureDeferred(self._call_new_link(node, command, arguments))
        return self._call(protocol, node, command, arguments)

    async def _call_new_link(self, node, command, arguments):
        protocol = await self._link(node)
        return await self._call(protocol, node, command, arguments)

    def _call(self, protocol, node, command, arguments):
        try:
            d = protocol.callRemote(command, **arguments)
        except Exception:
            return defer.fail()
        d.addTimeout(self.timeout, self.reactor)
        if self.metrics is not None:
            self.metrics.time_call(command, d)
        return d.addErrback(self._failed, protocol, node)

    def _failed(self, failure, protocol, node):
        e = failure.value
        if isinstance(e, (defer.TimeoutError, defer.CancelledError)):
            # aborted: a node that does not answer may not read either, and
            # closing would wait for it to take what is buffered for it
            if protocol.transport is not None:
                protocol.transport.abortConnection()
            raise PeerUnavailable(node) from e
        if isinstance(e, (ConnectionClosed, cmd.NotAuthenticated)) or (
            isinstance(e, RemoteAmpError) and e.errorCode == b"NOT_AUTHENTICATED"
        ):
            raise PeerUnavailable(node) from e
        return failure

    def send(self, node, command, **arguments):
        """Fire-and-forget C{command} (no answer expected)."""
        d = defer.ensureDeferred(self._link(node))

        def sent(protocol):
            answer = protocol.callRemote(command, **arguments)
            if self.metrics is not None:
                self.metrics.time_call(command, answer)

        d.addCallback(sent)
        d.addErrback(lambda f: log.debug("{node} not told: {f}", node=node, f=f.getErrorMessage()))

    def close(self):
        for node in list(self.links):
            self._drop(node)

