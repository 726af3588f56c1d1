"""What a node does for the server API (docs/api.md): the application's
own requests, sent by a gateway over the internal port
(L{chatnet.cluster.api_responder} unpacks them), never by a client.

Failures are L{ProtocolError}s with the HTTP status the gateway answers
(400, 404, 409, 503) or L{StoreUnavailable} (503).
"""
from argon2 import PasswordHasher
from twisted.internet import defer, threads
from twisted.logger import Logger

from chatnet.domain import moderation
from chatnet.domain.messages import now_ms, room_channel
from chatnet.domain.names import user_name_problem
from chatnet.errors import PeerUnavailable, ProtocolError, StoreUnavailable
from chatnet.protocols.constants import ALLIANCE_PREFIX, WORLD, is_automatic, online_for

log = Logger()

#: seconds a disconnect waits for the closed sessions to be logged out
CLOSE_WAIT = 5.0

_hasher = PasswordHasher()


def hash_password(password):
    """The argon2 hash of C{password} (as L{chatnet.ops.seed} stores it); blocking."""
    return _hasher.hash(password)


def not_found(what):
    return ProtocolError(404, f"{what} does not exist")


async def close_sessions(sessions, username, clock):
    """Close every session of C{username} on this node with close code
    4010 and wait (at most L{CLOSE_WAIT} seconds) until they are logged out;
    returns how many there were."""
    connections = sessions.all(username)
    for connection in connections:
        connection.disconnected()
    if connections:
        gone = defer.DeferredList([c.gone for c in connections], consumeErrors=True)
        try:
            await gone.addTimeout(CLOSE_WAIT, clock)
        except defer.TimeoutError:
            log.warn("sessions of {user} did not close in time", user=username)
    return len(connections)


class ServerApi:
    """@param config: the L{chatnet.config.NodeConfig} (message length).
    @param clock: an C{IReactorTime}.
    @param view: the L{chatnet.cluster.view.ClusterView} (this node's id).
    @param mongo: the L{chatnet.stores.mongo.MongoStore}.
    @param directory: the L{chatnet.service.online.SessionDirectory}.
    @param sessions: the L{chatnet.service.online.LocalSessions}.
    @param posting: the L{chatnet.service.posting.Posting}.
    @param rooms: the L{chatnet.cluster.router.RoomRouter} (told of
        membership changes).
    @param nodes: the L{chatnet.cluster.remote.OtherNodes} (disconnects on
        other nodes).
    @param history: the L{chatnet.service.history.History} (the floor of a room
        made under a deleted one's name).
    @param hash_password: C{hash_password(password)}, blocking: run in a thread.
    """

    def __init__(self, *, config, clock, view, mongo, directory, sessions, posting, rooms, nodes, history=None,
                 hash_password=hash_password):
        self.config = config
        self.clock = clock
        self.view = view
        self.mongo = mongo
        self.directory = directory
        self.sessions = sessions
        self.posting = posting
        self.rooms = rooms
        self.nodes = nodes
        self.history = history
        self.hash_password = hash_password

    # -- messages ------------------------------------------------------------

    async def post(self, sender, text, room=None, to=None):
        """Post C{text} from C{sender} to C{room} or user C{to}, as a
        client's chat: returns its L{chatnet.service.posting.Accepted}."""
        if len(text) > self.config.max_message_chars:
            raise ProtocolError(400, f"field 'message' is longer than {self.config.max_message_chars} characters")
        ts = now_ms(self.clock)
        if room:
            await self._check_room(room)
            accepted = await self.posting.post(sender, text, ts, room=room, system=True)
        else:
            target = await self.directory.lookup_all(to) or None
            if target is None and not await self.mongo.user_exists(to):
                raise not_found(f"user {to}")
            accepted = await self.posting.post(sender, text, ts, to=to, target=target, system=True)
        return accepted

    async def _check_room(self, room):
        if room == WORLD or (room.startswith(ALLIANCE_PREFIX) and is_automatic(room)):
            return
        if room.startswith(ALLIANCE_PREFIX) or not await self.mongo.room_exists(room):
            raise not_found(f"room {room}")

    # -- presence --------------------------------------------------------------

    async def presence(self, username):
        """C{(online, nodes, onlineFor or None)} of C{username}."""
        try:
            records = await self.directory.lookup_all(username, refresh=True)
        except StoreUnavailable:
            records = self.directory.cached_all(username)
        if not records:
            if not await self.mongo.user_exists(username):
                raise not_found(f"user {username}")
            return False, [], None
        since = min(r.loginTime for r in records)
        return True, sorted({r.nodeId for r in records}), online_for(since, now_ms(self.clock))

    async def room_presence(self, room):
        """The online members of C{room} (sorted, as many as fit in
        the configured C{max_presence_bytes}), and whether some were left
        out."""
        if room == WORLD:
            online = {r.username for r in self.directory.online()}
        elif is_automatic(room):
            alliance = room[len(ALLIANCE_PREFIX):]
            online = {r.username for r in self.directory.online() if r.alliance == alliance}
        else:
            members = None if room.startswith(ALLIANCE_PREFIX) else await self.mongo.room_members(room)
            if members is None:
                raise not_found(f"room {room}")
            online = {m for m in members if self.directory.cached_all(m)}
        names, size = [], 0
        for name in sorted(online):
            size += len(name.encode("utf-8")) + 2
            if size > self.config.max_presence_bytes:
                return names, True
            names.append(name)
        return names, False

    # -- sessions --------------------------------------------------------------

    async def disconnect_user(self, username):
        """L{disconnect} an existing user (404 for an unknown one)."""
        if not await self.mongo.user_exists(username):
            raise not_found(f"user {username}")
        return await self.disconnect(username)

    async def disconnect(self, username):
        """Close every session of C{username} in the cluster (close code
        4010): those on this node, and on each other node the session
        directory names; returns how many were closed."""
        closed = await close_sessions(self.sessions, username, self.clock)
        try:
            records = await self.directory.lookup_all(username, refresh=True)
        except StoreUnavailable:
            records = self.directory.cached_all(username)
        others = sorted({r.nodeId for r in records} - {self.view.node_id})
        answers = await defer.DeferredList(
            [defer.ensureDeferred(self.nodes.close_sessions(node, username)) for node in others],
            consumeErrors=True,
        )
        for node, (ok, answer) in zip(others, answers):
            if ok:
                closed += answer
            elif answer.check(PeerUnavailable):
                log.warn("sessions of {user} on {node} not closed: node unreachable", user=username, node=node)
            else:
                log.warn("sessions of {user} on {node} not closed: {why}", user=username, node=node,
                         why=answer.getErrorMessage())
        return closed

    # -- accounts --------------------------------------------------------------

    async def create_user(self, username, password=None, alliance=None):
        problem = user_name_problem(username)
        if problem is not None:
            raise ProtocolError(400, f"a user name {problem}")
        doc = {"username": username}
        if password:
            doc["passwordHash"] = await threads.deferToThread(self.hash_password, password)
        if alliance:
            doc["alliance"] = alliance
        if not await self.mongo.create_user(doc):
            raise ProtocolError(409, f"user {username} exists already")

    async def delete_user(self, username):
        """Delete the account and everything it had
        (L{chatnet.stores.mongo.MongoStore.delete_user}) and close its
        sessions; how many were closed."""
        rooms = await self.mongo.rooms_of([username])
        if not await self.mongo.delete_user(username, now_ms(self.clock)):
            raise not_found(f"user {username}")
        for room in sorted(rooms):
            await self.rooms.member_changed(room, username, False)
        return await self.disconnect(username)

    # -- rooms -----------------------------------------------------------------

    def _ordinary(self, room):
        if room == WORLD or room.startswith(ALLIANCE_PREFIX):
            raise ProtocolError(400, f"{room} is an automatic room: its members are who is online")

    async def create_room(self, room, private=False, owner=None):
        self._ordinary(room)
        moderation.check_room_name(room)
        if owner and not await self.mongo.user_exists(owner):
            raise not_found(f"user {owner}")
        floor = await self.history.current_seq(room_channel(room)) if self.history is not None else 0
        if not await self.mongo.create_room(room, owner or None, bool(private), floor):
            raise ProtocolError(409, f"room {room} exists already")
        if owner:
            await self.rooms.member_changed(room, owner, True)

    async def delete_room(self, room):
        self._ordinary(room)
        members = await self.mongo.delete_room(room)
        if members is None:
            raise not_found(f"room {room}")
        for member in members:
            await self.rooms.member_changed(room, member, False)

    async def room_member(self, room, username, member):
        """Make C{username} a member of C{room} or not; True if that changed."""
        self._ordinary(room)
        members = await self.mongo.room_members(room)
        if members is None:
            raise not_found(f"room {room}")
        if member and not await self.mongo.user_exists(username):
            raise not_found(f"user {username}")
        changed = (username in members) != member
        found = await (self.mongo.add_member if member else self.mongo.remove_member)(room, username)
        if not found:
            raise not_found(f"room {room}")
        if changed:
            await self.rooms.member_changed(room, username, member)
        return changed
