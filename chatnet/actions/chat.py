"""The ``chat`` action (docs/protocol.md): a message to a room or to a
user, checked (member, not muted, recipient known) and handed to
L{chatnet.service.posting.Posting}, then answered (``ack``, ``queued``)."""
from chatnet.actions.limits import MAX_NAME
from chatnet.domain.messages import now_ms
from chatnet.errors import ProtocolError, StoreUnavailable, not_online
from chatnet.protocols.constants import is_automatic
from chatnet.service.accept import StaleRoomState

# posts tried again after the user's room state changed under them
STALE_TRIES = 3
# the longest "format" of a message
FORMATS = 32


class ChatActions:
    """C{chat}. Collaborators:

    @param config: the L{chatnet.config.NodeConfig} (C{max_message_chars}).
    @param clock: an C{IReactorTime}.
    @param mongo: the L{chatnet.stores.mongo.MongoStore} (whether an
        offline recipient exists).
    @param directory: the L{chatnet.service.online.SessionDirectory} (the
        recipient's sessions).
    @param posting: the L{chatnet.service.posting.Posting}.
    @param delivery: the L{chatnet.service.delivery.LocalDelivery} (what
        the sender's other sessions see).
    @param access: the L{chatnet.actions.access.RoomAccess}.
    @param room_state: the L{chatnet.service.roomstate.RoomState}, or None
        (posts are then checked against the session's rooms and mutes only).
    """

    def __init__(self, *, config, clock, mongo, directory, posting, delivery, access, room_state=None):
        self.config = config
        self.clock = clock
        self.mongo = mongo
        self.directory = directory
        self.posting = posting
        self.delivery = delivery
        self.access = access
        self.room_state = room_state

    async def chat(self, connection, request):
        record = connection.record
        text = request.string("message", max_length=self.config.max_message_chars)
        fmt = request.string("format", required=False, default="text", max_length=FORMATS)
        is_group = request.boolean("isGroup", default=False)
        ts = request.timestamp("ts", now_ms(self.clock))
        room = request.string("roomName", required=False, max_length=MAX_NAME)
        if is_group or room:
            if not room:
                raise ProtocolError(400, "missing field 'roomName'", "chat")
            await self._post_in_room(connection, request, text, ts, fmt, room)
            return
        to = request.string("to", max_length=MAX_NAME)
        target = await self.directory.lookup_all(to) or None
        if target is None and not ("offline" in connection.features and await self.mongo.user_exists(to)):
            raise not_online(to)
        await self.posting.post(record.username, text, ts, fmt, to=to, target=target, copy_to_sender=record.multi,
                                accepted=lambda accepted: self._answer_chat(connection, request, accepted, text, to))

    def _answer_chat(self, connection, request, accepted, text, to=""):
        """Answer an accepted chat: C{queued} for an offline recipient, else
        C{ack} (with that feature, and the message as accepted if its
        profanity was masked, unlike the C{text} sent); the sender's other
        sessions of a direct message show what it sent, this one has its
        answer already."""
        if accepted.queued:
            connection.answer("queued", {"to": to, "msgId": accepted.msgId, "seq": accepted.seq, "ts": accepted.ts},
                              request)
            return
        if "ack" in connection.features:
            masked = accepted.message.message
            connection.answer(
                "ack",
                {"re": request.id, "id": accepted.msgId, "msgId": accepted.msgId, "seq": accepted.seq,
                 "ts": accepted.ts, **({"message": masked} if masked != text else {})},
                request,
            )
        if to and connection.record.multi:
            self.delivery.sent_from(connection, accepted.msgId)

    async def _post_in_room(self, connection, request, text, ts, fmt, room):
        """Check that the user may post to C{room}, then post; in an
        ordinary room, on the condition that the user's room state is
        still the version the check was made against (the session's,
        taken before the check): if it moved, the state is read again and
        checked again (L{chatnet.service.roomstate}), L{STALE_TRIES} times
        at most (then 503)."""
        session = connection.session
        username = connection.record.username
        checked = self.room_state is not None and not is_automatic(room)
        for _ in range(STALE_TRIES):
            version = session.room_version if checked else None
            await self.access.check_member(connection, [room], "chat")
            try:
                return await self.posting.post(
                    username, text, ts, fmt, room=room, version=version,
                    accepted=lambda accepted: self._answer_chat(connection, request, accepted, text))
            except StaleRoomState:
                await self.room_state.refresh([username])
        raise StoreUnavailable("redis", "chat")
