"""A gateway's place in the cluster, for the server API (docs/api.md).

The gateway holds an ephemeral ``/chatnet/gateways/<id>`` (JSON with its
``internalHost``: the address its links to the nodes leave from, which the
nodes check, see L{chatnet.cluster.identity}) for as long as its ZooKeeper
session lives, and reads the nodes' internal addresses from
``/chatnet/nodes``. It joins no election.

As in L{chatnet.cluster.membership}, kazoo runs in its own thread: watches
and state changes are handed to the reactor with ``callFromThread``, every
blocking kazoo call runs in the reactor's thread pool. The ``listener`` is
called with the nodes (node id -> info) after every change.
"""
import orjson
from kazoo.client import KazooState
from kazoo.exceptions import NodeExistsError
from twisted.internet import defer, threads
from twisted.logger import Logger

from chatnet.cluster import zkacl
from chatnet.cluster.membership import GATEWAYS, NODES, new_client, read_children

log = Logger()


class GatewayRegistration:
    def __init__(self, hosts, gateway_id, info, listener, reactor, session_timeout=10.0, auth="", start_timeout=5.0):
        self.hosts = hosts
        # seconds one start waits for ZooKeeper (the caller tries again); a
        # stop waits for that too
        self.start_timeout = start_timeout
        self.auth = auth
        self.gateway_id = gateway_id
        self.info = dict(info, gatewayId=gateway_id)
        self.listener = listener
        self.reactor = reactor
        self.session_timeout = session_timeout
        self.zk = None
        self.nodes = {}
        self.registered = False
        self._watching = False
        self._refreshing = False
        self._dirty = False
        self._stopping = False

    @property
    def path(self):
        return f"{GATEWAYS}/{self.gateway_id}"

    def _thread(self, f, *args, **kwargs):
        return threads.deferToThreadPool(self.reactor, self.reactor.getThreadPool(), f, *args, **kwargs)

    async def start(self):
        self.zk = new_client(self.hosts, self.session_timeout, self.auth)
        self.zk.add_listener(lambda state: self.reactor.callFromThread(self._on_state, state))
        await self._thread(self.zk.start, self.start_timeout)
        await self._register()

    async def stop(self):
        self._stopping = True
        if self.zk is None:
            return
        zk, self.zk = self.zk, None

        def leave():
            try:
                zk.delete(self.path)
            except Exception:
                pass

        await self._thread(leave)

    async def abandon(self):
        """Give up a start that failed: stop the client it made."""
        zk, self.zk = self.zk, None
        if zk is not None:
            try:
                await self._thread(zk.stop)
            except Exception as e:
                log.warn("stopping the zookeeper client failed: {e}", e=e)

    async def _register(self):
        zk = self.zk
        data = orjson.dumps(self.info)

        def register():
            zkacl.ensure_paths(zk, (NODES, GATEWAYS))
            try:
                zk.create(self.path, data, ephemeral=True)
            except NodeExistsError:
                # an earlier process of ours whose session has not expired yet
                zk.delete(self.path)
                zk.create(self.path, data, ephemeral=True)

        await self._thread(register)
        self.registered = True
        log.info("gateway registered in zookeeper as {id}", id=self.gateway_id)
        if not self._watching:
            self._watching = True
            zk.ChildrenWatch(NODES, lambda children: self.reactor.callFromThread(self.refresh))
        self.refresh()

    def _on_state(self, state):
        if self._stopping:
            return
        if state == KazooState.LOST:
            log.warn("zookeeper session lost: registering the gateway again once connected")
            self.registered = False
        elif state == KazooState.CONNECTED and not self.registered and self.zk is not None:
            self._register_again()

    def _register_again(self):
        d = defer.ensureDeferred(self._register())
        d.addErrback(lambda f: log.warn("registering the gateway again failed: {e}", e=f.getErrorMessage()))

    def refresh(self):
        if self._refreshing:
            self._dirty = True
            return
        if self.zk is None:
            return
        self._refreshing = True
        zk = self.zk

        self._thread(lambda: read_children(zk, NODES)).addCallbacks(self._read, self._read_failed)

    def _read(self, nodes):
        self._refreshing = False
        if nodes != self.nodes:
            self.nodes = nodes
            self.listener(dict(nodes))
        if self._dirty:
            self._dirty = False
            self.refresh()

    def _read_failed(self, failure):
        self._refreshing = False
        log.warn("reading the cluster's nodes failed: {why}", why=failure.getErrorMessage())
        self.reactor.callLater(0.5, self.refresh)
