"""The write-behind log that stores every accepted message in MongoDB.

Accepted messages are queued in memory and written in batches
(``insert_many``, unordered) at most ``interval`` seconds after they were
accepted. A batch that fails stays at the head of the queue and is retried
with backoff until MongoDB answers again; the message id is the document
``_id``, so a batch written twice stores each message once.
"""
from collections import deque

from twisted.application.service import Service
from twisted.internet import defer
from twisted.logger import Logger

log = Logger()


class MessageLog(Service):
    def __init__(self, mongo, clock, interval=0.05, batch=500, max_backoff=2.0):
        self.mongo = mongo
        self.clock = clock
        self.interval = interval
        self.batch = batch
        self.max_backoff = max_backoff
        self.queue = deque()
        self._call = None
        self._writing = None
        self._backoff = 0.0
        self._flushed = []
        self.stored = 0
        self.failures = 0

    def append(self, doc):
        self.queue.append(doc)
        if len(self.queue) == 1 or len(self.queue) >= self.batch:
            self._schedule(self.interval if len(self.queue) < self.batch else 0)

    @property
    def pending(self):
        return len(self.queue)

    def _schedule(self, delay):
        if self._writing is not None:
            return
        if self._call is not None and self._call.active():
            if delay > 0:
                return
            self._call.cancel()
        self._call = self.clock.callLater(delay, self._write)

    def _write(self):
        self._call = None
        if not self.queue or self._writing is not None:
            return
        docs = [self.queue[i] for i in range(min(self.batch, len(self.queue)))]
        self._writing = defer.ensureDeferred(self.mongo.insert_messages(docs))
        self._writing.addCallbacks(self._written, self._failed, callbackArgs=(len(docs),))

    def _written(self, _, count):
        self._writing = None
        for _ in range(count):
            self.queue.popleft()
        self.stored += count
        if self._backoff:
            log.info("mongodb is back: message log resumed, {n} queued", n=len(self.queue))
        self._backoff = 0.0
        if self.queue:
            self._schedule(0)
        else:
            waiting, self._flushed = self._flushed, []
            for d in waiting:
                d.callback(None)

    def _failed(self, failure):
        self._writing = None
        self.failures += 1
        self._backoff = min(self.max_backoff, (self._backoff * 2) or 0.1)
        log.warn(
            "storing {n} messages failed ({why}); retrying in {s:.1f}s",
            n=len(self.queue),
            why=failure.getErrorMessage(),
            s=self._backoff,
        )
        self._call = self.clock.callLater(self._backoff, self._write)

    def flush(self):
        """A Deferred that fires once everything queued now is stored."""
        if not self.queue:
            return defer.succeed(None)
        d = defer.Deferred()
        self._flushed.append(d)
        self._schedule(0)
        return d

    def stopService(self):
        super().stopService()
        if not self.queue:
            return None
        d = self.flush()
        d.addTimeout(5, self.clock)
        d.addErrback(
            lambda f: log.error("{n} messages not stored at shutdown", n=len(self.queue))
        )
        return d
