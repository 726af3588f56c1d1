"""Room and conversation history: the last messages in Redis, all in MongoDB.

Redis keeps a list per channel of its last ``keep`` messages (``RESUME_LIMIT
+ 1``, so that a resume is served from Redis alone; a joinRoom shows the last
``size``). The list is written in the same script that gives the seq
(:mod:`chatnet.service.accept`), so it always ends with the channel's current seq.
The list of a direct conversation expires ``DM_HISTORY_TTL`` after its last
message (there can be very many conversations; rooms are few): its messages
are in MongoDB long before.

When Redis holds fewer messages than asked for (a new channel, an expired
conversation, or Redis lost its data in a restart), the read is completed
from MongoDB and from the messages still waiting in this node's write-behind
log (not yet in MongoDB), merged by seq, so a restart never shows a user a
shortened history.
"""
import orjson
from twisted.logger import Logger

from chatnet.domain.messages import ChatMessage
from chatnet.errors import StoreUnavailable
from chatnet.stores.redis import history_key, seq_key

log = Logger()

#: A resume replays at most this many messages of a channel; more missed:
#: the channel is "too old".
RESUME_LIMIT = 500
#: Seconds a direct conversation's Redis list lives after its last message.
DM_HISTORY_TTL = 7 * 24 * 3600

# KEYS: seq, history; ARGV: last seen seq, limit. Reads the channel's
# current seq and what follows the last seen one in one go:
# {current seq, the list's last (current - last seen) entries}, or
# {current seq, {}} when nothing or more than `limit` were missed, or
# {false, the whole list} when the counter is gone.
READ_AFTER = """
local cur = redis.call('GET', KEYS[1])
if not cur then return {false, redis.call('LRANGE', KEYS[2], 0, -1)} end
local n = tonumber(cur) - tonumber(ARGV[1])
if n <= 0 or n > tonumber(ARGV[2]) then return {cur, {}} end
return {cur, redis.call('LRANGE', KEYS[2], -n, -1)}
"""


def _order(data):
    return (data.get("seq") or 0, data.get("ts") or 0)


def _no_log(channel, after):
    return []


async def _as_is(messages):
    return messages


class History:
    def __init__(self, redis, mongo, size=50, keep=RESUME_LIMIT + 1, waiting=_no_log, pending=lambda channel: 0,
                 revise=None):
        self.redis = redis
        # lays edits and deletions over messages read from MongoDB
        # (chatnet.stores.livestate.LiveState.revise_all); the Redis lists
        # are revised in place
        self.revise = revise or _as_is
        self.mongo = mongo
        self.size = size
        self.keep = max(keep, size)
        # the documents of a channel after a seq still in this node's message log
        self.waiting = waiting
        # the highest seq of a channel still in this node's message log
        self.pending = pending

    @staticmethod
    def ttl(channel):
        """Seconds the Redis list of C{channel} lives after its last
        message (0: for ever)."""
        return DM_HISTORY_TTL if channel.startswith("dm:") else 0

    async def recent(self, channel, limit=None, floor=0):
        """The last C{limit} messages of C{channel}, oldest first, as chat
        frame data; none with a seq up to C{floor} (those of a room deleted
        before, L{current_seq})."""
        limit = limit or self.size
        if floor:
            return [d for d in await self.recent(channel, limit) if (d.get("seq") or 0) > floor]
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
        merged = {d["msgId"]: d for d in await self.revise(
            [ChatMessage.from_document(doc).frame_data() for doc in docs])}
        for d in cached:
            merged[d["msgId"]] = d
        return sorted(merged.values(), key=_order)[-limit:]

    async def after(self, channel, seq, limit=RESUME_LIMIT, floor=0, sealed_until=0):
        """Every message of C{channel} with a seq above C{seq}, oldest
        first: all of them, without a gap, up to the channel's current seq
        when it was read; C{None} ("too old") when more than C{limit} were
        missed or they cannot all be found any more.

        C{floor}: the channel's history starts after this seq (a room made
        again under the name of a deleted one): a C{seq} below it counts
        as C{floor}. C{sealed_until} (epoch ms): messages accepted no
        later than this second are never shown (a conversation of a user
        deleted then); a replay that would need one is "too old".

        @raise StoreUnavailable: Redis (or MongoDB, when needed) did not
            answer.
        """
        missed = await self._after(channel, max(seq, floor), limit)
        if missed and sealed_until and any(_accepted_ms(d) <= sealed_until for d in missed):
            return None
        return missed

    async def current_seq(self, channel):
        """The last seq given in C{channel} (0: none): what a room made
        under the name of a deleted one takes as its floor."""
        current = await self.redis.call("get", seq_key(channel))
        stored = await self.mongo.max_seq(channel)
        return max(int(current or 0), stored, self.pending(channel))

    async def _after(self, channel, seq, limit):
        current, raw = await self.redis.eval(READ_AFTER, [seq_key(channel), history_key(channel)], [seq, limit])
        cached = [orjson.loads(r) for r in raw or ()]
        if current is not None:
            current = int(current)
            if current - seq > limit:
                return None
            if current <= seq:
                return []
            if _gap_free(cached, seq, current):
                return cached
        # Redis does not have them all: add MongoDB and this node's message
        # log. The log is read first: a batch written meanwhile is in one
        # of the two.
        waiting = self.waiting(channel, seq)
        stored = await self.mongo.messages_after(channel, seq, limit + 1)
        found = {}
        for data in await self.revise([ChatMessage.from_document(doc).frame_data() for doc in waiting + stored]):
            found.setdefault(data["seq"], data)
        for data in cached:
            found[data.get("seq") or 0] = data
        if current is None:
            # no counter: nothing was accepted since Redis lost it, and the
            # highest seq stored is the current one
            current = max(found, default=seq)
        if current - seq > limit:
            return None
        missed = [found.get(s) for s in range(seq + 1, current + 1)]
        if None in missed:
            return None
        return missed


def _accepted_ms(data):
    """When (epoch ms, to the second below) the message of chat frame data
    C{data} was accepted: the time in its id (an ObjectId)."""
    try:
        return int(str(data.get("msgId"))[:8], 16) * 1000
    except ValueError:
        return 0


def _gap_free(entries, seq, current):
    """C{entries} are exactly the seqs C{seq + 1} to C{current}, in order."""
    return len(entries) == current - seq and all(
        (d.get("seq") or 0) == s for s, d in zip(range(seq + 1, current + 1), entries)
    )
