"""Redis: the connection, the key scheme and the few scripts chatnet runs.

Every call is bounded: a Redis that does not answer within ``timeout`` seconds
raises :class:`StoreUnavailable` (answered as 503) instead of hanging the
request. The pool reconnects by itself.
"""
from urllib.parse import urlparse

import txredisapi
from twisted.internet import defer, reactor as default_reactor
from twisted.logger import Logger

from chatnet.errors import StoreUnavailable

log = Logger()

PREFIX = "chatnet:"
SESSIONS = PREFIX + "sessions"
SERVERS = PREFIX + "servers"
LOAD = PREFIX + "load"


def history_key(channel):
    return f"{PREFIX}history:{channel}"


def seq_key(channel):
    return f"{PREFIX}seq:{channel}"


def marker_key(node_id):
    return f"{PREFIX}marker:{node_id}"


def parse_redis_url(url):
    """C{redis://host:port/db} -> (host, port, db)."""
    parsed = urlparse(url)
    if parsed.scheme not in ("redis", ""):
        raise ValueError(f"not a redis:// URL: {url}")
    db = parsed.path.strip("/")
    return parsed.hostname or "127.0.0.1", parsed.port or 6379, int(db or 0)


# Sets the session of KEYS[1]/ARGV[1], stamped with Redis's own clock in
# microseconds ("version": the order of logins, whichever node took them), and
# returns {the record it replaced, the version}.
SET_SESSION = """
local t = redis.call('TIME')
local version = t[1] .. string.format('%06d', tonumber(t[2]))
local record = cjson.decode(ARGV[2])
record['version'] = version
local old = redis.call('HGET', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(record))
return {old or false, version}
"""

# Deletes the session of ARGV[1] only while it is still the one of ARGV[2]
# (its sessionId), so that a replaced session never removes its successor.
DELETE_SESSION = """
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur and string.find(cur, ARGV[2], 1, true) then
  redis.call('HDEL', KEYS[1], ARGV[1])
  return 1
end
return 0
"""

# Restores a seq counter to at least ARGV[1] (without counting; a missing
# counter is always created).
RESTORE_SEQ = """
local cur = tonumber(redis.call('GET', KEYS[1]) or '-1')
if cur < tonumber(ARGV[1]) then redis.call('SET', KEYS[1], ARGV[1]) end
return 1
"""


class RedisStore:
    def __init__(self, url, timeout=3.0, reactor=None, poolsize=4):
        self.url = url
        self.host, self.port, self.db = parse_redis_url(url)
        self.timeout = timeout
        self.reactor = reactor or default_reactor
        self.poolsize = poolsize
        self.client = None
        self.errors = 0  # calls that failed: a metric

    def connect(self):
        self.client = txredisapi.lazyConnectionPool(
            self.host,
            self.port,
            dbid=self.db,
            poolsize=self.poolsize,
            reconnect=True,
            connectTimeout=self.timeout,
            replyTimeout=self.timeout,
            convertNumbers=False,
        )
        # Redis restarts are expected: keep retrying quickly.
        self.client.maxDelay = 2
        return self

    def disconnect(self):
        if self.client is None:
            return defer.succeed(None)
        client, self.client = self.client, None
        return client.disconnect()

    def call(self, method, *args, **kwargs):
        """Run C{client.method(*args)} bounded by the timeout.

        @raise StoreUnavailable: Redis did not answer in time or the
            connection is down.
        """
        if self.client is None:
            return defer.fail(StoreUnavailable("redis"))
        d = getattr(self.client, method)(*args, **kwargs)
        d.addTimeout(self.timeout, self.reactor)
        d.addErrback(self._unavailable, method)
        return d

    def _unavailable(self, failure, method):
        if failure.check(defer.TimeoutError, defer.CancelledError, txredisapi.ConnectionError):
            self.errors += 1
            log.warn("redis {method} failed: {why}", method=method, why=failure.getErrorMessage())
            raise StoreUnavailable("redis")
        return failure

    def eval(self, script, keys=(), args=()):
        return self.call("eval", script, list(keys), list(args))

    async def ping(self):
        return await self.call("ping")
