"""Each user's room membership and moderation state: stored in MongoDB,
versioned in Redis, and followed by the user's sessions on every node.

MongoDB's room documents are the truth (C{members}, C{banned}, C{muted}).
A session keeps a copy: the rooms it knows include its user, the rooms it
is delivered (L{chatnet.service.roomfeed.RoomFeed}), the ends of its mutes.
Every write that changes a user's membership or moderation state (join,
leave, kick, ban, mute, a room made or deleted, the server API's changes)
is followed by a new version of the user's state in Redis
(C{chatnet:room-state:<username>}). A version is a random token, never a
counter: a Redis that lost the key or restarted empty never gives an old
value again, so equal versions mean nothing was written in between. A
session notes the version it read I{before} it read the state from MongoDB,
so its copy is at least as new as its version.

* A post to an ordinary room carries the version its checks were made
  against to the accept script (L{chatnet.service.accept}), which refuses it in the
  same step as it would give the seq if the version moved
  (L{chatnet.service.accept.StaleRoomState}); the node then reads the state again
  (L{RoomState.refresh}), checks again and tries again. A post costs no
  store call more: one C{GET} inside the script that runs anyway.
* Every L{CHECK_EVERY} seconds each node reads the versions of its users
  (C{MGET}, L{CHECK_BATCH} at a time) and refreshes the sessions whose
  version moved: the rooms they are delivered follow the stored membership
  within that period plus the reads, whatever announcement or C{RoomMember}
  call came late or never.
* The node that made a change moves its own sessions to the new version
  without reading again (L{RoomState.advanced}) when they had the one just
  replaced: the change itself is all that happened in between.
"""
import os

from twisted.internet import defer, task
from twisted.logger import Logger

from chatnet.errors import StoreUnavailable
from chatnet.protocols.constants import is_automatic
from chatnet.stores.redis import room_state_key

log = Logger()

#: seconds between two checks of the versions of this node's users
CHECK_EVERY = 1.0
#: seconds a version is kept after it was written (a session that had it
#: then reads its state once more)
VERSION_TTL = 7 * 24 * 3600
#: users whose versions one MGET reads
CHECK_BATCH = 500
#: users whose state one MongoDB read refreshes
REFRESH_BATCH = 100
#: reads of a batch whose versions moved while it was read, at most
REFRESH_TRIES = 3

# KEYS: the user's version; ARGV: the new version, its expiry (s). Answers
# the version it replaced ("" if none).
NEW_VERSION = """
local old = redis.call('GET', KEYS[1]) or ''
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return old
"""


def _text(value):
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else str(value)


class RoomState:
    """
    @param redis: the L{chatnet.stores.redis.RedisStore} (the versions).
    @param mongo: the L{chatnet.stores.mongo.MongoStore} (the state).
    @param sessions: the L{chatnet.service.online.LocalSessions}.
    @param feed: the L{chatnet.service.roomfeed.RoomFeed} (what a session
        is delivered).
    @param clock: an C{IReactorTime}.
    """

    def __init__(self, redis, mongo, sessions, feed, clock):
        self.redis = redis
        self.mongo = mongo
        self.sessions = sessions
        self.feed = feed
        self.clock = clock
        self._unwritten = set()  # users whose new version Redis did not take
        self._loop = None

    # -- versions ----------------------------------------------------------

    async def changed(self, username):
        """C{username}'s state was written to MongoDB: give it a new
        version; C{(replaced, new)}, or None if Redis did not answer (then
        the next L{check} writes it: nothing is accepted without Redis
        meanwhile)."""
        new = os.urandom(8).hex()
        try:
            old = await self.redis.eval(NEW_VERSION, [room_state_key(username)], [new, VERSION_TTL])
        except StoreUnavailable:
            log.warn("room state of {user} changed: version not written yet (redis unavailable)", user=username)
            self._unwritten.add(username)
            return None
        self._unwritten.discard(username)
        return _text(old), new

    def advanced(self, username, versions):
        """This node made the change that gave C{username}'s state the
        version C{versions} (L{changed}) and applied it to its sessions: those
        that had the version it replaced have the new one."""
        if versions is None:
            return
        old, new = versions
        for connection in self.sessions.all(username):
            if connection.session.room_version == old:
                connection.session.room_version = new

    async def _versions(self, usernames):
        values = await self.redis.call("mget", [room_state_key(u) for u in usernames])
        return {u: _text(v) for u, v in zip(usernames, values)}

    # -- following the state -------------------------------------------------

    async def session_started(self, connection):
        """C{connection} logged in: its version, then its rooms
        (L{chatnet.service.roomfeed.RoomFeed.session_started}).

        @raise StoreUnavailable: as the feed's."""
        username = connection.record.username
        version = (await self._versions([username]))[username]
        await self.feed.session_started(connection)
        connection.session.room_version = version

    async def refresh(self, usernames):
        """Read the state of C{usernames} again; their sessions here follow
        it: the rooms they know and are delivered, their mutes (read again
        at their next post), their version.

        @raise StoreUnavailable: Redis or MongoDB did not answer."""
        usernames = sorted(set(usernames))
        for start in range(0, len(usernames), REFRESH_BATCH):
            await self._refresh(usernames[start:start + REFRESH_BATCH])

    async def _refresh(self, usernames):
        for _ in range(REFRESH_TRIES):
            connections = {u: [c for c in self.sessions.all(u) if c.record is not None] for u in usernames}
            before = await self._versions(usernames)
            rooms = await self.mongo.rooms_of(usernames)
            after = await self._versions(usernames)
            # (nothing awaited from here until every session follows: a
            # change made here meanwhile is applied after this)
            adds, moved = [], []
            for username in usernames:
                if before[username] != after[username]:
                    moved.append(username)
                    continue
                theirs = {room for room, members in rooms.items() if username in members}
                for connection in connections[username]:
                    missing = self._follow(connection, theirs, before[username])
                    if missing:
                        adds.append((missing, connection))
            for missing, connection in adds:
                await self.feed.add(missing, [connection])
            if not moved:
                return
            usernames = moved
        log.info("room state of {n} users kept changing while read; the next check reads it again", n=len(usernames))

    def _follow(self, connection, rooms, version):
        """Make C{connection}'s session follow C{rooms} (the ordinary rooms
        its user is in, as of C{version}); the rooms it is to be delivered
        from now on."""
        if connection.record is None:
            return None
        session = connection.session
        known = session.known_rooms()
        delivered = {room for room in session.marks or () if not is_automatic(room)}
        for room in sorted((known | delivered) - rooms):
            self.feed.remove(room, [connection])
        known.clear()
        known.update(rooms)
        session.mutes = None
        session.room_version = version
        return rooms - delivered

    async def check(self):
        """Write the versions Redis did not take; refresh the users of this
        node whose sessions have another version than Redis."""
        for username in sorted(self._unwritten):
            if await self.changed(username) is None:
                return  # Redis is still down: the next check tries again
        by_user = {}
        for connection in self.sessions:
            if connection.record is not None and connection.session.room_version is not None:
                by_user.setdefault(connection.record.username, []).append(connection)
        users = sorted(by_user)
        stale = []
        for start in range(0, len(users), CHECK_BATCH):
            batch = users[start:start + CHECK_BATCH]
            versions = await self._versions(batch)
            stale += [u for u in batch if any(c.session.room_version != versions[u] for c in by_user[u])]
        if stale:
            await self.refresh(stale)

    def start(self):
        """L{check} every L{CHECK_EVERY} seconds."""
        self._loop = task.LoopingCall(lambda: defer.ensureDeferred(self.check()).addErrback(
            lambda f: log.warn("checking the users' room state failed: {why}", why=f.getErrorMessage())))
        self._loop.clock = self.clock
        self._loop.start(CHECK_EVERY, now=False)

    def stop(self):
        if self._loop is not None and self._loop.running:
            self._loop.stop()
