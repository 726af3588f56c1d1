"""Who is online, since when, on which nodes (a user may have several
sessions: logins with the feature ``multi``).

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
    the moment the session was published): a newer login takes the older
    ones over, except that sessions with C{multi} set stay side by side."""

    __slots__ = ("username", "nodeId", "sessionId", "loginTime", "alliance", "version", "multi")

    def __init__(self, username, nodeId, sessionId, loginTime, alliance="", version=0, multi=False):
        self.username = username
        self.nodeId = nodeId
        self.sessionId = sessionId
        self.loginTime = loginTime
        self.alliance = alliance or ""
        self.version = version
        # coexists with the user's other sessions that have it set
        self.multi = multi

    @classmethod
    def new(cls, username, nodeId, loginTime, alliance="", multi=False):
        return cls(username, nodeId, uuid.uuid4().hex, loginTime, alliance, multi=multi)

    def coexists(self, other):
        """True if this session and C{other} (of the same user) stay both."""
        return self.multi and other.multi

    def to_json(self):
        return orjson.dumps(self._fields())

    def _fields(self):
        # the version as a string: Lua's JSON keeps only 14 digits of a number
        return {
            "nodeId": self.nodeId,
            "sessionId": self.sessionId,
            "loginTime": self.loginTime,
            "alliance": self.alliance,
            "version": str(self.version),
            "multi": self.multi,
        }

    @classmethod
    def from_dict(cls, username, d):
        return cls(
            username, d["nodeId"], d["sessionId"], d["loginTime"], d.get("alliance", ""), int(d.get("version", 0)),
            bool(d.get("multi", False)),
        )

    @classmethod
    def from_json(cls, username, raw):
        return cls.from_dict(username, orjson.loads(raw))

    @classmethod
    def list_from_json(cls, username, raw):
        """The sessions of a Redis field: a JSON list of records (or one
        record, as older nodes wrote it)."""
        value = orjson.loads(raw)
        if isinstance(value, dict):
            value = [value] if value else []
        return [cls.from_dict(username, d) for d in value]

    def __repr__(self):
        return f"<Session {self.username}@{self.nodeId} {self.sessionId[:8]}>"


class LocalSessions:
    """The logged-in connections of this node, by username (a user may have
    several: logins with the feature C{multi})."""

    def __init__(self):
        self.by_user = {}  # username -> [connection, ...], oldest first

    def get(self, username):
        """The newest connection of C{username}, or C{None}."""
        connections = self.by_user.get(username)
        return connections[-1] if connections else None

    def all(self, username):
        """Every connection of C{username} on this node."""
        return list(self.by_user.get(username, ()))

    def add(self, username, connection, keep=lambda other: False):
        """Register C{connection}; returns the connections it replaced: those
        for which C{keep(connection)} is false."""
        old = self.by_user.get(username, [])
        kept = [c for c in old if c is not connection and keep(c)]
        replaced = [c for c in old if c is not connection and not keep(c)]
        self.by_user[username] = kept + [connection]
        return replaced

    def remove(self, username, connection):
        connections = self.by_user.get(username)
        if connections and connection in connections:
            connections.remove(connection)
            if not connections:
                del self.by_user[username]
            return True
        return False

    def __len__(self):
        return sum(len(c) for c in self.by_user.values())

    def __iter__(self):
        return iter([c for connections in self.by_user.values() for c in connections])


def _version(record):
    return record.version


class SessionDirectory:
    """C{ended} remembers the last C{ENDED} sessions that ended (logged out,
    replaced): a look-up whose Redis answer was read just before the session
    was deleted, or a late announcement, can then never bring one back.

    C{records}: username -> {sessionId: L{SessionRecord}}."""

    ENDED = 100_000

    def __init__(self, redis, members=lambda: (), unreachable=lambda node: False):
        self.redis = redis
        self.records = {}
        # callable: the node ids that are members of the cluster right now
        self.members = members
        # callable: whether this node lost its link to a node (it may have
        # died, and still be a member until its ZooKeeper session expires)
        self.unreachable = unreachable
        self.ended = OrderedDict()  # sessionId -> None, oldest first

    # -- reading ----------------------------------------------------------

    def cached_all(self, username):
        """The sessions of C{username} on member nodes as far as this node
        knows, oldest login first, without any I/O."""
        records = self.records.get(username)
        if not records:
            return []
        members = self.members()
        if len(records) == 1:
            (r,) = records.values()
            return [r] if r.nodeId in members else []
        return sorted((r for r in records.values() if r.nodeId in members), key=_version)

    def cached(self, username):
        """The newest session of C{username} if it is online as far as this
        node knows, without any I/O."""
        records = self.cached_all(username)
        return records[-1] if records else None

    def has(self, record):
        """True if C{record} is still one of its user's sessions here."""
        return self.records.get(record.username, {}).get(record.sessionId) is record

    async def lookup_all(self, username, refresh=False):
        """The sessions of C{username} (empty if they are not online).

        The cache answers; Redis is asked only on a miss or when C{refresh}
        is set (after a delivery found the user gone from a node the cache
        named)."""
        if not refresh:
            records = self.cached_all(username)
            if records:
                return records
        raw = await self.redis.call("hget", SESSIONS, username)
        records = [r for r in (SessionRecord.list_from_json(username, raw) if raw else [])
                   if r.sessionId not in self.ended]
        if records:
            self.records[username] = {r.sessionId: r for r in records}
        else:
            self.records.pop(username, None)
        return self.cached_all(username)

    def reachable(self, records):
        """C{records} less those on nodes this node lost its link to,
        unless that leaves none (a display of where a user is: right after
        a node died, the user's session there is gone, their new one not)."""
        kept = [r for r in records if not self.unreachable(r.nodeId)]
        return kept or records

    async def lookup(self, username, refresh=False):
        """The newest session of C{username}, or C{None} if they are not online."""
        records = await self.lookup_all(username, refresh)
        return records[-1] if records else None

    def online(self):
        """The newest session of each online user."""
        members = self.members()
        online = []
        for sessions in self.records.values():
            records = [r for r in sessions.values() if r.nodeId in members]
            if records:
                online.append(max(records, key=lambda r: r.version))
        return online

    # -- changing ---------------------------------------------------------

    async def publish(self, record):
        """Add C{record} to the sessions of its user (replacing those it does
        not coexist with); returns the records it replaced in Redis."""
        answer = await self.redis.eval(SET_SESSION, [SESSIONS],
                                       [record.username, record.to_json(), " ".join(sorted(self.members()))])
        old, version = answer[0], answer[1]
        record.version = int(version)
        if len(answer) > 2 and answer[2] is not None:
            # the user was online already (another session, or one whose node just died)
            record.loginTime = min(record.loginTime, int(answer[2]))
        self.apply(record)
        if old:
            return SessionRecord.list_from_json(record.username, old)
        return []

    async def unpublish(self, record):
        """Remove C{record} unless a newer session replaced it meanwhile."""
        self.forget(record.username, record.sessionId)
        try:
            await self.redis.eval(DELETE_SESSION, [SESSIONS], [record.username, record.sessionId])
        except StoreUnavailable:
            log.warn("session of {user} left in redis; the leader removes it", user=record.username)

    def apply(self, record):
        """A peer announced C{record}; C{False} if we know a newer login
        that took it over (or that session ended already). Older sessions
        it takes over are dropped."""
        if record.sessionId in self.ended:
            return False
        sessions = self.records.setdefault(record.username, {})
        for other in sessions.values():
            if other.sessionId != record.sessionId and other.version > record.version and not other.coexists(record):
                return False
        for other in list(sessions.values()):
            if other.sessionId != record.sessionId and other.version < record.version and not other.coexists(record):
                del sessions[other.sessionId]
        sessions[record.sessionId] = record
        return True

    def forget(self, username, sessionId):
        """Session C{sessionId} of C{username} ended."""
        self.ended[sessionId] = None
        if len(self.ended) > self.ENDED:
            self.ended.popitem(last=False)
        sessions = self.records.get(username)
        if sessions is not None:
            sessions.pop(sessionId, None)
            if not sessions:
                del self.records[username]

    def forget_node(self, nodeId):
        for username, sessions in list(self.records.items()):
            for sessionId in [s for s, r in sessions.items() if r.nodeId == nodeId]:
                del sessions[sessionId]
            if not sessions:
                del self.records[username]

    async def start(self):
        """L{load}, or start with an empty cache while Redis is unavailable
        (announcements and the presence heartbeat fill it)."""
        try:
            await self.load()
        except StoreUnavailable:
            log.warn("session cache starts empty: redis unavailable")

    async def load(self):
        """Replace the cache with what Redis holds."""
        raw = await self.redis.call("hgetall", SESSIONS)
        records = {}
        for username, value in (raw or {}).items():
            if isinstance(username, bytes):
                username = username.decode()
            try:
                found = SessionRecord.list_from_json(username, value)
            except (ValueError, KeyError, TypeError):
                continue
            found = {r.sessionId: r for r in found if r.sessionId not in self.ended}
            if found:
                records[username] = found
        # sessions announced while the snapshot was read stay
        for username, sessions in self.records.items():
            for sessionId, record in sessions.items():
                records.setdefault(username, {}).setdefault(sessionId, record)
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
