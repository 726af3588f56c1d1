"""Who is online, since when, on which node.

* :class:`LocalSessions`: the connections of this node, by username.
* :class:`SessionDirectory`: every online user of the cluster. Redis
  (``chatnet:sessions``) is the record; each node keeps a copy in memory so
  that routing a message costs no Redis round trip. The copy is kept right by
  the session changes every node announces to its peers, by the cluster
  membership (a user whose node is not a member is offline, whatever the
  record says) and, on a miss, by a look-up in Redis.
"""
import uuid
from collections import OrderedDict

import orjson
from twisted.logger import Logger

from chatnet.errors import StoreUnavailable
from chatnet.stores.redis import (
    DELETE_SESSION, REMOVE_STALE_SESSIONS, RESTORE_SESSION, SESSIONS, SET_SESSION, marker_key,
)

log = Logger()


class SessionRecord:
    """One login. C{version} orders the logins of a user (Redis's clock at
    the moment the session was published): the highest one is the session."""

    __slots__ = ("username", "nodeId", "sessionId", "loginTime", "alliance", "version")

    def __init__(self, username, nodeId, sessionId, loginTime, alliance="", version=0):
        self.username = username
        self.nodeId = nodeId
        self.sessionId = sessionId
        self.loginTime = loginTime
        self.alliance = alliance or ""
        self.version = version

    @classmethod
    def new(cls, username, nodeId, loginTime, alliance=""):
        return cls(username, nodeId, uuid.uuid4().hex, loginTime, alliance)

    def to_json(self):
        return orjson.dumps(
            {
                "nodeId": self.nodeId,
                "sessionId": self.sessionId,
                "loginTime": self.loginTime,
                "alliance": self.alliance,
                "version": self.version,
            }
        )

    @classmethod
    def from_json(cls, username, raw):
        d = orjson.loads(raw)
        return cls(
            username, d["nodeId"], d["sessionId"], d["loginTime"], d.get("alliance", ""), int(d.get("version", 0))
        )

    def __repr__(self):
        return f"<Session {self.username}@{self.nodeId} {self.sessionId[:8]}>"


class LocalSessions:
    """The logged-in connections of this node."""

    def __init__(self):
        self.by_user = {}

    def get(self, username):
        return self.by_user.get(username)

    def add(self, username, connection):
        """Register C{connection}; returns the connection it replaced."""
        old = self.by_user.get(username)
        self.by_user[username] = connection
        return old

    def remove(self, username, connection):
        if self.by_user.get(username) is connection:
            del self.by_user[username]
            return True
        return False

    def __len__(self):
        return len(self.by_user)

    def __iter__(self):
        return iter(list(self.by_user.values()))


class SessionDirectory:
    """C{ended} remembers the last C{ENDED} sessions that ended (logged out,
    replaced): a look-up whose Redis answer was read just before the session
    was deleted, or a late announcement, can then never bring one back."""

    ENDED = 100_000

    def __init__(self, redis, members=lambda: ()):
        self.redis = redis
        self.records = {}
        # callable: the node ids that are members of the cluster right now
        self.members = members
        self.ended = OrderedDict()  # sessionId -> None, oldest first

    # -- reading ----------------------------------------------------------

    def cached(self, username):
        """The session of C{username} if it is online as far as this node
        knows, without any I/O."""
        record = self.records.get(username)
        if record is not None and record.nodeId in self.members():
            return record
        return None

    async def lookup(self, username, refresh=False):
        """The session of C{username}, or C{None} if they are not online.

        The cache answers; Redis is asked only on a miss or when C{refresh}
        is set (after a delivery found the user gone from the node the cache
        named)."""
        if not refresh:
            record = self.cached(username)
            if record is not None:
                return record
        raw = await self.redis.call("hget", SESSIONS, username)
        if not raw:
            self.records.pop(username, None)
            return None
        record = SessionRecord.from_json(username, raw)
        if record.sessionId in self.ended:
            return None
        self.records[username] = record
        if record.nodeId not in self.members():
            return None
        return record

    def online(self):
        members = self.members()
        return [r for r in self.records.values() if r.nodeId in members]

    # -- changing ---------------------------------------------------------

    async def publish(self, record):
        """Make C{record} the session of its user; returns the record it
        replaced in Redis (or C{None})."""
        old, version = await self.redis.eval(SET_SESSION, [SESSIONS], [record.username, record.to_json()])
        record.version = int(version)
        current = self.records.get(record.username)
        if current is None or current.version <= record.version:
            self.records[record.username] = record
        if old:
            return SessionRecord.from_json(record.username, old)
        return None

    async def unpublish(self, record):
        """Remove C{record} unless a newer session replaced it meanwhile."""
        self.forget(record.username, record.sessionId)
        try:
            await self.redis.eval(DELETE_SESSION, [SESSIONS], [record.username, record.sessionId])
        except StoreUnavailable:
            log.warn("session of {user} left in redis; the leader removes it", user=record.username)

    def apply(self, record):
        """A peer announced C{record}; C{False} if we know a newer login
        (or that session ended already)."""
        if record.sessionId in self.ended:
            return False
        current = self.records.get(record.username)
        if current is not None and current.version > record.version:
            return False
        self.records[record.username] = record
        return True

    def forget(self, username, sessionId):
        """Session C{sessionId} of C{username} ended."""
        self.ended[sessionId] = None
        if len(self.ended) > self.ENDED:
            self.ended.popitem(last=False)
        record = self.records.get(username)
        if record is not None and record.sessionId == sessionId:
            del self.records[username]

    def forget_node(self, nodeId):
        for username in [u for u, r in self.records.items() if r.nodeId == nodeId]:
            del self.records[username]

    async def load(self):
        """Replace the cache with what Redis holds."""
        raw = await self.redis.call("hgetall", SESSIONS)
        records = {}
        for username, value in (raw or {}).items():
            if isinstance(username, bytes):
                username = username.decode()
            try:
                record = SessionRecord.from_json(username, value)
            except (ValueError, KeyError):
                continue
            if record.sessionId not in self.ended:
                records[username] = record
        # sessions announced while the snapshot was read stay
        for username, record in self.records.items():
            records.setdefault(username, record)
        self.records = records

    async def restore(self, record):
        """Write C{record} (a session this node holds) to Redis again, with
        its own version: it never looks like a newer login and never replaces
        one; C{True} if written."""
        self.apply(record)
        written = await self.redis.eval(
            RESTORE_SESSION, [SESSIONS], [record.username, record.to_json(), str(record.version)]
        )
        return bool(int(written))

    async def remove_stale(self, live_nodes):
        """Delete from Redis every session whose node is not live (leader),
        and the marker of each such node in the same step (see
        L{chatnet.stores.redis.REMOVE_STALE_SESSIONS}): a node that is alive
        after all publishes its sessions again at its next heartbeat."""
        removed = await self.redis.eval(
            REMOVE_STALE_SESSIONS, [SESSIONS], [marker_key("")] + sorted(live_nodes)
        )
        return int(removed)
