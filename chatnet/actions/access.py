"""Who may use a room: the membership and mute checks of the actions that
name rooms (``chat``, ``resume``, and the ``live`` extension's)."""
from chatnet.domain import moderation
from chatnet.domain.messages import now_ms
from chatnet.errors import not_member, unknown_room
from chatnet.protocols.constants import ALLIANCE_PREFIX, WORLD, is_automatic


class RoomAccess:
    """The checks of a connection's user against rooms.

    @param mongo: the L{chatnet.stores.mongo.MongoStore} (membership, mutes).
    @param clock: an C{IReactorTime} (when a mute ends).
    """

    def __init__(self, mongo, clock):
        self.mongo = mongo
        self.clock = clock

    async def check_member(self, connection, rooms, action):
        """Refuse C{action} unless the connection's user is a member of every
        room of C{rooms}: 404 for a room that does not exist for them (an
        unknown room, another alliance's, C{alliance:} without one), 403 for
        one they have not joined; for a C{chat}, 403 also for a room they are
        muted in. Costs no store call for automatic rooms and for rooms
        already known to include the user (the session's
        L{known_rooms<chatnet.service.session.Session.known_rooms>}) whose
        mute is known (L{Session.mutes<chatnet.service.session.Session>});
        one MongoDB look-up for the others, one more for their mutes."""
        record = connection.record
        session = connection.session
        joined = session.known_rooms()
        unknown = []
        for room in rooms:
            if room == WORLD or room in joined:
                continue
            if room.startswith(ALLIANCE_PREFIX):
                if not record.alliance or room != ALLIANCE_PREFIX + record.alliance:
                    raise unknown_room(room, action)
                continue
            unknown.append(room)
        if unknown:
            member, existing = await self.mongo.membership(record.username, unknown)
            joined.update(member)
            for room in unknown:
                if room not in existing:
                    raise unknown_room(room, action)
            for room in unknown:
                if room not in member:
                    raise not_member(room, action)
        if action == "chat":
            await self._check_mutes(session, record.username, [r for r in rooms if not is_automatic(r)])

    async def _check_mutes(self, session, username, rooms):
        """Refuse (403) a post to C{rooms} (ordinary rooms the user is a
        member of) if they are muted in one: read from MongoDB the first
        time, then kept by the session (and updated by the room notices,
        L{chatnet.service.session.Session.room_notice})."""
        unknown = [room for room in rooms if not session.mute_known(room)]
        if unknown:
            found = await self.mongo.mutes(username, unknown)
            for room in unknown:
                session.set_muted(room, found.get(room, 0))
        now = now_ms(self.clock)
        for room in rooms:
            moderation.check_post(room, session.muted_until(room), now)
