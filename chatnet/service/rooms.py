"""Room membership: joining, leaving and listing rooms, on the user's own node.

Membership is MongoDB's ``rooms.members``; any node changes it for its
users (no node hosts the rooms). Who gets a room's messages on a node is the
node's L{chatnet.service.roomfeed.RoomFeed}; the router tells the other
nodes of a user with several sessions (L{chatnet.cluster.router.RoomRouter}).

Automatic rooms need no stored membership: ``world`` holds every online
user, ``alliance:<name>`` every online user whose record names that alliance.
"""
from chatnet.errors import ProtocolError, unknown_room
from chatnet.protocols.constants import ALLIANCE_PREFIX, WORLD, is_automatic


class Rooms:
    """@param mongo: the L{chatnet.stores.mongo.MongoStore}.
    @param directory: the L{chatnet.service.online.SessionDirectory} (who is
        online, for the automatic rooms)."""

    def __init__(self, mongo, directory):
        self.mongo = mongo
        self.directory = directory

    def online_in(self, room):
        """The usernames online in automatic room C{room}."""
        if room == WORLD:
            return [r.username for r in self.directory.online()]
        alliance = room[len(ALLIANCE_PREFIX):]
        if not alliance:
            return []  # "alliance:" is nobody's room, not that of everyone without one
        return [r.username for r in self.directory.online() if r.alliance == alliance]

    async def join(self, room, username):
        """Make C{username} a member of C{room} (stored); the member count."""
        if is_automatic(room):
            online = self.online_in(room)
            if username not in online:
                raise unknown_room(room, "joinRoom")
            return len(online)
        members = await self.mongo.change_member(room, username, True)
        if members is None:
            raise unknown_room(room, "joinRoom")
        return members

    async def leave(self, room, username):
        """Remove C{username} from C{room} (stored); the member count."""
        if is_automatic(room):
            raise ProtocolError(400, f"{room} is an automatic room and cannot be left", "leaveRoom")
        members = await self.mongo.change_member(room, username, False)
        if members is None:
            raise unknown_room(room, "leaveRoom")
        return members

    async def list(self):
        """C{[{"roomName", "members"}, ...]}: the world room, then every room."""
        rooms = [{"roomName": WORLD, "members": len(self.directory.online())}]
        stored = await self.mongo.all_rooms()
        rooms += [{"roomName": name, "members": len(m)} for name, m in sorted(stored.items())]
        return rooms
