"""Chat rooms, hosted by the leader.

The leader keeps every room and its members in memory (loaded from MongoDB
when it becomes leader; every join and leave is written to MongoDB before it
is answered) and fans room messages out: one delivery per node that has a
member online, naming that node's members.

The leader is also the room's sequencer: messages are fanned out in the
order of their seq (the order Redis gave them), so every member sees a room
in the same order. A message that arrives ahead of its predecessor waits for
it at most ``HOLD`` seconds (the node that had the predecessor may have died
before posting it).

Automatic rooms need no stored membership: ``world`` holds every online
user, ``alliance:<name>`` every online user whose record names that alliance.
"""
from twisted.internet import defer, task
from twisted.logger import Logger

from chatnet.errors import ProtocolError, unknown_room
from chatnet.protocols.constants import ALLIANCE_PREFIX, WORLD, is_automatic

log = Logger()

HOLD = 0.5
# how long a member whose node failed during a fan-out is followed to
# wherever they log in again
FOLLOW_FOR = 10.0
FOLLOW_EVERY = 0.25
# Right after a membership change the leader may not know some online users
# (their node is registering again and announcing them): a message fanned out
# within SETTLE seconds of a change remembers for MISSED_FOR seconds which
# members it did not reach, and goes to those announced meanwhile who were
# logged in before it.
SETTLE = 10.0
MISSED_FOR = 30.0


class RoomHost:
    """The leader's rooms. C{deliver(nodeId, msgId, data, usernames,
    everyone)} returns a Deferred that fires once that node has the
    message."""

    def __init__(self, mongo, directory, deliver, live_nodes, clock):
        self.mongo = mongo
        self.directory = directory
        self.deliver = deliver
        self.live_nodes = live_nodes
        self.clock = clock
        self.rooms = {}
        self.ready = defer.Deferred()
        self.expected = {}  # room -> the next seq to fan out
        self.held = {}  # room -> {seq: Deferred released when it is its turn}
        self.unsettled_until = 0.0
        # [until, ms, room, msgId, data, nodes reached, usernames reached,
        #  the room's members then (None: an automatic room)]
        self.missed = []

    async def load(self):
        self.rooms = await self.mongo.all_rooms()
        log.info("hosting {n} rooms", n=len(self.rooms))
        if not self.ready.called:
            self.ready.callback(None)

    async def _members(self, room):
        await _wait(self.ready)
        members = self.rooms.get(room)
        if members is None:
            # created in MongoDB after we loaded (e.g. by chatnet-seed)
            if await self.mongo.room_exists(room):
                members = self.rooms.setdefault(room, set())
        return members

    def _online_in(self, room):
        if room == WORLD:
            return [r.username for r in self.directory.online()]
        alliance = room[len(ALLIANCE_PREFIX):]
        if not alliance:
            return []  # "alliance:" is nobody's room, not that of everyone without one
        return [r.username for r in self.directory.online() if r.alliance == alliance]

    async def join(self, room, username):
        if is_automatic(room):
            if username not in self._online_in(room):
                raise unknown_room(room, "joinRoom")
            return len(self._online_in(room))
        members = await self._members(room)
        if members is None or not await self.mongo.add_member(room, username):
            raise unknown_room(room, "joinRoom")
        members.add(username)
        return len(members)

    async def leave(self, room, username):
        if is_automatic(room):
            raise ProtocolError(400, f"{room} is an automatic room and cannot be left", "leaveRoom")
        members = await self._members(room)
        if members is None or not await self.mongo.remove_member(room, username):
            raise unknown_room(room, "leaveRoom")
        members.discard(username)
        return len(members)

    async def list(self):
        await _wait(self.ready)
        rooms = [{"roomName": WORLD, "members": len(self.directory.online())}]
        rooms += [{"roomName": name, "members": len(m)} for name, m in sorted(self.rooms.items())]
        return rooms

    async def post(self, room, msgId, seq, data):
        """Deliver room message C{data} (JSON bytes) to every online member,
        in seq order; returns the number of nodes it went to."""
        targets = await self._targets(room)
        expected = self.expected.get(room)
        if expected is not None and seq > expected:
            turn = defer.Deferred()
            self.held.setdefault(room, {})[seq] = turn
            timer = self.clock.callLater(HOLD, self._skip_to, room, seq)
            await turn
            if timer.active():
                timer.cancel()
            targets = await self._targets(room)
        # the deliveries are written to the wire now, in this order
        deliveries = [
            self.deliver(node, msgId, data, names, everyone) for node, (names, everyone) in targets.items()
        ]
        self._advance(room, seq)
        now = self.clock.seconds()
        if now < self.unsettled_until:
            reached = {name for names, _ in targets.values() for name in names}
            nodes = {node for node, (_, everyone) in targets.items() if everyone}
            # (who joins later must not get it: the members now are its recipients)
            members = None if is_automatic(room) else set(self.rooms.get(room, ()))
            self.missed.append([now + MISSED_FOR, int(now * 1000), room, msgId, data, nodes, reached, members])
        results = await defer.DeferredList(deliveries, consumeErrors=True)
        lost = {}
        for (node, (names, everyone)), (ok, result) in zip(targets.items(), results):
            for name in (result[1] if ok else () if everyone else names):
                lost[name] = node
        if lost:
            defer.ensureDeferred(self._follow(msgId, data, lost))
        return len(targets)

    async def _follow(self, msgId, data, lost):
        """Deliver to members whose node died or who moved while the message
        was in flight, once they are connected somewhere else."""
        give_up = self.clock.seconds() + FOLLOW_FOR
        while lost and self.clock.seconds() < give_up:
            await task.deferLater(self.clock, FOLLOW_EVERY, lambda: None)
            for name, failed in list(lost.items()):
                for node in {r.nodeId for r in self.directory.cached_all(name)} - {failed}:
                    try:
                        _, missing = await self.deliver(node, msgId, data, [name], False)
                    except Exception:
                        continue
                    if not missing:
                        lost.pop(name, None)

    def unsettled(self):
        """The membership changed: some online users may be unknown for a while."""
        self.unsettled_until = self.clock.seconds() + SETTLE

    def session_known(self, record):
        """C{record} was announced: it gets the messages of its rooms fanned
        out, while we did not know it, after it logged in and while it
        was a member."""
        now = self.clock.seconds()
        self.missed = [m for m in self.missed if m[0] > now]
        for _, at, room, msgId, data, nodes, reached, members in self.missed:
            if record.loginTime > at or record.username in reached or record.nodeId in nodes:
                continue
            if not self._is_member(room, record, members):
                continue
            reached.add(record.username)
            self.deliver(record.nodeId, msgId, data, [record.username], False).addErrback(lambda f: None)

    @staticmethod
    def _is_member(room, record, members):
        if room == WORLD:
            return True
        if room.startswith(ALLIANCE_PREFIX):
            return record.alliance == room[len(ALLIANCE_PREFIX):]
        return record.username in members

    def _advance(self, room, seq):
        expected = self.expected.get(room)
        if expected is None or seq >= expected:
            self.expected[room] = seq + 1
            turn = self.held.get(room, {}).pop(seq + 1, None)
            if turn is not None:
                turn.callback(None)

    def _skip_to(self, room, seq):
        """The messages before C{seq} never came: stop waiting for them."""
        turn = self.held.get(room, {}).pop(seq, None)
        if turn is not None:
            log.warn("room {room}: seq before {seq} never arrived; going on", room=room, seq=seq)
            self.expected[room] = seq
            turn.callback(None)

    async def _targets(self, room):
        """Node id -> (usernames, everyone) of the online members of C{room}."""
        live = self.live_nodes()
        if room == WORLD:
            return {node: ((), True) for node in live}
        if is_automatic(room):
            usernames = self._online_in(room)
        else:
            members = await self._members(room)
            if members is None:
                raise unknown_room(room)
            usernames = members
        by_node = {}
        for username in usernames:
            for node in {r.nodeId for r in self.directory.cached_all(username)}:
                by_node.setdefault(node, []).append(username)
        return {node: (names, False) for node, names in by_node.items()}


async def _wait(d):
    """Wait for C{d} to fire without taking its result from others."""
    if not d.called:
        waiter = defer.Deferred()
        d.addBoth(lambda r: (waiter.callback(None), r)[1])
        await waiter
