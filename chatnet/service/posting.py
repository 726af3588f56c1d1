"""The route of a chat message, with or without a client connection: a
client's ``chat`` (L{chatnet.actions.chat.ChatActions.chat}) and the server
API's ``POST /messages`` (L{chatnet.service.api.ServerApi}) both call
L{Posting.post} once they checked who may send what to whom.

Posting accepts the message: its seq, history entry and word counts (one
Redis call, see L{chatnet.service.accept}), its profanity masked, stored in MongoDB
(the write-behind L{chatnet.stores.message_log.MessageLog}), the event bus
told. Then a room message goes to the room router and a direct one to the
recipient's sessions, or to their offline queue (and to them after all if
they logged in meanwhile). What the caller gets back is an L{Accepted}
value; what goes on after the caller is answered is owned by a
L{chatnet.service.background.Background}, which logs and counts failures.
"""
from dataclasses import dataclass

from bson import ObjectId

from chatnet.domain.messages import ChatMessage
from chatnet.errors import StoreUnavailable
from chatnet.protocols.codec import chat_data_to
from chatnet.service.background import Background
from chatnet.text import stopwords, words


@dataclass(frozen=True, slots=True)
class Accepted:
    """A message accepted by L{Posting.post}: the L{ChatMessage} (with its
    seq) and whether it was C{queued} for an offline recipient."""

    message: ChatMessage
    queued: bool

    @property
    def msgId(self):
        return self.message.msgId

    @property
    def seq(self):
        return self.message.seq

    @property
    def ts(self):
        return self.message.ts


class Posting:
    """@param config: the L{chatnet.config.NodeConfig} (C{offline_limit}).
    @param profanity: the L{chatnet.text.profanity.ProfanityFilter}.
    @param acceptor: the L{chatnet.service.accept.Acceptor}.
    @param message_log: the L{chatnet.stores.message_log.MessageLog}.
    @param offline: the L{chatnet.stores.mongo.OfflineStore}.
    @param directory: the L{chatnet.service.online.SessionDirectory}.
    @param router: the L{chatnet.cluster.router.Router}.
    @param rooms: the L{chatnet.cluster.router.RoomRouter}.
    @param emit: C{emit(event, *args)}.
    @param public_rooms: the L{chatnet.service.public_rooms.PublicRooms}
        (whose words the ranking counts).
    @param background: the L{Background} that owns the deliveries the
        caller does not wait for (a new one if not given).
    """

    def __init__(self, *, config, profanity, acceptor, message_log, offline, directory, router, rooms, emit,
                 public_rooms, background=None):
        self.config = config
        self.profanity = profanity
        self.acceptor = acceptor
        self.message_log = message_log
        self.offline = offline
        self.directory = directory
        self.router = router
        self.rooms = rooms
        self.emit = emit
        self.public_rooms = public_rooms
        self.stop_words = stopwords.load(getattr(config, "popular_stop_words", ""))
        self.background = background if background is not None else Background("posting")

    async def post(self, sender, text, ts, fmt="text", *, to="", room="", target=None, system=False,
                   version=None, copy_to_sender=False, accepted=None):
        """Accept C{text} from C{sender} to C{room} or user C{to} and send
        it on its way; returns its L{Accepted}.

        @param target: for a direct message, the recipient's session
            records (C{None}: offline, the message is queued).
        @param system: a message of the server API. Its words go to the
            public ranking only from a public room
            (L{chatnet.service.public_rooms}), less the stop words.
        @param version: see L{chatnet.service.accept.Acceptor.accept}: fails with
            L{chatnet.service.accept.StaleRoomState} before anything was accepted.
        @param copy_to_sender: also deliver a direct message to the
            sender's other C{multi} sessions.
        @param accepted: C{accepted(a)}, called with the L{Accepted} once
            the message is accepted (and queued), before it is routed: the
            caller's answer goes out before any delivery of the message.
        @raise StoreUnavailable: the write-behind log is full (MongoDB is
            slow or down): nothing was accepted (503).
        """
        if self.message_log.full:
            raise StoreUnavailable("mongodb", "message log full")
        draft = ChatMessage.new(sender, self.profanity.mask(text), ts, fmt, to, room, system=system)
        counted = await self.public_rooms.counted(room)
        tokens = stopwords.without(words.tokenize(draft.message), self.stop_words) if counted else ()
        stamp = await self.acceptor.accept(draft, tokens, version)
        message = draft.with_seq(stamp.seq)
        data = stamp.data
        self.message_log.append(message.document())
        self.emit("message_accepted", message)
        if room:
            result = Accepted(message, False)
            if accepted is not None:
                accepted(result)
            self.background.run("room message", self.rooms.room(message, data, stamp.nodes))
            return result
        if target is None:
            await self.offline.put(message.msgId, message.to, message.frame_data(), self.config.offline_limit)
            result = Accepted(message, True)
            if accepted is not None:
                accepted(result)
            await self._after_queued(message, data)
            return result
        result = Accepted(message, False)
        if accepted is not None:
            accepted(result)
        self.background.run("direct message", self.router.direct(message, data, target))
        if copy_to_sender:
            self.background.run("copy to the sender", self._to_own_sessions(message, data))
        return result

    async def _after_queued(self, message, data):
        """The recipient may have logged in meanwhile, after their queue was
        read: deliver it now (and unqueue it) if so."""
        target = await self.directory.lookup_all(message.to, refresh=True) or None
        if target is not None:
            self.background.run("late delivery", self._deliver_late(message, data, target))

    async def _deliver_late(self, message, data, target):
        if await self.router.direct(message, data, target):
            await self.offline.remove([ObjectId(message.msgId)])

    async def _to_own_sessions(self, message, data):
        """Deliver what a user sent to their other C{multi} sessions: the
        chat frame with C{to} (the conversation it belongs to)."""
        own = [r for r in self.directory.cached_all(message.sender) if r.multi]
        if own:
            await self.router.direct(message, chat_data_to(data, message.to), own, to=message.sender)
