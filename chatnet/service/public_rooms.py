"""Which rooms' words the public ranking counts (docs/design.md, "Popular
words"): the automatic rooms (``world``, ``alliance:<name>``) and the public
rooms users or the application made; never a private room, never a direct
message.

Whether an ordinary room is private is read from MongoDB and kept for
C{ttl} seconds (a room deleted and made again under its name with another
privacy is known within that time), for at most C{most} rooms (the oldest
answer is forgotten first). A room that is not there (deleted meanwhile) is
not counted; MongoDB down: not counted either (the message itself is
accepted).
"""
from twisted.logger import Logger

from chatnet.errors import StoreUnavailable
from chatnet.protocols.constants import is_automatic

log = Logger()

TTL = 5.0
MOST = 10000


class PublicRooms:
    """@param mongo: the L{chatnet.stores.mongo.MongoStore} (C{is_private}).
    @param clock: an C{IReactorTime}."""

    def __init__(self, mongo, clock, ttl=TTL, most=MOST):
        self.mongo = mongo
        self.clock = clock
        self.ttl = ttl
        self.most = most
        self._known = {}  # room -> (public, until)

    def __len__(self):
        """How many rooms' answers are kept (at most C{most})."""
        return len(self._known)

    async def counted(self, room):
        """Whether the words of a message to C{room} ("" for a direct
        message) go to the public ranking."""
        if not room:
            return False
        if is_automatic(room):
            return True
        now = self.clock.seconds()
        known = self._known.get(room)
        if known is not None and known[1] > now:
            return known[0]
        try:
            private = await self.mongo.is_private(room)
        except StoreUnavailable:
            log.warn("words of room {room} not counted: mongodb unavailable", room=room)
            return False
        public = private is False
        self._known.pop(room, None)
        while len(self._known) >= self.most:
            del self._known[next(iter(self._known))]
        self._known[room] = (public, now + self.ttl)
        return public
