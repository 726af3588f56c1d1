"""The write-behind log that stores every accepted message in MongoDB.

Accepted messages are queued in memory and written in batches
(``insert_many``, unordered) at most ``interval`` seconds after they were
accepted. Two kinds of failure are told apart:

* MongoDB is unavailable (down, a timeout, a failover): the batch stays at
  the head of the queue and is retried with backoff until MongoDB answers
  again; the message id is the document ``_id``, so a batch written twice
  stores each message once.
* a document is invalid (MongoDB refuses it, or the driver cannot encode
  it): writing it again cannot help, and it must not hold up the messages
  behind it. MongoDB names the refused ones of an unordered insert; a batch
  the driver cannot encode is split in halves until the bad documents are
  alone. Those are set aside in the ``dead_letters`` collection
  (``{"_id", "msgId", "reason", "at", "document"}``, the document as JSON
  text, its first MiB), counted (``dead_lettered``) and logged; the rest is stored. If
  MongoDB refuses the dead letter too, it is logged as one JSON line.

The queue is bounded: each document counts for at most the memory it takes
(L{document_bytes}); once the queue holds C{max_bytes}, L{full} is true and
new messages are refused with 503 before they are accepted
(L{chatnet.service.posting.Posting.post}) until MongoDB took enough of
it. Nothing accepted is ever dropped to make room.
"""
import datetime
from collections import deque

import orjson
from bson import ObjectId
from twisted.application.service import Service
from twisted.internet import defer
from twisted.logger import Logger

from chatnet.stores.mongo import Refused

log = Logger()

_INT64 = 2**63
# (a refused document may be too large for MongoDB itself)
DEAD_LETTER_CHARS = 1 << 20
#: what a queued document takes beside its text: the dict, the ObjectId and
#: the short fields (measured with tracemalloc: about 600 bytes with short
#: user and room names; longer names take the rest)
DOCUMENT_OVERHEAD = 1024


def document_bytes(doc):
    """An upper bound of the memory C{doc} takes in the queue: its text
    at 4 bytes a character (the widest a Python string stores)."""
    return DOCUMENT_OVERHEAD + 4 * len(doc.get("message") or "")


class MessageLog(Service):
    def __init__(self, mongo, clock, interval=0.05, batch=500, max_backoff=2.0, max_bytes=64 << 20):
        self.mongo = mongo
        self.max_bytes = max_bytes
        self.bytes = 0  # document_bytes of the queue
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
        self.dead_lettered = 0

    @property
    def full(self):
        """Whether the queue holds C{max_bytes}: new messages must wait
        (503) until MongoDB stored some."""
        return self.bytes >= self.max_bytes

    def append(self, doc):
        """Queue C{doc}, an accepted message, always (the caller looked at
        L{full} before accepting it)."""
        self.queue.append(doc)
        self.bytes += document_bytes(doc)
        if len(self.queue) == 1 or len(self.queue) >= self.batch:
            self._schedule(self.interval if len(self.queue) < self.batch else 0)

    @property
    def pending(self):
        return len(self.queue)

    def pending_seq(self, channel):
        """The highest seq of C{channel} still waiting to be stored."""
        return max((d["seq"] for d in self.queue if d["channel"] == channel), default=0)

    def waiting(self, channel, after=0):
        """The documents of C{channel} with a seq above C{after} that are
        still waiting here (accepted, maybe not yet in MongoDB)."""
        return [d for d in self.queue if d["channel"] == channel and d["seq"] > after]

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
        self._writing = defer.ensureDeferred(self._store(docs))
        self._writing.addCallbacks(self._written, self._failed, callbackArgs=(len(docs),))

    async def _store(self, docs):
        """Store C{docs}, setting aside those MongoDB refuses as invalid;
        returns how many were set aside.

        @raise StoreUnavailable: MongoDB is unavailable: write them all again
            later (what was stored or set aside is not stored twice).
        """
        try:
            refused = await self.mongo.insert_messages(docs)
        except Refused as e:
            if len(docs) == 1:
                refused = {0: e.reason}
            else:
                half = len(docs) // 2
                return await self._store(docs[:half]) + await self._store(docs[half:])
        for index, reason in sorted(refused.items()):
            await self._dead_letter(docs[index], reason)
        return len(refused)

    async def _dead_letter(self, doc, reason):
        entry = dead_letter_entry(doc, reason, self.clock.seconds())
        log.warn("message {msgId} refused by mongodb ({reason}): set aside in dead_letters",
                 msgId=entry["msgId"], reason=reason)
        try:
            if not await self.mongo.dead_letter(entry):
                return  # set aside before, by an earlier try of this batch
        except Refused as e:
            entry["at"] = entry["at"].isoformat()
            entry["_id"] = str(entry["_id"])
            log.error("message {msgId} could not be set aside ({why}); it was: {entry}",
                      msgId=entry["msgId"], why=e.reason, entry=orjson.dumps(entry).decode())
        self.dead_lettered += 1

    def _written(self, dead, count):
        self._writing = None
        for _ in range(count):
            self.bytes -= document_bytes(self.queue.popleft())
        self.stored += count - dead
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


def dead_letter_entry(doc, reason, now):
    """The C{dead_letters} document of C{doc}, refused for C{reason} at
    C{now} (seconds): C{doc} itself as JSON text, made storable."""
    msg_id = doc.get("_id")
    text = orjson.dumps(_plain(doc)).decode()
    entry = {
        "_id": msg_id if isinstance(msg_id, ObjectId) else ObjectId(),
        "msgId": str(msg_id),
        "reason": _plain(reason),
        "at": datetime.datetime.fromtimestamp(now, datetime.timezone.utc),
        "document": text[:DEAD_LETTER_CHARS],
    }
    if len(text) > DEAD_LETTER_CHARS:
        entry["truncated"] = len(text)
    return entry


def _plain(value):
    """C{value} with only what JSON and BSON both take: integers beyond 64
    bits, ids and unknown types become strings, bad UTF-8 is escaped."""
    if isinstance(value, dict):
        return {_plain(str(k)): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (bool, float)):
        return value
    if isinstance(value, int):
        return value if -_INT64 <= value < _INT64 else str(value)
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    return _plain(str(value))
