"""Redis: the connection, the key scheme and the few scripts chatnet runs.

Every call is bounded: a Redis that does not answer within ``timeout`` seconds
raises :class:`StoreUnavailable` (answered as 503) instead of hanging the
request. The pool reconnects by itself, whatever the outage looked like (see
:class:`_Factory`).

Two kinds of URL: ``redis://host:port/db``, one server, and
``redis+sentinel://host1:26379,host2:26379/mastername/db``, the master of a
Redis Sentinel group: its address is asked of the sentinels before every
connection (:class:`SentinelEndpoint`), and a connection is used only once the
server says it is a master, so a failover is followed by reconnecting.

Every new connection first checks which server it reached
(:data:`CHECK_SERVER`): when the data set is no longer the one the seq
counters were last written to (a promoted replica, which may lack the last
increments, or a restarted server), every counter is marked untrusted, and
the next accept of each channel restores its counter first
(:mod:`chatnet.service.sequences`).
"""
import txredisapi
from twisted.internet import defer, error, protocol as twisted_protocol, reactor as default_reactor
from twisted.internet.endpoints import HostnameEndpoint
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from chatnet.adapters.txredisapi import FastRedisFactory, FastRedisProtocol
from chatnet.errors import StoreUnavailable
from chatnet.protocols.turnwrites import send_at_turn_end
from chatnet.stores.redis_url import is_sentinel_url, parse_redis_url, parse_sentinel_url

log = Logger()

PREFIX = "chatnet:"
SESSIONS = PREFIX + "sessions"
SERVERS = PREFIX + "servers"
LOAD = PREFIX + "load"
# the run id of the server the seq counters were last trusted on, and the set
# of channels whose counter was restored since (see CHECK_SERVER)
SEQ_SERVER = PREFIX + "seq-server"
SEQ_TRUSTED = PREFIX + "seq-trusted"


def history_key(channel):
    return f"{PREFIX}history:{channel}"


def seq_key(channel):
    return f"{PREFIX}seq:{channel}"


def marker_key(node_id):
    return f"{PREFIX}marker:{node_id}"


def room_nodes_key(room):
    """The set of the nodes that have members of C{room} online."""
    return f"{PREFIX}room-nodes:{room}"


def node_rooms_key(node_id):
    """The set of the rooms whose node sets name C{node_id}."""
    return f"{PREFIX}node-rooms:{node_id}"


def room_state_key(username):
    """The version of C{username}'s room membership and moderation state
    (L{chatnet.service.roomstate})."""
    return f"{PREFIX}room-state:{username}"


# The sessions of a user are one hash field (the username) holding a JSON
# list of records (a single object, as older nodes wrote it, reads as a list
# of one). SESSION_LIST decodes such a field.
SESSION_LIST = """
local function sessions(raw)
  if not raw then return {} end
  local ok, value = pcall(cjson.decode, raw)
  if not ok or type(value) ~= 'table' then return {} end
  if value['sessionId'] then return {value} end
  return value
end
local function store(key, field, list)
  if #list == 0 then redis.call('HDEL', key, field)
  else redis.call('HSET', key, field, cjson.encode(list)) end
end
"""

# Adds the session ARGV[2] (JSON) of user ARGV[1], stamped with Redis's own
# clock in microseconds ("version": the order of logins, whichever node took
# them). A session with "multi" set keeps the user's other "multi" sessions;
# any other session replaces them all. ARGV[3] (optional): the member nodes,
# separated by spaces: a user who has a session on one of them already has
# been online since its login, so the new session's loginTime is the
# earliest of theirs (a reconnect after a node died keeps the online time).
# Returns {the JSON list of the sessions it replaced, the version, the
# loginTime}.
SET_SESSION = SESSION_LIST + """
local t = redis.call('TIME')
local version = t[1] .. string.format('%06d', tonumber(t[2]))
local record = cjson.decode(ARGV[2])
record['version'] = version
local live = {}
for node in string.gmatch(ARGV[3] or '', '[^ ]+') do live[node] = true end
local kept, replaced = {}, {}
for _, s in ipairs(sessions(redis.call('HGET', KEYS[1], ARGV[1]))) do
  if record['multi'] and s['multi'] then table.insert(kept, s) else table.insert(replaced, s) end
  if live[s['nodeId']] and type(s['loginTime']) == 'number' and s['loginTime'] < record['loginTime'] then
    record['loginTime'] = s['loginTime']
  end
end
table.insert(kept, record)
store(KEYS[1], ARGV[1], kept)
if #replaced == 0 then return {false, version, record['loginTime']} end
return {cjson.encode(replaced), version, record['loginTime']}
"""

# Deletes the session ARGV[2] (its sessionId) of user ARGV[1], if it is still
# there: a replaced session never removes its successor.
DELETE_SESSION = SESSION_LIST + """
local kept, found = {}, 0
for _, s in ipairs(sessions(redis.call('HGET', KEYS[1], ARGV[1]))) do
  if s['sessionId'] == ARGV[2] then found = 1 else table.insert(kept, s) end
end
if found == 1 then store(KEYS[1], ARGV[1], kept) end
return found
"""

# Restores a seq counter to at least ARGV[1] (without counting; a missing
# counter is always created).
# KEYS[2]/ARGV[2]: the set of trusted counters and the channel, which this
# marks trusted again.
RESTORE_SEQ = """
local cur = tonumber(redis.call('GET', KEYS[1]) or '-1')
if cur < tonumber(ARGV[1]) then redis.call('SET', KEYS[1], ARGV[1]) end
redis.call('SADD', KEYS[2], ARGV[2])
return 1
"""

# Run by every new connection before it is used. KEYS[1] holds the run id of
# the server the seq counters were trusted on; if this server is another one
# (a replica promoted by Sentinel: replication is asynchronous, it may lack
# the last increments; or a server restarted from a snapshot older than its
# last writes), the set KEYS[2] of trusted channels is dropped, and each
# channel's counter is restored before its next seq. Returns 1 then, else 0.
# (replicate_commands: a write after INFO needs effects replication, the
# default only from Redis 5 on.)
CHECK_SERVER = """
redis.replicate_commands()
local id = string.match(redis.call('INFO', 'server'), 'run_id:(%w+)')
if redis.call('GET', KEYS[1]) == id then return 0 end
redis.call('SET', KEYS[1], id)
redis.call('UNLINK', KEYS[2])
return 1
"""


# Deletes every session whose node is not live (ARGV[2..]: the live node ids)
# and, in the same step, the marker key (ARGV[1] .. nodeId) of each node whose
# sessions it deleted: a node that is in fact alive (the caller's view of the
# membership was old) finds its marker gone at its next heartbeat and
# publishes its sessions again (and adds itself again to the node sets of its
# rooms, from which it is removed here too: chatnet.service.roomfeed).
# Returns how many sessions were deleted.
REMOVE_STALE_SESSIONS = SESSION_LIST + """
local live = {}
for i = 2, #ARGV do live[ARGV[i]] = true end
local all = redis.call('HGETALL', KEYS[1])
local removed, nodes = 0, {}
for i = 1, #all, 2 do
  local kept, changed = {}, false
  local list = sessions(all[i + 1])
  if #list == 0 then changed = true; removed = removed + 1 end
  for _, s in ipairs(list) do
    local node = type(s) == 'table' and s['nodeId']
    if type(node) == 'string' and live[node] then
      table.insert(kept, s)
    else
      changed = true
      removed = removed + 1
      if type(node) == 'string' then nodes[node] = true end
    end
  end
  if changed then store(KEYS[1], all[i], kept) end
end
for node in pairs(nodes) do
  redis.call('DEL', ARGV[1] .. node)
  local rooms_key = '""" + PREFIX + """node-rooms:' .. node
  for _, room in ipairs(redis.call('SMEMBERS', rooms_key)) do
    redis.call('SREM', '""" + PREFIX + """room-nodes:' .. room, node)
  end
  redis.call('DEL', rooms_key)
end
return removed
"""

# Writes again the session ARGV[2] (JSON) of user ARGV[1], whose version is
# ARGV[3], unless a newer login took it over (a newer session without
# "multi", or any newer one if this one is without "multi"): re-publishing
# keeps the session's version and never takes over from a later login.
# Returns 1 if written.
RESTORE_SESSION = SESSION_LIST + """
local record = cjson.decode(ARGV[2])
local mine = tonumber(ARGV[3])
local kept = {}
for _, s in ipairs(sessions(redis.call('HGET', KEYS[1], ARGV[1]))) do
  local version = tonumber(s['version'])
  if version and version > mine and not (record['multi'] and s['multi']) then return 0 end
  if s['sessionId'] ~= record['sessionId'] then
    if version and version < mine and not (record['multi'] and s['multi']) then
      -- older, and this one took it over
    else
      table.insert(kept, s)
    end
  end
end
table.insert(kept, record)
store(KEYS[1], ARGV[1], kept)
return 1
"""


class MasterNotFound(error.ConnectError):
    """No sentinel named a master (all down, or the name is unknown)."""


@implementer(IStreamClientEndpoint)
class SentinelEndpoint:
    """Connects to the master of the Sentinel group C{name}: before every
    attempt the sentinels are asked in turn (C{SENTINEL
    get-master-addr-by-name}), the one that answered last first.

    txredisapi's own C{Sentinel} is not used: it keeps one connection per
    sentinel whose calls wait without a bound while that sentinel is down
    (piling up with every attempt), gives no way to learn that the master
    changed, and selects the database the way that stops a pool for good
    (see L{_Protocol})."""

    def __init__(self, reactor, sentinels, name, timeout):
        self.reactor = reactor
        self.sentinels = list(sentinels)
        self.name = name
        self.timeout = timeout
        self.master = None  # the (host, port) last connected to

    async def discover(self, called_off=()):
        """The (host, port) of the master, from the first sentinel that
        knows it.

        @param called_off: not empty once the attempt was cancelled: no
            other sentinel is asked then (a cancelled question fails in
            ways that look like any other: C{DNSLookupError} while the
            address is resolved, C{ConnectingCancelledError}...).
        @raise MasterNotFound: no sentinel answered with an address."""
        why = []
        for index, (host, port) in enumerate(list(self.sentinels)):
            try:
                address = await self._ask(host, port)
            except Exception as e:
                if called_off:
                    raise defer.CancelledError() from e
                why.append(f"{host}:{port}: {e.__class__.__name__} {e}")
                continue
            if address is None:
                why.append(f"{host}:{port}: does not know {self.name}")
                continue
            if index:
                # ask this one first next time
                self.sentinels.insert(0, self.sentinels.pop(index))
            return address
        raise MasterNotFound(f"no sentinel names the master {self.name}: {'; '.join(why)}")

    async def _ask(self, host, port):
        endpoint = HostnameEndpoint(self.reactor, host, port, timeout=self.timeout)
        protocol = txredisapi.RedisProtocol(replyTimeout=self.timeout, convertNumbers=False)
        protocol.callLater = self.reactor.callLater
        factory = twisted_protocol.Factory.forProtocol(lambda: protocol)
        factory.noisy = False
        await endpoint.connect(factory)
        try:
            reply = await protocol.sentinel_get_master_addr_by_name(self.name)
        finally:
            protocol.transport.abortConnection()
        if not reply:
            return None
        return reply[0], int(reply[1])

    def connect(self, factory):
        called_off = []

        async def connect():
            address = await self.discover(called_off)
            if address != self.master:
                if self.master is not None:
                    log.warn("redis: sentinels name {new} as master of {name} (was {old})",
                             new=_show(address), name=self.name, old=_show(self.master))
                self.master = address
            endpoint = HostnameEndpoint(self.reactor, address[0], address[1], timeout=self.timeout)
            return await endpoint.connect(factory)

        # Cancelling the attempt (its pool stops) must end it: a connection
        # made afterwards would reach a pool that no longer expects one.
        attempt = defer.ensureDeferred(connect())

        def cancel(_):
            called_off.append(True)
            attempt.cancel()

        def ended(result):
            if not called_off:
                outcome.callback(result)
            elif not isinstance(result, Failure):
                result.transport.abortConnection()  # connected as it was called off
            # (else the cancellation's own failure; cancel() fails outcome with CancelledError)

        outcome = defer.Deferred(cancel)
        attempt.addBoth(ended)
        return outcome


def _show(address):
    return f"{address[0]}:{address[1]}"


class _Protocol(FastRedisProtocol):
    """txredisapi's protocol with the adapter's lighter command path
    (L{FastRedisProtocol}: a command unanswered for C{replyTimeout} seconds
    drops the connection, and its pool slot connects again).

    It selects the database itself. txredisapi's own select stops the whole
    pool for good when it fails (Redis stalled, or killed while the SELECT of
    a new connection was in flight, or still loading its data): here only
    this connection is dropped, and its pool slot connects again.

    Before the connection is used, the server must also say it is a master
    (a sentinel may still name a demoted one, which would refuse every
    write), and :data:`CHECK_SERVER` runs."""

    @defer.inlineCallbacks
    def connectionMade(self):
        send_at_turn_end(self.transport)
        database = self.factory.database
        try:
            role = yield self.role()
            if role[0] != "master":
                raise txredisapi.ConnectionError(f"the server is a {role[0]}, not a master")
            reply = yield self.select(database)
            if isinstance(reply, Exception):
                raise reply
            changed = yield self.eval(CHECK_SERVER, [SEQ_SERVER, SEQ_TRUSTED])
        except Exception as e:
            log.warn("redis: could not use {peer} (database {db}): {e}; connecting again",
                     peer=self.describe_peer(), db=database, e=e)
            if self.transport is not None:
                self.transport.abortConnection()
            return
        if int(changed):
            self.factory.server_changed()
        # (no password, no dbid: the base class only marks the connection usable)
        yield txredisapi.RedisProtocol.connectionMade(self)


class _Factory(FastRedisFactory):
    """A lazy pool of connections that never stops trying, retrying at most
    every C{maxDelay} seconds so that a Redis that answers again is used again
    within a second or two."""

    protocol = _Protocol
    initialDelay = 0.2
    maxDelay = 1.0

    def __init__(self, address, database, poolsize, reply_timeout, server_changed=lambda: None, clock=None):
        super().__init__(address, None, poolsize, isLazy=True, replyTimeout=reply_timeout, convertNumbers=False,
                         clock=clock)
        self.database = database
        self.server_changed = server_changed


class RedisStore:
    def __init__(self, url, timeout=3.0, reactor=None, poolsize=4):
        self.url = url
        if is_sentinel_url(url):
            self.sentinels, self.master_name, self.db = parse_sentinel_url(url)
            self.host = self.port = None
        else:
            self.host, self.port, self.db = parse_redis_url(url)
            self.sentinels, self.master_name = [], None
        self.timeout = timeout
        self.reactor = reactor or default_reactor
        self.poolsize = poolsize
        self.client = None
        self.errors = 0  # calls that failed: a metric
        self.server_changes = 0  # connections that found a new data set (CHECK_SERVER)

    def _endpoint(self):
        if self.sentinels:
            return SentinelEndpoint(self.reactor, self.sentinels, self.master_name, self.timeout)
        return HostnameEndpoint(self.reactor, self.host, self.port, timeout=self.timeout)

    def connect(self):
        address = f"{self.master_name}@sentinels" if self.sentinels else f"{self.host}:{self.port}"
        self._factory = _Factory(address, self.db, self.poolsize, self.timeout, self._server_changed, self.reactor)
        self._factory.startConnecting(self._endpoint())
        self.client = self._factory.handler
        return self

    def _server_changed(self):
        self.server_changes += 1
        log.warn("redis: a new data set (a promoted replica, or a restarted server): "
                 "every seq counter is restored before its next use")

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
        connection = self._factory.ready()
        if connection is None:
            # none ready: the pool's handler waits for one
            d = getattr(self.client, method)(*args, **kwargs)
            d.addTimeout(self.timeout, self.reactor)
        else:
            # (the connection bounds the wait itself: _Protocol)
            try:
                d = getattr(connection, method)(*args, **kwargs)
            except Exception:
                d = defer.fail()
        d.addErrback(self._unavailable, method)
        return d

    def _unavailable(self, failure, method):
        if failure.check(defer.TimeoutError, defer.CancelledError, txredisapi.ConnectionError):
            self.errors += 1
            log.warn("redis {method} failed: {why}", method=method, why=failure.getErrorMessage())
            raise StoreUnavailable("redis")
        if failure.check(txredisapi.ResponseError) and _read_only(failure.value):
            # the server was demoted to a replica under us (a failover): its
            # connections are dropped, and made again to the new master
            self.errors += 1
            log.warn("redis {method} failed: {why}; connecting to the master again",
                     method=method, why=failure.getErrorMessage())
            self._factory.drop_connections()
            raise StoreUnavailable("redis")
        return failure

    def eval(self, script, keys=(), args=()):
        return self.call("eval", script, list(keys), list(args))

    async def ping(self):
        return await self.call("ping")


def _read_only(reply):
    """Is this error reply a replica's refusal of a write?"""
    text = str(reply)
    return text.startswith("READONLY") or "-READONLY" in text or "READONLY You can't write" in text
