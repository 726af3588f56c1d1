"""Accepting a chat message and sending it on its way, with or without a
client connection: a client's ``chat`` (L{chatnet.handlers.ChatHandlers.chat})
and the server API's ``POST /messages`` (L{chatnet.service.api.ServerApi})
both come here once they checked who may send what to whom.

Accepting gives the message its seq, history entry and word counts (one
Redis call, see L{chatnet.accept}), masks its profanity, stores it in
MongoDB (the write-behind L{chatnet.stores.message_log.MessageLog}) and
tells the event bus; then a room message goes to the room router and a
direct one to the recipient's sessions, or to their offline queue.
"""
from bson import ObjectId
from twisted.internet import defer

from chatnet import stopwords, words
from chatnet.errors import StoreUnavailable
from chatnet.messages import ChatMessage


class Posting:
    """@param config: the L{chatnet.config.NodeConfig} (C{offline_limit}).
    @param profanity: the L{chatnet.profanity.ProfanityFilter}.
    @param acceptor: the L{chatnet.accept.Acceptor}.
    @param message_log: the L{chatnet.stores.message_log.MessageLog}.
    @param offline: the L{chatnet.stores.mongo.OfflineStore}.
    @param directory: the L{chatnet.sessions.SessionDirectory}.
    @param router: the L{chatnet.cluster.router.Router}.
    @param rooms: the L{chatnet.cluster.router.RoomRouter}.
    @param emit: C{emit(event, *args)}.
    @param public_rooms: the L{chatnet.service.public_rooms.PublicRooms}
        (whose words the ranking counts).
    """

    def __init__(self, *, config, profanity, acceptor, message_log, offline, directory, router, rooms, emit,
                 public_rooms):
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

    async def accept(self, sender, text, ts, fmt="text", to="", room="", system=False, version=None):
        """Accept C{text} from C{sender} to C{room} or user C{to}: returns
        the L{ChatMessage} and its chat frame data (JSON bytes). C{system}:
        a message of the server API. Its words go to the public ranking
        only from a public room (L{chatnet.service.public_rooms}), less the
        stop words.
        C{version}: see L{chatnet.accept.Acceptor.accept}.

        @raise StoreUnavailable: the write-behind log is full (MongoDB is
            slow or down): nothing was accepted (503)."""
        if self.message_log.full:
            raise StoreUnavailable("mongodb", "message log full")
        message = ChatMessage.new(sender, self.profanity.mask(text), ts, fmt, to, room, system=system)
        counted = await self.public_rooms.counted(room)
        tokens = stopwords.without(words.tokenize(message.message), self.stop_words) if counted else ()
        data = await self.acceptor.accept(message, tokens, version)
        self.message_log.append(message.document())
        self.emit("message_accepted", message)
        return message, data

    def to_room(self, message, data):
        """Fan an accepted room message out (in the background)."""
        defer.ensureDeferred(self.rooms.room(message, data))

    def direct(self, message, data, target):
        """Deliver an accepted direct message to C{target}, the recipient's
        session records (in the background)."""
        self.router.direct(message, data, target)

    async def queue(self, message):
        """Queue an accepted direct message for its offline recipient."""
        await self.offline.put(message.msgId, message.to, message.frame_data(), self.config.offline_limit)

    async def after_queued(self, message, data):
        """The recipient may have logged in meanwhile, after their queue was
        read: deliver it now (and unqueue it) if so."""
        target = await self.directory.lookup_all(message.to, refresh=True) or None
        if target is not None:
            defer.ensureDeferred(self._deliver_late(message, data, target))

    async def _deliver_late(self, message, data, target):
        if await self.router.direct(message, data, target):
            await self.offline.remove([ObjectId(message.msgId)])
