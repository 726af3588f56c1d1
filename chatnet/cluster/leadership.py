"""The leader's duties, carried out by whichever node ZooKeeper elected:

* publishing the server list the gateway hands out, every few seconds;
* sweeping the sessions of nodes that are gone, on every membership change
  and now and then (a session written by a node just before it died);
* sweeping the popular-words window;
* rescuing what departed nodes acked but may not have stored
  (L{chatnet.service.rescue}).
"""
import orjson
from twisted.internet import defer, task
from twisted.logger import Logger

from chatnet.domain.messages import now_ms
from chatnet.errors import StoreUnavailable
from chatnet.stores.redis import SERVERS

log = Logger()

LEADER_SWEEP = 3.0
STALE_SWEEP_EVERY = 10
RESCUE_TRIES = 60


class Leadership:
    """Starts and stops the leader's duties as C{view} (a
    L{chatnet.cluster.view.ClusterView}) changes.

    @param stale_after: seconds after which the gateway takes the server
        list for stale.
    @param emit: C{emit(event, *args)} (L{chatnet.ops.events.EventBus.emit}).
    @ivar leading: true while this node leads.
    """

    def __init__(self, view, redis, directory, popular, rescuer, clock, stale_after, emit):
        self.view = view
        self.redis = redis
        self.directory = directory
        self.popular = popular
        self.rescuer = rescuer
        self.clock = clock
        self.stale_after = stale_after
        self.emit = emit
        self.leading = False
        self._loop = None
        self._sweeps = 0
        self._rescuing = set()
        self._stopped = False

    def membership_changed(self, departed, joined, previous_leader):
        """The listener of the view (L{ClusterView.subscribe})."""
        view = self.view
        became_leader = view.leader == view.node_id and not self.leading
        if became_leader:
            self._start()
        elif view.leader != view.node_id and self.leading:
            self.stop()
        if view.leader != previous_leader:
            log.info("leader is now {leader}", leader=view.leader)
        if self.leading:
            defer.ensureDeferred(self._sweep(stale_sessions=True))
            if departed or became_leader:
                # (a new leader also rescues what the old one did not: the
                # old leader itself, nodes that left while it led)
                defer.ensureDeferred(self._rescue(departed))

    def _start(self):
        log.info("{node} is the leader: publishing the server list", node=self.view.node_id)
        self.leading = True
        self._sweeps = 0
        self._loop = task.LoopingCall(lambda: defer.ensureDeferred(self._sweep()))
        self._loop.clock = self.clock
        self._loop.start(LEADER_SWEEP, now=False)
        self.emit("node_became_leader", self.view.node_id)

    def node_stopping(self):
        """The node is stopping: no new rescue goes on (it still leads
        until L{stop})."""
        self._stopped = True

    def stop(self):
        """Stop leading."""
        if not self.leading:
            return
        log.info("{node} stops leading", node=self.view.node_id)
        self.leading = False
        if self._loop.running:
            self._loop.stop()

    async def _sweep(self, stale_sessions=False):
        """The server list and the popular window every few seconds; stale
        sessions on every membership change and now and then."""
        if not self.leading:
            return
        self._sweeps += 1
        try:
            await self.publish_servers()
            if stale_sessions or self._sweeps % STALE_SWEEP_EVERY == 0:
                await self.directory.remove_stale(set(self.view.members))
            if self._sweeps % STALE_SWEEP_EVERY == 0:
                defer.ensureDeferred(self._rescue([]))
            await self.popular.sweep()
        except StoreUnavailable:
            pass

    async def _rescue(self, departed):
        """Store what the nodes that left (C{departed}, and any other one
        Redis knows as accepting) acked but may not have stored
        (chatnet.service.rescue); retried while a store is down, as long as this
        node leads (a new leader starts again)."""
        for attempt in range(RESCUE_TRIES):
            if not self.leading or self._stopped:
                return
            try:
                members = self.view.members
                nodes = set(departed) | set(await self.rescuer.departed(members))
                nodes -= set(members) | {self.view.node_id} | self._rescuing
                for node in sorted(nodes):
                    self._rescuing.add(node)
                    try:
                        n = await self.rescuer.node(node)
                    finally:
                        self._rescuing.discard(node)
                    log.info("{node} left: {n} recent messages checked into mongodb", node=node, n=n)
                return
            except StoreUnavailable:
                await task.deferLater(self.clock, 1.0, lambda: None)
        log.warn("{nodes} left: recent messages not checked into mongodb yet (stores unavailable); "
                 "the leader tries again later", nodes=", ".join(departed) or "nodes")

    async def publish_servers(self):
        """Write the server list the gateway reads (docs/design.md)."""
        nodes = [
            {
                "nodeId": node,
                "host": info["host"],
                "port": info["port"],
                "url": info.get("url", ""),
                "isLeader": node == self.view.leader,
            }
            for node, info in sorted(self.view.members.items())
        ]
        await self.redis.call(
            "set",
            SERVERS,
            orjson.dumps({"nodes": nodes, "staleAfter": self.stale_after, "ts": now_ms(self.clock)}),
        )
