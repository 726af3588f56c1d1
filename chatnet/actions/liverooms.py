"""What the ``live`` extension adds to the base actions (docs/protocol.md,
"`live`: history, edits, typing, read state, invitations"): the rooms in
the ``login`` answer, the role in the ``joinRoom`` answer, ``listRooms``
with membership, roles and unread counts, and the notices after
``invite``, ``joinRoom``, ``leaveRoom``, ``kick``, ``ban`` and
``createRoom`` (each runs after its base action succeeded: an error of the
base action leaves nothing added; L{chatnet.actions.wiring} chains them).
"""
from twisted.logger import Logger

from chatnet.domain import moderation
from chatnet.domain.messages import room_channel
from chatnet.errors import StoreUnavailable
from chatnet.protocols import codec
from chatnet.protocols.constants import ALLIANCE_PREFIX, WORLD, is_automatic
from chatnet.service.notices import LIVE
from chatnet.stores.redis import seq_key

log = Logger()


class LiveRooms:
    """The C{live} extension's extras (L{chatnet.actions.extras}) and its
    steps after base actions. Collaborators:

    @param redis: the L{chatnet.stores.redis.RedisStore} (rooms' last seqs).
    @param mongo: the L{chatnet.stores.mongo.MongoStore} (rooms).
    @param live: the L{chatnet.stores.livestate.LiveState} (read markers,
        the user's rooms).
    @param rooms: the L{chatnet.cluster.router.RoomRouter} (room notices,
        who is online in an alliance room).
    @param directory: the L{chatnet.service.online.SessionDirectory} (who is online).
    @param notices: the L{chatnet.service.notices.UserNotices} (invitations).
    @param background: the L{chatnet.service.background.Background} that
        owns the notices' fan-out, which a request does not wait for.
    """

    def __init__(self, *, redis, mongo, live, rooms, directory, notices, background):
        self.redis = redis
        self.mongo = mongo
        self.live = live
        self.rooms = rooms
        self.directory = directory
        self.notices = notices
        self.background = background

    # -- what the answers gain (chatnet.actions.extras) ---------------------------

    async def login_answer(self, connection):
        """What the C{login} answer gains with C{live}: the user's rooms."""
        if LIVE not in connection.features:
            return {}
        try:
            return {"rooms": await self._room_entries(connection, False)}
        except StoreUnavailable:
            log.warn("rooms of {user} not in its login answer: a store is unavailable",
                     user=connection.record.username)
            return {}

    @staticmethod
    def join_answer(connection, doc):
        """What the C{joinRoom} answer of an ordinary room (its document as
        read before the join: C{doc}) gains with C{live}: the user's role."""
        if doc is None or LIVE not in connection.features:
            return {}
        return {"role": moderation.role(doc, connection.record.username) or "member"}

    async def room_list(self, connection):
        """The C{listRooms} entries with C{live}; None without."""
        if LIVE not in connection.features:
            return None
        return await self._room_entries(connection, True)

    async def _unread(self, username, rooms):
        """C{room -> unread} of C{rooms} (the user is in each): the room's
        last seq minus the user's marker (0 without one)."""
        if not rooms:
            return {}
        channels = [room_channel(r) for r in rooms]
        counters = await self.redis.call("mget", [seq_key(c) for c in channels])
        markers = await self.live.markers(username, channels)
        unread = {}
        for room, channel, counter in zip(rooms, channels, counters):
            marker = markers.get(channel)
            unread[room] = 0 if marker is None or counter is None else max(0, int(counter) - marker)
        return unread

    async def _room_entries(self, connection, everything):
        """The C{listRooms} entries: the automatic rooms, then the rooms
        users made that the user may see (C{everything}) or is in (not
        C{everything}), each with the extension's fields."""
        record = connection.record
        me = record.username
        entries = [{"roomName": WORLD, "members": len(self.directory.online()), "member": True}]
        if record.alliance:
            name = ALLIANCE_PREFIX + record.alliance
            entries.append({"roomName": name, "members": len(self.rooms.rooms.online_in(name)), "member": True})
        if everything:
            docs = await self.mongo.room_list()
        else:
            # the rooms the session was given at login (no scan of every room)
            docs = await self.live.rooms(sorted(r for r in connection.session.known_rooms() if not is_automatic(r)))
        for doc in sorted(docs, key=lambda d: d["roomName"]):
            members = doc.get("members") or ()
            mine = me in members
            if not moderation.visible(doc, me) or not (everything or mine):
                continue
            entry = {"roomName": doc["roomName"], "members": len(members)}
            if doc.get("private"):
                entry["private"] = True
            if mine:
                entry["member"] = True
                entry["role"] = moderation.role(doc, me)
            elif me in (doc.get("invited") or ()):
                entry["invited"] = True
            entries.append(entry)
        unread = await self._unread(me, [e["roomName"] for e in entries if e.get("member")])
        for entry in entries:
            if entry.get("member"):
                entry["unread"] = unread.get(entry["roomName"], 0)
        return entries

    # -- the steps after base actions -------------------------------------------

    async def invited(self, connection, request):
        room, target = request.data["roomName"], request.data["username"]
        frame = codec.encode("roomNotice", {"roomName": room, "action": "invite", "kind": "invited",
                                            "username": target, "by": connection.record.username})
        self.background.run("invitation notice", self.notices.send(target, frame))

    async def joined(self, connection, request):
        """A new member's marker is the room's last seq; the others learn
        the count (the joining session has it in its answer)."""
        if not is_automatic(request.data["roomName"]):
            await self.created(connection, request)
            await self.members_changed(connection, request, skip=connection.record.sessionId)

    async def created(self, connection, request):
        room = request.data["roomName"]
        if is_automatic(room):
            return
        try:
            counters = await self.redis.call("mget", [seq_key(room_channel(room))])
            await self.live.mark_read(connection.record.username, room_channel(room), int(counters[0] or 0))
        except StoreUnavailable:
            log.warn("read marker of {user} in {room} not set", user=connection.record.username, room=room)

    async def members_changed(self, connection, request, skip=None):
        room = request.data["roomName"]
        if is_automatic(room):
            return
        try:
            doc = await self.mongo.room(room)
        except StoreUnavailable:
            return
        if doc is not None:
            count = {"roomName": room, "members": len(doc.get("members") or ())}
            self.background.run("members notice", self.rooms.notice(room, "members", count, LIVE, skip_session=skip))
