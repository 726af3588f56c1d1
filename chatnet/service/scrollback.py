"""Scroll-back: a page of a channel's messages before a seq, from any age.

The newest messages of a channel are in its Redis list (the last
``RESUME_LIMIT + 1``, :mod:`chatnet.service.history`), every message in MongoDB
(``messages``, indexed by ``(channel, seq)``), and the last few accepted
on this node maybe only in its write-behind log. A page is read from Redis
first (one script: the channel's counter and the list entries of the
page's seqs); only a page Redis does not hold whole is completed from
MongoDB (one query of at most ``limit`` documents by the index) and the
write-behind log, merged by seq, Redis winning. Entries read from MongoDB
get their revision laid over them (edits and deletions,
:mod:`chatnet.stores.livestate`); the Redis entries are revised in place.

A page costs at most one Redis call and two MongoDB queries of at most
``MAX_PAGE`` documents each, whatever the channel's size.
"""
import orjson

from chatnet.domain.messages import ChatMessage
from chatnet.stores.livestate import revised
from chatnet.stores.redis import history_key, seq_key

#: the most messages one page has
MAX_PAGE = 100

# KEYS: seq, history; ARGV: before (0: after the newest), limit.
# Answers {current seq or false, the list entries of seqs
# [before - limit, before - 1]} (the list ends with the current seq).
READ_BEFORE = """
local cur = redis.call('GET', KEYS[1])
if not cur then return {false, {}} end
cur = tonumber(cur)
local before = tonumber(ARGV[1])
if before == 0 or before > cur + 1 then before = cur + 1 end
if before <= 1 then return {cur, {}} end
local hi = -(cur - before + 2)
local lo = hi - tonumber(ARGV[2]) + 1
return {cur, redis.call('LRANGE', KEYS[2], lo, hi)}
"""


class Scrollback:
    """@param redis: the L{chatnet.stores.redis.RedisStore}.
    @param live: the L{chatnet.stores.livestate.LiveState} (stored
        messages and their revisions).
    @param waiting: C{waiting(channel, after)}: the documents of
        C{channel} after a seq still in this node's write-behind log.
    """

    def __init__(self, redis, live, waiting):
        self.redis = redis
        self.live = live
        self.waiting = waiting

    async def page(self, channel, before, limit):
        """C{(messages, more)}: the last C{limit} messages of C{channel}
        with a seq below C{before} (None: the newest), oldest first, as
        chat frame data; C{more} if there are older ones.

        @raise StoreUnavailable: Redis or MongoDB did not answer.
        """
        limit = max(1, min(limit, MAX_PAGE))
        current, raw = await self.redis.eval(READ_BEFORE, [seq_key(channel), history_key(channel)],
                                             [before or 0, limit])
        cached = [orjson.loads(r) for r in raw or ()]
        top = None
        if current is not None:
            top = min(int(current) + 1, before) if before else int(current) + 1
            if _whole(cached, top, limit):
                return cached, bool(cached) and cached[0]["seq"] > 1
        top = top if top is not None else before
        docs = await self.live.messages_before(channel, top, limit)
        found = {}
        for doc in list(docs) + [d for d in self.waiting(channel, 0) if top is None or d["seq"] < top]:
            data = ChatMessage.from_document(doc).frame_data()
            if doc.get("to"):
                data["to"] = doc["to"]
            found.setdefault(data["seq"], data)
        revisions = await self.live.revisions([d["msgId"] for d in found.values()])
        found = {seq: revised(d, revisions.get(d["msgId"])) for seq, d in found.items()}
        for data in cached:
            found[data.get("seq") or 0] = data
        page = [found[s] for s in sorted(found)[-limit:]]
        return page, bool(page) and page[0]["seq"] > 1


def _whole(entries, top, limit):
    """C{entries} are exactly the seqs below C{top}, C{limit} of them (or
    down to seq 1)."""
    want = list(range(max(1, top - limit), top))
    return [d.get("seq") for d in entries] == want

