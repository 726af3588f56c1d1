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

from chatnet.cluster.peers import PeerUnavailable
from chatnet.errors import StoreUnavailable
from chatnet.protocols import amp_commands as cmd
from chatnet.protocols.constants import is_automatic
from chatnet.stores.redis import room_nodes_key

log = Logger()


# usernames per Deliver call: 100 names of up to 128 characters (at most
# 514 bytes each as UTF-8 with their length) stay below AMP's 64 KiB a value
NAMES_PER_CALL = 100


# bytes of message data per DeliverMany call (each list is one AMP value)
BATCH_BYTES = 48 * 1024

# seconds the room messages for one node are gathered before they are sent
# in one call: under load one call then carries several (the AMP box, its
# dispatch and its answer are most of a room message's cost on the
# receiving node), at the price of this much latency
ROOM_BATCH_WINDOW = 0.002


class Router:
    """Delivers accepted messages: on this node through C{local} (a
    L{chatnet.service.delivery.LocalDelivery}), on others over C{peers}
    (L{chatnet.cluster.peers.Peers}); C{directory} (a
    L{chatnet.sessions.SessionDirectory}) says where a user is now, C{view}
    (L{chatnet.cluster.view.ClusterView}) which node is this one."""

    def __init__(self, view, peers, directory, local, clock, deadline=20.0, retry_interval=0.25):
        self.view = view
        self.peers = peers
        self.directory = directory
        self.local = local
        self.clock = clock
        self.deadline = deadline
        self.retry_interval = retry_interval
        self._batches = {}  # node id -> direct deliveries waiting for this turn's end

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
        if the user got it there. Remote ones accepted in the same reactor
        turn go in one L{cmd.DeliverMany} call."""
        if node_id == self.view.node_id:
            return defer.succeed(not self.local.deliver(msg_id, data, [username], False)[1])
        batch = self._batches.get(node_id)
        if batch is None:
            batch = self._batches[node_id] = []
            self.clock.callLater(0, self._send_batch, node_id)
        d = defer.Deferred()
        batch.append((msg_id, data, username, d))
        return d

    def _send_batch(self, node_id):
        batch = self._batches.pop(node_id, [])
        # each list is one AMP value (< 64 KiB): cut the batch by size
        chunk, size = [], 0
        for item in batch:
            if chunk and size + len(item[1]) + 600 > BATCH_BYTES:
                self._send_chunk(node_id, chunk)
                chunk, size = [], 0
            chunk.append(item)
            size += len(item[1]) + 600
        if chunk:
            self._send_chunk(node_id, chunk)

    def _send_chunk(self, node_id, chunk):
        d = defer.ensureDeferred(
            self.peers.call(
                node_id, cmd.DeliverMany,
                msgIds=[c[0] for c in chunk], datas=[c[1] for c in chunk], usernames=[c[2] for c in chunk],
            )
        )

        def answered(answer):
            missing = set(answer["missing"])
            for msg_id, _, _, waiter in chunk:
                waiter.callback(msg_id not in missing)

        def failed(failure):
            for *_, waiter in chunk:
                waiter.errback(failure)

        d.addCallbacks(answered, failed)

    async def direct(self, message, data, records, to=None):
        """Deliver direct C{message} to every session of its recipient (or
        of user C{to}): to each node of C{records} (the sessions known), and
        after a failure to the nodes the user is on then, following them if
        a node dies or they log in elsewhere meanwhile. True if any session
        got it."""
        to = to or message.to
        give_up = self.clock.seconds() + self.deadline
        nodes = {r.nodeId for r in records or ()}
        reached = set()
        while True:
            pending = sorted(nodes - reached)
            results = await defer.DeferredList(
                [self.deliver_one(node, message.msgId, data, to) for node in pending], consumeErrors=True)
            for node, (ok, got) in zip(pending, results):
                if ok and got:
                    reached.add(node)
                elif not ok and not got.check(PeerUnavailable):
                    log.warn("direct message {id} to {node}: {why}", id=message.msgId, node=node,
                             why=got.getErrorMessage())
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
            if not nodes - reached:
                # offline now (stored), or every node of theirs has it
                return bool(reached)


class RoomRouter:
    """Rooms across the cluster, with no node in charge of a room.

    A room message accepted here goes to every node of its room's node set
    (read by the accept script, L{chatnet.service.roomfeed}): this node's
    C{feed} directly, each other node in one L{cmd.RoomDeliver} call for
    what was accepted within C{batch_window} seconds; a call that fails is tried again while that node is in
    the cluster, until C{deadline} (the receiving node also reads what it
    missed from the history, so nothing depends on the retry alone).
    Joining and leaving are stored by C{rooms} (a L{chatnet.rooms.Rooms})
    and told to the nodes where the user has sessions.

    @param sessions: the L{chatnet.sessions.LocalSessions}.
    @param directory: the L{chatnet.sessions.SessionDirectory} (where a
        user's sessions are).
    @param redis: the L{chatnet.stores.redis.RedisStore} (a room's node set).
    """

    def __init__(self, view, peers, rooms, feed, sessions, directory, redis, clock, deadline=20.0,
                 retry_interval=0.25, batch_window=ROOM_BATCH_WINDOW):
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
        self.batch_window = batch_window
        self._batches = {}  # node id -> ([(room, seq, msg id, data)], [Deferred]) waiting to be sent

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

    async def member_changed(self, room, username, joined):
        """The stored membership of C{username} in C{room} changed: their
        sessions here and on every other node start (C{joined}) or stop
        getting the room."""
        await self.local_member_changed(room, username, joined)
        nodes = {r.nodeId for r in self.directory.cached_all(username)} & set(self.view.live_nodes())
        nodes.discard(self.view.node_id)
        calls = [defer.ensureDeferred(self.peers.call(node, cmd.RoomMember, roomName=room, username=username,
                                                      joined=joined)) for node in sorted(nodes)]
        for node, (ok, result) in zip(sorted(nodes), await defer.DeferredList(calls, consumeErrors=True)):
            if not ok:
                log.warn("{user} {what} {room}: not told to {node} ({why})", user=username, room=room, node=node,
                         what="joined" if joined else "left", why=result.getErrorMessage())

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

    async def room(self, message, data):
        """Send room C{message} (accepted here; C{data}: its chat frame
        data) to the members on every node."""
        self.feed.deliver(message.roomName, message.seq, message.msgId, data)
        item = (message.roomName, message.seq, message.msgId, data)
        give_up = self.clock.seconds() + self.deadline
        pending = {n for n in message.nodes if n != self.view.node_id}
        while pending:
            live = self.view.live_nodes()
            pending = sorted(n for n in pending if n in live)
            results = await defer.DeferredList([self._batched(n, item) for n in pending], consumeErrors=True)
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

    def _batched(self, node_id, item):
        batch = self._batches.get(node_id)
        if batch is None:
            batch = self._batches[node_id] = ([], [])
            self.clock.callLater(self.batch_window, self._send_batch, node_id)
        d = defer.Deferred()
        batch[0].append(item)
        batch[1].append(d)
        return d

    def _send_batch(self, node_id):
        items, waiters = self._batches.pop(node_id)
        # each list is one AMP value (< 64 KiB): cut the batch by size
        start, size = 0, 0
        for i, item in enumerate(items):
            if i > start and size + len(item[3]) + 600 > BATCH_BYTES:
                self._send_room_chunk(node_id, items[start:i], waiters[start:i])
                start, size = i, 0
            size += len(item[3]) + 600
        self._send_room_chunk(node_id, items[start:], waiters[start:])

    def _send_room_chunk(self, node_id, items, waiters):
        d = defer.ensureDeferred(self.peers.call(
            node_id, cmd.RoomDeliver, roomNames=[i[0] for i in items], seqs=[i[1] for i in items],
            msgIds=[i[2] for i in items], datas=[i[3] for i in items]))

        def answered(result):
            for waiter in waiters:
                waiter.callback(result)

        def failed(failure):
            for waiter in waiters:
                waiter.errback(failure)

        d.addCallbacks(answered, failed)

    async def notice(self, room, data):
        """Send a frame (C{data}: the encoded frame) to every online member
        of C{room}, on every node."""
        self.feed.notice(room, data)
        try:
            nodes = set(await self.redis.call("smembers", room_nodes_key(room)))
        except StoreUnavailable:
            nodes = set(self.view.live_nodes())
        nodes = sorted((nodes & set(self.view.live_nodes())) - {self.view.node_id})
        calls = [defer.ensureDeferred(self.peers.call(n, cmd.RoomNotice, roomName=room, data=data)) for n in nodes]
        await defer.DeferredList(calls, consumeErrors=True)
