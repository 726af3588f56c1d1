"""The ``resume`` action (docs/protocol.md): the replay of what a
reconnecting client missed in its rooms and conversations, live messages
held back meanwhile."""
from chatnet.actions.limits import MAX_NAME, RESUME_NAMES
from chatnet.domain.messages import dm_channel, room_channel
from chatnet.errors import ProtocolError
from chatnet.protocols import codec
from chatnet.protocols.codec import INT64_MAX
from chatnet.protocols.constants import is_automatic
from chatnet.service.history import RESUME_LIMIT


class ResumeActions:
    """C{resume}. Collaborators:

    @param mongo: the L{chatnet.stores.mongo.MongoStore} (room floors, deleted users).
    @param history: the L{chatnet.service.history.History} (what is replayed).
    @param access: the L{chatnet.actions.access.RoomAccess} (the rooms named).
    """

    def __init__(self, *, mongo, history, access):
        self.mongo = mongo
        self.history = history
        self.access = access

    async def resume(self, connection, request):
        """Replay what the client missed: C{rooms} and C{conversations} map a
        room name / the other user to the last seq the client saw. Live
        messages are held back until the replay is done."""
        rooms = _seq_map(request, "rooms")
        conversations = _seq_map(request, "conversations")
        if len(rooms) + len(conversations) > RESUME_NAMES:
            raise ProtocolError(
                400, f"at most {RESUME_NAMES} rooms and conversations in one resume", request.action)
        session = connection.session
        # live messages wait from now on: while the checks read the stores
        # the login's hold may run out, and what it let through would be
        # replayed again
        session.hold()
        try:
            username = connection.record.username
            await self.access.check_member(connection, rooms, "resume")
            # a room made again under a deleted one's name starts after its
            # floor; a conversation of a user deleted meanwhile is sealed
            ordinary = [r for r in rooms if not is_automatic(r)]
            floors = await self.mongo.room_floors(ordinary) if ordinary else {}
            deleted = await self.mongo.deleted_at([username, *conversations]) if conversations else {}
            mine = deleted.get(username, 0)
            channels = [(room_channel(r), seq, {"roomName": r}, floors.get(r, 0), 0) for r, seq in rooms.items()]
            channels += [(dm_channel(username, u), seq, {"with": u}, 0, max(mine, deleted.get(u, 0)))
                         for u, seq in conversations.items()]
            # every channel is read before anything is replayed: a store
            # that fails meanwhile (503) leaves nothing half done
            found = [(name, await self.history.after(channel, seq, RESUME_LIMIT, floor, sealed))
                     for channel, seq, name, floor, sealed in channels]
            # what the client has of a room is never delivered to it live
            # again, however far behind this node is in the room
            for room, seq in rooms.items():
                session.seen(room, seq)
            replayed, too_old = 0, []
            for name, missed in found:
                if missed is None:
                    too_old.append(name)
                    continue
                room = name.get("roomName")
                for data in missed:
                    session.replay(data["msgId"], codec.chat_frame(codec.chat_data_of(data)), room, data.get("seq"))
                    replayed += 1
            connection.answer("resume", {"replayed": replayed, "tooOld": too_old}, request)
        finally:
            session.release()


def _seq_map(request, key):
    """C{data[key]}: an object of name -> last seen seq (a non-negative
    integer of at most 64 bits)."""
    value = request.data.get(key) or {}
    if not isinstance(value, dict) or len(value) > RESUME_NAMES:
        raise ProtocolError(400, f"field {key!r} must be an object of at most {RESUME_NAMES} name: seq",
                            request.action)
    for name, seq in value.items():
        if len(name) > MAX_NAME or isinstance(seq, bool) or not isinstance(seq, int) or not 0 <= seq <= INT64_MAX:
            raise ProtocolError(400, f"field {key!r} must map names to seq numbers", request.action)
    return value
