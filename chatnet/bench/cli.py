"""The entry points of the load generator: ``chatnet-bench`` (`main`), and
`run` / `run_async` for Python callers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from typing import Any, Dict, List, Optional, Sequence

from chatnet.bench.options import command_line, parse_args
from chatnet.bench.report import human_summary
from chatnet.bench.run import BenchRun
from chatnet.bench.scenarios import SCENARIO_FUNCS, scenario_filter


def run_async(argv: Sequence[str], reactor=None):
    """Run one scenario inside a running reactor: Deferred firing with the result dict."""
    from twisted.internet import defer

    argv = list(argv)
    opts = parse_args(argv)
    if opts.scenario == "filter":
        return defer.maybeDeferred(scenario_filter, opts, argv)
    run = BenchRun(opts, argv, reactor)
    return defer.Deferred.fromCoroutine(_guarded(run))


async def _guarded(run: BenchRun) -> Dict[str, Any]:
    try:
        return await SCENARIO_FUNCS[run.opts.scenario](run)
    except Exception as e:  # noqa: BLE001 - reported in the result line
        run.progress.stop()
        try:
            await run.close_all(timeout=1.0)
        except Exception:  # noqa: BLE001
            pass
        r = run.base_result()
        r["error"] = f"{type(e).__name__}: {e}"
        return run.finish(r)


_current_run: List[BenchRun] = []


def run(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    """Run one scenario and return its result dict.

    Starts the reactor and stops it when done. If this process's reactor has
    already run (it cannot be started again), the run happens in a subprocess
    (``python -m chatnet.bench ... --json``). Inside a running reactor use
    :func:`run_async`.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    opts = parse_args(argv)
    if opts.scenario == "filter":
        return scenario_filter(opts, argv)
    from twisted.internet import reactor

    if reactor.running:
        raise RuntimeError("the reactor is running: use run_async(argv)")
    if getattr(reactor, "_startedBefore", False):
        return run_subprocess(argv)
    from twisted.internet import defer

    bench = BenchRun(opts, argv, reactor)
    _current_run.append(bench)
    box: Dict[str, Any] = {}

    def done(result):
        box["result"] = result
        reactor.stop()

    def start():
        d = defer.Deferred.fromCoroutine(_guarded(bench))
        d.addBoth(done)
        if hasattr(signal, "SIGINT"):
            signal.signal(signal.SIGINT, _interrupt)

    reactor.callWhenRunning(start)
    try:
        reactor.run()
    finally:
        _current_run.remove(bench)
    result = box.get("result")
    if isinstance(result, BaseException) or result is None:
        r = bench.base_result()
        r["error"] = f"interrupted: {result!r}" if result is not None else "interrupted"
        return bench.finish(r)
    if not isinstance(result, dict):  # a Failure
        r = bench.base_result()
        r["error"] = str(getattr(result, "value", result))
        return bench.finish(r)
    return result


def _interrupt(signum, frame):
    """First Ctrl-C ends the send phase (results still printed); the next stops."""
    from twisted.internet import reactor

    for b in _current_run:
        if b.stop_early():
            return
    reactor.callFromThread(reactor.stop)


def run_subprocess(argv: Sequence[str], timeout: Optional[float] = None) -> Dict[str, Any]:
    """Run in a fresh interpreter and parse its JSON line."""
    args = list(argv)
    if "--json" not in args:
        args.append("--json")
    env = dict(os.environ)
    # the directory holding this chatnet package, so that the child runs this
    # very code (a checkout as much as an installed package)
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    proc = subprocess.run([sys.executable, "-m", "chatnet.bench", *args], env=env,
                          capture_output=True, text=True, timeout=timeout)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        raise RuntimeError(f"chatnet-bench exited {proc.returncode}: {proc.stderr[-2000:]}")
    result = json.loads(lines[-1])
    result["command"] = command_line(argv)
    return result


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["compare"]:
        from chatnet.bench.compare import main as compare

        return compare(argv[1:])
    opts = parse_args(argv)
    result = run(argv)
    if not opts.json:
        print(human_summary(result))
    sys.stdout.write(json.dumps(result, separators=(", ", ": ")) + "\n")
    sys.stdout.flush()
    return 1 if result.get("error") else 0
