"""Per-channel sequence numbers: gap-free and increasing, shared by all nodes.

The counter of a channel lives in Redis (``INCR``), so every node and every
leader after a failover continues the same sequence. If Redis lost the
counter (restarted empty), it is restored from the highest seq stored in
MongoDB and in the Redis history list before counting on. (A new channel
takes the same path once: its first seq costs one indexed MongoDB read.) If
MongoDB is down at that moment, the channel counts on from what Redis and this
node still know, and a warning is logged: only a Redis that lost its data
while MongoDB is down can then give a seq twice.

A counter that is there is not always right: after a Sentinel failover the
promoted replica may lack the last increments (replication is asynchronous),
and a server restarted from its snapshot may too. Each new Redis connection
notices such a data set (:data:`chatnet.stores.redis.CHECK_SERVER`) and marks
every counter untrusted; the accept script then answers as for a lost
counter, and the counter is restored the same way, at most once per channel.
"""
import orjson
from twisted.logger import Logger

from chatnet.errors import StoreUnavailable
from chatnet.stores.redis import RESTORE_SEQ, SEQ_TRUSTED, history_key, seq_key

log = Logger()


class Sequences:
    def __init__(self, redis, mongo, pending=lambda channel: 0):
        self.redis = redis
        self.mongo = mongo
        # highest seq of a channel still waiting in this node's message log
        self.pending = pending

    async def restore(self, channel):
        """Put back the lost counter of C{channel}: at least the highest seq
        stored in MongoDB, in this node's message log and in the Redis
        history."""
        try:
            floor = max(await self.mongo.max_seq(channel), self.pending(channel))
        except StoreUnavailable:
            log.warn("seq of {channel} restored without mongodb", channel=channel)
            floor = self.pending(channel)
        last = await self.redis.call("lrange", history_key(channel), -1, -1)
        if last:
            floor = max(floor, orjson.loads(last[0]).get("seq") or 0)
        await self.redis.eval(RESTORE_SEQ, [seq_key(channel), SEQ_TRUSTED], [floor, channel])
