"""The owner of work a request starts and does not wait for (a room
message's fan-out, a late delivery after a queued one): it keeps count of
what runs and of what failed, and logs each failure once, so that no such
Deferred ends with an error nobody sees.
"""
from twisted.internet import defer
from twisted.logger import Logger

log = Logger()


class Background:
    """@param name: what the work is part of, for the log.

    C{running}: the works not finished; C{failures}: the works that failed
    (read by L{chatnet.ops.metrics.NodeMetrics})."""

    def __init__(self, name):
        self.name = name
        self.running = 0
        self.failures = 0

    def run(self, what, work):
        """Own C{work} (a coroutine or a Deferred), described by C{what}:
        a failure is logged and counted, never left to the caller. Returns
        nothing: the caller does not wait for it."""
        d = defer.ensureDeferred(work)
        self.running += 1
        d.addCallbacks(self._done, self._failed, errbackArgs=(what,))

    def _done(self, _):
        self.running -= 1

    def _failed(self, failure, what):
        self.running -= 1
        self.failures += 1
        log.failure("{name}: {what} failed", failure, name=self.name, what=what)
