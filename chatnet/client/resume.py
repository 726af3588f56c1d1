"""Catching up after a reconnect: the last seq seen per channel, the ``resume``
request, and de-duplication of what is shown.

With the ``resume`` extension the session sends, after a reconnect, the last
seq it saw per room and per conversation; the node replays what came after.
While the answer is awaited the chat frames that arrive are held, then shown
per channel in seq order (docs/protocol.md, "resume").
"""

from __future__ import annotations

from collections import OrderedDict, deque
from typing import Any, Callable

#: at most this many rooms and this many conversations go into one resume request
RESUME_NAMES = 1000


class SeenMessages:
    """The messages shown lately (by ``msgId``), so that none is shown twice."""

    def __init__(self, limit: int = 20000):
        self.limit = limit
        self._seen: set = set()
        self._order: deque = deque()

    def remember(self, key: Any) -> bool:
        """Note a message as seen; False if it had been seen already."""
        if key in self._seen:
            return False
        self._seen.add(key)
        self._order.append(key)
        if len(self._order) > self.limit:
            self._seen.discard(self._order.popleft())
        return True


class ResumeTracker:
    """Where the session is in each channel, and the resume under way.

    ``last_seq`` maps ``room:<name>`` / ``dm:<peer>`` to the last seq seen.
    A resume that gets no answer within ``timeout`` seconds calls
    ``on_timeout()``.
    """

    def __init__(self, clock: Any, *, timeout: float, on_timeout: Callable[[], None]):
        self.clock = clock
        self.timeout = timeout
        self.on_timeout = on_timeout
        self.last_seq: dict[str, int] = {}
        self._id: int | None = None
        self._timer: Any = None
        self._held: list[dict] | None = None  # chat frames held while resuming
        self._offline: tuple[int, int] | None = None

    # -- seqs -------------------------------------------------------------------

    def saw(self, channel: str, seq: Any) -> None:
        if isinstance(seq, int) and not isinstance(seq, bool) and seq > self.last_seq.get(channel, -1):
            self.last_seq[channel] = seq

    def forget_room(self, room: str) -> None:
        self.last_seq.pop(f"room:{room}", None)

    def request(self, rooms: list[str]) -> dict:
        """The ``resume`` request's data for a session in ``rooms``."""
        by_room: dict[str, int] = {}
        conversations: dict[str, int] = {}
        for room in rooms:
            by_room[room] = self.last_seq.get(f"room:{room}", 0)
        for channel, seq in self.last_seq.items():
            kind, _, name = channel.partition(":")
            if not name:
                continue
            if kind == "room":
                by_room.setdefault(name, seq)
            elif kind == "dm":
                conversations[name] = seq
        return {"rooms": dict(list(by_room.items())[-RESUME_NAMES:]),
                "conversations": dict(list(conversations.items())[-RESUME_NAMES:])}

    # -- the resume under way ---------------------------------------------------

    def begin(self) -> None:
        """A resume is about to be sent: hold chat frames from now on."""
        self._held = []
        self._offline = None

    def sent(self, rid: int) -> None:
        self._id = rid
        self._timer = self.clock.callLater(self.timeout, self._timed_out)

    def answers(self, re_id: Any) -> bool:
        """Whether a frame with ``re`` = ``re_id`` answers the resume under way."""
        return re_id is not None and re_id == self._id

    @property
    def holding(self) -> bool:
        return self._held is not None

    def hold(self, data: dict) -> None:
        self._held.append(data)

    def hold_offline(self, delivered: int, dropped: int) -> None:
        self._offline = (delivered, dropped)

    def end(self) -> None:
        """No answer is awaited any more."""
        self._id = None
        timer, self._timer = self._timer, None
        if timer is not None and timer.active():
            timer.cancel()

    def release(self) -> tuple[list[dict], tuple[int, int] | None]:
        """The chat frames held (per channel, in seq order) and the ``offline`` summary held."""
        frames, self._held = self._held or [], None
        groups: OrderedDict[Any, list[dict]] = OrderedDict()
        for data in frames:
            room = data.get("roomName") or ""
            groups.setdefault(("room", room) if room else ("dm", data.get("from")), []).append(data)
        ordered = []
        for group in groups.values():
            group.sort(key=lambda d: d.get("seq") if isinstance(d.get("seq"), int) else 0)
            ordered.extend(group)
        offline, self._offline = self._offline, None
        return ordered, offline

    def _timed_out(self) -> None:
        self._timer = None
        self.on_timeout()
