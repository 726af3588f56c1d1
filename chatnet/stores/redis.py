"""Redis: the connection, the key scheme and the few scripts chatnet runs.

Every call is bounded: a Redis that does not answer within ``timeout`` seconds
raises :class:`StoreUnavailable` (answered as 503) instead of hanging the
request. The pool reconnects by itself, whatever the outage looked like (see
:class:`_Factory`).
"""
from urllib.parse import urlparse

import txredisapi
from twisted.internet import defer, reactor as default_reactor
from twisted.internet.endpoints import HostnameEndpoint
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


# Deletes every session whose node is not live (ARGV[2..]: the live node ids)
# and, in the same step, the marker key (ARGV[1] .. nodeId) of each node whose
# sessions it deleted: a node that is in fact alive (the caller's view of the
# membership was old) finds its marker gone at its next heartbeat and
# publishes its sessions again. Returns how many sessions were deleted.
REMOVE_STALE_SESSIONS = """
local live = {}
for i = 2, #ARGV do live[ARGV[i]] = true end
local all = redis.call('HGETALL', KEYS[1])
local removed, nodes = 0, {}
for i = 1, #all, 2 do
  local ok, record = pcall(cjson.decode, all[i + 1])
  local node = ok and type(record) == 'table' and record['nodeId']
  if type(node) ~= 'string' or not live[node] then
    redis.call('HDEL', KEYS[1], all[i])
    removed = removed + 1
    if type(node) == 'string' then nodes[node] = true end
  end
end
for node in pairs(nodes) do redis.call('DEL', ARGV[1] .. node) end
return removed
"""

# Writes again the session ARGV[2] (JSON) of user ARGV[1], whose version is
# ARGV[3], unless a newer login of that user is there: re-publishing keeps the
# session's version and never takes over from a later login. Returns 1 if
# written.
RESTORE_SESSION = """
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur then
  local ok, record = pcall(cjson.decode, cur)
  if ok and type(record) == 'table' then
    local version = tonumber(record['version'])
    if version and version > tonumber(ARGV[3]) then return 0 end
  end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
"""


class _Protocol(txredisapi.RedisProtocol):
    """Selects the database itself. txredisapi's own select stops the whole
    pool for good when it fails (Redis stalled, or killed while the SELECT of
    a new connection was in flight, or still loading its data): here only
    this connection is dropped, and its pool slot connects again."""

    @defer.inlineCallbacks
    def connectionMade(self):
        database = self.factory.database
        try:
            reply = yield self.select(database)
            if isinstance(reply, Exception):
                raise reply
        except Exception as e:
            log.warn("redis: could not select database {db}: {e}; connecting again", db=database, e=e)
            if self.transport is not None:
                self.transport.abortConnection()
            return
        # (no password, no dbid: the base class only marks the connection usable)
        yield txredisapi.RedisProtocol.connectionMade(self)


class _Factory(txredisapi.RedisFactory):
    """A lazy pool of connections that never stops trying, retrying at most
    every C{maxDelay} seconds so that a Redis that answers again is used again
    within a second or two."""

    protocol = _Protocol
    initialDelay = 0.2
    maxDelay = 1.0

    def __init__(self, address, database, poolsize, reply_timeout):
        super().__init__(address, None, poolsize, isLazy=True, replyTimeout=reply_timeout, convertNumbers=False)
        self.database = database


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
        self._factory = _Factory(f"{self.host}:{self.port}", self.db, self.poolsize, self.timeout)
        self._factory.startConnecting(HostnameEndpoint(self.reactor, self.host, self.port, timeout=self.timeout))
        self.client = self._factory.handler
        return self

    def disconnect(self):
        if self.client is None:
            return defer.succeed(None)
        client, self.client = self.client, None
        return client.disconnect()

    def _check_pool(self):
        """The watchdog: a pool that stopped trying (which txredisapi does on
        some failures of its own) is replaced by a new one."""
        if self.client is not None and self._factory.stopped:
            log.warn("redis connection pool gave up: starting a new one")
            old = self.client
            self.connect()
            old.disconnect().addErrback(lambda f: None)

    def call(self, method, *args, **kwargs):
        """Run C{client.method(*args)} bounded by the timeout.

        @raise StoreUnavailable: Redis did not answer in time or the
            connection is down.
        """
        if self.client is None:
            return defer.fail(StoreUnavailable("redis"))
        self._check_pool()
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
