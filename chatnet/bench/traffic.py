"""The send phase of the traffic scenarios: each sender keeps ``--window``
messages in flight (or sends ``--rate`` a second), for ``--duration`` seconds
with the first ``--warmup`` left out of the figures, then the run drains for
up to ``--drain`` seconds.

A message is in flight until its receiver has it (``direct``) or until its
sender gets its own echo (``room``); one still in flight after
``--msg-timeout`` frees its slot and counts as a timeout.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Dict, List

from chatnet.bench.tracker import NEW, Key, message_text

if TYPE_CHECKING:
    from chatnet.bench.client import BenchClient
    from chatnet.bench.run import BenchRun


class Sender:
    __slots__ = ("client", "index", "recipients", "data", "n", "inflight", "loop", "group", "done")

    def __init__(self, client: "BenchClient", recipients, data: dict, group=None):
        self.client = client
        self.group = group  # the tracker's group of its messages (rooms: the room)
        self.index = client.index
        self.recipients = recipients
        self.data = data  # the chat data without "message"
        self.n = 0
        self.inflight: Dict[Key, float] = {}
        self.loop = None
        self.done = False  # sent all its --messages and has none in flight


class Traffic:
    """The senders of one run and their windows.

    @param run: the run, for its options, reactor, tracker, notes and clock.
    @param release_on_own_echo: a message frees its slot when its sender gets
        it back (rooms), not when any recipient has it.
    """

    def __init__(self, run: "BenchRun"):
        self.run = run
        self.reactor = run.reactor
        self.opts = run.opts
        self.tracker = run.tracker
        self.token = run.token
        self.senders: Dict[int, Sender] = {}
        self.release_on_own_echo = False
        # check the order of room deliveries by the server's seq (rooms)
        self.order_by_seq = False
        self.sending = False
        self.timeouts = 0
        # --messages: each sender's count (0: no count), and the senders done
        self.limit = getattr(self.opts, "messages", 0) or 0
        self.finished = 0

    def inflight(self) -> int:
        return sum(len(s.inflight) for s in self.senders.values())

    # sending ------------------------------------------------------------------
    def send_one(self, s: Sender) -> None:
        n = s.n
        s.n += 1
        key = (s.index, n)
        data = dict(s.data)
        data["message"] = message_text(self.token, s.index, n, self.opts.size)
        if "to" in data:
            data["ts"] = int(time.time() * 1000)
        t = time.perf_counter()
        self.tracker.on_send(key, s.recipients, t, s.group)
        s.inflight[key] = t
        s.client.send_chat(key, data)

    def fill(self, s: Sender) -> None:
        """Top up the sender's window (window mode)."""
        if not self.sending or not s.client.connected:
            return
        w = self.opts.window
        limit = self.limit
        while len(s.inflight) < w and self.sending and not (limit and s.n >= limit):
            self.send_one(s)
        if limit and s.n >= limit and not s.inflight:
            self._sender_done(s)

    def _sender_done(self, s: Sender) -> None:
        if not s.done:
            s.done = True
            self.finished += 1
            if self.finished == len(self.senders):
                self.run.end_send_phase()

    @property
    def all_done(self) -> bool:
        """Every sender has sent and seen all its ``--messages``."""
        return bool(self.limit) and self.finished == len(self.senders)

    def tick(self, s: Sender) -> None:
        """One paced send (rate mode)."""
        if not self.sending or not s.client.connected:
            return
        if self.opts.window and len(s.inflight) >= self.opts.window:
            return
        if self.limit and s.n >= self.limit:
            if not s.inflight:
                self._sender_done(s)
            return
        self.send_one(s)

    # what comes back ------------------------------------------------------------
    def on_chat(self, client: "BenchClient", key: Key, order=None) -> None:
        status = self.tracker.on_receive(key, client.index, time.perf_counter(), order)
        if status != NEW:
            return
        s = self.senders.get(key[0])
        if s is None:
            return
        if self.release_on_own_echo and client.index != s.index:
            return
        if s.inflight.pop(key, None) is not None:
            if self.opts.rate <= 0:
                self.fill(s)
            elif self.limit and s.n >= self.limit and not s.inflight:
                self._sender_done(s)

    def on_chat_error(self, client: "BenchClient", key: Key, code) -> None:
        self.tracker.on_reject(key)
        s = self.senders.get(key[0])
        if s is not None and s.inflight.pop(key, None) is not None and self.opts.rate <= 0:
            # refill later, so that a refusing server is not flooded
            self.reactor.callLater(0.1, self.fill, s)

    def sweep(self) -> None:
        """Free window slots held by messages older than --msg-timeout."""
        limit = time.perf_counter() - self.opts.msg_timeout
        for s in self.senders.values():
            expired = []
            for key, t in s.inflight.items():
                if t > limit:
                    break
                expired.append(key)
            for key in expired:
                del s.inflight[key]
            if expired:
                self.timeouts += len(expired)
                if self.opts.rate <= 0:
                    self.fill(s)
                elif self.limit and s.n >= self.limit and not s.inflight:
                    self._sender_done(s)

    # the phases -------------------------------------------------------------------
    async def run_senders(self, senders: List[Sender]) -> None:
        """Send for --duration (the first --warmup seconds unmeasured), then
        drain for up to --drain seconds."""
        from twisted.internet import task

        run = self.run
        opts = self.opts
        warmup = opts.warmup
        if warmup >= opts.duration:
            if warmup > 0:
                run.note("--warmup is not shorter than --duration: no warm-up")
            warmup = 0.0
        self.senders = {s.index: s for s in senders}
        sweeper = task.LoopingCall(self.sweep)
        sweeper.clock = self.reactor
        sweeper.start(0.25, now=False)
        starts = []
        run.cpu.start()
        run.store_cpu.start()
        run.own_cpu.start()
        self.sending = True
        try:
            if warmup > 0:
                run.phase = "warmup"
            else:
                run.phase = "send"
                self.tracker.start_measure(time.perf_counter())
            if opts.rate > 0:
                for i, s in enumerate(senders):
                    s.loop = task.LoopingCall(self.tick, s)
                    s.loop.clock = self.reactor
                    # stagger the senders over one interval
                    starts.append(self.reactor.callLater(
                        i / (opts.rate * len(senders)), s.loop.start, 1.0 / opts.rate))
            else:
                for s in senders:
                    self.fill(s)
            if warmup > 0 and not self.all_done:
                await run.send_phase(warmup)
                self.tracker.start_measure(time.perf_counter())
                run.phase = "send"
            if not self.all_done:
                await run.send_phase(opts.duration - warmup)
        finally:
            self.sending = False
            self.tracker.stop_measure(time.perf_counter())
            for call in starts:
                if call.active():
                    call.cancel()
            for s in senders:
                if s.loop is not None and s.loop.running:
                    s.loop.stop()
        try:
            run.phase = "drain"
            deadline = time.perf_counter() + opts.drain
            while self.tracker.pending > 0 and time.perf_counter() < deadline:
                await run.sleep(0.02)
            # copies arriving late show up as duplicates
            await run.sleep(min(0.2, opts.drain))
        finally:
            run.cpu.stop()
            run.store_cpu.stop()
            run.own_cpu.stop()
            if sweeper.running:
                sweeper.stop()
