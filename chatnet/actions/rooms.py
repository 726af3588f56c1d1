"""The room actions (docs/protocol.md): ``joinRoom``, ``leaveRoom``,
``listRooms`` and ``createRoom``. The rules of who may join or see a room
are L{chatnet.domain.moderation}'s."""
from chatnet.actions.extras import NO_EXTRAS
from chatnet.actions.limits import MAX_NAME, RESUME_WAIT
from chatnet.domain import moderation
from chatnet.domain.messages import room_channel
from chatnet.errors import ProtocolError, unknown_room
from chatnet.protocols import codec
from chatnet.protocols.constants import WORLD, automatic_rooms, is_automatic


class RoomActions:
    """C{joinRoom}, C{leaveRoom}, C{listRooms}, C{createRoom}. Collaborators:

    @param mongo: the L{chatnet.stores.mongo.MongoStore} (rooms).
    @param rooms: the L{chatnet.cluster.router.RoomRouter}.
    @param history: the L{chatnet.service.history.History} (what a join replays,
        where a new room starts).
    @param directory: the L{chatnet.service.online.SessionDirectory} (who is online).
    @param extras: what an extension adds to the C{joinRoom} and
        C{listRooms} answers (L{chatnet.actions.extras}).
    @param emit: C{emit(event, *args)} (L{chatnet.ops.events.EventBus.emit}).
    """

    def __init__(self, *, mongo, rooms, history, directory, extras=NO_EXTRAS, emit=lambda event, *args: None):
        self.mongo = mongo
        self.rooms = rooms
        self.history = history
        self.directory = directory
        self.extras = extras
        self.emit = emit

    async def join_room(self, connection, request):
        room = request.string("roomName", max_length=MAX_NAME)
        username = connection.record.username
        if is_automatic(room) and room not in automatic_rooms(connection.record.alliance):
            raise unknown_room(room, "joinRoom")
        doc = None
        if not is_automatic(room):
            doc = await self.mongo.room(room)
            if doc is None:
                raise unknown_room(room, "joinRoom")
            moderation.check_join(doc, username)
        session = connection.session
        holding = session.holding
        if not holding:
            # live messages of the room wait for its history
            session.hold(at_most=RESUME_WAIT)
        try:
            members = await self.rooms.join(room, username)
            if doc is not None:
                session.set_muted(room, moderation.muted_until(doc, username))
            floor = doc.get("floor") if doc is not None and isinstance(doc.get("floor"), int) else 0
            history = await self.history.recent(room_channel(room), floor=floor)
            for data in history:
                session.replay(data["msgId"], codec.chat_frame(codec.chat_data_of(data)), room, data.get("seq"))
            connection.answer("joinRoom", {"roomName": room, "members": members,
                                           **self.extras.join_answer(connection, doc)}, request)
        finally:
            if not holding:
                session.release()
        self.emit("room_joined", room, username)

    async def leave_room(self, connection, request):
        room = request.string("roomName", max_length=MAX_NAME)
        username = connection.record.username
        # (from whichever of their sessions: none gets the room any more)
        await self.rooms.leave(room, username)
        connection.answer("leaveRoom", {"roomName": room}, request)
        self.emit("room_left", room, username)

    async def list_rooms(self, connection, request):
        """C{world}, the public rooms and the private ones the user belongs
        to or is invited to (or what an extension lists instead)."""
        rooms = await self.extras.room_list(connection)
        if rooms is None:
            rooms = await self._room_entries(connection.record.username)
        connection.answer("listRooms", {"rooms": rooms}, request)

    async def _room_entries(self, username):
        rooms = [{"roomName": WORLD, "members": len(self.directory.online())}]
        for doc in sorted(await self.mongo.room_list(), key=lambda d: d["roomName"]):
            if moderation.visible(doc, username):
                entry = {"roomName": doc["roomName"], "members": len(doc.get("members") or ())}
                if doc.get("private"):
                    entry["private"] = True
                rooms.append(entry)
        return rooms

    async def create_room(self, connection, request):
        room = request.string("roomName", max_length=MAX_NAME)
        private = request.boolean("private", default=False)
        moderation.check_room_name(room)
        owner = connection.record.username
        floor = await self.history.current_seq(room_channel(room))
        if not await self.mongo.create_room(room, owner, private, floor):
            raise ProtocolError(409, f"room {room} exists already", "createRoom")
        await self.rooms.member_changed(room, owner, True)
        connection.answer("createRoom", {"roomName": room, "private": private, "owner": owner}, request)
        self.emit("room_joined", room, owner)
