"""Chat rooms, hosted by the leader.

The leader keeps every room and its members in memory (loaded from MongoDB
when it becomes leader; every join and leave is written to MongoDB before it
is answered) and fans room messages out: one delivery per node that has a
member online, naming that node's members.

Automatic rooms need no stored membership: ``world`` holds every online
user, ``alliance:<name>`` every online user whose record names that alliance.
"""
from twisted.internet import defer
from twisted.logger import Logger

from chatnet.errors import ProtocolError, unknown_room

log = Logger()

WORLD = "world"
ALLIANCE_PREFIX = "alliance:"


def is_automatic(room):
    return room == WORLD or room.startswith(ALLIANCE_PREFIX)


def automatic_rooms(alliance):
    """The automatic rooms of a user with C{alliance} ("" for none)."""
    return [WORLD, ALLIANCE_PREFIX + alliance] if alliance else [WORLD]


class RoomHost:
    """The leader's rooms. C{deliver(nodeId, msgId, data, usernames,
    everyone)} returns a Deferred that fires once that node has the
    message."""

    def __init__(self, mongo, directory, deliver, live_nodes):
        self.mongo = mongo
        self.directory = directory
        self.deliver = deliver
        self.live_nodes = live_nodes
        self.rooms = {}
        self.ready = defer.Deferred()

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

    async def exists(self, room):
        if is_automatic(room):
            return True
        return await self._members(room) is not None

    async def post(self, room, msgId, data):
        """Deliver room message C{data} (JSON bytes) to every online member;
        returns the number of nodes it went to."""
        live = self.live_nodes()
        if room == WORLD:
            targets = {node: ((), True) for node in live}
        else:
            if is_automatic(room):
                usernames = self._online_in(room)
            else:
                members = await self._members(room)
                if members is None:
                    raise unknown_room(room)
                usernames = members
            by_node = {}
            for username in usernames:
                record = self.directory.cached(username)
                if record is not None:
                    by_node.setdefault(record.nodeId, []).append(username)
            targets = {node: (names, False) for node, names in by_node.items()}
        deliveries = [
            self.deliver(node, msgId, data, names, everyone) for node, (names, everyone) in targets.items()
        ]
        await defer.DeferredList(deliveries, consumeErrors=True)
        return len(targets)


async def _wait(d):
    """Wait for C{d} to fire without taking its result from others."""
    if not d.called:
        waiter = defer.Deferred()
        d.addBoth(lambda r: (waiter.callback(None), r)[1])
        await waiter
