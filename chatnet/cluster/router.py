"""Routing accepted messages to their recipients anywhere in the cluster.

* A direct message goes from the accepting node straight to the recipient's
  node (one internal hop at most).
* A room message goes to the leader, which fans it out to the members'
  nodes (one call per node).

Every internal call is acknowledged. A call that fails because a node died
is retried to the new owner (the recipient's new node, the new leader) until
``deadline`` seconds have passed; deliveries are de-duplicated by message id
on the receiving node, so a retry reaches nobody twice.
"""
import orjson

from twisted.internet import defer, task
from twisted.logger import Logger
from twisted.protocols.amp import RemoteAmpError

from chatnet.cluster.peers import PeerUnavailable
from chatnet.errors import ProtocolError, StoreUnavailable
from chatnet.protocols import amp_commands as cmd

log = Logger()


# usernames per Deliver call: 100 names of up to 128 characters (at most
# 514 bytes each as UTF-8 with their length) stay below AMP's 64 KiB a value
NAMES_PER_CALL = 100


# bytes of message data per DeliverMany call (each list is one AMP value)
BATCH_BYTES = 48 * 1024


class NoLeader(Exception):
    pass


def remote_error(e):
    """Map an AMP error from the leader back to what the client is told."""
    if isinstance(e, cmd.NoSuchRoom):
        return ProtocolError(404, str(e.args[0]) if e.args else "room does not exist")
    if isinstance(e, cmd.StoreDown):
        return StoreUnavailable(str(e.args[0]) if e.args else "store")
    if isinstance(e, RemoteAmpError):
        return ProtocolError(503, "the cluster could not carry out the request, try again")
    return e


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
    """Room operations carried out by the leader (its
    L{chatnet.rooms.RoomHost}): locally when this node leads
    (C{leadership.room_host}), else over C{peers}; they answer the same
    values either way. Retried to the new leader on failover until
    C{deadline} seconds have passed (then a 503)."""

    def __init__(self, view, peers, leadership, clock, deadline=20.0, retry_interval=0.25, local=None, mongo=None):
        self.view = view
        self.peers = peers
        self.leadership = leadership
        self.clock = clock
        self.deadline = deadline
        self.retry_interval = retry_interval
        # of the stand-ins of member_changed and notice below
        self.local = local
        self.mongo = mongo

    # Stand-ins, until room messages are delivered by every node to its own
    # members: these two keep their names and meaning then.

    async def member_changed(self, room, username, joined):
        """After MongoDB membership of C{username} changed (kick/ban remove
        them), makes every node where the user has sessions start/stop
        delivering that room to them.

        (For now: the leader's room host, which delivers every room, is
        told.)"""
        if joined:
            await self.join(room, username)
        else:
            await self.leave(room, username)

    async def notice(self, room, data):
        """Sends a frame (C{data}: the encoded JSON bytes of the whole
        frame) to every online member of C{room} on every node.

        (For now: to the members on this node, and the user a C{roomNotice}
        is about, through L{chatnet.service.delivery.LocalDelivery.room_notice}.)"""
        doc = await self.mongo.room(room)
        self.local.room_notice(data, (doc or {}).get("members") or ())

    async def join(self, room, username):
        """Add C{username} to C{room} on the leader; the room's member count."""
        return await self._on_leader(
            lambda host: host.join(room, username), cmd.RoomJoin, lambda answer: answer["members"],
            roomName=room, username=username,
        )

    async def leave(self, room, username):
        """Remove C{username} from C{room} on the leader; the member count."""
        return await self._on_leader(
            lambda host: host.leave(room, username), cmd.RoomLeave, lambda answer: answer["members"],
            roomName=room, username=username,
        )

    async def list_rooms(self):
        """The leader's room list: C{[{"roomName", "members"}, ...]}."""
        return await self._on_leader(
            lambda host: host.list(), cmd.RoomList, lambda answer: orjson.loads(answer["rooms"]))

    async def room(self, message, data):
        """Have the leader fan room C{message} out; retried on failover."""
        try:
            await self._on_leader(
                lambda host: host.post(message.roomName, message.msgId, message.seq, data),
                cmd.RoomPost,
                lambda answer: answer["nodes"],
                roomName=message.roomName,
                msgId=message.msgId,
                seq=message.seq,
                data=data,
            )
        except (ProtocolError, StoreUnavailable) as e:
            log.warn("room message {id} to {room} not fanned out: {why}", id=message.msgId, room=message.roomName,
                     why=e.message)

    async def _on_leader(self, local, command, unpack, **arguments):
        """Run a room operation on the leader: C{local(room_host)} if we
        lead, else C{command} over AMP, whose answer C{unpack} turns into
        the same value as C{local}'s; retried while there is no reachable
        leader, until the deadline."""
        give_up = self.clock.seconds() + self.deadline
        while True:
            leader = self.view.leader
            try:
                if leader is None:
                    raise NoLeader()
                if leader == self.view.node_id:
                    host = self.leadership.room_host
                    if host is None:
                        raise NoLeader()
                    return await local(host)
                return unpack(await self.peers.call(leader, command, **arguments))
            except (NoLeader, PeerUnavailable, cmd.NotLeader):
                if self.clock.seconds() >= give_up:
                    raise ProtocolError(503, "no leader reachable right now, try again")
            except (cmd.NoSuchRoom, cmd.StoreDown, RemoteAmpError) as e:
                raise remote_error(e)
            await self.view.wait_for_leader(self.retry_interval)
