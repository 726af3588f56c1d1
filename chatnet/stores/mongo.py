"""MongoDB: users, rooms and their members, every message ever sent.

Works unchanged against a real ``mongod`` and against SecantusDB. Every call
is bounded by ``timeout``; a database that does not answer raises
:class:`StoreUnavailable`. Only values whose type the caller checked reach a
query: usernames and room names are plain strings here, never documents.
"""
from urllib.parse import urlparse

import txmongo
from txmongo.errors import TimeExceeded
from bson import ObjectId
from bson.errors import BSONError
from pymongo.errors import AutoReconnect, BulkWriteError, DuplicateKeyError, PyMongoError, WriteError
from pymongo.write_concern import WriteConcern
from twisted.internet import defer, error as netError, reactor as default_reactor, task
from twisted.logger import Logger
from txmongo import filter as qf

from chatnet.domain.moderation import mute_map
from chatnet.errors import StoreUnavailable

log = Logger()

UNAVAILABLE = (
    defer.TimeoutError,
    defer.CancelledError,
    AutoReconnect,
    netError.ConnectionRefusedError,
    netError.ConnectionLost,
    netError.ConnectionDone,
    TimeExceeded,
)


# What the driver raises for a document it cannot encode (BSON errors, an
# integer beyond 64 bits, a string that is no valid UTF-8, a wrong type).
ENCODING = (BSONError, OverflowError, ValueError, TypeError)

# Write errors that say "not now" (a failover, a timeout, a conflict), not
# "not this document": the batch is written again later.
TRANSIENT_CODES = frozenset({
    6, 7, 24, 46, 50, 64, 89, 91, 112, 133, 189, 262, 9001, 10058, 10107, 11600, 11601, 11602, 13435, 13436,
})


# An accepted message leaves the write-behind log only once it is in the
# journal: acknowledged without it, a server killed a moment later can lose
# it (mongod's default w:1 is acknowledged in memory).
JOURNALED = WriteConcern(w=1, j=True)


class Refused(Exception):
    """MongoDB (or the driver) refuses the documents themselves: writing the
    same ones again cannot help."""

    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


def parse_mongo_url(url):
    parsed = urlparse(url)
    if parsed.scheme not in ("mongodb", "mongodb+srv"):
        raise ValueError(f"not a mongodb:// URL: {url}")
    return parsed.path.strip("/") or "chat"


class MongoStore:
    def __init__(self, url, timeout=3.0, reactor=None, pool_size=2):
        self.url = url
        self.dbname = parse_mongo_url(url)
        self.timeout = timeout
        self.reactor = reactor or default_reactor
        self.pool_size = pool_size
        self.pool = None
        self.db = None
        self.errors = 0  # calls that failed: a metric

    def connect(self):
        self.pool = txmongo.connection.ConnectionPool(
            self.url, pool_size=self.pool_size, retry_delay=0.5, max_delay=2.0
        )
        self.db = self.pool[self.dbname]
        return self

    def disconnect(self):
        if self.pool is None:
            return defer.succeed(None)
        pool, self.pool = self.pool, None
        return pool.disconnect()

    async def _run(self, what, d):
        if self.db is None:
            raise StoreUnavailable("mongodb", what)
        d = defer.ensureDeferred(d) if not isinstance(d, defer.Deferred) else d
        d.addTimeout(self.timeout, self.reactor)
        try:
            return await d
        except (DuplicateKeyError, BulkWriteError):
            raise
        except Exception as e:
            if isinstance(e, UNAVAILABLE) or isinstance(e, PyMongoError):
                self.errors += 1
                log.warn("mongodb {what} failed: {e!r}", what=what, e=e)
                raise StoreUnavailable("mongodb", what)
            raise

    def run(self, what, d):
        """C{d} (a query of C{self.db}) bounded by the timeout; a database
        that does not answer raises L{StoreUnavailable}."""
        return self._run(what, d)

    async def ping(self):
        if self.db is None:
            raise StoreUnavailable("mongodb", "ping")
        return await self._run("ping", self.db.command("ping"))

    # -- schema ---------------------------------------------------------

    async def ensure_indexes_until_done(self, every=1.0):
        """L{ensure_indexes}, tried again every C{every} seconds until it
        succeeds or the store is disconnected (a node starts while MongoDB
        is down)."""
        while self.pool is not None:
            try:
                await self.ensure_indexes()
                return
            except Exception as e:
                log.warn("mongodb indexes not ensured yet: {e}", e=e)
                await task.deferLater(self.reactor, every, lambda: None)

    async def ensure_indexes(self):
        db = self.db
        await self._run("index", db.users.create_index(qf.sort(qf.ASCENDING("username")), unique=True))
        await self._run("index", db.rooms.create_index(qf.sort(qf.ASCENDING("roomName")), unique=True))
        await self._run(
            "index",
            db.messages.create_index(qf.sort(qf.ASCENDING("channel") + qf.ASCENDING("seq"))),
        )
        await self._run(
            "index",
            db.messages.create_index(qf.sort(qf.ASCENDING("channel") + qf.ASCENDING("ts"))),
        )
        await self._run("index", db.offline.create_index(qf.sort(qf.ASCENDING("to") + qf.ASCENDING("_id"))))

    # -- users ----------------------------------------------------------

    async def find_user(self, username):
        assert isinstance(username, str)
        return await self._run("login", self.db.users.find_one({"username": username}))

    async def user_exists(self, username):
        assert isinstance(username, str)
        doc = await self._run(
            "user", self.db.users.find_one({"username": username}, {"_id": 1})
        )
        return doc is not None

    async def create_user(self, doc):
        """Insert user C{doc} (with C{username}); C{False} if that user
        exists already."""
        try:
            await self._run("user", self.db.users.insert_one(doc))
        except DuplicateKeyError:
            return False
        return True

    async def delete_user(self, username, now_ms):
        """Delete the account C{username} and everything it had
        (docs/api.md): its memberships, ownerships, roles, invitations,
        bans and mutes, its offline queue; note the deletion
        (C{user_deletions}: tokens issued before fail, its conversations
        before are sealed). C{False} if there was no such user."""
        assert isinstance(username, str)
        if not await self.user_exists(username):
            return False
        # noted first: a token login meanwhile must not make the user again
        await self._run("user", self.db.user_deletions.update_one(
            {"_id": username}, {"$set": {"at": now_ms}}, upsert=True))
        result = await self._run("user", self.db.users.delete_one({"username": username}))
        if not result.deleted_count:
            return False
        db = self.db
        for field in ("members", "admins", "invited", "banned"):
            await self._run("user", db.rooms.update_many({field: username}, {"$pull": {field: username}}))
        await self._run("user", db.rooms.update_many({"owner": username}, {"$unset": {"owner": ""}}))
        docs = await self._run("user", db.rooms.find({"muted": {"$exists": True}}, {"roomName": 1, "muted": 1}))
        for doc in docs:
            if username in mute_map(doc.get("muted")) and isinstance(doc.get("roomName"), str):
                await self._set_mute(doc["roomName"], username, None, now_ms)
        await self._run("user", db.offline.delete_many({"to": username}))
        await self._run("user", db.offline_dropped.delete_one({"_id": username}))
        return True

    async def deleted_at(self, usernames):
        """Of C{usernames}: name -> when (ms) an account of that name was
        last deleted, for those ever deleted."""
        names = [u for u in usernames if isinstance(u, str)]
        if not names:
            return {}
        docs = await self._run("user", self.db.user_deletions.find({"_id": {"$in": names}}))
        return {d["_id"]: d.get("at") or 0 for d in docs if isinstance(d.get("_id"), str)}

    # -- rooms ----------------------------------------------------------

    async def delete_room(self, room):
        """Delete room C{room}; its members then, or None if there was no
        such room."""
        doc = await self._run("room", self.db.rooms.find_one_and_delete({"roomName": room}))
        return None if doc is None else list(doc.get("members") or ())

    async def room_members(self, room):
        """The members of C{room}, or None if there is no such room."""
        doc = await self._run("room", self.db.rooms.find_one({"roomName": room}, {"members": 1}))
        return None if doc is None else list(doc.get("members") or ())

    async def all_rooms(self):
        docs = await self._run("rooms", self.db.rooms.find({}, {"roomName": 1, "members": 1}))
        return {d["roomName"]: set(d.get("members") or ()) for d in docs if isinstance(d.get("roomName"), str)}

    async def add_member(self, room, username):
        """Persist C{username} as a member of C{room}; C{False} if no such room."""
        result = await self._run(
            "joinRoom",
            self.db.rooms.update_one({"roomName": room}, {"$addToSet": {"members": username}}),
        )
        return result.matched_count > 0

    async def remove_member(self, room, username):
        """Remove C{username} from the members of C{room}, and from its
        admins (a role ends with the membership); C{False} if no such room."""
        result = await self._run(
            "leaveRoom",
            self.db.rooms.update_one({"roomName": room}, {"$pull": {"members": username, "admins": username}}),
        )
        return result.matched_count > 0

    async def change_member(self, room, username, joined):
        """Add C{username} to C{room} (C{joined}) or remove them; the room's
        member count then, C{None} if there is no such room. Leaving ends
        an admin role too."""
        update = {"$addToSet": {"members": username}} if joined else {"$pull": {"members": username,
                                                                                "admins": username}}
        doc = await self._run(
            "joinRoom" if joined else "leaveRoom",
            self.db.rooms.find_one_and_update({"roomName": room}, update, projection={"members": 1},
                                              return_document=True),
        )
        return None if doc is None else len(doc.get("members") or ())

    async def membership(self, username, rooms):
        """Of C{rooms} (ordinary room names): those that have C{username}
        among their members, and those that exist (a second query, only when
        some are not the user's)."""
        rooms = list(rooms)
        docs = await self._run(
            "room", self.db.rooms.find({"roomName": {"$in": rooms}, "members": username}, {"roomName": 1})
        )
        member = {d.get("roomName") for d in docs}
        existing = set(member)
        others = [r for r in rooms if r not in member]
        if others:
            docs = await self._run("room", self.db.rooms.find({"roomName": {"$in": others}}, {"roomName": 1}))
            existing.update(d.get("roomName") for d in docs)
        return member, existing

    async def rooms_of(self, usernames):
        """The ordinary rooms that have any of C{usernames} among their
        members: room name -> those of C{usernames} that are members."""
        usernames = list(usernames)
        docs = await self._run(
            "room", self.db.rooms.find({"members": {"$in": usernames}}, {"roomName": 1, "members": 1})
        )
        wanted = set(usernames)
        return {d["roomName"]: wanted & set(d.get("members") or ()) for d in docs if isinstance(d.get("roomName"), str)}

    async def room_exists(self, room):
        doc = await self._run("room", self.db.rooms.find_one({"roomName": room}, {"_id": 1}))
        return doc is not None

    # -- messages -------------------------------------------------------

    async def insert_messages(self, docs):
        """Insert C{docs} (with C{_id} = message id); duplicates are skipped,
        so retrying a batch stores each message once.

        @return: C{{index: reason}} of the documents MongoDB refused as
            invalid; all the others are stored.
        @raise StoreUnavailable: MongoDB did not take the batch now (down, a
            timeout, a failover): write it again later.
        @raise Refused: the batch cannot be encoded: a document in it is
            invalid, which one is not known (none of them was stored).
        """
        if self.db is None:
            raise StoreUnavailable("mongodb", "store")
        try:
            d = self.db.messages.with_options(write_concern=JOURNALED).insert_many(docs, ordered=False)
            d.addTimeout(self.timeout, self.reactor)
            await d
        except BulkWriteError as e:
            return self._refused(e.details or {})
        except DuplicateKeyError:
            return {}
        except ENCODING as e:
            raise Refused(f"{type(e).__name__}: {e}")
        except Exception as e:
            self.errors += 1
            log.warn("mongodb store failed: {e!r}", e=e)
            raise StoreUnavailable("mongodb", "store")
        return {}

    def _refused(self, details):
        refused = {}
        for error in details.get("writeErrors") or ():
            code = error.get("code")
            if code == 11000:
                continue  # stored before: a batch written again
            if code in TRANSIENT_CODES:
                refused = None
                break
            refused[error.get("index")] = f"code {code}: {str(error.get('errmsg'))[:500]}"
        if refused is None or details.get("writeConcernErrors"):
            self.errors += 1
            log.warn("mongodb store failed: {e}", e=details.get("writeConcernErrors") or "a transient write error")
            raise StoreUnavailable("mongodb", "store")
        return refused

    async def dead_letter(self, entry):
        """Keep C{entry} (a message MongoDB refused, see
        L{chatnet.stores.message_log}) in C{dead_letters}; C{False} if it
        was there already.

        @raise StoreUnavailable: not now.
        @raise Refused: MongoDB refuses this entry too.
        """
        if self.db is None:
            raise StoreUnavailable("mongodb", "dead letter")
        try:
            d = self.db.dead_letters.with_options(write_concern=JOURNALED).insert_one(entry)
            d.addTimeout(self.timeout, self.reactor)
            await d
        except DuplicateKeyError:
            return False
        except WriteError as e:
            if e.code in TRANSIENT_CODES:
                raise StoreUnavailable("mongodb", "dead letter")
            raise Refused(f"code {e.code}: {e}")
        except ENCODING as e:
            raise Refused(f"{type(e).__name__}: {e}")
        except Exception as e:
            self.errors += 1
            log.warn("mongodb dead letter failed: {e!r}", e=e)
            raise StoreUnavailable("mongodb", "dead letter")
        return True

    async def last_messages(self, channel, limit=50):
        docs = await self._run(
            "history",
            self.db.messages.find(
                {"channel": channel},
                sort=qf.sort(qf.DESCENDING("seq")),
                limit=limit,
            ),
        )
        docs.reverse()
        return docs

    async def messages_after(self, channel, seq, limit):
        return await self._run(
            "history",
            self.db.messages.find(
                {"channel": channel, "seq": {"$gt": seq}},
                sort=qf.sort(qf.ASCENDING("seq")),
                limit=limit,
            ),
        )

    async def max_seq(self, channel):
        docs = await self.last_messages(channel, 1)
        return docs[0].get("seq", 0) if docs else 0

    # -- token login ------------------------------------------------------

    async def token_user(self, username, alliance):
        """The user record of C{username}, who logged in with a good token
        (L{chatnet.service.tokens}): made (without password) if there is none yet;
        its C{alliance} set to C{alliance} unless that is None. A user made
        so has C{"tokenOnly": True}: no login without a token or a password
        (not even with --open-login)."""
        assert isinstance(username, str) and (alliance is None or isinstance(alliance, str))
        user = await self.find_user(username)
        if user is None:
            doc = {"username": username, "tokenOnly": True}
            if alliance is not None:
                doc["alliance"] = alliance
            try:
                await self._run("login", self.db.users.insert_one(doc))
            except DuplicateKeyError:
                pass  # a login of theirs on another node made it meanwhile
            else:
                return doc
            user = await self.find_user(username)
        if alliance is not None and user.get("alliance") != alliance:
            await self._run("login", self.db.users.update_one({"username": username}, {"$set": {"alliance": alliance}}))
            user["alliance"] = alliance
        return user

    # -- rooms users create and moderate (chatnet.domain.moderation) --------------
    # The client actions check every name and right first (chatnet.domain.moderation).

    async def room(self, room):
        """The document of C{room}, or None."""
        assert isinstance(room, str)
        return await self._run("room", self.db.rooms.find_one({"roomName": room}))

    async def create_room(self, room, owner, private, floor=0):
        """Make C{room}, owned by C{owner} (None: by nobody, as the server
        API may make it), its first member; C{False} if the name is taken.
        C{floor}: the last seq of the room's channel before it (a room of
        that name deleted before): its history starts after it."""
        assert isinstance(room, str) and isinstance(owner, (str, type(None))) and isinstance(private, bool)
        doc = {"roomName": room, "members": [owner] if owner else [], "private": private,
               "admins": [], "banned": [], "muted": [], "invited": []}
        if floor:
            doc["floor"] = floor
        if owner:
            doc["owner"] = owner
        try:
            await self._run("createRoom", self.db.rooms.insert_one(doc))
        except DuplicateKeyError:
            return False
        return True

    async def room_list(self):
        """Every room's document, with the fields C{listRooms} needs to
        tell who may see it (C{roomName}, C{members}, C{private}, C{owner},
        C{admins}, C{invited})."""
        docs = await self._run("listRooms", self.db.rooms.find(
            {}, {"roomName": 1, "members": 1, "private": 1, "owner": 1, "admins": 1, "invited": 1}))
        return [d for d in docs if isinstance(d.get("roomName"), str)]

    async def invite(self, room, username):
        await self._run("invite", self.db.rooms.update_one(
            {"roomName": room}, {"$addToSet": {"invited": username}}))

    async def kick(self, room, username):
        """Remove C{username} from the members, the admins (a role ends with
        the membership) and the invited (a private room needs a new
        invitation)."""
        await self._run("kick", self.db.rooms.update_one(
            {"roomName": room}, {"$pull": {"members": username, "invited": username, "admins": username}}))

    async def ban(self, room, username, now_ms):
        """Ban C{username}: no longer a member, admin or invited, unmuted
        (a ban is more); whether they were a member."""
        before = await self._run("ban", self.db.rooms.find_one_and_update(
            {"roomName": room},
            {"$addToSet": {"banned": username},
             "$pull": {"members": username, "invited": username, "admins": username}},
            projection={"members": 1}))
        await self._set_mute(room, username, None, now_ms)
        return before is not None and username in (before.get("members") or ())

    async def mute(self, room, username, until_ms, now_ms):
        await self._set_mute(room, username, until_ms, now_ms)

    async def _set_mute(self, room, username, until_ms, now_ms):
        """Set (C{until_ms}) or end (None) the mute of C{username}; mutes
        that ended are dropped. The whole C{muted} list
        (C{[{"user", "until"}]}: a name is a value, never a field name, see
        L{mute_map}) is written, on the condition that the room's
        C{mutedRev} did not change meanwhile (a number: the list itself,
        or an old map keyed by names that may start with '$', is never
        part of a condition)."""
        for _ in range(5):
            doc = await self._run("mute", self.db.rooms.find_one({"roomName": room}, {"muted": 1, "mutedRev": 1}))
            if doc is None:
                return
            old = mute_map(doc.get("muted"))
            new = {u: t for u, t in old.items() if t > now_ms and u != username}
            if until_ms is not None:
                new[username] = until_ms
            if new == old and isinstance(doc.get("muted"), list):
                return
            rev = doc.get("mutedRev")
            rev = rev if isinstance(rev, int) and not isinstance(rev, bool) else None
            result = await self._run("mute", self.db.rooms.update_one(
                {"roomName": room, "mutedRev": rev},
                {"$set": {"muted": [{"user": u, "until": t} for u, t in new.items()],
                          "mutedRev": (rev or 0) + 1}}))
            if result.matched_count:
                return
        raise StoreUnavailable("mongodb", "mute")

    async def set_admin(self, room, username, admin):
        change = {"$addToSet": {"admins": username}} if admin else {"$pull": {"admins": username}}
        await self._run("setRole", self.db.rooms.update_one({"roomName": room}, change))

    async def mutes(self, username, rooms):
        """Of C{rooms}: room name -> the end (ms) of C{username}'s mute there,
        for those where they have one."""
        docs = await self._run("room", self.db.rooms.find(
            {"roomName": {"$in": list(rooms)}}, {"roomName": 1, "muted": 1}))
        found = {}
        for d in docs:
            until = mute_map(d.get("muted")).get(username)
            if until:
                found[d.get("roomName")] = until
        return found

    async def room_floors(self, rooms):
        """Of C{rooms}: room name -> its floor (L{create_room}), for those
        that have one."""
        docs = await self._run("room", self.db.rooms.find(
            {"roomName": {"$in": list(rooms)}, "floor": {"$exists": True}}, {"roomName": 1, "floor": 1}))
        return {d["roomName"]: d["floor"] for d in docs
                if isinstance(d.get("roomName"), str) and isinstance(d.get("floor"), int)}

    async def is_private(self, room):
        """Whether C{room} (an ordinary room) is private; None if there is
        no such room."""
        doc = await self._run("room", self.db.rooms.find_one({"roomName": room}, {"private": 1}))
        return None if doc is None else bool(doc.get("private"))


def object_id(msg_id):
    return ObjectId(msg_id)


class OfflineStore:
    """Direct messages waiting for a user who was offline (collection
    ``offline``: ``{"_id": message id, "to", "data"}``) and how many were
    dropped for them (``offline_dropped``: ``{"_id": username, "count"}``)."""

    def __init__(self, mongo):
        self.mongo = mongo

    async def put(self, msg_id, to, data, limit):
        """Queue one message; drops the oldest beyond C{limit}."""
        db = self.mongo.db
        await self.mongo._run("offline", db.offline.with_options(write_concern=JOURNALED).insert_one(
            {"_id": ObjectId(msg_id), "to": to, "data": data}))
        count = await self.mongo._run("offline", db.offline.count_documents({"to": to}))
        if count > limit:
            oldest = await self.mongo._run(
                "offline",
                db.offline.find({"to": to}, {"_id": 1}, sort=qf.sort(qf.ASCENDING("_id")), limit=count - limit),
            )
            ids = [d["_id"] for d in oldest]
            await self.mongo._run("offline", db.offline.delete_many({"_id": {"$in": ids}}))
            await self.mongo._run(
                "offline",
                db.offline_dropped.update_one({"_id": to}, {"$inc": {"count": len(ids)}}, upsert=True),
            )

    async def take(self, to):
        """Everything queued for C{to}, oldest first, and the dropped count
        (reset)."""
        db = self.mongo.db
        docs = await self.mongo._run("offline", db.offline.find({"to": to}, sort=qf.sort(qf.ASCENDING("_id"))))
        dropped = await self.mongo._run("offline", db.offline_dropped.find_one({"_id": to}))
        if dropped:
            await self.mongo._run("offline", db.offline_dropped.delete_one({"_id": to}))
        return docs, (dropped or {}).get("count", 0)

    async def remove(self, ids):
        if ids:
            await self.mongo._run("offline", self.mongo.db.offline.delete_many({"_id": {"$in": list(ids)}}))
