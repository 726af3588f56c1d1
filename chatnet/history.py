"""Room and conversation history: the last 50 messages in Redis, all in MongoDB.

Redis keeps a list per channel, capped at ``size``. When it holds fewer than
``size`` messages (a new channel, or Redis lost its data in a restart), the
read is completed from MongoDB and merged by message id, so a restart never
shows a user a shortened history; messages not yet written to MongoDB are
still in the Redis list.
"""
import orjson
from twisted.logger import Logger

from chatnet.errors import StoreUnavailable
from chatnet.messages import ChatMessage
from chatnet.stores.redis import history_key

log = Logger()


def _order(data):
    return (data.get("seq") or 0, data.get("ts") or 0)


class History:
    def __init__(self, redis, mongo, size=50):
        self.redis = redis
        self.mongo = mongo
        self.size = size

    async def recent(self, channel, limit=None):
        """The last C{limit} messages of C{channel}, oldest first, as chat
        frame data."""
        limit = limit or self.size
        cached = []
        try:
            raw = await self.redis.call("lrange", history_key(channel), -limit, -1)
            cached = [orjson.loads(r) for r in raw or ()]
        except StoreUnavailable:
            log.warn("history of {channel} read from mongodb: redis unavailable", channel=channel)
        if len(cached) >= limit:
            return cached[-limit:]
        try:
            docs = await self.mongo.last_messages(channel, limit)
        except StoreUnavailable:
            if cached:
                return cached
            raise
        merged = {d["msgId"]: d for d in (ChatMessage.from_document(doc).frame_data() for doc in docs)}
        for d in cached:
            merged[d["msgId"]] = d
        return sorted(merged.values(), key=_order)[-limit:]

    async def after(self, channel, seq, limit):
        """Messages of C{channel} with a seq above C{seq}, oldest first, at
        most C{limit}; C{None} when they cannot all be found any more."""
        cached = []
        try:
            raw = await self.redis.call("lrange", history_key(channel), 0, -1)
            cached = [orjson.loads(r) for r in raw or ()]
        except StoreUnavailable:
            pass
        if cached and (cached[0].get("seq") or 0) <= seq + 1:
            return [d for d in cached if (d.get("seq") or 0) > seq][:limit]
        docs = await self.mongo.messages_after(channel, seq, limit)
        found = {d["msgId"]: d for d in (ChatMessage.from_document(doc).frame_data() for doc in docs)}
        for d in cached:
            if (d.get("seq") or 0) > seq:
                found[d["msgId"]] = d
        return sorted(found.values(), key=_order)[:limit]
