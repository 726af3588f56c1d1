"""Popular words: a sliding window of ``window`` seconds, shared through Redis.

Each accepted message adds its words (see :mod:`chatnet.words`) to the
ranking and to the bucket of the current second. Buckets that fall out of the
window are subtracted from the ranking again before every read and by a
periodic sweep, so the ranking always counts exactly the words of the last
``window`` seconds (to the second), not the words since some periodic reset.
Every step runs as one Lua script, atomic among all nodes.
"""
from chatnet.stores.redis import PREFIX

RANKING = PREFIX + "popular:ranking"
BUCKETS = PREFIX + "popular:buckets"
BUCKET_PREFIX = PREFIX + "popular:b:"

ADD = """
redis.call('ZADD', KEYS[2], ARGV[1], ARGV[1])
for i = 2, #ARGV do
  redis.call('ZINCRBY', KEYS[1], 1, ARGV[i])
  redis.call('HINCRBY', KEYS[3], ARGV[i], 1)
end
return 1
"""

# KEYS: ranking, buckets; ARGV: cutoff second, bucket prefix, n (0: no read)
EXPIRE_AND_TOP = """
local old = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1])
for _, sec in ipairs(old) do
  local k = ARGV[2] .. sec
  local kv = redis.call('HGETALL', k)
  for i = 1, #kv, 2 do
    local s = tonumber(redis.call('ZINCRBY', KEYS[1], -tonumber(kv[i + 1]), kv[i]))
    if s <= 0 then redis.call('ZREM', KEYS[1], kv[i]) end
  end
  redis.call('DEL', k)
end
if #old > 0 then redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[1]) end
local n = tonumber(ARGV[3])
if n <= 0 then return {} end
return redis.call('ZREVRANGE', KEYS[1], 0, n - 1, 'WITHSCORES')
"""


class PopularWords:
    def __init__(self, redis, clock, window=3600):
        self.redis = redis
        self.clock = clock
        self.window = int(window)

    def _second(self):
        return int(self.clock.seconds())

    async def count(self, words):
        """Count the words of one accepted message."""
        if not words:
            return
        sec = self._second()
        await self.redis.eval(ADD, [RANKING, BUCKETS, f"{BUCKET_PREFIX}{sec}"], [sec, *words])

    async def top(self, n):
        """The C{n} most used words of the window: C{[w1, c1, w2, c2, ...]},
        each count a string (the shape of C{ZREVRANGE ... WITHSCORES})."""
        cutoff = self._second() - self.window
        result = await self.redis.eval(EXPIRE_AND_TOP, [RANKING, BUCKETS], [cutoff, BUCKET_PREFIX, n])
        return [x.decode() if isinstance(x, bytes) else str(x) for x in result or ()]

    async def sweep(self):
        """Drop the buckets that left the window (run periodically)."""
        await self.redis.eval(
            EXPIRE_AND_TOP, [RANKING, BUCKETS], [self._second() - self.window, BUCKET_PREFIX, 0]
        )
