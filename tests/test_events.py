"""The event bus: a listener that raises, hangs or falls behind never blocks
chat nor grows without bound (time driven by task.Clock), and plugin specs."""
import pytest
from twisted.internet import defer, task
from twisted.logger import globalLogPublisher

import chatnet.plugins
from chatnet.ops import events


@pytest.fixture
def logged():
    seen = []
    globalLogPublisher.addObserver(seen.append)
    yield seen
    globalLogPublisher.removeObserver(seen.append)


class Recorder:
    def __init__(self):
        self.calls = []

    def user_online(self, username, nodeId):
        self.calls.append(("user_online", username, nodeId))

    def message_delivered(self, msgId, count):
        self.calls.append(("message_delivered", msgId, count))


class Raising:
    def user_online(self, username, nodeId):
        raise RuntimeError("listener bug")


class Hanging:
    def __init__(self):
        self.started = []

    def user_online(self, username, nodeId):
        d = defer.Deferred(lambda _: self.started.append("cancelled"))
        self.started.append(d)
        return d


def test_every_listener_is_called_in_order_and_missing_methods_are_skipped():
    bus = events.EventBus(task.Clock())
    first, second = Recorder(), Recorder()
    bus.add(first)
    bus.add(object(), "nothing")
    bus.add(second)
    bus.emit("user_online", "ann", "n1")
    bus.emit("room_left", "r", "ann")  # nobody listens
    bus.emit("message_delivered", "m1", 3)
    assert first.calls == second.calls == [("user_online", "ann", "n1"), ("message_delivered", "m1", 3)]


def test_a_raising_listener_is_logged_and_does_not_stop_the_others(logged):
    clock = task.Clock()
    bus = events.EventBus(clock)
    raising = bus.add(Raising(), "raising")
    after = Recorder()
    bus.add(after)
    for i in range(5):
        bus.emit("user_online", f"u{i}", "n1")
    assert len(after.calls) == 5
    assert raising.failures == 5
    failures = [e for e in logged if e.get("plugin") == "raising"]
    assert len(failures) == 1  # the rest wait for the next log line
    assert failures[0]["log_failure"].check(RuntimeError)
    clock.advance(events.LOG_EVERY + 1)
    bus.emit("user_online", "u9", "n1")
    failures = [e for e in logged if e.get("plugin") == "raising"]
    assert len(failures) == 2 and failures[1]["unlogged"] == 4


def test_a_slow_deferred_is_cancelled_after_the_timeout():
    clock = task.Clock()
    bus = events.EventBus(clock, timeout=5.0)
    hanging = Hanging()
    slot = bus.add(hanging, "hanging")
    bus.emit("user_online", "ann", "n1")
    assert slot.pending == 1
    clock.advance(5.1)
    assert slot.pending == 0
    assert slot.timeouts == 1
    assert "cancelled" in hanging.started


def test_pending_calls_are_bounded_and_overflow_is_counted():
    clock = task.Clock()
    bus = events.EventBus(clock, max_pending=3, timeout=60.0)
    hanging = Hanging()
    slot = bus.add(hanging, "hanging")
    other = Recorder()
    bus.add(other)
    for i in range(10):
        bus.emit("user_online", f"u{i}", "n1")
    assert slot.pending == 3
    assert slot.dropped == 7
    assert len(hanging.started) == 3
    assert len(other.calls) == 10
    hanging.started[0].callback(None)
    assert slot.pending == 2
    bus.emit("user_online", "again", "n1")
    assert slot.pending == 3 and slot.dropped == 7


def test_coroutines_and_failed_deferreds_are_handled():
    clock = task.Clock()
    bus = events.EventBus(clock)

    class Async:
        def __init__(self):
            self.done = []

        async def user_online(self, username, nodeId):
            await task.deferLater(clock, 1.0, lambda: None)
            self.done.append(username)

        def user_offline(self, username, nodeId):
            return defer.fail(ValueError("nope"))

    listener = Async()
    slot = bus.add(listener)
    bus.emit("user_online", "ann", "n1")
    bus.emit("user_offline", "ann", "n1")
    assert slot.pending == 1 and slot.failures == 1
    clock.advance(1.0)
    assert listener.done == ["ann"] and slot.pending == 0


def test_parse_spec():
    assert events.parse_spec("export") == ("export", {})
    assert events.parse_spec("export:url=amqp://u:p@h:5672/%2F,exchange=x") == (
        "export", {"url": "amqp://u:p@h:5672/%2F", "exchange": "x"})
    assert events.parse_spec("x:a=b=c,") == ("x", {"a": "b=c"})
    for bad in ("", ":a=b", "x:novalue", "x:=v"):
        with pytest.raises(ValueError):
            events.parse_spec(bad)


def test_plugin_options_from_environment_and_command_line():
    environ = {
        "CHATNET_PLUGIN_EXPORT_URL": "amqp://env",
        "CHATNET_PLUGIN_EXPORT_ROUTING_KEY": "k",
        "CHATNET_PLUGIN_OTHER_URL": "no",
    }
    assert events.plugin_options("export", {"url": "amqp://cli"}, environ) == {
        "url": "amqp://cli", "routing-key": "k"}


def test_shipped_plugins_are_found():
    found = events.available(chatnet.plugins)
    assert {"export", "eventlog"} <= set(found)
    assert events.IChatEventListenerFactory.providedBy(found["export"])
    events.check_specs(["export:exchange=x", "eventlog"], chatnet.plugins)
    with pytest.raises(ValueError, match="unknown plugin"):
        events.check_specs(["nope"], chatnet.plugins)


def test_every_event_is_in_the_interface():
    assert set(events.EVENTS) == set(events.IChatEventListener.names())


def test_a_plugin_whose_package_is_missing_is_a_clear_option_error(tmp_path, monkeypatch):
    """A plugin whose module imports a package that is not installed (its
    extra, such as chatnet[export] for pika) stops the node with a
    ValueError that says so, as wrong options do."""
    (tmp_path / "chatnet_test_needs_missing.py").write_text(
        "import chatnet_test_missing_dependency\n\nclass Listener:\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    plugin = events.ChatEventPlugin("needs", "chatnet_test_needs_missing.Listener")
    with pytest.raises(ValueError, match="plugin 'needs' needs a package that is not installed"):
        plugin.listener(None, {})


def test_eventlog_does_not_need_the_export_extra():
    import sys

    from chatnet.ops import eventlog

    assert "pika" not in eventlog.__dict__
    assert events.available(chatnet.plugins)["eventlog"].factory == "chatnet.ops.eventlog.EventLog"
    assert sys.modules["chatnet.ops.eventlog"] is eventlog


def test_eventlog_logs_every_event_with_its_name(logged):
    from chatnet.domain.messages import MessageRevision
    from chatnet.ops.eventlog import EventLog

    assert all(callable(getattr(EventLog, event, None)) for event in events.EVENTS)
    bus = events.EventBus(task.Clock())
    bus.add(EventLog(None, {}), "eventlog")
    bus.emit("message_edited", MessageRevision("a" * 24, "room:club", "club", "ann", "", 3, "ann", 1000, "new"))
    bus.emit("message_deleted", MessageRevision("a" * 24, "room:club", "club", "ann", "", 3, "mod", 2000))
    told = [(e["chat_event"], e["by"], e["seq"]) for e in logged if "chat_event" in e]
    assert told == [("message_edited", "ann", 3), ("message_deleted", "mod", 3)]
