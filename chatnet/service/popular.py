"""Popular words: a sliding window of ``window`` seconds, shared through Redis.

Each accepted message adds its words (see :mod:`chatnet.text.words`) to the
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



def count_words_lua(ranking, buckets, bucket, second, words):
    """The Lua that counts words into the window, for a script where the
    given Lua expressions (e.g. C{"KEYS[1]"}) hold the keys, this second
    and the words, separated by spaces (L{joined}; one argument instead of
    one per word makes the request cheaper to build). Shared by L{ADD} and
    the accept script (L{chatnet.service.accept}), so the window is fed one way
    only."""
    return f"""
if {words} and {words} ~= '' then
  redis.call('ZADD', {buckets}, {second}, {second})
  for word in string.gmatch({words}, '[^ ]+') do
    redis.call('ZINCRBY', {ranking}, 1, word)
    redis.call('HINCRBY', {bucket}, word, 1)
  end
end
"""


def joined(words):
    """The words of a message as the counting scripts take them: one
    string, separated by spaces (a word never holds one:
    L{chatnet.text.words.tokenize}), as UTF-8 bytes (bytes are sent as they are:
    a string would be kept in the encoded-argument cache of
    L{chatnet.stores.redis}, which is for the arguments that come again)."""
    return " ".join(words).encode("utf-8")


# KEYS: ranking, buckets, bucket of this second; ARGV: this second, the words (joined)
ADD = count_words_lua(ranking="KEYS[1]", buckets="KEYS[2]", bucket="KEYS[3]", second="ARGV[1]",
                      words="ARGV[2]") + "return 1\n"

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

    def second(self):
        return int(self.clock.seconds())

    async def count(self, words):
        """Count the words of one accepted message."""
        if not words:
            return
        sec = self.second()
        await self.redis.eval(ADD, [RANKING, BUCKETS, f"{BUCKET_PREFIX}{sec}"], [sec, joined(words)])

    async def top(self, n):
        """The C{n} most used words of the window: C{[w1, c1, w2, c2, ...]},
        each count a string (the shape of C{ZREVRANGE ... WITHSCORES})."""
        cutoff = self.second() - self.window
        result = await self.redis.eval(EXPIRE_AND_TOP, [RANKING, BUCKETS], [cutoff, BUCKET_PREFIX, n])
        return [x.decode() if isinstance(x, bytes) else str(x) for x in result or ()]

    async def sweep(self):
        """Drop the buckets that left the window (run periodically)."""
        await self.redis.eval(
            EXPIRE_AND_TOP, [RANKING, BUCKETS], [self.second() - self.window, BUCKET_PREFIX, 0]
        )
