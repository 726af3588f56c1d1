"""This node's part in the cluster's picture of who is online, and of its
load:

* announcing each login and logout of a local user to every peer (the
  peers' session caches and the leader's automatic rooms follow them);
* announcing the local users again to a node that (re)appears;
* a heartbeat: our connection count for the gateway (C{chatnet:load}), and
  our marker key; when the marker is gone, Redis lost our sessions
  (restarted empty, or the leader removed them as stale while it did not
  see us), and they are published again (also after our ZooKeeper session
  was lost and we registered again);
* after registering again, or after Redis lost our sessions, adding this
  node again to the node sets of its rooms and catching its members up on
  what they missed meanwhile; after a node left, catching up what it may
  have accepted and not sent (L{chatnet.service.roomfeed}).
"""
import orjson
from twisted.internet import defer, task
from twisted.logger import Logger

from chatnet.domain.messages import now_ms
from chatnet.protocols.amp_commands import SessionChanged
from chatnet.stores.redis import LOAD, marker_key

log = Logger()

HEARTBEAT = 2.0
REPUBLISH_BATCH = 100
# seconds after a node left at which the rooms are caught up
CATCH_UP_AFTER = (0.0, 2.0)


class Presence:
    """
    @param view: the L{chatnet.cluster.view.ClusterView}.
    @param peers: the L{chatnet.cluster.peers.Peers}.
    @param sessions: the L{chatnet.service.online.LocalSessions}.
    @param directory: the L{chatnet.service.online.SessionDirectory}.
    @param redis: the L{chatnet.stores.redis.RedisStore}.
    @param registered: C{registered()}: true while this node is
        registered in ZooKeeper (L{chatnet.cluster.membership.ZooKeeperMembership}).
    @param registrations: C{registrations()}: how many times it
        registered (more than once: the cluster may have forgotten it).
    @param connections: the open client connections (a sized collection).
    @param leadership: the L{chatnet.cluster.leadership.Leadership}: a
        leader publishes the server list again after a re-publish.
    @param feed: the L{chatnet.service.roomfeed.RoomFeed} of this node.
    """

    def __init__(self, view, peers, sessions, directory, redis, registered, registrations, connections, leadership,
                 clock, feed):
        self.view = view
        self.peers = peers
        self.sessions = sessions
        self.directory = directory
        self.redis = redis
        self.registered = registered
        self.registrations = registrations
        self.connections = connections
        self.leadership = leadership
        self.clock = clock
        self.feed = feed
        self._registrations = 0  # of the membership, as last seen
        self._republish_pending = False
        self._beats = None

    def start(self):
        """Beat (L{heartbeat}) now and every C{HEARTBEAT} seconds; a beat
        that fails is logged, the next one tries again."""
        self._beats = task.LoopingCall(
            lambda: defer.ensureDeferred(self.heartbeat()).addErrback(
                lambda failure: log.failure("presence heartbeat failed", failure)))
        self._beats.clock = self.clock
        self._beats.start(HEARTBEAT, now=True)

    def stop(self):
        if self._beats is not None and self._beats.running:
            self._beats.stop()

    def announce(self, record, online, nodes=None):
        """Tell every peer (or those of C{nodes}) that C{record} logged in or out."""
        members = self.view.members
        for node in members if nodes is None else nodes:
            if node != self.view.node_id and node in members:
                self.peers.send(
                    node, SessionChanged, username=record.username, nodeId=record.nodeId,
                    sessionId=record.sessionId, loginTime=record.loginTime,
                    alliance=record.alliance, version=record.version, online=online, multi=record.multi,
                )

    def membership_changed(self, departed, joined, previous_leader):
        """The listener of the view (L{ClusterView.subscribe})."""
        for node in departed:
            log.info("node {node} left the cluster", node=node)
            self.directory.forget_node(node)
        if departed:
            # it may have died between accepting room messages and sending them
            self._catch_up()
        registrations = self.registrations()
        if registrations != self._registrations:
            self._registrations = registrations
            if registrations > 1:
                # Registered again after our ZooKeeper session was lost: the
                # others saw us leave, forgot our users, and the leader may
                # have deleted their sessions.
                defer.ensureDeferred(self._republish("registered again in zookeeper")).addErrback(
                    lambda f: log.warn("re-publishing sessions failed ({why}); the heartbeat tries again",
                                       why=f.getErrorMessage()))
        elif joined:
            # A node that (re)appears may have forgotten our users while it
            # did not see us.
            self._announce_local(joined)

    async def heartbeat(self):
        """Report our connection count; re-publish our sessions if Redis lost
        them (our marker key is gone)."""
        if not self.registered():
            return
        await self.redis.call(
            "hset", LOAD, self.view.node_id,
            orjson.dumps({"connections": len(self.connections), "ts": now_ms(self.clock)}),
        )
        fresh = await self.redis.call("execute_command", "SET", marker_key(self.view.node_id), "1", "NX")
        if fresh or self._republish_pending:
            await self._republish("our sessions are gone from redis")
            if self.leadership.leading:
                await self.leadership.publish_servers()

    async def _republish(self, why):
        """Write every session of this node to Redis again (keeping its
        version, so it never takes over from a newer login) and announce it
        to every peer, whose caches may have lost it; add this node again to
        its rooms' node sets, and catch up what its members missed. Tried
        again at every heartbeat until it went through."""
        self._republish_pending = True
        records = [c.record for c in self.sessions if c.record is not None and c.record.version]
        if records:
            log.warn("{why}: re-publishing {n} sessions", why=why, n=len(records))
        peers = [n for n in self.view.members if n != self.view.node_id]
        for start in range(0, len(records), REPUBLISH_BATCH):
            batch = records[start:start + REPUBLISH_BATCH]
            await defer.gatherResults(
                [defer.ensureDeferred(self.directory.restore(r)) for r in batch], consumeErrors=True
            ).addErrback(lambda f: f.value.subFailure.raiseException())
            for record in batch:
                self.announce(record, True, peers)
        await self.feed.track_again()
        self._republish_pending = False

    def _catch_up(self):
        """Read the rooms whose counter is ahead of what arrived here: now,
        and again a little later (calls of live nodes still in flight)."""
        for delay in CATCH_UP_AFTER:
            d = task.deferLater(self.clock, delay, lambda: defer.ensureDeferred(self.feed.check(at_once=True)))
            d.addErrback(lambda f: log.warn("catching the rooms up failed: {why}", why=f.getErrorMessage()))

    def _announce_local(self, nodes):
        for connection in self.sessions:
            record = connection.record
            if record is not None and record.version:
                self.announce(record, True, nodes)
