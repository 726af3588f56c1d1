"""The progress line of a long run on stderr, every ``--progress`` seconds
(rewritten in place on a terminal, one line each time otherwise)."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chatnet.bench.run import BenchRun


class Progress:
    def __init__(self, run: "BenchRun"):
        self.run = run
        self._loop = None
        self._tty = False
        self._printed = False
        self._last = (time.perf_counter(), 0, 0)

    def start(self) -> None:
        opts = self.run.opts
        if opts.progress <= 0 or opts.quiet:
            return
        from twisted.internet import task

        self._tty = sys.stderr.isatty()
        self._loop = task.LoopingCall(self._show)
        self._loop.clock = self.run.reactor
        self._loop.start(opts.progress, now=False)
        self._last = (time.perf_counter(), 0, 0)

    def stop(self) -> None:
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self.end_line()

    def end_line(self) -> None:
        """End a progress line left open on the terminal, before other output."""
        if self._tty and self._printed:
            print(file=sys.stderr, flush=True)
            self._printed = False

    def text(self) -> str:
        run = self.run
        t = run.tracker
        now = time.perf_counter()
        t0, d0, s0 = self._last
        dt = max(1e-9, now - t0)
        rate = (t.delivered - d0) / dt
        srate = (t.sent - s0) / dt
        self._last = (now, t.delivered, t.sent)
        connected = sum(1 for c in run.clients if c.logged_in and c.connected)
        errs = sum(run.errors.values())
        if run.opts.scenario == "connections":
            failed = sum(1 for c in run.clients if c.closed and not c.connected)
            return (f"[connections {run.phase} {now - run.t_start:6.1f}s] "
                    f"logged in={connected}/{len(run.clients)} closed={failed} errors={errs}")
        return (f"[{run.opts.scenario} {run.phase} {now - run.t_start:6.1f}s] "
                f"clients={connected}/{len(run.clients)} sent={t.sent} ({srate:,.0f}/s) "
                f"delivered={t.delivered} ({rate:,.0f}/s) inflight={run.traffic.inflight()} "
                f"pending={t.pending} errors={errs}")

    def _show(self) -> None:
        if time.perf_counter() - self.run.t_start < 3.0:
            return
        text = self.text()
        if self._tty:
            sys.stderr.write("\r\x1b[K" + text)
            sys.stderr.flush()
            self._printed = True
        else:
            print(text, file=sys.stderr, flush=True)
