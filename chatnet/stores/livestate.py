"""MongoDB: the revisions of messages (edits and deletions) and the users'
read markers.

* ``revisions``: ``{"_id": msgId, "channel", "seq", "by", "message",
  "editedAt"}`` for an edited message, ``{..., "deleted": true}`` (no text)
  for a deleted one. The message document itself is written once by the
  write-behind log (:mod:`chatnet.stores.message_log`) and may not be in
  MongoDB yet when it is edited, so the revision is a document of its own,
  laid over the message wherever history is read from MongoDB
  (:func:`revised`). Deleting also blanks the stored text, if it is stored.
* ``reads``: ``{"_id": "<user>\\n<channel>", "user", "channel", "seq"}``,
  the last seq the user has seen; it only grows (``$max``).

Both are read by ``_id`` only, so they need no index of their own.
"""
from bson import ObjectId
from pymongo.errors import DuplicateKeyError
from txmongo import filter as qf


def read_id(username, channel):
    return f"{username}\n{channel}"


def revised(data, revision):
    """Chat frame data C{data} with C{revision} (a C{revisions} document,
    or None) laid over it: the edited text and C{edited}, or a tombstone."""
    if revision is None:
        return data
    if revision.get("deleted"):
        data = {**data, "message": "", "deleted": True}
        data.pop("edited", None)
        return data
    return {**data, "message": revision.get("message", ""), "edited": revision.get("editedAt", 0)}


class LiveState:
    """@param mongo: the L{chatnet.stores.mongo.MongoStore}."""

    def __init__(self, mongo):
        self.mongo = mongo

    # -- revisions --------------------------------------------------------

    async def message(self, channel, msg_id):
        """The stored document of message C{msg_id} of C{channel}, or None."""
        return await self.mongo.run("message", self.mongo.db.messages.find_one(
            {"_id": ObjectId(msg_id), "channel": channel}))

    async def messages_before(self, channel, before, limit):
        """The last C{limit} stored messages of C{channel} with a seq below
        C{before} (None: the newest), newest first (by the C{(channel,
        seq)} index)."""
        query = {"channel": channel}
        if before is not None:
            query["seq"] = {"$lt": before}
        return await self.mongo.run("history", self.mongo.db.messages.find(
            query, sort=qf.sort(qf.DESCENDING("seq")), limit=limit))

    async def revision(self, msg_id):
        return await self.mongo.run("revision", self.mongo.db.revisions.find_one({"_id": msg_id}))

    async def revisions(self, msg_ids):
        """C{msgId -> revision} of those of C{msg_ids} (at most a page's)
        that were edited or deleted."""
        if not msg_ids:
            return {}
        docs = await self.mongo.run("revisions", self.mongo.db.revisions.find({"_id": {"$in": list(msg_ids)}}))
        return {d["_id"]: d for d in docs}

    async def revise(self, msg_id, channel, seq, by, at, message=None):
        """Store the edit (C{message}) or the deletion (C{message} None) of
        a message. A deletion is final: False if the message was deleted
        before (an edit then changes nothing)."""
        if message is None:
            doc = {"channel": channel, "seq": seq, "by": by, "editedAt": at, "deleted": True}
            try:
                await self.mongo.run("delete", self.mongo.db.revisions.replace_one(
                    {"_id": msg_id, "deleted": {"$ne": True}}, doc, upsert=True))
            except DuplicateKeyError:
                return False  # deleted before (by another request at the same time)
            await self.mongo.run("delete", self.mongo.db.messages.update_one(
                {"_id": ObjectId(msg_id)}, {"$set": {"message": "", "deleted": True}}))
            await self._revise_queued(msg_id, {"data.message": "", "data.deleted": True})
            return True
        doc = {"channel": channel, "seq": seq, "by": by, "editedAt": at, "message": message}
        try:
            await self.mongo.run("edit", self.mongo.db.revisions.replace_one(
                {"_id": msg_id, "deleted": {"$ne": True}}, doc, upsert=True))
        except DuplicateKeyError:
            return False  # deleted meanwhile
        await self._revise_queued(msg_id, {"data.message": message, "data.edited": at})
        return True

    async def _revise_queued(self, msg_id, change):
        """A direct message still queued for its offline recipient
        (C{offline}) is delivered as revised."""
        await self.mongo.run("revise", self.mongo.db.offline.update_one({"_id": ObjectId(msg_id)}, {"$set": change}))

    async def revise_all(self, messages):
        """C{messages} (chat frame data) with their revisions laid over them."""
        revisions = await self.revisions([d["msgId"] for d in messages])
        return [revised(d, revisions.get(d["msgId"])) for d in messages] if revisions else messages

    # -- rooms --------------------------------------------------------------

    async def rooms(self, names):
        """The documents of rooms C{names} (those that exist), with the
        fields C{listRooms} shows."""
        if not names:
            return []
        docs = await self.mongo.run("rooms", self.mongo.db.rooms.find(
            {"roomName": {"$in": list(names)}},
            {"roomName": 1, "members": 1, "private": 1, "owner": 1, "admins": 1, "invited": 1}))
        return [d for d in docs if isinstance(d.get("roomName"), str)]

    # -- read markers -----------------------------------------------------

    async def mark_read(self, username, channel, seq):
        """Move the user's marker of C{channel} to C{seq} (if it is
        further); the marker as stored."""
        key = read_id(username, channel)
        await self.mongo.run("read", self.mongo.db.reads.update_one(
            {"_id": key}, {"$max": {"seq": seq}, "$set": {"user": username, "channel": channel}}, upsert=True))
        doc = await self.mongo.run("read", self.mongo.db.reads.find_one({"_id": key}))
        return doc.get("seq", seq) if doc else seq

    async def markers(self, username, channels):
        """C{channel -> seq} of the user's markers of C{channels}."""
        if not channels:
            return {}
        ids = [read_id(username, c) for c in channels]
        docs = await self.mongo.run("reads", self.mongo.db.reads.find({"_id": {"$in": ids}}))
        return {d.get("channel"): d.get("seq", 0) for d in docs if isinstance(d.get("seq"), int)}
