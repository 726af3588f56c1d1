"""The chat node: one process serving WebSocket clients as part of the cluster.

The node only wires its parts together, starts and stops them (see
docs/design.md, "Modules", for who does what):

* in ``__init__``, what does not depend on the node's id: the stores, the
  domain services, the local sessions, the cluster view, local delivery,
  the client factory, metrics and event plugins;
* in ``_start``, once the client port is bound (the node id may be made of
  it): the peer links, the router, the leader's duties, the internal-command
  responder, presence, the client actions and the ZooKeeper membership.

Start-up order (all asynchronous, in ``startService``): stores, the client
WebSocket listener (its bound port is what gets published), the internal
AMP listener, the session cache, then ZooKeeper registration. Graceful stop
(SIGTERM) runs it backwards: leave ZooKeeper first, tell clients to
reconnect through the gateway (close code 4001), remove their sessions,
flush the message log.
"""
from twisted.application.service import MultiService
from twisted.internet import defer
from twisted.internet.endpoints import serverFromString
from twisted.logger import Logger

import chatnet.plugins
from chatnet.actions import LiveParts, build as build_actions
from chatnet.cluster.api_responder import ApiResponder
from chatnet.cluster.identity import MemberIdentity
from chatnet.cluster.leadership import Leadership
from chatnet.cluster.membership import ZooKeeperMembership
from chatnet.cluster.peers import Peers
from chatnet.cluster.presence import HEARTBEAT, Presence
from chatnet.cluster.remote import OtherNodes
from chatnet.cluster.responder import Responder
from chatnet.cluster.router import RoomRouter, Router
from chatnet.cluster.view import ClusterView
from chatnet.config import endpoint_interface
from chatnet.factories.internal import InternalFactory
from chatnet.factories.websocket import ChatServerFactory
from chatnet.limits.budget import ByteBudget
from chatnet.limits.login_throttle import LoginThrottle
from chatnet.ops import tls
from chatnet.ops.events import EventBus, load as load_plugins
from chatnet.ops.metrics import NodeGauges, NodeMetrics, service as metrics_service
from chatnet.service.accept import Acceptor
from chatnet.service.api import ServerApi
from chatnet.service.delivery import LocalDelivery, RecentDeliveries
from chatnet.service.history import History
from chatnet.service.notices import UserNotices
from chatnet.service.online import LocalSessions, SessionDirectory
from chatnet.service.popular import PopularWords
from chatnet.service.posting import Posting
from chatnet.service.public_rooms import PublicRooms
from chatnet.service.rescue import Rescuer
from chatnet.service.revisions import Revisions
from chatnet.service.roomfeed import RoomFeed
from chatnet.service.rooms import Rooms
from chatnet.service.roomstate import RoomState
from chatnet.service.scrollback import Scrollback
from chatnet.service.sequences import Sequences
from chatnet.service.session import SessionService
from chatnet.stores.livestate import LiveState
from chatnet.stores.message_log import MessageLog
from chatnet.stores.mongo import MongoStore, OfflineStore
from chatnet.stores.redis import RedisStore
from chatnet.text import words
from chatnet.text.profanity import ProfanityFilter

log = Logger()


class ChatNode(MultiService):
    def __init__(self, config, reactor=None):
        super().__init__()
        if reactor is None:
            from twisted.internet import reactor
        self.config = config
        self.reactor = reactor
        self.redis = RedisStore(config.redis, timeout=config.store_timeout, reactor=reactor)
        self.mongo = MongoStore(config.mongo, timeout=config.store_timeout, reactor=reactor)
        self.message_log = MessageLog(self.mongo, reactor, max_bytes=config.max_message_log_bytes)
        self.message_log.setServiceParent(self)
        self.live = LiveState(self.mongo)
        self.history = History(self.redis, self.mongo, waiting=self.message_log.waiting,
                               pending=self.message_log.pending_seq, revise=self.live.revise_all)
        self.offline = OfflineStore(self.mongo)
        self.sequences = Sequences(self.redis, self.mongo, self.message_log.pending_seq)
        self.popular = PopularWords(self.redis, reactor, config.popular_window)
        self.rescuer = Rescuer(self.redis, self.mongo)
        if config.profanity_file:
            self.profanity = ProfanityFilter.from_file(config.profanity_file)
        else:
            self.profanity = ProfanityFilter.default()
        self.view = ClusterView(config.node_id, reactor)
        self.sessions = LocalSessions()
        self.directory = SessionDirectory(
            self.redis, self.view.live_nodes,
            unreachable=lambda node: self.peers is not None and self.peers.lost_link(node))
        # made in _start, once the node id is known:
        self.leadership = self.membership = self.peers = self.feed = self.room_state = self.presence = None
        self.events = EventBus(reactor, max_pending=config.plugin_max_pending, timeout=config.plugin_timeout)
        self.metrics = NodeMetrics(NodeGauges(
            connections=lambda: len(self.factory.connections),
            sessions=lambda: len(self.sessions),
            leading=lambda: self.leadership is not None and self.leadership.leading,
            nodes=lambda: len(self.view.members),
            registered=lambda: self.membership is not None and self.membership.registered,
        ), self.redis, self.mongo, self.message_log, self.events, reactor)
        self.events.add(self.metrics, "metrics")
        load_plugins(self, config.plugins, self.events, chatnet.plugins)  # a plugin is given the node
        if config.metrics:
            metrics_service(config.metrics, self.metrics).setServiceParent(self)
        self.factory = ChatServerFactory(config, reactor, self.metrics)
        self.delivery = LocalDelivery(self.sessions, RecentDeliveries(), self.factory.prepareMessage, self.emit)
        self._ports = []
        self.started = defer.Deferred()

    @property
    def node_id(self):
        return self.view.node_id

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
        client = await serverFromString(self.reactor, config.listen).listen(self.factory)
        self._ports.append(client)
        host = config.advertise_host or endpoint_interface(config.listen)
        port = client.getHost().port
        if not self.view.node_id:
            self.view.node_id = f"{host}:{port}"
        responder, api = self._wire(secret)
        identity = MemberIdentity(
            self.view.live_nodes, self._membership_changed, self.reactor,
            gateways=lambda: self.membership.gateways if self.membership is not None else {},
        )
        internal = await serverFromString(self.reactor, config.internal).listen(
            InternalFactory(responder, secret, self.reactor, identity, api))
        self._ports.append(internal)
        internal_host = config.internal_host or endpoint_interface(config.internal)
        internal_port = internal.getHost().port
        self.factory.setSessionParameters(url=f"{config.tls_scheme}://{host}:{port}/")
        self.info = {
            "host": host,
            "port": port,
            "url": f"{config.tls_scheme}://{host}:{port}/",
            "internalHost": internal_host,
            "internalPort": internal_port,
        }
        self.reactor.callInThread(words.warm_up)
        defer.ensureDeferred(self.mongo.ensure_indexes_until_done())
        await self.directory.start()
        await self.rescuer.previous_process(self.node_id)
        self.membership = ZooKeeperMembership(
            config.zookeeper,
            self.node_id,
            self.info,
            self.view.changed,
            self.reactor,
            session_timeout=config.zk_session_timeout,
            auth=config.zookeeper_auth,
        )
        await self.membership.start()
        self.presence.start()
        log.info(
            "chat node {node} serving clients on {host}:{port}, internal {ihost}:{iport}",
            node=self.node_id, host=host, port=port, ihost=internal_host, iport=internal_port,
        )
        return self

    def _membership_changed(self, at_most):
        """Fires at the next change of members, leader or gateways (or after
        C{at_most} seconds)."""
        if self.membership is None:
            return self.view.wait_for_leader(at_most)
        return self.membership.wait_for_change(at_most)

    def _wire(self, secret):
        """Make the parts that need the node id; returns the responder of
        the internal port and that of the server API's commands."""
        config, clock, view = self.config, self.reactor, self.view
        deadline = config.route_deadline
        acceptor = Acceptor(self.redis, self.sequences, self.history, self.popular, view.node_id, self.reactor)
        self.feed = feed = RoomFeed(view.node_id, self.redis, self.mongo, self.history, self.sequences,
                                    self.factory.prepareMessage, self.emit, clock)
        self.leadership = Leadership(view, self.redis, self.directory, self.popular, self.rescuer, clock,
                                     config.zk_session_timeout + HEARTBEAT * 2, self.emit)
        # The room router calls other nodes through the peer links, which
        # answer them through the responder, which tells the room router
        # of a user's membership changed elsewhere: a cycle, closed by this
        # late-bound call.
        rooms = None

        def member_changed(room, username, joined):
            return rooms.local_member_changed(room, username, joined)

        responder = Responder(self.directory, self.sessions, self.delivery, feed, member_changed, self.metrics,
                              clock)
        self.peers = Peers(clock, view.node_id, secret, responder, tls_options=tls.client_options(config),
                           bind_host=endpoint_interface(config.internal, default=None), metrics=self.metrics)
        others = OtherNodes(self.peers)
        router = Router(view, self.peers, self.directory, self.delivery, clock, deadline=deadline)
        self.room_state = room_state = RoomState(self.redis, self.mongo, self.sessions, feed, clock)
        rooms = RoomRouter(view, self.peers, Rooms(self.mongo, self.directory), feed, self.sessions, self.directory,
                           self.redis, clock, deadline=deadline, room_state=room_state)
        self.presence = Presence(
            view, self.peers, self.sessions, self.directory, self.redis,
            registered=lambda: self.membership is not None and self.membership.registered,
            registrations=lambda: self.membership.registrations if self.membership is not None else 0,
            connections=self.factory.connections, leadership=self.leadership, clock=clock, feed=feed,
        )
        # on every membership change, in this order
        view.subscribe(lambda departed, joined, previous: self.peers.update(view.members))
        view.subscribe(self.presence.membership_changed)
        view.subscribe(self.leadership.membership_changed)
        feed.start()
        room_state.start()
        posting = Posting(config=config, profanity=self.profanity, acceptor=acceptor, message_log=self.message_log,
                          offline=self.offline, directory=self.directory, router=router, rooms=rooms, emit=self.emit,
                          public_rooms=PublicRooms(self.mongo, clock))
        actions = build_actions(
            config=config, clock=clock, view=view, mongo=self.mongo, offline=self.offline, history=self.history,
            popular=self.popular, directory=self.directory, sessions=self.sessions, presence=self.presence,
            rooms=rooms, feed=feed, delivery=self.delivery, posting=posting,
            login_throttle=LoginThrottle(self.redis, clock), budget=ByteBudget.from_config(config, clock),
            tokens=self._token_verifier(), room_state=room_state, emit=self.emit,
            live=LiveParts(
                redis=self.redis, mongo=self.mongo, state=self.live,
                scrollback=Scrollback(self.redis, self.live, self.message_log.waiting),
                revisions=Revisions(self.redis, self.live, self.message_log.waiting),
                notices=UserNotices(view, others, self.directory, self.sessions), profanity=self.profanity),
        )
        background = posting.background
        self.metrics.track("chatnet_background_failures",
                           "Deliveries and notices a request started and did not wait for that failed (each logged).",
                           lambda: background.failures)
        self.metrics.track("chatnet_background_running",
                           "Deliveries and notices a request started that are still running.",
                           lambda: background.running, kind="gauge")
        self.factory.serve(actions, SessionService(
            self.sessions, self.directory, self.presence, view, self.emit, clock, feed,
            max_held=config.max_client_backlog,
        ))
        api = ServerApi(config=config, clock=clock, view=view, mongo=self.mongo, directory=self.directory,
                        sessions=self.sessions, posting=posting, rooms=rooms, nodes=others,
                        history=self.history)
        return responder, ApiResponder(api)

    def _token_verifier(self):
        """The L{chatnet.service.tokens.TokenVerifier} of --jwt-secret and
        --jwt-public-key, or None without them (PyJWT is imported by nodes
        that take tokens only)."""
        if not (self.config.jwt_secret or self.config.jwt_public_key):
            return None
        from chatnet.service.tokens import TokenVerifier

        return TokenVerifier.from_config(self.config, self.reactor)

    def stopService(self):
        d = defer.ensureDeferred(self._stop())
        return d.addErrback(lambda f: log.failure("stopping the chat node failed", f))

    async def _stop(self):
        if self.leadership is not None:
            self.leadership.node_stopping()
        log.info("chat node {node} stopping", node=self.node_id)
        if self.presence is not None:
            self.presence.stop()
        if self.membership is not None:
            try:
                await defer.ensureDeferred(self.membership.stop()).addTimeout(3, self.reactor)
            except Exception as e:
                log.warn("leaving zookeeper failed: {e}", e=e)
        if self.leadership is not None:
            self.leadership.stop()
            self.feed.stop()
            self.room_state.stop()
        connections = list(self.factory.connections)
        for connection in connections:
            connection.going_away()
        if connections:
            # the close handshakes, and the sessions' removal from redis
            gone = defer.DeferredList([c.gone for c in connections], consumeErrors=True)
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

    def emit(self, event, *args):
        """Tell the listeners (chatnet.ops.events): never raises, never waits."""
        self.events.emit(event, *args)
