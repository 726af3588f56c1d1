"""Routing accepted messages to their recipients anywhere in the cluster.

* A direct message goes from the accepting node straight to the recipient's
  node (one internal hop at most).
* A room message goes from the accepting node to every node that has
  members of the room online (one call per node), each of which delivers
  the room in seq order (L{chatnet.service.roomfeed}).

Every internal call is acknowledged. A direct message whose node died is
retried to the recipient's new node until ``deadline`` seconds have passed;
deliveries are de-duplicated on the receiving node (by message id, by seq
for rooms), so a retry reaches nobody twice.
"""

from twisted.internet import defer, task
from twisted.logger import Logger

from chatnet.cluster.presence import HEARTBEAT
from chatnet.errors import PeerUnavailable, StoreUnavailable
from chatnet.protocols import amp_commands as cmd, codec
from chatnet.protocols.constants import is_automatic
from chatnet.stores.redis import room_nodes_key

log = Logger()


# usernames per Deliver call: 100 names of up to 128 characters (at most
# 514 bytes each as UTF-8 with their length) stay below AMP's 64 KiB a value
NAMES_PER_CALL = 100


# bytes of message data per DeliverMany call (each list is one AMP value)
BATCH_BYTES = 48 * 1024

# the most seconds the messages for one node (direct ones, and room ones)
# are gathered while calls to it wait for their answer: under load one call
# then carries several (the AMP box, its dispatch and its answer are most of
# a message's cost on the receiving node). With no call waiting, they go at
# the end of the reactor turn, gathering only what the turn gave.
BATCH_WINDOW = 0.002

# seconds a direct message's recipient may have no session on record, after
# a try that did not reach them, before it is given up: two heartbeats (the
# node of a session whose record is gone publishes it again at its next one)
ABSENT_GRACE = 2 * HEARTBEAT


# calls carrying messages that may wait for their answer from one node at a
# time; what is given for the node meanwhile piles up and goes as one call
# (cut at BATCH_BYTES) as soon as one is answered
MAX_IN_FLIGHT = 16

# bytes of message data that may pile up for one node while its calls are
# not answered; past it, a message for the node fails at once, as if the node
# could not be reached (its sender retries, the node catches up from the
# history: the same as for a node that is down)
MAX_WAITING_BYTES = 4 * 1024 * 1024


class _Pile:
    """The items waiting for one node, and their Deferreds."""

    __slots__ = ("items", "waiters", "bytes", "scheduled")

    def __init__(self):
        self.items = []
        self.waiters = []
        self.bytes = 0
        self.scheduled = False


class Batches:
    """Calls to other nodes that carry several messages, in calls of at most
    L{BATCH_BYTES} of message data each (every list of a call is one AMP
    value, below 64 KiB). Gathering adapts to the load, as Nagle's algorithm
    does: the items given for a node no call is waiting on go at the end of
    the reactor turn (no added latency when the node is not busy); while
    calls to it wait for their answer, the items given meanwhile go together
    when one is answered, or after C{window} seconds at the most. At most
    C{max_in_flight} calls wait for their answer from one node; past it the
    items pile up (at most C{max_waiting} bytes of message data, beyond
    which an item fails at once with L{PeerUnavailable}) and go together
    once a call is answered (or failed: the link times out and is aborted,
    L{chatnet.cluster.peers}).

    @param send: C{send(node_id, items)} makes the call; returns a Deferred
        of its answer.
    @param data_of: C{data_of(item)}: the message data an item carries.
    @param results: C{results(items, answer)}: the result of each item.
    """

    def __init__(self, clock, window, send, data_of, results, max_in_flight=MAX_IN_FLIGHT,
                 max_waiting=MAX_WAITING_BYTES):
        self.clock = clock
        self.window = window
        self.send = send
        self.data_of = data_of
        self.results = results
        self.max_in_flight = max_in_flight
        self.max_waiting = max_waiting
        self._waiting = {}  # node id -> _Pile
        self._in_flight = {}  # node id -> calls not answered yet
        self._flushing = set()  # node ids being sent to (an answer may come at once)

    def add(self, node_id, item):
        """A Deferred of C{item}'s result, once the call that carries it
        is answered."""
        pile = self._waiting.get(node_id)
        if pile is None:
            pile = self._waiting[node_id] = _Pile()
        size = len(self.data_of(item)) + 600  # (600: the item's other values)
        if pile.bytes + size > self.max_waiting and pile.items:
            return defer.fail(PeerUnavailable(node_id))
        d = defer.Deferred()
        pile.items.append(item)
        pile.waiters.append(d)
        pile.bytes += size
        if not pile.scheduled:
            in_flight = self._in_flight.get(node_id, 0)
            if in_flight < self.max_in_flight:
                pile.scheduled = True
                self.clock.callLater(self.window if in_flight else 0, self._flush, node_id)
        return d

    @property
    def in_flight(self):
        """Calls waiting for their answer, by node id."""
        return dict(self._in_flight)

    def _flush(self, node_id):
        pile = self._waiting.get(node_id)
        if pile is None:
            return
        pile.scheduled = False
        self._flushing.add(node_id)
        try:
            self._send_pile(node_id, pile)
        finally:
            self._flushing.discard(node_id)

    def _send_pile(self, node_id, pile):
        items, waiters = pile.items, pile.waiters
        start, size, i = 0, 0, 0
        while i < len(items) and self._in_flight.get(node_id, 0) < self.max_in_flight:
            item_size = len(self.data_of(items[i])) + 600
            if i > start and size + item_size > BATCH_BYTES:
                self._call(node_id, items[start:i], waiters[start:i])
                start, size = i, 0
                continue
            size += item_size
            i += 1
        if i == len(items) and i > start:
            self._call(node_id, items[start:], waiters[start:])
            start = i
        if start == len(items):
            del self._waiting[node_id]
        else:  # the rest waits for an answer
            pile.items, pile.waiters = items[start:], waiters[start:]
            pile.bytes = sum(len(self.data_of(item)) + 600 for item in pile.items)

    def _call(self, node_id, items, waiters):
        self._in_flight[node_id] = self._in_flight.get(node_id, 0) + 1

        def done():
            left = self._in_flight[node_id] - 1
            if left:
                self._in_flight[node_id] = left
            else:
                del self._in_flight[node_id]
            if node_id in self._waiting and node_id not in self._flushing:
                self._flush(node_id)  # what piled up meanwhile

        def answered(answer):
            for waiter, result in zip(waiters, self.results(items, answer)):
                waiter.callback(result)
            done()

        def failed(failure):
            for waiter in waiters:
                waiter.errback(failure)
            done()

        defer.ensureDeferred(self.send(node_id, items)).addCallbacks(answered, failed)


class Router:
    """Delivers accepted messages: on this node through C{local} (a
    L{chatnet.service.delivery.LocalDelivery}), on others over C{peers}
    (L{chatnet.cluster.peers.Peers}); C{directory} (a
    L{chatnet.service.online.SessionDirectory}) says where a user is now, C{view}
    (L{chatnet.cluster.view.ClusterView}) which node is this one."""

    def __init__(self, view, peers, directory, local, clock, deadline=20.0, retry_interval=0.25,
                 batch_window=BATCH_WINDOW, absent_grace=ABSENT_GRACE):
        self.absent_grace = absent_grace
        self.view = view
        self.peers = peers
        self.directory = directory
        self.local = local
        self.clock = clock
        self.deadline = deadline
        self.retry_interval = retry_interval
        self._batches = Batches(clock, batch_window, self._deliver_many, lambda item: item[1], _got_them)

    def deliver_to(self, node_id, msg_id, data, usernames, everyone=False):
        """Deliver on node C{node_id}; fires with C{(delivered, missing)}:
        how many got it, and which of C{usernames} are not connected there."""
        if node_id == self.view.node_id:
            return defer.succeed(self.local.deliver(msg_id, data, usernames, everyone))
        usernames = list(usernames)
        if len(usernames) <= NAMES_PER_CALL:
            return self._deliver_remote(node_id, msg_id, data, usernames, everyone)
        # a list of names is one AMP value (< 64 KiB): big rooms take several calls
        calls = [
            self._deliver_remote(node_id, msg_id, data, usernames[i:i + NAMES_PER_CALL], everyone)
            for i in range(0, len(usernames), NAMES_PER_CALL)
        ]
        d = defer.gatherResults(calls, consumeErrors=True)
        d.addErrback(lambda f: f.value.subFailure)
        return d.addCallback(lambda results: (sum(r[0] for r in results), [m for r in results for m in r[1]]))

    def _deliver_remote(self, node_id, msg_id, data, usernames, everyone):
        d = defer.ensureDeferred(
            self.peers.call(node_id, cmd.Deliver, msgId=msg_id, data=data, usernames=usernames, everyone=everyone)
        )
        return d.addCallback(lambda answer: (answer["delivered"], answer["missing"]))

    def deliver_one(self, node_id, msg_id, data, username):
        """Deliver a direct message on node C{node_id}; fires with C{True}
        if the user got it there. Remote ones accepted within
        C{batch_window} seconds go in one L{cmd.DeliverMany} call."""
        if node_id == self.view.node_id:
            return defer.succeed(not self.local.deliver(msg_id, data, [username], False)[1])
        return self._batches.add(node_id, (msg_id, data, username))

    def _deliver_many(self, node_id, items):
        return self.peers.call(node_id, cmd.DeliverMany, msgIds=[i[0] for i in items], datas=[i[1] for i in items],
                               usernames=[i[2] for i in items])

    def _attempt(self, node, msg_id, data, to):
        """L{deliver_one}, with a failure as False (logged, unless the node
        is gone)."""
        def not_reached(failure):
            if not failure.check(PeerUnavailable):
                log.warn("direct message {id} to {node}: {why}", id=msg_id, node=node, why=failure.value)
            return False

        return self.deliver_one(node, msg_id, data, to).addErrback(not_reached)

    def direct(self, message, data, records, to=None):
        """Deliver direct C{message} to every session of its recipient (or
        of user C{to}): to each node of C{records} (the sessions known), and
        after a failure to the nodes the user is on then, following them if
        a node dies or they log in elsewhere meanwhile. A Deferred: True if
        any session got it."""
        to = to or message.to
        give_up = self.clock.seconds() + self.deadline
        nodes = {r.nodeId for r in records or ()}
        reached = set()
        if len(nodes) != 1:
            return defer.ensureDeferred(self._direct(message, data, to, nodes, reached, give_up))
        # the usual case, one session: no coroutine unless it was not reached
        (node,) = nodes

        def then(got):
            if got:
                return True
            return defer.ensureDeferred(self._follow(message, data, to, nodes, reached, give_up))

        return self._attempt(node, message.msgId, data, to).addCallback(then)

    async def _direct(self, message, data, to, nodes, reached, give_up):
        await self._round(message.msgId, data, to, nodes, reached)
        return await self._follow(message, data, to, nodes, reached, give_up)

    async def _round(self, msg_id, data, to, nodes, reached):
        """Deliver on each node of C{nodes} not in C{reached}; add those
        where C{to} got it to C{reached}."""
        pending = sorted(nodes - reached)
        results = await defer.DeferredList([self._attempt(node, msg_id, data, to) for node in pending])
        reached.update(node for node, (_, got) in zip(pending, results) if got)

    async def _follow(self, message, data, to, nodes, reached, give_up):
        """After a round on C{nodes}: done if each was reached, else again
        (every C{retry_interval} seconds, until C{give_up}) on the nodes
        the user is on then. A user with no session left, whom nothing
        reached, is looked for during C{absent_grace} seconds more: a
        session whose record the leader removed (its node was out of
        ZooKeeper for a while) or Redis lost is published again within a
        heartbeat by its node."""
        absent_since = None
        while True:
            if nodes and nodes <= reached:
                return True
            if self.clock.seconds() >= give_up:
                log.warn("direct message {id} to {to} not delivered in time", id=message.msgId, to=to)
                return bool(reached)
            await task.deferLater(self.clock, self.retry_interval, lambda: None)
            try:
                records = await self.directory.lookup_all(to, refresh=True)
            except StoreUnavailable:
                records = self.directory.cached_all(to)
            nodes = {r.nodeId for r in records}
            if reached and not nodes - reached:
                return True  # every node of theirs has it (or they left the others)
            if not nodes:
                # offline now (it is stored), or their records are being published again
                if absent_since is None:
                    absent_since = self.clock.seconds()
                if self.clock.seconds() - absent_since >= self.absent_grace:
                    return False
                continue
            absent_since = None
            await self._round(message.msgId, data, to, nodes, reached)


class RoomRouter:
    """Rooms across the cluster, with no node in charge of a room.

    A room message accepted here goes to every node of its room's node set
    (read by the accept script, L{chatnet.service.roomfeed}): this node's
    C{feed} directly, each other node in one L{cmd.RoomDeliver} call for
    what was accepted within C{batch_window} seconds (L{Batches}); a call
    that fails is tried again while that node is in the cluster, until
    C{deadline} (the receiving node also reads what it missed from the
    history, so nothing depends on the retry alone).
    Joining and leaving are stored by C{rooms} (a L{chatnet.service.rooms.Rooms})
    and told to the nodes where the user has sessions.

    @param sessions: the L{chatnet.service.online.LocalSessions}.
    @param directory: the L{chatnet.service.online.SessionDirectory} (where a
        user's sessions are).
    @param redis: the L{chatnet.stores.redis.RedisStore} (a room's node set).
    @param room_state: the L{chatnet.service.roomstate.RoomState} (a new
        version of the user's state at each change), or None.
    """

    def __init__(self, view, peers, rooms, feed, sessions, directory, redis, clock, deadline=20.0,
                 retry_interval=0.25, batch_window=BATCH_WINDOW, room_state=None):
        self.room_state = room_state
        self.view = view
        self.peers = peers
        self.rooms = rooms
        self.feed = feed
        self.sessions = sessions
        self.directory = directory
        self.redis = redis
        self.clock = clock
        self.deadline = deadline
        self.retry_interval = retry_interval
        # items: (room, seq, msg id, data)
        self._batches = Batches(clock, batch_window, self._room_deliver, lambda item: item[3],
                                lambda items, answer: [answer] * len(items))

    # -- membership ----------------------------------------------------------

    async def join(self, room, username):
        """Make C{username} a member of C{room}; their sessions on every
        node get its messages from now on. The member count."""
        members = await self.rooms.join(room, username)
        if not is_automatic(room):
            await self.member_changed(room, username, True)
        return members

    async def leave(self, room, username):
        """Remove C{username} from C{room}; the member count."""
        members = await self.rooms.leave(room, username)
        await self.member_changed(room, username, False)
        return members

    async def list_rooms(self):
        """C{[{"roomName", "members"}, ...]}."""
        return await self.rooms.list()

    async def state_changed(self, username):
        """The stored room state of C{username} changed (MongoDB has it):
        its new version (L{chatnet.service.roomstate.RoomState.changed}),
        or None."""
        if self.room_state is None:
            return None
        return await self.room_state.changed(username)

    async def member_changed(self, room, username, joined):
        """The stored membership of C{username} in C{room} changed: a new
        version of their room state; their sessions here and on every
        other node start (C{joined}) or stop getting the room. Every live
        node is told (the session cache may not know a session logged in a
        moment ago); the answers of the nodes the cache names are waited
        for. A node told late or never follows by the version
        (L{chatnet.service.roomstate})."""
        versions = await self.state_changed(username)
        await self.local_member_changed(room, username, joined)
        if self.room_state is not None:
            self.room_state.advanced(username, versions)
        live = set(self.view.live_nodes()) - {self.view.node_id}
        known = sorted({r.nodeId for r in self.directory.cached_all(username)} & live)
        others = sorted(live.difference(known))
        calls = [self._tell_member(node, room, username, joined) for node in known]
        for node in others:
            self._tell_member(node, room, username, joined)
        await defer.DeferredList(calls)

    def _tell_member(self, node, room, username, joined):
        """L{cmd.RoomMember} to C{node}; a failure is logged (C{False})."""
        def failed(failure):
            if not failure.check(PeerUnavailable):
                log.warn("{user} {what} {room}: not told to {node} ({why})", user=username, room=room, node=node,
                         what="joined" if joined else "left", why=failure.getErrorMessage())
            return False

        d = defer.ensureDeferred(self.peers.call(node, cmd.RoomMember, roomName=room, username=username,
                                                 joined=joined))
        return d.addErrback(failed)

    async def local_member_changed(self, room, username, joined):
        """The sessions of C{username} on this node start or stop getting C{room}."""
        connections = [c for c in self.sessions.all(username) if c.record is not None]
        if joined:
            await self.feed.add([room], connections)
            for connection in connections:
                connection.session.known_rooms().add(room)
        else:
            self.feed.remove(room, connections)
            for connection in connections:
                connection.session.known_rooms().discard(room)

    # -- messages ------------------------------------------------------------

    async def room(self, message, data, nodes):
        """Send room C{message} (accepted here; C{data}: its chat frame
        data) to the members on every node: here and on C{nodes} (the
        room's node set, read with its seq, L{chatnet.service.accept.Stamp})."""
        self.feed.deliver(message.roomName, message.seq, message.msgId, data)
        item = (message.roomName, message.seq, message.msgId, data)
        give_up = self.clock.seconds() + self.deadline
        pending = {n for n in nodes if n != self.view.node_id}
        while pending:
            live = self.view.live_nodes()
            pending = sorted(n for n in pending if n in live)
            results = await defer.DeferredList([self._batches.add(n, item) for n in pending], consumeErrors=True)
            failed = set()
            for node, (ok, result) in zip(pending, results):
                if not ok:
                    failed.add(node)
                    if not result.check(PeerUnavailable):
                        log.warn("room message {id} to {node}: {why}", id=message.msgId, node=node,
                                 why=result.getErrorMessage())
            pending = failed
            if not pending or self.clock.seconds() >= give_up:
                break
            await task.deferLater(self.clock, self.retry_interval, lambda: None)

    def _room_deliver(self, node_id, items):
        return self.peers.call(node_id, cmd.RoomDeliver, roomNames=[i[0] for i in items], seqs=[i[1] for i in items],
                               msgIds=[i[2] for i in items], datas=[i[3] for i in items])

    async def notice(self, room, action, data, feature=None, skip_user=None, skip_session=None):
        """Send the frame C{action} with C{data} (a dict) to every online
        member of C{room}, on every node (encoded once for the other
        nodes, by L{codec.encode}): those that asked for C{feature}, if
        given; not the sessions of C{skip_user} nor session
        C{skip_session}."""
        self.feed.notice(room, action, data, feature, skip_user, skip_session)
        extra = {k: v for k, v in (("feature", feature), ("skipUser", skip_user), ("skipSession", skip_session))
                 if v}
        try:
            nodes = set(await self.redis.call("smembers", room_nodes_key(room)))
        except StoreUnavailable:
            nodes = set(self.view.live_nodes())
        nodes = sorted((nodes & set(self.view.live_nodes())) - {self.view.node_id})
        frame = codec.encode(action, data)
        calls = [defer.ensureDeferred(self.peers.call(n, cmd.RoomNotice, roomName=room, data=frame, **extra))
                 for n in nodes]
        await defer.DeferredList(calls, consumeErrors=True)


def _got_them(items, answer):
    """Of direct deliveries (msg id, data, username): whether each user got
    theirs (a L{cmd.DeliverMany} answer names the messages whose recipient
    is not connected)."""
    missing = set(answer["missing"])
    return [item[0] not in missing for item in items]
