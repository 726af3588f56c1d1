"""The owner of the work a request does not wait for
(chatnet/service/background.py): each failure is counted and logged, and
none is left unhandled."""
import gc

from twisted.internet import defer
from twisted.logger import globalLogPublisher

from chatnet.service.background import Background


def test_failures_are_counted_and_logged_once_and_handled():
    seen = []
    globalLogPublisher.addObserver(seen.append)
    try:
        background = Background("posting")
        ok, bad = defer.Deferred(), defer.Deferred()
        background.run("room message", ok)
        background.run("late delivery", bad)

        async def raises():
            raise ValueError("lost")

        background.run("copy to the sender", raises())
        assert (background.running, background.failures) == (2, 1)
        ok.callback(True)
        bad.errback(RuntimeError("peer gone"))
        assert (background.running, background.failures) == (0, 2)
        del ok, bad
        gc.collect()
    finally:
        globalLogPublisher.removeObserver(seen.append)
    failed = [e for e in seen if e.get("log_format") == "{name}: {what} failed"]
    assert sorted(e["what"] for e in failed) == ["copy to the sender", "late delivery"]
    assert not [e for e in seen if "Unhandled error" in str(e.get("log_format", ""))]
