"""What each client action means (docs/protocol.md, "What a client can ask").

A handler gets the connection and a decoded, type-checked :class:`Request`
and either answers through the connection or raises :class:`ProtocolError`.
"""
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from twisted.internet import threads
from twisted.logger import Logger

from chatnet import moderation
from chatnet.accept import StaleRoomState
from chatnet.budget import ByteBudget
from chatnet.errors import ProtocolError, StoreUnavailable, not_member, not_online, unknown_room
from chatnet.history import RESUME_LIMIT
from chatnet.login_throttle import LoginThrottle
from chatnet.messages import dm_channel, now_ms, room_channel
from chatnet.names import user_name_problem
from chatnet.protocols import codec
from chatnet.protocols.codec import INT64_MAX
from chatnet.protocols.constants import ALLIANCE_PREFIX, FEATURES, WORLD, automatic_rooms, is_automatic, online_for
from chatnet.service.posting import Posting
from chatnet.service.public_rooms import PublicRooms
from chatnet.sessions import SessionRecord

log = Logger()

INTERNAL_ACTIONS = frozenset(
    {"leaderConnect", "syncServers", "serverList", "registerServer", "heartbeat", "deliver", "relay"}
)
MAX_NAME = 128
# the longest login token (chatnet.tokens) looked at
MAX_TOKEN_CHARS = 8192
# names (rooms and conversations together) one resume may ask about
RESUME_NAMES = 100
RESUME_WAIT = 3.0
# posts tried again after the user's room state changed under them
STALE_TRIES = 3
FORMATS = 32
_hasher = PasswordHasher()


def check_password(stored_hash, password):
    try:
        return _hasher.verify(stored_hash, password)
    except (VerificationError, InvalidHashError):
        return False


class ChatHandlers:
    """The client actions of one node: one short method per action of
    docs/protocol.md, with the checks they share (some 600 lines because
    there are sixteen actions; each reads on its own, the rules of room
    moderation are in L{chatnet.moderation}, and splitting the actions
    would scatter the one table a reader looks for). Collaborators
    (keyword arguments; a test gives only those its actions use):

    @param config: the L{chatnet.config.NodeConfig}.
    @param clock: an C{IReactorTime} (and C{callLater}).
    @param view: the L{chatnet.cluster.view.ClusterView} (this node's id).
    @param redis: the L{chatnet.stores.redis.RedisStore} (the login throttle).
    @param mongo: the L{chatnet.stores.mongo.MongoStore} (users, rooms).
    @param offline: the L{chatnet.stores.mongo.OfflineStore}.
    @param history: the L{chatnet.history.History}.
    @param popular: the L{chatnet.popular.PopularWords}.
    @param profanity: the L{chatnet.profanity.ProfanityFilter}.
    @param acceptor: the L{chatnet.accept.Acceptor}.
    @param message_log: the L{chatnet.stores.message_log.MessageLog}.
    @param directory: the L{chatnet.sessions.SessionDirectory}.
    @param sessions: the L{chatnet.sessions.LocalSessions}.
    @param presence: the L{chatnet.cluster.presence.Presence} (announces).
    @param router: the L{chatnet.cluster.router.Router} (direct messages).
    @param rooms: the L{chatnet.cluster.router.RoomRouter}.
    @param feed: the L{chatnet.service.roomfeed.RoomFeed} (the rooms a
        session gets).
    @param delivery: the L{chatnet.service.delivery.LocalDelivery}.
    @param tokens: the L{chatnet.tokens.TokenVerifier} of token logins, or
        None (the node takes no tokens).
    @param room_state: the L{chatnet.service.roomstate.RoomState}, or None
        (posts are then checked against the session's rooms and mutes only).
    @param emit: C{emit(event, *args)} (L{chatnet.events.EventBus.emit}).
    @param budget: the L{chatnet.budget.ByteBudget} every request is charged
        to first (default: the one of C{config}).
    """

    def __init__(self, *, config, clock, view=None, redis=None, mongo=None, offline=None, history=None,
                 popular=None, profanity=None, acceptor=None, message_log=None, directory=None, sessions=None,
                 presence=None, router=None, rooms=None, feed=None, delivery=None, tokens=None,
                 room_state=None, emit=lambda event, *args: None, budget=None):
        self.config = config
        self.clock = clock
        self.view = view
        self.mongo = mongo
        self.offline = offline
        self.history = history
        self.popular_words = popular
        self.profanity = profanity
        self.acceptor = acceptor
        self.message_log = message_log
        self.directory = directory
        self.sessions = sessions
        self.presence = presence
        self.router = router
        self.rooms = rooms
        self.feed = feed
        self.delivery = delivery
        self.tokens = tokens
        self.room_state = room_state
        self.emit = emit
        self.posting = Posting(config=config, profanity=profanity, acceptor=acceptor, message_log=message_log,
                               offline=offline, directory=directory, router=router, rooms=rooms, emit=emit,
                               public_rooms=PublicRooms(mongo, clock))
        self.login_throttle = LoginThrottle(redis, clock)
        self.budget = budget if budget is not None else ByteBudget.from_config(config, clock)
        # what an extension adds to the login answer (chatnet.livehandlers)
        self.login_extras = _no_extras
        # what it adds to the joinRoom answer: join_extras(connection, room document or None)
        self.join_extras = lambda connection, doc: {}
        self.actions = {
            "login": self.login,
            "chat": self.chat,
            "joinRoom": self.join_room,
            "leaveRoom": self.leave_room,
            "listRooms": self.list_rooms,
            "userInfo": self.user_info,
            "popular": self.popular,
            "resume": self.resume,
            "createRoom": self.create_room,
            "invite": self.invite,
            "kick": self.kick,
            "ban": self.ban,
            "mute": self.mute,
            "setRole": self.set_role,
        }

    async def handle(self, connection, request):
        record = connection.record
        self.budget.charge(connection, record.username if record is not None else None, request.size)
        action = request.action
        handler = self.actions.get(action)
        if handler is None:
            if action in INTERNAL_ACTIONS:
                raise ProtocolError(403, f"{action} is a cluster-internal action, refused on the client port", action)
            raise ProtocolError(400, f"unknown action {action[:64]!r}", action[:64])
        if action != "login" and connection.record is None:
            raise ProtocolError(401, "log in first", action)
        if action == "resume" and "resume" not in connection.features:
            raise ProtocolError(400, f"unknown action {action!r}", action)
        if connection.session.holding and action != "resume":
            # held after a login with "resume", but the client goes on without
            connection.session.release()
        await handler(connection, request)

    # -- login ---------------------------------------------------------------

    async def login(self, connection, request):
        username = request.string("username", max_length=MAX_NAME)
        password = request.string("password", required=False)
        token = request.string("token", required=False, max_length=MAX_TOKEN_CHARS)
        wanted = request.string_list("features")
        problem = user_name_problem(username)
        if problem is not None:
            raise ProtocolError(400, f"a user name {problem}", "login")
        if connection.record is not None:
            if connection.record.username == username:
                connection.answer("login", self._login_data(connection.record), request)
                return
            raise ProtocolError(400, "already logged in; open another connection for another user", "login")
        address = _peer_address(connection)
        await self.login_throttle.check(username, address)
        if token is not None:
            user = await self._token_user(username, token, address)
        else:
            user = await self._password_user(username, password, address)
        alliance = user.get("alliance") if isinstance(user.get("alliance"), str) else ""
        if connection.closed:
            return
        features = frozenset(f for f in wanted if f in FEATURES)
        record = SessionRecord.new(username, self.view.node_id, now_ms(self.clock), alliance, "multi" in features)
        session = connection.session
        replaced = self.sessions.add(
            username, connection, keep=lambda other: other.record is not None and other.record.coexists(record))
        session.logged_in(record, features)
        try:
            await self.directory.publish(record)
        except StoreUnavailable:
            self.sessions.remove(username, connection)
            for previous in replaced:
                self.sessions.add(username, previous, keep=lambda other: True)
            session.login_undone()
            raise
        for previous in replaced:
            previous.replaced()
        if not self.directory.has(record):
            # a newer login of this user on another node took over meanwhile
            connection.replaced()
            return
        self.presence.announce(record, True)
        if not connection.closed:
            # its rooms' messages from now on
            try:
                if self.room_state is not None:
                    await self.room_state.session_started(connection)
                else:
                    await self.feed.session_started(connection)
            except StoreUnavailable:
                await session.logout()
                raise
        if connection.closed or connection.record is not record:
            # the client left while we were logging it in (or a newer login took over)
            await session.logout()
            return
        data = self._login_data(record)
        if "features" in request.data:
            data["features"] = sorted(connection.features)
        if "resume" in connection.features:
            # a resume is likely next: live messages wait for its replay, so
            # that they follow it in seq order (from before the extras are
            # read: a message sent meanwhile would be replayed too)
            session.hold(at_most=RESUME_WAIT)
        data.update(await self.login_extras(connection))
        connection.answer("login", data, request)
        self.emit("user_online", username, self.view.node_id)
        log.info("{user} logged in on {node}", user=username, node=self.view.node_id)
        await self._deliver_queued(connection, username)

    async def _password_user(self, username, password, address):
        """The user record of a login by password (or without one, with
        C{--open-login}); a failed login otherwise."""
        user = await self.mongo.find_user(username)
        if user is None:
            await self._login_failed(username, address, "unknown user or wrong password")
        stored = user.get("passwordHash")
        if stored:
            if password is None or not await threads.deferToThread(check_password, stored, password):
                await self._login_failed(username, address, "unknown user or wrong password")
            await self.login_throttle.succeeded(username)
        elif not self.config.open_login:
            await self._login_failed(username, address, "this user has no password and open login is off")
        elif user.get("tokenOnly"):
            # made by a token login: open login must not let anyone in as them
            await self._login_failed(username, address, "unknown user or wrong password")
        return user

    async def _token_user(self, username, token, address):
        """The user record of a login by token (L{chatnet.tokens}): made on
        the first login, its alliance that of the token's C{alliance} claim
        if it has one; a failed login if the token is not good for
        C{username} (never saying why)."""
        claims = self.tokens.verify(token, username) if self.tokens is not None else None
        if claims is None:
            await self._login_failed(username, address, "unknown user or wrong password")
        deleted = (await self.mongo.deleted_at([username])).get(username)
        if deleted is not None and not claims.issued_after(deleted):
            # issued before the user was deleted (or without "iat"): it
            # must not bring the account back
            await self._login_failed(username, address, "unknown user or wrong password")
        user = await self.mongo.token_user(username, claims.alliance)
        await self.login_throttle.succeeded(username)
        return user

    async def _login_failed(self, username, address, why):
        """Count the failed login (L{LoginThrottle}), then refuse it (401)."""
        try:
            await self.login_throttle.failed(username, address)
        except StoreUnavailable:
            log.warn("failed login of {user} not counted: redis unavailable", user=username)
        raise ProtocolError(401, why, "login")

    async def _deliver_queued(self, connection, username):
        """Send what was queued for C{username} while they were offline,
        oldest first, then forget it."""
        try:
            docs, dropped = await self.offline.take(username)
        except StoreUnavailable:
            log.warn("offline messages of {user} not delivered now: mongodb unavailable", user=username)
            return
        if connection.closed:
            return
        for doc in docs:
            data = doc["data"]
            self.delivery.deliver_queued(connection, data["msgId"], codec.chat_data_of(data))
        if "offline" in connection.features and (docs or dropped):
            # after the queued messages, also while a resume holds them back
            connection.push(codec.encode("offline", {"delivered": len(docs), "dropped": dropped}))
        try:
            await self.offline.remove([doc["_id"] for doc in docs])
        except StoreUnavailable:
            log.warn("offline messages of {user} delivered but not removed", user=username)

    def _login_data(self, record):
        return {"username": record.username, "sessionId": record.sessionId, "nodeId": record.nodeId}

    # -- chat ------------------------------------------------------------------

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
            await self._check_member(connection, [room], "chat")
            try:
                return await self.posting.post(
                    username, text, ts, fmt, room=room, version=version,
                    accepted=lambda accepted: self._answer_chat(connection, request, accepted, text))
            except StaleRoomState:
                await self.room_state.refresh([username])
        raise StoreUnavailable("redis", "chat")

    def check_member(self, connection, rooms, action):
        return self._check_member(connection, rooms, action)

    async def _check_member(self, connection, rooms, action):
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

    # -- rooms -----------------------------------------------------------------

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
                                           **self.join_extras(connection, doc)}, request)
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
        to or is invited to."""
        username = connection.record.username
        rooms = [{"roomName": WORLD, "members": len(self.directory.online())}]
        for doc in sorted(await self.mongo.room_list(), key=lambda d: d["roomName"]):
            if moderation.visible(doc, username):
                entry = {"roomName": doc["roomName"], "members": len(doc.get("members") or ())}
                if doc.get("private"):
                    entry["private"] = True
                rooms.append(entry)
        connection.answer("listRooms", {"rooms": rooms}, request)

    # -- rooms users create and moderate (chatnet.moderation) -------------------

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

    # -- information -------------------------------------------------------------

    async def user_info(self, connection, request):
        username = request.string("username", max_length=MAX_NAME)
        # from Redis: a session that logged in a moment ago on another node
        # may not have been announced here yet (the cache if Redis is down)
        try:
            records = await self.directory.lookup_all(username, refresh=True)
        except StoreUnavailable:
            records = self.directory.cached_all(username)
        if not records:
            raise not_online(username, "userInfo")
        login_time = min(r.loginTime for r in records)
        records = self.directory.reachable(records)
        nodes = sorted({r.nodeId for r in records})
        connection.answer(
            "userInfo",
            {
                "username": username,
                "loginTime": login_time,
                "nodeId": records[-1].nodeId,
                "nodes": nodes,
                "isOnline": True,
                "onlineFor": online_for(login_time, now_ms(self.clock)),
            },
            request,
        )

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
            await self._check_member(connection, rooms, "resume")
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

    async def popular(self, connection, request):
        # old clients send n as typed: a string of digits
        n = request.integer("n", default=1, minimum=0, maximum=1000, digits=True) or 1
        connection.answer("popular", {"words": await self.popular_words.top(n)}, request)


async def _no_extras(connection):
    return {}


def _peer_address(connection):
    """The client's IP address ("" if the transport has none)."""
    transport = getattr(connection, "transport", None)
    return getattr(transport.getPeer(), "host", "") if transport is not None else ""


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
