"""Send/receive accounting of a run and the message texts it is keyed on
(no I/O: unit-tested on its own).

Each message text is ``bench:<run>:<sender>:<n>``: the run token tells this
run's messages from room history and from other runs, ``(sender, n)`` is the
key under which the send time and the expected recipients are kept.
"""

from __future__ import annotations

import math
from typing import Any, Dict, List, Optional, Sequence, Tuple

# A message key: (sender index, sequence number of that sender).
Key = Tuple[int, int]


def percentile(sorted_values: Sequence[float], p: float) -> Optional[float]:
    """The ``p``-th percentile (0..100) of ascending ``sorted_values``.

    Nearest-rank method: the smallest value such that at least ``p`` percent
    of the values are less than or equal to it. ``None`` for no values.
    """
    n = len(sorted_values)
    if n == 0:
        return None
    if p <= 0:
        return sorted_values[0]
    if p >= 100:
        return sorted_values[-1]
    rank = math.ceil(p / 100.0 * n)
    return sorted_values[max(0, min(n, rank) - 1)]


# delivery outcomes returned by Tracker.on_receive
NEW = "new"
DUPLICATE = "duplicate"
UNEXPECTED = "unexpected"  # this run's message, delivered to someone not meant
UNKNOWN = "unknown"  # key never sent (or already forgotten)


class _Msg:
    __slots__ = ("sent_at", "expected", "got", "measured", "rejected", "group")

    def __init__(self, sent_at: float, expected, measured: bool, group=None):
        self.sent_at = sent_at
        self.expected = expected
        self.got: set = set()
        self.measured = measured
        self.rejected = False
        self.group = group


class _Group:
    """The accounts of one group of messages (a room of ``rooms``)."""

    __slots__ = ("sent", "expected", "delivered", "duplicated", "reordered")

    def __init__(self):
        self.sent = 0
        self.expected = 0
        self.delivered = 0
        self.duplicated = 0
        self.reordered = 0

    def as_dict(self) -> Dict[str, int]:
        return {"sent": self.sent, "expected": self.expected, "delivered": self.delivered,
                "lost": self.expected - self.delivered, "duplicated": self.duplicated,
                "reordered": self.reordered}


class Tracker:
    """Send/receive accounting for one run.

    ``on_send(key, recipients, t)`` records a message that must reach every
    recipient in ``recipients`` (any container supporting ``in`` and ``len``;
    share one frozenset between the messages of a room). ``on_receive(key,
    recipient, t)`` records one delivery and says whether it was new, a
    duplicate, unexpected or unknown.

    ``delivered`` counts distinct (message, expected recipient) deliveries;
    ``lost`` = expected deliveries - delivered, read after the drain period;
    ``duplicated`` counts every extra copy a recipient got.

    A message may belong to a ``group`` (``on_send(..., group=room)``): each
    group keeps its own accounts (`groups`). Order is checked per recipient
    and stream: by default the stream is the sender and the order its ``n``;
    a delivery that names an ``order`` (the server's ``seq`` in a room) is
    checked per (group, recipient) by that order instead, so two senders of
    one room are held to the room's one sequence. ``reordered`` counts
    deliveries older than one the same recipient already had from the stream.

    Latencies (ms) are kept for deliveries of messages sent while measuring
    (``start_measure``/``stop_measure``), and ``window_deliveries`` counts the
    deliveries that arrived while measuring, for the throughput.
    """

    def __init__(self) -> None:
        self.msgs: Dict[Any, _Msg] = {}
        self.latencies: List[float] = []
        self.sent = 0
        self.expected = 0
        self.delivered = 0
        self.duplicated = 0
        self.unexpected = 0
        self.unknown = 0
        self.rejected = 0
        self.reordered = 0
        self._last_n: Dict[Tuple[Any, Any], int] = {}
        self.groups: Dict[Any, _Group] = {}
        self.measuring = False
        self.measure_start: Optional[float] = None
        self.measure_end: Optional[float] = None
        self.window_deliveries = 0
        self.window_sent = 0

    # measurement window -------------------------------------------------
    def start_measure(self, t: float) -> None:
        self.measuring = True
        self.measure_start = t

    def stop_measure(self, t: float) -> None:
        if self.measuring:
            self.measuring = False
            self.measure_end = t

    # events ---------------------------------------------------------------
    def on_send(self, key, recipients, t: float, group=None) -> None:
        if key in self.msgs:
            raise ValueError(f"key {key!r} sent twice")
        self.msgs[key] = _Msg(t, recipients, self.measuring, group)
        self.sent += 1
        self.expected += len(recipients)
        if group is not None:
            g = self.groups.get(group)
            if g is None:
                g = self.groups[group] = _Group()
            g.sent += 1
            g.expected += len(recipients)
        if self.measuring:
            self.window_sent += 1

    def on_reject(self, key) -> None:
        """The server refused ``key`` with an error: it stays lost."""
        m = self.msgs.get(key)
        if m is not None and not m.rejected:
            m.rejected = True
            self.rejected += 1

    def on_receive(self, key, recipient, t: float, order=None) -> str:
        m = self.msgs.get(key)
        if m is None:
            self.unknown += 1
            return UNKNOWN
        if recipient not in m.expected:
            self.unexpected += 1
            return UNEXPECTED
        g = self.groups.get(m.group) if m.group is not None else None
        if recipient in m.got:
            self.duplicated += 1
            if g is not None:
                g.duplicated += 1
            return DUPLICATE
        m.got.add(recipient)
        self.delivered += 1
        if g is not None:
            g.delivered += 1
        if self.measuring:
            self.window_deliveries += 1
        if m.measured:
            self.latencies.append((t - m.sent_at) * 1000.0)
        if order is not None and g is not None:
            stream, n = ("group", m.group, recipient), order
        elif isinstance(key, tuple) and len(key) == 2:
            stream, n = (key[0], recipient), key[1]
        else:
            return NEW
        last = self._last_n.get(stream)
        if last is not None and n < last:
            self.reordered += 1
            if g is not None:
                g.reordered += 1
        else:
            self._last_n[stream] = n
        return NEW

    # results --------------------------------------------------------------
    @property
    def lost(self) -> int:
        return self.expected - self.delivered

    @property
    def pending(self) -> int:
        """Expected deliveries not seen yet (the same number as ``lost``)."""
        return self.expected - self.delivered

    def lost_messages(self) -> int:
        """Messages that missed at least one recipient."""
        return sum(1 for m in self.msgs.values() if len(m.got) < len(m.expected))

    def group_summary(self) -> Dict[str, Any]:
        """The groups' figures: their count, how many lost, duplicated or
        reordered anything, the fewest and most deliveries of one group, and
        ``per_group`` (``{group: {sent, expected, delivered, lost, duplicated,
        reordered}}``)."""
        gs = self.groups
        delivered = [g.delivered for g in gs.values()]
        return {
            "groups": len(gs),
            "groups_with_loss": sum(1 for g in gs.values() if g.expected > g.delivered),
            "groups_with_duplicates": sum(1 for g in gs.values() if g.duplicated),
            "groups_reordered": sum(1 for g in gs.values() if g.reordered),
            "group_delivered_min": min(delivered) if delivered else None,
            "group_delivered_max": max(delivered) if delivered else None,
            "per_group": {str(k): g.as_dict() for k, g in gs.items()},
        }

    def throughput(self) -> Optional[float]:
        if self.measure_start is None or self.measure_end is None:
            return None
        span = self.measure_end - self.measure_start
        if span <= 0:
            return None
        return self.window_deliveries / span

    def summary(self) -> Dict[str, Any]:
        lat = sorted(self.latencies)
        rate = self.throughput()
        span = None
        if self.measure_start is not None and self.measure_end is not None:
            span = self.measure_end - self.measure_start
        return {
            "sent": self.sent,
            "expected": self.expected,
            "delivered": self.delivered,
            "lost": self.lost,
            "lost_messages": self.lost_messages(),
            "duplicated": self.duplicated,
            "unexpected": self.unexpected,
            "rejected": self.rejected,
            "reordered": self.reordered,
            "msgs_per_s": _round(rate, 1),
            "sent_per_s": _round(self.window_sent / span, 1) if span else None,
            "p50_ms": _round(percentile(lat, 50), 3),
            "p90_ms": _round(percentile(lat, 90), 3),
            "p99_ms": _round(percentile(lat, 99), 3),
            "max_ms": _round(lat[-1] if lat else None, 3),
            "mean_ms": _round(sum(lat) / len(lat) if lat else None, 3),
            "latency_samples": len(lat),
            "seconds": _round(span, 3),
        }


def _round(v, digits):
    return None if v is None else round(v, digits)


def message_text(token: str, sender: int, n: int, size: int = 0) -> str:
    """The text of message ``n`` of ``sender``, padded to ``size`` characters."""
    text = f"bench:{token}:{sender}:{n}"
    if len(text) < size:
        text += ":" + "." * (size - len(text) - 1)
    return text


def parse_message_key(prefix: str, text: Any) -> Optional[Key]:
    """``(sender, n)`` from a text made by :func:`message_text`, or ``None``
    when ``text`` does not belong to the run whose prefix is
    ``bench:<token>:``."""
    if not isinstance(text, str) or not text.startswith(prefix):
        return None
    parts = text[len(prefix):].split(":", 2)
    if len(parts) < 2:
        return None
    try:
        return (int(parts[0]), int(parts[1]))
    except ValueError:
        return None
