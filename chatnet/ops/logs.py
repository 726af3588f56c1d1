"""``--log-format json``: one JSON object per log line, for log shippers.

chatnet logs through ``twisted.logger`` with structured fields
(``log.info("{user} logged in on {node}", user=..., node=...)``). With
``--log-format json`` each event is written as::

    {"time": "2024-05-01T12:00:00.123Z", "level": "info", "namespace": "chatnet.actions.login",
     "message": "user1 logged in on node1", "user": "user1", "node": "node1"}

(plus ``"failure"``: the traceback, for errors logged with one). The fields
of the event come after the four fixed keys; a value that is not a JSON
scalar is written as its ``str()``.

It works under ``twistd`` as it is: the tap wraps its service in
:func:`with_log_format`, which sets an ``ILogObserver`` component on the
application; twistd then uses that observer in place of its text one, on the
same destination (``--logfile FILE``, rotated at 1 MB like twistd's own, or
standard output for ``-n`` without ``--logfile`` or with ``--logfile -``).
"""
import datetime
import sys

import orjson
from twisted.application.service import MultiService
from twisted.logger import FileLogObserver, ILogObserver, formatEvent
from twisted.python import logfile

FORMATS = ("text", "json")
_RESERVED = {"time", "level", "namespace", "message", "failure"}
# keys of legacy (twisted.python.log) events that are not fields
_LEGACY = {"message", "isError", "format", "time", "system", "why", "failure", "printed"}


def event_as_dict(event):
    """The flat dict of one twisted.logger event."""
    level = event.get("log_level")
    when = datetime.datetime.fromtimestamp(event.get("log_time", 0), datetime.timezone.utc)
    out = {
        "time": when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z",
        "level": level.name if level is not None else "info",
        "namespace": event.get("log_namespace", ""),
        "message": formatEvent(event),
    }
    failure = event.get("log_failure")
    if failure is not None:
        try:
            out["failure"] = failure.getTraceback()
        except Exception:
            out["failure"] = repr(failure)
    if event.get("log_system") not in (None, "-"):
        out["system"] = event["log_system"]
    for key, value in event.items():
        if key.startswith("log_") or key in _LEGACY or key in _RESERVED or key in out:
            continue
        if not isinstance(value, (str, int, float, bool, type(None))):
            value = str(value)
        out[key] = value
    return out


def format_json(event):
    try:
        return orjson.dumps(event_as_dict(event), default=str).decode() + "\n"
    except Exception as e:  # never lose a line to a formatting problem
        return orjson.dumps({"level": "error", "message": f"unformattable log event: {e!r}"}).decode() + "\n"


def json_observer(out):
    """An ILogObserver writing one JSON object per line to the file C{out}."""
    return FileLogObserver(out, format_json)


def open_destination(path, nodaemon):
    """Where twistd would have written its log: C{path}, or stdout."""
    if path == "-" or (nodaemon and not path):
        return sys.stdout
    return logfile.LogFile.fromFullPath(path or "twistd.log")


class _LogFormat(MultiService):
    """Holds the real service; tells the application which log observer to use."""

    def __init__(self, service, observer_factory):
        super().__init__()
        self.observer_factory = observer_factory
        service.setServiceParent(self)

    def setServiceParent(self, parent):
        # twistd makes the application, then adds our service to it; its
        # logger reads the application's ILogObserver component afterwards
        if hasattr(parent, "setComponent"):
            parent.setComponent(ILogObserver, self.observer_factory())
        super().setServiceParent(parent)


def with_log_format(service, options):
    """C{service}, made to log as C{options["log-format"]} says under twistd."""
    if options.get("log-format", "text") != "json":
        return service
    twistd = getattr(options, "parent", None) or {}
    path = twistd.get("logfile") if hasattr(twistd, "get") else None
    nodaemon = bool(twistd.get("nodaemon")) if hasattr(twistd, "get") else True
    return _LogFormat(service, lambda: json_observer(open_destination(path, nodaemon)))
