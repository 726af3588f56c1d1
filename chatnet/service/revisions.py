"""Edits and deletions of messages: finding a message by its id in its
channel, and storing its new state where history is read from.

A message is looked for in its channel's Redis list first (the recent
ones: one script, at most ``RESUME_LIMIT + 1`` entries scanned), then in
MongoDB, then in this node's write-behind log. Its revision is stored in
MongoDB (:mod:`chatnet.stores.livestate`, the truth, laid over MongoDB's
copy when history is read from there), then the Redis list entry, if the
message is still there, is replaced in one script that checks the entry
did not change meanwhile (tried again a few times if it did: a concurrent
edit of the same message).
"""
import orjson

from chatnet.domain.messages import ChatMessage
from chatnet.stores.livestate import revised
from chatnet.stores.redis import history_key

# KEYS: history; ARGV: a needle ('"msgId":"<id>"'). The first entry that
# contains it, or false.
FIND = """
for _, entry in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do
  if string.find(entry, ARGV[1], 1, true) then return entry end
end
return false
"""

# KEYS: history; ARGV: the entry as read, its new value. 1 if replaced,
# 0 if the entry is not there (any more, or changed meanwhile).
REPLACE = """
local entries = redis.call('LRANGE', KEYS[1], 0, -1)
for i, entry in ipairs(entries) do
  if entry == ARGV[1] then
    redis.call('LSET', KEYS[1], i - 1, ARGV[2])
    return 1
  end
end
return 0
"""

#: tries at replacing a Redis entry that changed under us
TRIES = 3


class Revisions:
    """@param redis: the L{chatnet.stores.redis.RedisStore}.
    @param live: the L{chatnet.stores.livestate.LiveState}.
    @param waiting: C{waiting(channel, after)}: the documents of
        C{channel} still in this node's write-behind log.
    """

    def __init__(self, redis, live, waiting):
        self.redis = redis
        self.live = live
        self.waiting = waiting

    async def find(self, channel, msg_id):
        """Message C{msg_id} of C{channel} as chat frame data, revised
        (edited, or a tombstone), or None if it is not there.

        @raise StoreUnavailable: Redis or MongoDB did not answer."""
        raw = await self._raw(channel, msg_id)
        if raw is not None:
            return orjson.loads(raw)
        doc = await self.live.message(channel, msg_id)
        if doc is None:
            doc = next((d for d in self.waiting(channel, 0) if str(d.get("_id")) == msg_id), None)
        if doc is None:
            return None
        data = ChatMessage.from_document(doc).frame_data()
        return revised(data, await self.live.revision(msg_id))

    async def revise(self, channel, data, by, at, message=None):
        """Store an edit of message C{data} (its new text C{message}) or
        its deletion (C{message} None); the message as revised, or None if
        it was deleted meanwhile."""
        msg_id = data["msgId"]
        if not await self.live.revise(msg_id, channel, data["seq"], by, at, message):
            return None
        revision = {"deleted": True} if message is None else {"message": message, "editedAt": at}
        for _ in range(TRIES):
            raw = await self._raw(channel, msg_id)
            if raw is None:
                break
            if await self.redis.eval(REPLACE, [history_key(channel)],
                                     [raw, orjson.dumps(revised(orjson.loads(raw), revision))]):
                break
        return revised(data, revision)

    async def _raw(self, channel, msg_id):
        raw = await self.redis.eval(FIND, [history_key(channel)], [f'"msgId":"{msg_id}"'])
        return raw or None
