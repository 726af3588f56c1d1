"""Bytes a second: what a connection, and a user across their connections to
this node, may send (docs/protocol.md, error 429; docs/operations.md).

The frame rate limit (`chatnet.limits.ratelimit`, in the WebSocket protocol) counts
frames; a frame may hold up to ``--max-frame-bytes``, and what a node does
with a chat message (decoding, profanity masking, word cutting) costs time
in proportion to its length. So every request is also charged its size in
bytes, before anything else is done with it, against two token buckets:
the connection's (``--rate-bytes``, bursts of ``--rate-bytes-burst``) and
its user's (``--user-rate-bytes``, ``--user-rate-bytes-burst``), which all
of the user's logged-in connections to this node share (a ``multi`` user
with sessions on several nodes has a budget on each: the bound is per node,
with no call to Redis on the way of every frame). A request over either
budget is refused with 429 and charged nothing.

A request larger than a bucket's burst passes when the bucket is full and
leaves it below zero: the connection then waits until it has refilled, so
the average stays at the rate.

A user's bucket is kept while it is below full: a sweep, run when the table
has doubled since the last one, drops every bucket that has refilled
(idle for at most burst / rate seconds), so the table holds the users who
sent in the last few seconds, never every user seen.
"""
from __future__ import annotations

import weakref

from chatnet.errors import ProtocolError
from chatnet.limits.ratelimit import TokenBucket

#: Sweep the users' table when it has this many more entries than after the
#: last sweep, at the least.
MIN_SWEEP = 1024


class ByteBucket(TokenBucket):
    """A token bucket of bytes: ``rate`` a second, at most ``burst`` saved.
    A rate of 0 or less: no limit."""

    __slots__ = ()

    def can_take(self, size):
        """Whether `size` bytes may pass now (without taking them)."""
        if self.rate <= 0:
            return True
        tokens = self.refill()
        return tokens >= size or tokens >= self.burst

    def take(self, size):
        if self.rate > 0:
            self.tokens -= size

    def full(self):
        return self.rate <= 0 or self.refill() >= self.burst


class ByteBudget:
    """The byte budgets of a node's client connections and users.

    @param clock: an C{IReactorTime}.
    @param rate: bytes a second per connection (0: no limit).
    @param burst: bytes a connection may send at once.
    @param user_rate: bytes a second per user, all their connections to this
        node together (0: no limit).
    @param user_burst: bytes a user may send at once.
    """

    def __init__(self, clock, rate, burst, user_rate, user_burst):
        self.clock = clock
        self.rate = float(rate)
        self.burst = float(burst)
        self.user_rate = float(user_rate)
        self.user_burst = float(user_burst)
        self._connections = weakref.WeakKeyDictionary()
        self._users = {}
        self._swept_at = 0

    @classmethod
    def from_config(cls, config, clock):
        """The budgets of a L{chatnet.config.NodeConfig}; none at all when
        the node runs with C{--rate-limit 0} (no client rate limit)."""
        if config.rate_limit <= 0:
            return cls(clock, 0, 0, 0, 0)
        return cls(clock, config.rate_bytes, config.rate_bytes_burst, config.user_rate_bytes,
                   config.user_rate_bytes_burst)

    @property
    def enabled(self):
        return self.rate > 0 or self.user_rate > 0

    def charge(self, connection, username, size):
        """Charge a request of `size` bytes from `connection` of `username`
        (None before login) to both budgets, or raise 429 and charge none."""
        if size <= 0 or not self.enabled:
            return
        mine = None
        if self.rate > 0:
            mine = self._connections.get(connection)
            if mine is None:
                mine = self._connections[connection] = ByteBucket(self.rate, self.burst, self.clock)
            if not mine.can_take(size):
                raise ProtocolError(429, "byte rate limit of this connection exceeded, slow down")
        user = None
        if username is not None and self.user_rate > 0:
            user = self._users.get(username)
            if user is None:
                if len(self._users) >= self._swept_at + max(MIN_SWEEP, self._swept_at):
                    self.sweep()
                user = self._users[username] = ByteBucket(self.user_rate, self.user_burst, self.clock)
            if not user.can_take(size):
                raise ProtocolError(429, "byte rate limit of this user exceeded, slow down")
            user.take(size)
        if mine is not None:
            mine.take(size)

    def sweep(self):
        """Drop the users' buckets that have refilled."""
        self._users = {name: bucket for name, bucket in self._users.items() if not bucket.full()}
        self._swept_at = len(self._users)

    def users(self):
        """How many users' buckets are kept (tests, metrics)."""
        return len(self._users)
