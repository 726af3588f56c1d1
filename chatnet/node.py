"""The chat node: one process serving WebSocket clients as part of the cluster.

Start-up order (all asynchronous, in ``startService``): stores, the internal
AMP listener, the client WebSocket listener (its bound port is what gets
published), the session cache, then ZooKeeper registration. Graceful stop
(SIGTERM) runs it backwards: leave ZooKeeper first, tell clients to reconnect
through the gateway (close code 1001), remove their sessions, flush the
message log.
"""
import orjson
from twisted.application.service import MultiService
from twisted.internet import defer, task
from twisted.internet.endpoints import serverFromString
from twisted.logger import Logger

from chatnet import operations, tls, words
from chatnet.accept import Acceptor
from chatnet.cluster.identity import MemberIdentity
from chatnet.cluster.membership import Membership
from chatnet.cluster.peers import Peers
from chatnet.cluster.router import RecentDeliveries, Router
from chatnet.config import endpoint_interface
from chatnet.errors import StoreUnavailable
from chatnet.factories.internal import InternalFactory
from chatnet.factories.websocket import ChatServerFactory
from chatnet.handlers import ChatHandlers
from chatnet.history import History
from chatnet.messages import now_ms
from chatnet.popular import PopularWords
from chatnet.profanity import ProfanityFilter
from chatnet.rescue import Rescuer
from chatnet.protocols.amp_commands import NotLeader, SessionChanged
from chatnet.protocols import codec
from chatnet.rooms import RoomHost
from chatnet.sequences import Sequences
from chatnet.sessions import LocalSessions, SessionDirectory, SessionRecord
from chatnet.stores.message_log import MessageLog
from chatnet.stores.mongo import MongoStore, OfflineStore
from chatnet.stores.redis import LOAD, SERVERS, RedisStore, marker_key

log = Logger()

HEARTBEAT = 2.0
LEADER_SWEEP = 3.0
STALE_SWEEP_EVERY = 10
REPUBLISH_BATCH = 100
RESCUE_TRIES = 60


class ChatNode(MultiService):
    def __init__(self, config, reactor=None):
        super().__init__()
        if reactor is None:
            from twisted.internet import reactor
        self.config = config
        self.reactor = reactor
        self.redis = RedisStore(config.redis, timeout=config.store_timeout, reactor=reactor)
        self.mongo = MongoStore(config.mongo, timeout=config.store_timeout, reactor=reactor)
        self.message_log = MessageLog(self.mongo, reactor)
        self.message_log.setServiceParent(self)
        self.history = History(self.redis, self.mongo, waiting=self.message_log.waiting)
        self.offline = OfflineStore(self.mongo)
        self.sequences = Sequences(self.redis, self.mongo, self._pending_seq)
        self.popular = PopularWords(self.redis, reactor, config.popular_window)
        self.acceptor = None  # knows the node id: made in _start
        self.rescuer = Rescuer(self.redis, self.mongo)
        if config.profanity_file:
            self.profanity = ProfanityFilter.from_file(config.profanity_file)
        else:
            self.profanity = ProfanityFilter.default()
        self.sessions = LocalSessions()
        self.directory = SessionDirectory(self.redis, self._live_nodes)
        self.recent = RecentDeliveries()
        self.router = Router(self, reactor, deadline=max(20.0, config.zk_session_timeout * 2 + 5))
        self.handlers = ChatHandlers(self)
        self.factory = ChatServerFactory(self)
        self.node_id = config.node_id
        self.members = {}
        self.leader = None
        self.room_host = None
        self.peers = None
        self.membership = None
        self._leader_waiters = []
        self._registrations = 0  # of self.membership, as last seen
        self._republish_pending = False
        self._rescuing = set()
        self._ports = []
        self._loops = []
        self._stopping = False
        self.started = defer.Deferred()
        operations.attach(self)  # metrics, event plugins (self.events), --metrics listener

    # -- life cycle --------------------------------------------------------

    def startService(self):
        super().startService()
        d = defer.Deferred.fromCoroutine(self._start())

        def failed(failure):
            log.failure("chat node failed to start", failure)
            self.reactor.callLater(0, self.reactor.stop)

        d.addCallbacks(self.started.callback, failed)

    async def _start(self):
        config = self.config
        self.redis.connect()
        self.mongo.connect()
        secret = config.secret()
        if not secret:
            raise ValueError("a cluster secret is needed: --cluster-secret or CHATNET_CLUSTER_SECRET")
        identity = MemberIdentity(lambda: self.members, self.wait_for_leader, self.reactor)
        internal = await serverFromString(self.reactor, config.internal).listen(
            InternalFactory(self, secret, self.reactor, identity))
        self._ports.append(internal)
        client = await serverFromString(self.reactor, config.listen).listen(self.factory)
        self._ports.append(client)
        host = config.advertise_host or endpoint_interface(config.listen)
        port = client.getHost().port
        internal_host = config.internal_host or endpoint_interface(config.internal)
        internal_port = internal.getHost().port
        if not self.node_id:
            self.node_id = f"{host}:{port}"
        self.acceptor = Acceptor(self.redis, self.sequences, self.history, self.popular, self.node_id)
        self.factory.setSessionParameters(url=f"{config.tls_scheme}://{host}:{port}/")
        self.peers = Peers(self.reactor, self.node_id, secret, self, tls_options=tls.client_options(config),
                           bind_host=endpoint_interface(config.internal, default=None))
        self.info = {
            "host": host,
            "port": port,
            "url": f"{config.tls_scheme}://{host}:{port}/",
            "internalHost": internal_host,
            "internalPort": internal_port,
        }
        self.reactor.callInThread(words.warm_up)
        defer.ensureDeferred(self._ensure_indexes())
        try:
            await self.directory.load()
        except StoreUnavailable:
            log.warn("session cache starts empty: redis unavailable")
        try:
            # a process of ours killed and restarted before the leader saw it leave
            n = await self.rescuer.node(self.node_id)
            if n:
                log.info("{n} recent messages of our previous process checked into mongodb", n=n)
        except StoreUnavailable:
            log.warn("recent messages of our previous process not checked: a store is unavailable")
        self.membership = Membership(
            config.zookeeper,
            self.node_id,
            self.info,
            self._membership_changed,
            self.reactor,
            session_timeout=config.zk_session_timeout,
            auth=config.zookeeper_auth,
        )
        await self.membership.start()
        self._loop(HEARTBEAT, self._heartbeat)
        log.info(
            "chat node {node} serving clients on {host}:{port}, internal {ihost}:{iport}",
            node=self.node_id, host=host, port=port, ihost=internal_host, iport=internal_port,
        )
        return self

    async def _ensure_indexes(self):
        while not self._stopping:
            try:
                await self.mongo.ensure_indexes()
                return
            except Exception as e:
                log.warn("mongodb indexes not ensured yet: {e}", e=e)
                await task.deferLater(self.reactor, 1.0, lambda: None)

    def _loop(self, interval, f):
        loop = task.LoopingCall(lambda: defer.ensureDeferred(f()).addErrback(
            lambda failure: log.failure("periodic task failed", failure)))
        loop.clock = self.reactor
        loop.start(interval, now=True)
        self._loops.append(loop)

    def stopService(self):
        d = defer.ensureDeferred(self._stop())
        return d.addErrback(lambda f: log.failure("stopping the chat node failed", f))

    async def _stop(self):
        self._stopping = True
        log.info("chat node {node} stopping", node=self.node_id)
        for loop in self._loops:
            if loop.running:
                loop.stop()
        if self.membership is not None:
            try:
                await defer.ensureDeferred(self.membership.stop()).addTimeout(3, self.reactor)
            except Exception as e:
                log.warn("leaving zookeeper failed: {e}", e=e)
        self._stop_leading()
        connections = list(self.factory.connections)
        for connection in connections:
            connection.going_away()
        if connections:
            # the close handshakes, and the sessions' removal from redis
            gone = defer.DeferredList([c.gone for c in connections if hasattr(c, "gone")], consumeErrors=True)
            try:
                await gone.addTimeout(4, self.reactor)
            except defer.TimeoutError:
                log.warn("some clients did not close in time")
        for port in self._ports:
            await port.stopListening()
        await super().stopService()
        if self.peers is not None:
            self.peers.close()
        await self.redis.disconnect()
        await self.mongo.disconnect()

    # -- membership and leadership -----------------------------------------

    def _live_nodes(self):
        return self.members

    def _membership_changed(self, members, leader):
        departed = [n for n in self.members if n not in members]
        joined = [n for n in members if n not in self.members and n != self.node_id]
        self.members = members
        self.peers.update(members)
        for node in departed:
            log.info("node {node} left the cluster", node=node)
            self.directory.forget_node(node)
        registrations = self.membership.registrations if self.membership is not None else 0
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
        was = self.leader
        self.leader = leader
        became_leader = leader == self.node_id and self.room_host is None
        if became_leader:
            self._start_leading()
        elif leader != self.node_id and self.room_host is not None:
            self._stop_leading()
        if leader != was:
            log.info("leader is now {leader}", leader=leader)
        if self.room_host is not None:
            self.room_host.unsettled()
            defer.ensureDeferred(self._leader_sweep(stale_sessions=True))
            if departed or became_leader:
                # (a new leader also rescues what the old one did not: the
                # old leader itself, nodes that left while it led)
                defer.ensureDeferred(self._rescue(departed))
        waiters, self._leader_waiters = self._leader_waiters, []
        for waiter in waiters:
            if not waiter.called:
                waiter.callback(None)

    def wait_for_leader(self, at_most):
        """A Deferred that fires at the next membership change, or after
        C{at_most} seconds."""
        d = defer.Deferred()
        self._leader_waiters.append(d)
        call = self.reactor.callLater(at_most, lambda: d.called or d.callback(None))
        d.addBoth(lambda r: (call.active() and call.cancel(), r)[1])
        return d

    def _start_leading(self):
        log.info("{node} is the leader: hosting rooms, publishing the server list", node=self.node_id)
        self.room_host = host = RoomHost(
            self.mongo, self.directory, self.router.deliver_to, lambda: self.members, self.reactor
        )
        defer.ensureDeferred(self._load_rooms(host))
        self._sweeps = 0
        self._leader_loop = task.LoopingCall(lambda: defer.ensureDeferred(self._leader_sweep()))
        self._leader_loop.clock = self.reactor
        self._leader_loop.start(LEADER_SWEEP, now=False)
        self.emit("node_became_leader", self.node_id)

    async def _load_rooms(self, host):
        while self.room_host is host:
            try:
                await host.load()
                return
            except StoreUnavailable:
                log.warn("rooms not loaded yet: mongodb unavailable, retrying")
                await task.deferLater(self.reactor, 1.0, lambda: None)

    def _stop_leading(self):
        if self.room_host is None:
            return
        log.info("{node} stops leading", node=self.node_id)
        self.room_host = None
        if self._leader_loop.running:
            self._leader_loop.stop()

    async def _leader_sweep(self, stale_sessions=False):
        """Leader duties: the server list and the popular window every few
        seconds; stale sessions on every membership change and now and then
        (a session written by a node just before it died)."""
        if self.room_host is None:
            return
        self._sweeps += 1
        try:
            await self.publish_servers()
            if stale_sessions or self._sweeps % STALE_SWEEP_EVERY == 0:
                await self.directory.remove_stale(set(self.members))
            if self._sweeps % STALE_SWEEP_EVERY == 0:
                defer.ensureDeferred(self._rescue([]))
            await self.popular.sweep()
        except StoreUnavailable:
            pass

    async def _rescue(self, departed):
        """Store what the nodes that left (C{departed}, and any other one
        Redis knows as accepting) acked but may not have stored
        (chatnet.rescue); retried while a store is down, as long as this
        node leads (a new leader starts again)."""
        for attempt in range(RESCUE_TRIES):
            if self.room_host is None or self._stopping:
                return
            try:
                nodes = set(departed) | set(await self.rescuer.departed(self.members))
                nodes -= set(self.members) | {self.node_id} | self._rescuing
                for node in sorted(nodes):
                    self._rescuing.add(node)
                    try:
                        n = await self.rescuer.node(node)
                    finally:
                        self._rescuing.discard(node)
                    log.info("{node} left: {n} recent messages checked into mongodb", node=node, n=n)
                return
            except StoreUnavailable:
                await task.deferLater(self.reactor, 1.0, lambda: None)
        log.warn("{nodes} left: recent messages not checked into mongodb yet (stores unavailable); "
                 "the leader tries again later", nodes=", ".join(departed) or "nodes")

    async def publish_servers(self):
        nodes = [
            {
                "nodeId": node,
                "host": info["host"],
                "port": info["port"],
                "url": info.get("url", ""),
                "isLeader": node == self.leader,
            }
            for node, info in sorted(self.members.items())
        ]
        await self.redis.call(
            "set",
            SERVERS,
            orjson.dumps({"nodes": nodes, "staleAfter": self.config.zk_session_timeout + HEARTBEAT * 2, "ts": now_ms(self.reactor)}),
        )

    async def _heartbeat(self):
        """Report our connection count; re-publish our sessions if Redis lost
        them (restarted empty, or the leader removed them as stale while it
        did not see us: either way our marker key is gone)."""
        if self.membership is None or not self.membership.registered:
            return
        await self.redis.call(
            "hset", LOAD, self.node_id, orjson.dumps({"connections": len(self.factory.connections), "ts": now_ms(self.reactor)})
        )
        fresh = await self.redis.call("execute_command", "SET", marker_key(self.node_id), "1", "NX")
        if fresh or self._republish_pending:
            await self._republish("our sessions are gone from redis")
            if self.room_host is not None:
                await self.publish_servers()

    async def _republish(self, why):
        """Write every session of this node to Redis again (keeping its
        version, so it never takes over from a newer login) and announce it
        to every peer, whose caches and automatic rooms may have lost it.
        Tried again at every heartbeat until it went through."""
        self._republish_pending = True
        records = [c.record for c in self.sessions if c.record is not None and c.record.version]
        if records:
            log.warn("{why}: re-publishing {n} sessions", why=why, n=len(records))
        peers = [n for n in self.members if n != self.node_id]
        for start in range(0, len(records), REPUBLISH_BATCH):
            batch = records[start:start + REPUBLISH_BATCH]
            await defer.gatherResults(
                [defer.ensureDeferred(self.directory.restore(r)) for r in batch], consumeErrors=True
            ).addErrback(lambda f: f.value.subFailure.raiseException())
            for record in batch:
                self.announce(record, True, peers)
        self._republish_pending = False

    def _announce_local(self, nodes):
        for connection in self.sessions:
            record = connection.record
            if record is not None and record.version:
                self.announce(record, True, nodes)

    def _pending_seq(self, channel):
        """The highest seq of C{channel} still waiting in the message log."""
        return max((d["seq"] for d in self.message_log.queue if d["channel"] == channel), default=0)

    # -- responders of the internal AMP port (chatnet.protocols.internal) --

    def session_changed(self, username, nodeId, sessionId, loginTime, alliance, version, online):
        if online:
            record = SessionRecord(username, nodeId, sessionId, loginTime, alliance, version)
            if not self.directory.apply(record):
                return  # an older login announced late
            if self.room_host is not None:
                self.room_host.session_known(record)
            local = self.sessions.get(username)
            # (version 0: that login is still being published; it checks itself)
            if local is not None and local.record is not None and 0 < local.record.version < version:
                local.replaced()
        else:
            self.directory.forget(username, sessionId)

    def deliver_local(self, msg_id, data, usernames, everyone):
        """Send chat C{data} (JSON of the frame's data) to local users who
        have not had it yet; returns C{(delivered, missing)}: how many got
        it now, and which of C{usernames} are not connected here."""
        if everyone:
            targets, missing = list(self.sessions), []
        else:
            targets, missing = [], []
            for username in usernames:
                connection = self.sessions.get(username)
                if connection is None or connection.record is None:
                    missing.append(username)
                else:
                    targets.append(connection)
        targets = self.recent.new_for(msg_id, [c for c in targets if c.record is not None], everyone)
        if targets:
            payload = codec.chat_frame(data)
            prepared = self.factory.prepareMessage(payload) if len(targets) > 1 else None
            for connection in targets:
                connection.push(payload, msg_id, prepared)
            self.emit("message_delivered", msg_id, len(targets))
        return len(targets), missing

    def deliver(self, msgId, data, usernames, everyone):
        return self.deliver_local(msgId, data, usernames, everyone)

    async def room_post(self, roomName, msgId, seq, data):
        if self.room_host is None:
            raise NotLeader()
        return await self.room_host.post(roomName, msgId, seq, data)

    async def room_join(self, roomName, username):
        if self.room_host is None:
            raise NotLeader()
        return await self.room_host.join(roomName, username)

    async def room_leave(self, roomName, username):
        if self.room_host is None:
            raise NotLeader()
        return await self.room_host.leave(roomName, username)

    async def room_list(self):
        if self.room_host is None:
            raise NotLeader()
        return await self.room_host.list()

    # -- sessions ------------------------------------------------------------

    def announce(self, record, online, nodes=None):
        """Tell every peer (or those of C{nodes}) that C{record} logged in or out."""
        for node in self.members if nodes is None else nodes:
            if node != self.node_id and node in self.members:
                self.peers.send(
                    node, SessionChanged, username=record.username, nodeId=record.nodeId,
                    sessionId=record.sessionId, loginTime=record.loginTime,
                    alliance=record.alliance, version=record.version, online=online,
                )

    # -- events for plugins --------------------------------------------------

    def emit(self, event, *args):
        """Tell the listeners (chatnet.events): never raises, never waits."""
        self.events.emit(event, *args)
