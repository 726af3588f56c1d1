"""The ``login`` action (docs/protocol.md): logging in by password or
token, then what was queued for the user while they were offline."""
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from twisted.internet import threads
from twisted.logger import Logger

from chatnet.actions.extras import NO_EXTRAS
from chatnet.actions.limits import MAX_NAME, RESUME_WAIT
from chatnet.domain.messages import now_ms
from chatnet.domain.names import user_name_problem
from chatnet.errors import ProtocolError, StoreUnavailable
from chatnet.protocols import codec
from chatnet.protocols.constants import FEATURES
from chatnet.service.online import SessionRecord

log = Logger()

# the longest login token (chatnet.service.tokens) looked at
MAX_TOKEN_CHARS = 8192
_hasher = PasswordHasher()


def check_password(stored_hash, password):
    try:
        return _hasher.verify(stored_hash, password)
    except (VerificationError, InvalidHashError):
        return False


class LoginActions:
    """C{login}. Collaborators:

    @param config: the L{chatnet.config.NodeConfig} (C{open_login}).
    @param clock: an C{IReactorTime}.
    @param view: the L{chatnet.cluster.view.ClusterView} (this node's id).
    @param mongo: the L{chatnet.stores.mongo.MongoStore} (users).
    @param offline: the L{chatnet.stores.mongo.OfflineStore}.
    @param directory: the L{chatnet.service.online.SessionDirectory}.
    @param sessions: the L{chatnet.service.online.LocalSessions}.
    @param presence: the L{chatnet.cluster.presence.Presence} (announces).
    @param feed: the L{chatnet.service.roomfeed.RoomFeed} (the rooms a
        session gets), used when there is no C{room_state}.
    @param delivery: the L{chatnet.service.delivery.LocalDelivery}.
    @param login_throttle: the L{chatnet.limits.login_throttle.LoginThrottle}.
    @param tokens: the L{chatnet.service.tokens.TokenVerifier} of token logins, or
        None (the node takes no tokens).
    @param room_state: the L{chatnet.service.roomstate.RoomState}, or None.
    @param extras: what an extension adds to the login answer
        (L{chatnet.actions.extras}).
    @param emit: C{emit(event, *args)} (L{chatnet.ops.events.EventBus.emit}).
    """

    def __init__(self, *, config, clock, view, mongo, offline, directory, sessions, presence, feed,
                 delivery, login_throttle, tokens=None, room_state=None, extras=NO_EXTRAS,
                 emit=lambda event, *args: None):
        self.config = config
        self.clock = clock
        self.view = view
        self.mongo = mongo
        self.offline = offline
        self.directory = directory
        self.sessions = sessions
        self.presence = presence
        self.feed = feed
        self.delivery = delivery
        self.login_throttle = login_throttle
        self.tokens = tokens
        self.room_state = room_state
        self.extras = extras
        self.emit = emit

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
                connection.answer("login", _login_data(connection.record), request)
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
        data = _login_data(record)
        if "features" in request.data:
            data["features"] = sorted(connection.features)
        if "resume" in connection.features:
            # a resume is likely next: live messages wait for its replay, so
            # that they follow it in seq order (from before the extras are
            # read: a message sent meanwhile would be replayed too)
            session.hold(at_most=RESUME_WAIT)
        data.update(await self.extras.login_answer(connection))
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
        """The user record of a login by token (L{chatnet.service.tokens}): made on
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


def _login_data(record):
    return {"username": record.username, "sessionId": record.sessionId, "nodeId": record.nodeId}


def _peer_address(connection):
    """The client's IP address ("" if the transport has none)."""
    transport = getattr(connection, "transport", None)
    return getattr(transport.getPeer(), "host", "") if transport is not None else ""
