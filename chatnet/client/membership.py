"""The rooms a client session is in, and the joins under way.

A join waits for its ``joinRoom`` answer, counting the chat frames (the room's
history) that come before it.  A node without the ``joinRoom`` answer says
nothing when a join went through (an error would have come): after
``timeout`` seconds the join is taken as done.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from chatnet.client.listener import ConnectionListener
from chatnet.client.requests import Request, Requests
from chatnet.client.resume import ResumeTracker


@dataclass
class JoinTracker:
    request: Request | None  # the joinRoom request
    rejoin: bool  # made by the session after a reconnect, not by the user
    history: int = 0  # chat frames that came with it
    timer: Any = None


class Membership:
    """``rooms``: the rooms joined, in join order.

    ``on_settled()`` is called whenever a join is over (done or failed), so
    that a session re-joining its rooms after a reconnect knows when it is.
    """

    def __init__(self, clock: Any, listener: ConnectionListener, *, requests: Requests, resume: ResumeTracker,
                 timeout: float, on_settled: Callable[[], None]):
        self.clock = clock
        self.listener = listener
        self.requests = requests
        self.resume = resume
        self.timeout = timeout
        self.on_settled = on_settled
        self.rooms: list[str] = []
        self._joins: dict[str, JoinTracker] = {}

    def started(self, room: str, request: Request, rejoin: bool) -> None:
        """A ``joinRoom`` for ``room`` went out."""
        self._cancel(self._joins.get(room))
        tracker = JoinTracker(request, rejoin=rejoin)
        tracker.timer = self.clock.callLater(self.timeout, self._timed_out, room, tracker)
        self._joins[room] = tracker

    def history(self, room: str) -> bool:
        """A chat frame of ``room``: whether it is the history of a join (and counted)."""
        tracker = self._joins.get(room) if room else None
        if tracker is None:
            return False
        tracker.history += 1
        return True

    def rejoining(self) -> bool:
        return any(t.rejoin for t in self._joins.values())

    def join_answered(self, data: dict, re_id: Any) -> None:
        room = _room_of(data, self.requests.take("joinRoom", re_id))
        if room:
            self._done(room, data.get("members"), self._pop(room))

    def join_failed(self, req: Request, code: int, message: str) -> bool:
        """An error answered ``joinRoom`` request ``req``; True when it is dealt with (a re-join)."""
        room = req.data.get("roomName")
        self._pop(room)
        if not req.internal:
            return False
        if room in self.rooms:
            self.rooms.remove(room)
        self.listener.connection_notice(f"could not re-join #{room}: {message} ({code})", "error")
        self.listener.room_left(room)
        self.on_settled()
        return True

    def leave_answered(self, data: dict, re_id: Any) -> None:
        room = _room_of(data, self.requests.take("leaveRoom", re_id))
        if not room:
            return
        if room in self.rooms:
            self.rooms.remove(room)
        self.resume.forget_room(room)
        self.listener.room_left(room)

    def noticed(self, data: dict, me: str | None) -> None:
        """A ``roomNotice``: told to the user; a kick or ban of this user
        ends their membership of the room."""
        room = data.get("roomName")
        self.listener.room_notice(data)
        if data.get("username") == me and data.get("action") in ("kick", "ban") and room in self.rooms:
            self.rooms.remove(room)
            self.resume.forget_room(room)
            self.listener.room_left(room)

    def cancel_timers(self) -> None:
        for tracker in self._joins.values():
            self._cancel(tracker)

    def clear(self) -> None:
        """The connection is gone: no join is under way any more."""
        self.cancel_timers()
        self._joins.clear()

    def _done(self, room: str, members: Any, tracker: JoinTracker | None) -> None:
        if tracker is not None:
            self.requests.forget(tracker.request)
        if room not in self.rooms:
            self.rooms.append(room)
        self.listener.room_joined(room, members, tracker.rejoin if tracker is not None else False,
                                  tracker.history if tracker is not None else 0)
        self.on_settled()

    def _pop(self, room: str) -> JoinTracker | None:
        tracker = self._joins.pop(room, None)
        self._cancel(tracker)
        return tracker

    @staticmethod
    def _cancel(tracker: JoinTracker | None) -> None:
        if tracker is not None and tracker.timer is not None and tracker.timer.active():
            tracker.timer.cancel()

    def _timed_out(self, room: str, tracker: JoinTracker) -> None:
        if self._joins.get(room) is tracker:
            tracker.timer = None
            self._joins.pop(room)
            self._done(room, None, tracker)


def _room_of(data: dict, req: Request | None) -> str | None:
    """The room a ``joinRoom`` / ``leaveRoom`` answer is about."""
    room = data.get("roomName")
    if not isinstance(room, str) or not room:
        room = req.data.get("roomName") if req is not None else None
    return room
