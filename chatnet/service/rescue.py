"""Messages a node acked but had not stored in MongoDB yet when it died.

A node acks a message once it is numbered and in the Redis history of its
channel (one Redis call, :mod:`chatnet.service.accept`), and writes it to MongoDB a
few milliseconds later (:mod:`chatnet.stores.message_log`); a node killed in
between takes those messages with it.

The accept script therefore also notes, for the accepting node, the channel
and the second (node's clock) in the sorted set ``chatnet:accepted:<nodeId>``
(kept to the last ``WINDOW`` seconds), and the node's id in the set
``chatnet:accepting``. When a node is gone, the leader (:meth:`Rescuer.node`)
takes the node's last second in that sorted set, and for each channel the
node accepted into during the ``WINDOW`` seconds up to it, reads the whole
Redis history list and writes to MongoDB again every entry whose message id
is from those seconds. Which node accepted an entry cannot be told from the
history, so the entries of other nodes in that time are written too: the
message id is the document ``_id``, so what is stored already is skipped.
Then it drops what it rescued from the sorted set and, when nothing is left,
the node from ``chatnet:accepting``. The leader looks for such nodes
(:meth:`Rescuer.departed`: accepting but not in the cluster) whenever the
membership changes and now and then, so a rescue the old leader could not
finish, or one for the old leader itself, is done by the next.
"""
import orjson
from bson import ObjectId
from bson.errors import InvalidId
from twisted.internet import defer
from twisted.logger import Logger

from chatnet.domain.messages import ChatMessage
from chatnet.errors import StoreUnavailable
from chatnet.stores.mongo import Refused
from chatnet.stores.redis import PREFIX, history_key

log = Logger()

#: Seconds before its last accepted message that a departed node's messages
#: are written again (the message log writes within 50 ms; more while
#: MongoDB is down).
WINDOW = 60
#: The set of the node ids that have a sorted set of accepted channels.
ACCEPTING = PREFIX + "accepting"

# KEYS: accepted of the node, accepting; ARGV: last second rescued, node id.
# Drops what was rescued (the node may be back under the same id, adding
# newer seconds); forgets the node when nothing is left.
RESCUED = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('EXISTS', KEYS[1]) == 0 then redis.call('SREM', KEYS[2], ARGV[2]) end
return 1
"""


def accepted_key(node_id):
    """The sorted set of the channels C{node_id} accepted into (score: second)."""
    return f"{PREFIX}accepted:{node_id}"


def _text(value):
    return value.decode() if isinstance(value, bytes) else value


def document(channel, data):
    """The MongoDB document of history entry C{data} of C{channel}."""
    to = ""
    if channel.startswith("dm:"):
        a, _, b = channel[3:].partition("\n")
        to = b if data.get("from") == a else a
    message = ChatMessage(
        data["msgId"], data.get("from", ""), data.get("message", ""), data.get("ts", 0),
        data.get("format", "text"), to, data.get("roomName", ""), data.get("seq", 0),
        system=data.get("system") is True,
    )
    doc = message.document()
    doc["channel"] = channel
    return doc


class Rescuer:
    """Writes to MongoDB what departed nodes accepted in their last
    C{window} seconds, C{batch} documents at a time; reads C{page} channels'
    histories at a time."""

    def __init__(self, redis, mongo, window=WINDOW, batch=500, page=50):
        self.redis = redis
        self.mongo = mongo
        self.window = window
        self.batch = batch
        self.page = page

    async def departed(self, live):
        """The nodes with accepted channels noted that are not in C{live}."""
        nodes = await self.redis.call("smembers", ACCEPTING) or ()
        return sorted({_text(n) for n in nodes} - set(live))

    async def previous_process(self, node_id):
        """At start: write again what a process of C{node_id} killed and
        restarted before the leader saw it leave had accepted (L{node}),
        logging what was done; a store that is unavailable is logged, not
        raised (the leader checks departed nodes again)."""
        try:
            n = await self.node(node_id)
        except StoreUnavailable:
            log.warn("recent messages of our previous process not checked: a store is unavailable")
            return
        if n:
            log.info("{n} recent messages of our previous process checked into mongodb", n=n)

    async def node(self, node_id):
        """Write again what C{node_id} accepted in its last C{window}
        seconds; returns how many history entries were written (stored
        before or not; those MongoDB refuses as invalid are logged).

        @raise StoreUnavailable: not now; nothing is forgotten, try again.
        """
        key = accepted_key(node_id)
        top = await self.redis.call("execute_command", "ZREVRANGE", key, 0, 0, "WITHSCORES")
        if not top:
            await self.redis.eval(RESCUED, [key, ACCEPTING], ["+inf", node_id])
            return 0
        last = int(float(top[1]))
        first = last - self.window
        written, docs, offset = 0, [], 0
        while True:
            channels = await self.redis.call(
                "execute_command", "ZRANGEBYSCORE", key, first, last, "LIMIT", offset, self.page)
            if not channels:
                break
            offset += len(channels)
            lists = await defer.gatherResults(
                [self.redis.call("lrange", history_key(_text(c)), 0, -1) for c in channels], consumeErrors=True,
            ).addErrback(lambda f: f.value.subFailure.raiseException())
            for channel, entries in zip(channels, lists):
                docs.extend(self._recent(_text(channel), entries or (), first))
                while len(docs) >= self.batch:
                    written += await self._store(docs[:self.batch])
                    docs = docs[self.batch:]
            if len(channels) < self.page:
                break
        if docs:
            written += await self._store(docs)
        await self.redis.eval(RESCUED, [key, ACCEPTING], [last, node_id])
        return written

    def _recent(self, channel, entries, first):
        """The documents of the history C{entries} whose message id is
        from second C{first} on (a message id is made just before its
        message is accepted: one second of margin)."""
        for raw in entries:
            try:
                data = orjson.loads(raw)
                if ObjectId(data["msgId"]).generation_time.timestamp() < first - 1:
                    continue
                yield document(channel, data)
            except (ValueError, KeyError, TypeError, InvalidId):
                continue

    async def _store(self, docs):
        try:
            refused = await self.mongo.insert_messages(docs)
        except Refused as e:
            if len(docs) == 1:
                refused = {0: str(e)}
            else:  # one of them cannot be encoded: the others still can
                return sum([await self._store([doc]) for doc in docs])
        if refused:
            log.warn("rescue: mongodb refused {n} documents: {why}", n=len(refused),
                     why="; ".join(sorted(set(refused.values())))[:500])
        return len(docs) - len(refused)
