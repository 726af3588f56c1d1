"""The moderation actions of rooms users made (docs/protocol.md):
``invite``, ``kick``, ``ban``, ``mute`` and ``setRole``. Who may do what
to whom is L{chatnet.domain.moderation}'s rules; here the actions are carried
out and the room's members told."""
from chatnet.actions.limits import MAX_NAME
from chatnet.domain import moderation
from chatnet.domain.messages import now_ms
from chatnet.errors import ProtocolError, unknown_room
from chatnet.protocols.constants import is_automatic


class ModerationActions:
    """C{invite}, C{kick}, C{ban}, C{mute}, C{setRole}. Collaborators:

    @param clock: an C{IReactorTime} (when a ban or a mute is).
    @param mongo: the L{chatnet.stores.mongo.MongoStore} (rooms, users).
    @param rooms: the L{chatnet.cluster.router.RoomRouter} (members, notices).
    @param room_state: the L{chatnet.service.roomstate.RoomState}, or None.
    @param emit: C{emit(event, *args)} (L{chatnet.ops.events.EventBus.emit}).
    """

    def __init__(self, *, clock, mongo, rooms, room_state=None, emit=lambda event, *args: None):
        self.clock = clock
        self.mongo = mongo
        self.rooms = rooms
        self.room_state = room_state
        self.emit = emit

    async def invite(self, connection, request):
        room, target = await self._moderated(connection, request)
        if not await self.mongo.user_exists(target):
            raise ProtocolError(404, f"user {target} does not exist", "invite")
        await self.mongo.invite(room, target)
        connection.answer("invite", {"roomName": room, "username": target}, request)

    async def kick(self, connection, request):
        room, target = await self._moderated(connection, request)
        await self.mongo.kick(room, target)
        await self._removed(connection, room, target, "kick")
        connection.answer("kick", {"roomName": room, "username": target}, request)

    async def ban(self, connection, request):
        room, target = await self._moderated(connection, request)
        if not await self.mongo.user_exists(target):
            raise ProtocolError(404, f"user {target} does not exist", "ban")
        was_member = await self.mongo.ban(room, target, now_ms(self.clock))
        await self._removed(connection, room, target, "ban", was_member)
        connection.answer("ban", {"roomName": room, "username": target}, request)

    async def mute(self, connection, request):
        seconds = request.integer("seconds", minimum=moderation.MUTE_MIN_SECONDS)
        if seconds is None or seconds > moderation.MUTE_MAX_SECONDS:
            raise ProtocolError(
                400, f"field 'seconds' must be an integer from {moderation.MUTE_MIN_SECONDS} to "
                     f"{moderation.MUTE_MAX_SECONDS}", "mute")
        room, target = await self._moderated(connection, request)
        now = now_ms(self.clock)
        until = now + seconds * 1000
        await self.mongo.mute(room, target, until, now)
        versions = await self.rooms.state_changed(target)
        await self._notice(connection, room, "mute", target, until)
        if self.room_state is not None:
            self.room_state.advanced(target, versions)
        connection.answer("mute", {"roomName": room, "username": target, "until": until}, request)

    async def set_role(self, connection, request):
        room = request.string("roomName", max_length=MAX_NAME)
        target = request.string("username", max_length=MAX_NAME)
        new_role = request.string("role", max_length=16)
        doc = await self._room_doc(room, "setRole")
        moderation.check_set_role(doc, connection.record.username, target, new_role)
        await self.mongo.set_admin(room, target, new_role == "admin")
        connection.answer("setRole", {"roomName": room, "username": target, "role": new_role}, request)

    async def _room_doc(self, room, action):
        """The document of C{room}, a room users made or seeded: 404 if
        there is none (an automatic room has none either)."""
        doc = None if is_automatic(room) or not room else await self.mongo.room(room)
        if doc is None:
            raise unknown_room(room, action)
        return doc

    async def _moderated(self, connection, request):
        """The room and the target user of an action of the owner or an
        admin on another user, once allowed (L{moderation.check_act})."""
        room = request.string("roomName", max_length=MAX_NAME)
        target = request.string("username", max_length=MAX_NAME)
        doc = await self._room_doc(room, request.action)
        moderation.check_act(doc, connection.record.username, target, request.action)
        return room, target

    async def _removed(self, connection, room, target, action, was_member=True):
        """C{target} was kicked or banned from C{room} (MongoDB says so
        already): the members and they are told, then their sessions stop
        getting the room (the notice goes first, so that it reaches them)."""
        await self._notice(connection, room, action, target)
        if was_member:
            await self.rooms.member_changed(room, target, False)
            self.emit("room_left", room, target)
        else:
            await self.rooms.state_changed(target)

    async def _notice(self, connection, room, action, target, until=None):
        # the moderator's session has its answer
        await self.rooms.notice(
            room, "roomNotice", moderation.notice(room, action, target, connection.record.username, until),
            skip_session=connection.record.sessionId)
