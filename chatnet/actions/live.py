"""The requests of the ``live`` extension (docs/protocol.md, "`live`:
history, edits, typing, read state, invitations"): scroll-back, editing
and deleting messages, typing and read markers. What the extension adds
to the base actions is L{chatnet.actions.liverooms}.

Each request is checked (types, then ranges) before any store is asked;
each costs a bounded amount of work (a page is at most L{MAX_PAGE}
messages, a text at most C{--max-message-chars}, a user's typing at most
one relay a second per room or conversation).
"""
import re

from twisted.internet import defer

from chatnet.actions.limits import MAX_NAME
from chatnet.domain import moderation
from chatnet.domain.messages import MessageRevision, dm_channel, now_ms, room_channel
from chatnet.errors import ProtocolError
from chatnet.protocols import codec
from chatnet.protocols.codec import INT64_MAX
from chatnet.protocols.constants import is_automatic
from chatnet.service.notices import LIVE
from chatnet.service.scrollback import MAX_PAGE
from chatnet.stores.redis import seq_key

#: messages of a page when the request gives no C{limit}
DEFAULT_PAGE = 50
_MSG_ID = re.compile(r"[0-9a-fA-F]{24}\Z")


class LiveActions:
    """C{history}, C{edit}, C{delete}, C{typing}, C{read}. Collaborators:

    @param config: the L{chatnet.config.NodeConfig}.
    @param clock: an C{IReactorTime}.
    @param redis: the L{chatnet.stores.redis.RedisStore} (channels' last seqs).
    @param mongo: the L{chatnet.stores.mongo.MongoStore} (rooms).
    @param live: the L{chatnet.stores.livestate.LiveState} (read markers).
    @param scrollback: the L{chatnet.service.scrollback.Scrollback}.
    @param revisions: the L{chatnet.service.revisions.Revisions}.
    @param notices: the L{chatnet.service.notices.UserNotices}.
    @param rooms: the L{chatnet.cluster.router.RoomRouter} (room notices).
    @param directory: the L{chatnet.service.online.SessionDirectory}.
    @param profanity: the L{chatnet.text.profanity.ProfanityFilter}.
    @param access: the L{chatnet.actions.access.RoomAccess} (the rooms named).
    @param typing_gate: the L{chatnet.actions.typinggate.TypingGate}.
    @param background: the L{chatnet.service.background.Background} that
        owns the notices' fan-out to other nodes, which a request does not
        wait for (a node that does not answer would cost it the peer call's
        timeout; this node's sessions have theirs before its first wait).
    @param emit: C{emit(event, *args)} (L{chatnet.ops.events.EventBus.emit}):
        C{message_edited} and C{message_deleted}, once stored.
    """

    def __init__(self, *, config, clock, redis, mongo, live, scrollback, revisions, notices, rooms, directory,
                 profanity, access, typing_gate, background, emit=lambda event, *args: None):
        self.config = config
        self.clock = clock
        self.redis = redis
        self.mongo = mongo
        self.live = live
        self.scrollback = scrollback
        self.revisions = revisions
        self.notices = notices
        self.rooms = rooms
        self.directory = directory
        self.profanity = profanity
        self.access = access
        self.typing_gate = typing_gate
        self.background = background
        self.emit = emit

    # -- what a request names ----------------------------------------------

    def _target(self, request, other="conversation"):
        """C{(room, user)}: the room or the other user (field C{other}) a
        request names, exactly one of them."""
        room = request.string("roomName", required=False, max_length=MAX_NAME)
        user = request.string(other, required=False, max_length=MAX_NAME)
        if (room is None) == (user is None) or room == "" or user == "":
            raise ProtocolError(400, f"give either 'roomName' or {other!r}", request.action)
        return room, user

    async def _channel(self, connection, request, other="conversation"):
        """C{(room, user, channel)} of a request, once the user may use it:
        a room they are a member of, or their conversation with C{user}."""
        room, user = self._target(request, other)
        me = connection.record.username
        if room is not None:
            await self.access.check_member(connection, [room], request.action)
            return room, None, room_channel(room)
        if user == me:
            raise ProtocolError(400, "a conversation is with another user", request.action)
        return None, user, dm_channel(me, user)

    @staticmethod
    def _msg_id(request):
        msg_id = request.string("msgId", max_length=64)
        if not _MSG_ID.match(msg_id):
            raise ProtocolError(400, "field 'msgId' must be a message id (24 hex digits)", request.action)
        return msg_id.lower()

    @staticmethod
    def _seq(request, key, required):
        value = request.data.get(key)
        if value is None and not required:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not (0 if required else 1) <= value <= INT64_MAX:
            low = 0 if required else 1
            raise ProtocolError(400, f"field {key!r} must be an integer from {low} to 2^63 - 1", request.action)
        return value

    # -- history -------------------------------------------------------------

    async def history(self, connection, request):
        before = self._seq(request, "before", required=False)
        limit = request.data.get("limit", DEFAULT_PAGE)
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
            raise ProtocolError(400, f"field 'limit' must be an integer from 1 to {MAX_PAGE}", "history")
        room, user, channel = await self._channel(connection, request)
        messages, more = await self.scrollback.page(channel, before, limit)
        me = connection.record.username
        if user is not None:
            for data in messages:
                data["to"] = user if data.get("from") == me else me
        answer = {"roomName": room} if room is not None else {"conversation": user}
        answer.update(messages=messages, more=more)
        connection.answer("history", answer, request)

    # -- edit and delete -----------------------------------------------------

    async def edit(self, connection, request):
        msg_id = self._msg_id(request)
        text = request.string("message", max_length=self.config.max_message_chars)
        room, user, channel = await self._channel(connection, request, "to")
        me = connection.record.username
        data = await self._message(channel, msg_id, room, user)
        if data.get("from") != me:
            raise ProtocolError(403, "only its author may edit a message", "edit")
        at = now_ms(self.clock)
        revised = await self.revisions.revise(channel, data, me, at, self.profanity.mask(text))
        if revised is None:
            raise self._gone(msg_id, room, user, "edit")
        answer = {"msgId": msg_id, "seq": revised["seq"], "message": revised["message"], "editedAt": at}
        self.emit("message_edited", MessageRevision(msg_id, channel, room or "", me, user or "", revised["seq"], me,
                                                    at, revised["message"]))
        connection.answer("edit", {**_where(room, user, "to"), **answer}, request)
        self.background.run("messageEdited notice",
                            self._tell(connection, "messageEdited", room, user, {**answer, "by": me}))

    async def delete(self, connection, request):
        msg_id = self._msg_id(request)
        room, user, channel = await self._channel(connection, request, "to")
        me = connection.record.username
        data = await self._message(channel, msg_id, room, user, deleted_ok=True)
        if data.get("from") != me:
            doc = None if room is None or is_automatic(room) else await self.mongo.room(room)
            if doc is None or moderation.role(doc, me) not in ("owner", "admin"):
                raise ProtocolError(403, "only its author, or the room's owner and admins, may delete a message",
                                    "delete")
        answer = {"msgId": msg_id, "seq": data["seq"]}
        if not data.get("deleted"):
            at = now_ms(self.clock)
            if await self.revisions.revise(channel, data, me, at) is not None:
                self.emit("message_deleted", MessageRevision(msg_id, channel, room or "", data.get("from", ""),
                                                             user or "", data["seq"], me, at))
            self.background.run("messageDeleted notice",
                                self._tell(connection, "messageDeleted", room, user, {**answer, "by": me}))
        connection.answer("delete", {**_where(room, user, "to"), **answer}, request)

    async def _message(self, channel, msg_id, room, user, deleted_ok=False):
        data = await self.revisions.find(channel, msg_id)
        if data is None or (data.get("deleted") and not deleted_ok):
            raise self._gone(msg_id, room, user, "delete" if deleted_ok else "edit")
        return data

    @staticmethod
    def _gone(msg_id, room, user, action):
        where = f"room {room}" if room is not None else f"the conversation with {user}"
        return ProtocolError(404, f"no message {msg_id} in {where}", action)

    async def _tell(self, connection, action, room, user, data):
        """Send the room's members (or both users of the conversation) the
        frame C{action}, except the session that asked."""
        me, session = connection.record.username, connection.record.sessionId
        if room is not None:
            await self.rooms.notice(room, action, {"roomName": room, **data}, LIVE, skip_session=session)
            return
        await defer.DeferredList([
            defer.ensureDeferred(self.notices.send(user, codec.encode(action, {"conversation": me, **data}))),
            defer.ensureDeferred(self.notices.send(me, codec.encode(action, {"conversation": user, **data}),
                                                   skip=session)),
        ], consumeErrors=True)

    # -- typing --------------------------------------------------------------

    async def typing(self, connection, request):
        room, user = self._target(request, "to")
        me = connection.record.username
        if room is not None:
            await self.access.check_member(connection, [room], "typing")
            if self.typing_gate.allow(me, "#" + room):
                self.background.run("typing notice", self.rooms.notice(room, "typing", {"roomName": room, "from": me},
                                                                       LIVE, skip_user=me))
            return
        if user == me:
            raise ProtocolError(400, "a conversation is with another user", "typing")
        if self.directory.cached_all(user) and self.typing_gate.allow(me, "@" + user):
            self.background.run("typing notice",
                                self.notices.send(user, codec.encode("typing", {"to": user, "from": me})))

    # -- read markers --------------------------------------------------------

    async def read(self, connection, request):
        seq = self._seq(request, "seq", required=True)
        room, user, channel = await self._channel(connection, request)
        me = connection.record.username
        # (a marker beyond the channel's last seq, or of a conversation
        # that never had a message, would store what is not there)
        current = await self.redis.call("get", seq_key(channel))
        current = int(current) if current is not None else 0
        if current == 0 and user is not None:
            raise ProtocolError(404, f"no conversation with {user}", "read")
        stored = await self.live.mark_read(me, channel, min(seq, current))
        answer = {"roomName": room} if room is not None else {"conversation": user}
        answer["seq"] = stored
        connection.answer("read", answer, request)
        self.background.run("read notice",
                            self.notices.send(me, codec.encode("read", answer), skip=connection.record.sessionId))


def _where(room, user, other):
    return {"roomName": room} if room is not None else {other: user}
