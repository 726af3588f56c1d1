"""Failed logins slow down the next ones, per user name and per client address.

After ``user_after`` failed logins of one user name (or ``address_after``
from one client address) every further failure locks that name (address)
out for ``base`` seconds, doubling with each failure up to ``cap``: a login
in that time is refused with 429 before any password is checked. A
successful login clears the user name's count (not the address's); a count
is forgotten ``forget_after`` seconds after its last failure.

The counts live in Redis (``chatnet:login-failures:user:<name>`` and
``...:addr:<address>``, hashes of ``n`` and ``until``, with an expiry) so
that they hold for the whole cluster: the gateway spreads one client over
every node.
"""
import math

from twisted.logger import Logger

from chatnet.errors import ProtocolError, StoreUnavailable
from chatnet.stores.redis import PREFIX

log = Logger()

KEY = PREFIX + "login-failures:"

# The latest lock-out time of KEYS (0 for none).
LOCKED_UNTIL = """
local latest = 0
for _, key in ipairs(KEYS) do
  local u = tonumber(redis.call('HGET', key, 'until') or '0') or 0
  if u > latest then latest = u end
end
return tostring(latest)
"""

# Counts a failure on each of KEYS; ARGV: now, base, cap, expiry (s), then
# the threshold of each key. Returns the latest lock-out time (0 for none).
COUNT_FAILURE = """
local now, base, cap, ttl = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local latest = 0
for i, key in ipairs(KEYS) do
  local over = redis.call('HINCRBY', key, 'n', 1) - tonumber(ARGV[4 + i])
  if over >= 0 then
    local untl = now + math.min(base * 2 ^ math.min(over, 64), cap)
    redis.call('HSET', key, 'until', tostring(untl))
    if untl > latest then latest = untl end
  end
  redis.call('EXPIRE', key, ttl)
end
return tostring(latest)
"""


def user_key(username):
    return f"{KEY}user:{username}"


def address_key(address):
    return f"{KEY}addr:{address}"


class LoginThrottle:
    def __init__(self, redis, clock, user_after=5, address_after=20, base=1.0, cap=300.0, forget_after=900):
        self.redis = redis
        self.clock = clock
        self.user_after = user_after
        self.address_after = address_after
        self.base = base
        self.cap = cap
        self.forget_after = forget_after

    async def check(self, username, address):
        """Raise 429 while C{username} or C{address} is locked out."""
        until = float(await self.redis.eval(LOCKED_UNTIL, [user_key(username), address_key(address)]))
        wait = until - self.clock.seconds()
        if wait > 0:
            seconds = math.ceil(wait)
            raise ProtocolError(429, f"too many failed logins; try again in {seconds} s", "login")

    async def failed(self, username, address):
        """Count a failed login; returns the seconds until the next login of
        C{username} is let through (0: at once)."""
        now = self.clock.seconds()
        ttl = int(max(self.forget_after, self.cap)) + 1
        until = await self.redis.eval(
            COUNT_FAILURE,
            [user_key(username), address_key(address)],
            [repr(now), repr(self.base), repr(self.cap), ttl, self.user_after, self.address_after],
        )
        return max(0.0, float(until) - now)

    async def succeeded(self, username):
        """A successful login: the user name starts afresh."""
        try:
            await self.redis.call("delete", user_key(username))
        except StoreUnavailable:
            log.warn("failed logins of {user} not cleared: redis unavailable", user=username)
