"""The requests of a client session that are not done yet.

A request is queued while the session is not online (the ``outbox``), then
sent; until its answer comes it is *pending*.  A chat message is also
*unconfirmed* until the node shows it has it: with the ``ack`` extension by
its ``ack`` (or ``queued``) answer; without it, a room message by its echo and
a direct message by the pong of a WebSocket ping sent after it, or by the
answer to any later request (the node handles a connection's frames in
order).  What is unconfirmed when the connection drops is kept for a
*recheck*: sent again after the reconnect unless the replay shows it arrived.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from chatnet.client.text import text_matches

#: actions whose request is sent again after a reconnect when it was never answered
IDEMPOTENT = frozenset({"joinRoom", "leaveRoom", "userInfo", "popular", "listRooms", "invite", "setRole"})

#: how long a request waits for its answer before it is forgotten (when newer ones wait too)
ANSWER_WINDOW = 120


@dataclass
class Request:
    """A request to the node, made by the user (or by the connection itself)."""

    action: str
    data: dict
    queued_at: float
    internal: bool = False  # made by the connection (re-join), not the user
    id: int | None = None
    sent_at: float | None = None
    resent: bool = False

    def describe(self) -> str:
        d = self.data
        if self.action == "chat":
            if d.get("isGroup"):
                return f"#{d.get('roomName')} {d.get('message')}"
            return f"-> {d.get('to')} {d.get('message')}"
        if self.action in ("joinRoom", "leaveRoom"):
            return f"/{'join' if self.action == 'joinRoom' else 'leave'} {d.get('roomName')}"
        if self.action == "userInfo":
            return f"/stats {d.get('username')}"
        if self.action == "popular":
            return f"/popular {d.get('n')}"
        if self.action == "listRooms":
            return "/rooms"
        if self.action == "createRoom":
            return f"/create {d.get('roomName')}"
        if self.action in ("invite", "kick", "ban", "mute", "setRole"):
            name = "role" if self.action == "setRole" else self.action
            return f"/{name} {d.get('roomName')} {d.get('username')}"
        return self.action


class RequestIds:
    """Request ids as old clients make them: milliseconds × 1000 plus a counter, always increasing."""

    def __init__(self, clock: Any):
        self.clock = clock
        self._last_id = 0
        self._counter = 0

    def next(self) -> int:
        self._counter = (self._counter + 1) % 1000
        rid = int(self.clock.seconds() * 1000) * 1000 + self._counter
        rid = max(rid, self._last_id + 1)
        self._last_id = rid
        return rid


class Requests:
    """Queued, pending and unconfirmed requests of one session.

    ``link`` pings the node (:meth:`chatnet.client.transport.Link.ping`).
    ``acked`` says whether the node confirms chat messages with ``ack``; the
    session sets it at each login.  Unconfirmed messages are kept
    ``queue_max_age`` seconds with ``ack``, ``confirm_window`` without.
    """

    def __init__(self, clock: Any, link: Any, *, queue_limit: int = 200, queue_max_age: float = 600.0,
                 confirm_window: float = 30.0):
        self.clock = clock
        self.link = link
        self.queue_limit = queue_limit
        self.queue_max_age = queue_max_age
        self.confirm_window = confirm_window
        self.acked = False
        #: requests made while not online, sent in order once online
        self.outbox: list[Request] = []
        self._sent: OrderedDict[int, Request] = OrderedDict()
        self._unconfirmed: list[Request] = []
        self._recheck: list[Request] = []
        self._probe: int | None = None  # id of the last direct message a ping was sent after

    @property
    def window(self) -> float:
        return self.queue_max_age if self.acked else self.confirm_window

    # -- the outbox -------------------------------------------------------------

    def queue(self, req: Request) -> bool:
        """Keep ``req`` for when the session is online; False when too many wait."""
        if len(self.outbox) >= self.queue_limit:
            return False
        self.outbox.append(req)
        return True

    def take_outbox(self) -> list[Request]:
        items, self.outbox = self.outbox, []
        return items

    def expired(self, req: Request, now: float) -> bool:
        return now - req.queued_at > self.queue_max_age

    # -- sent requests ----------------------------------------------------------

    def sent(self, req: Request, now: float) -> None:
        """``req`` went out (its ``id`` set) at ``now``."""
        req.sent_at = now
        self._sent[req.id] = req
        while self._sent:
            oldest = next(iter(self._sent.values()))
            if now - (oldest.sent_at or now) <= ANSWER_WINDOW or len(self._sent) < 2:
                break
            self._sent.popitem(last=False)
        if req.action == "chat":
            window = self.window
            self._unconfirmed = [r for r in self._unconfirmed if now - (r.sent_at or now) <= window]
            self._unconfirmed.append(req)
            if not req.data.get("isGroup") and not self.acked:
                self._send_probe()

    def take(self, action: str, re_id: Any) -> Request | None:
        """The pending request of ``action`` answered by a frame with ``re`` = ``re_id``
        (by a frame without ``re``: the oldest of that action)."""
        if re_id is not None:
            req = self._sent.get(re_id)
            if req is not None and req.action == action:
                del self._sent[re_id]
                return req
            return None
        for rid, req in self._sent.items():
            if req.action == action:
                del self._sent[rid]
                return req
        return None

    def pop(self, re_id: Any) -> Request | None:
        """The pending request with id ``re_id``, whatever its action."""
        return self._sent.pop(re_id, None)

    def forget(self, req: Request | None) -> None:
        """``req`` needs no answer any more."""
        if req is not None and req.id is not None:
            self._sent.pop(req.id, None)

    def lost(self, now: float) -> None:
        """The connection is gone: unanswered idempotent requests go back to the
        front of the outbox, unconfirmed messages of the window to the recheck."""
        requeue = [r for r in self._sent.values() if r.action in IDEMPOTENT and not r.internal]
        for r in requeue:
            r.id = None
        self.outbox[0:0] = requeue
        self._sent.clear()
        window = self.window
        self._recheck.extend(r for r in self._unconfirmed
                             if r.sent_at is not None and now - r.sent_at <= window)
        self._unconfirmed.clear()
        self._probe = None

    # -- confirmation -----------------------------------------------------------

    def confirmed(self, req: Request) -> None:
        """The node has chat message ``req``."""
        for pending in (self._unconfirmed, self._recheck):
            if req in pending:
                pending.remove(req)

    def confirm_room(self, room: str, message: str) -> None:
        """The echo of one of our messages to ``room``."""
        for pending in (self._unconfirmed, self._recheck):
            for i, req in enumerate(pending):
                if req.data.get("roomName") == room and text_matches(req.data.get("message", ""), message):
                    del pending[i]
                    return

    def confirm_direct(self, message: str) -> Request | None:
        """One of our direct messages, replayed: the request it was, if still unconfirmed."""
        for pending in (self._recheck, self._unconfirmed):
            for i, req in enumerate(pending):
                if not req.data.get("isGroup") and text_matches(req.data.get("message", ""), message):
                    return pending.pop(i)
        return None

    def answered(self, re_id: Any) -> None:
        """A frame answering request ``re_id``: without ``ack``, every direct message sent before it arrived."""
        if isinstance(re_id, int) and not isinstance(re_id, bool) and self._unconfirmed and not self.acked:
            self._confirm_directs(re_id)

    def take_recheck(self) -> list[Request]:
        """The messages to send again after a reconnect, as new requests."""
        resend, self._recheck = self._recheck, []
        return [Request(r.action, dict(r.data), queued_at=r.queued_at, resent=True) for r in resend]

    def drop_recheck(self) -> None:
        self._recheck.clear()

    # Direct messages are not echoed.  The node handles the frames of a
    # connection in order, so a direct message has reached the node once an
    # answer to a later request comes back, or the pong of a WebSocket ping
    # sent after it.  One that has not when the connection drops is sent again.

    def _send_probe(self) -> None:
        if self._probe is not None:
            return
        last = next((r.id for r in reversed(self._unconfirmed)
                     if r.id is not None and not r.data.get("isGroup")), None)
        if last is None:
            return
        self._probe = last
        if not self.link.ping(b"c%d" % last, last):
            self._probe = None

    def pong(self, payload: bytes | str) -> None:
        """A WebSocket pong on the current connection."""
        if self._probe is None:
            return
        if isinstance(payload, str):
            payload = payload.encode("utf-8", "replace")
        if payload != b"c%d" % self._probe:
            return
        probe, self._probe = self._probe, None
        self._confirm_directs(probe)
        self._send_probe()

    def _confirm_directs(self, upto: int) -> None:
        """The node has handled every request up to id ``upto``."""
        self._unconfirmed = [r for r in self._unconfirmed
                             if r.data.get("isGroup") or r.id is None or r.id > upto]
