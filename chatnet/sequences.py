"""Per-channel sequence numbers: gap-free and increasing, shared by all nodes.

The counter of a channel lives in Redis (``INCR``), so every node and every
leader after a failover continues the same sequence. If Redis lost the
counter (restarted empty), it is restored from the highest seq stored in
MongoDB and in the Redis history list before counting on.
"""
import orjson

from chatnet.stores.redis import NEXT_SEQ, RESTORE_SEQ, RESTORE_SEQ_ONLY, history_key, seq_key


class Sequences:
    def __init__(self, redis, mongo, pending=lambda channel: 0):
        self.redis = redis
        self.mongo = mongo
        # highest seq of a channel still waiting in this node's message log
        self.pending = pending

    async def next(self, channel):
        seq = await self.redis.eval(NEXT_SEQ, [seq_key(channel)])
        if seq != -1:
            return seq
        return await self.restore(channel, count=True)

    async def restore(self, channel, count=False):
        """Put back the lost counter of C{channel} (at least the highest seq
        stored in MongoDB, in this node's message log and in the Redis
        history); with C{count}, also take and return the next seq."""
        floor = max(await self.mongo.max_seq(channel), self.pending(channel))
        last = await self.redis.call("lrange", history_key(channel), -1, -1)
        if last:
            floor = max(floor, orjson.loads(last[0]).get("seq") or 0)
        if count:
            return await self.redis.eval(RESTORE_SEQ, [seq_key(channel)], [floor])
        await self.redis.eval(RESTORE_SEQ_ONLY, [seq_key(channel)], [floor])
