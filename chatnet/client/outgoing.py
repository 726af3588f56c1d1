"""Requests going out: sent at once when online, queued otherwise, flushed after a (re)connect."""

from __future__ import annotations

from typing import Any, Callable

from chatnet.client.listener import ConnectionListener
from chatnet.client.membership import Membership
from chatnet.client.requests import Request, Requests


class Outgoing:
    """What the user asks of the node, and the session's own re-joins.

    ``online()`` says whether requests can go out now; ``username()`` is the
    session's user.  Every request sent is recorded in ``requests``
    (a ``joinRoom`` in ``membership`` too) and, unless the session made it,
    reported with ``listener.request_sent``.
    """

    def __init__(self, clock: Any, listener: ConnectionListener, *, link: Any, requests: Requests,
                 membership: Membership, online: Callable[[], bool], username: Callable[[], str | None]):
        self.clock = clock
        self.listener = listener
        self.link = link
        self.requests = requests
        self.membership = membership
        self.online = online
        self.username = username

    def request(self, action: str, data: dict) -> str:
        """Send a request now, or queue it.  Returns ``"sent"``, ``"queued"`` or ``"refused"``."""
        req = Request(action, dict(data), queued_at=self.clock.seconds())
        if self.online():
            self.transmit(req)
            return "sent"
        if not self.requests.queue(req):
            return "refused"
        self.listener.request_queued(req)
        return "queued"

    def send_room(self, room: str, text: str) -> str:
        return self.request("chat", {"roomName": room, "isGroup": True, "message": text,
                                     "ts": int(self.clock.seconds() * 1000), "format": "text"})

    def send_direct(self, user: str, text: str) -> str:
        return self.request("chat", {"to": user, "isGroup": False, "message": text,
                                     "ts": int(self.clock.seconds() * 1000), "format": "text"})

    def join(self, room: str) -> str:
        return self.request("joinRoom", {"roomName": room, "username": self.username()})

    def join_on_connect(self, room: str) -> None:
        """Join ``room`` once connected (silently; once however often asked)."""
        outbox = self.requests.outbox
        if room not in self.membership.rooms and not any(
                r.action == "joinRoom" and r.data.get("roomName") == room for r in outbox):
            outbox.append(Request("joinRoom", {"roomName": room, "username": self.username()},
                                  queued_at=self.clock.seconds()))

    def leave(self, room: str) -> str:
        return self.request("leaveRoom", {"roomName": room})

    def drop_queue(self, reason: str) -> list[Request]:
        """Give up every queued request, telling the listener; returns them."""
        items = self.requests.take_outbox()
        for req in items:
            self.listener.request_not_sent(req, reason)
        return items

    def rejoin(self, rooms: list[str]) -> None:
        """Join ``rooms`` again after a reconnect (for their history)."""
        for room in rooms:
            self.transmit(Request("joinRoom", {"roomName": room, "username": self.username()},
                                  queued_at=self.clock.seconds(), internal=True))

    def flush(self) -> None:
        """Online again: send again what was not confirmed, then what was queued."""
        now = self.clock.seconds()
        resend = self.requests.take_recheck()
        for req in resend:
            self.transmit(req, flushed=True)
        if resend:
            self.listener.connection_notice(
                f"sent again {_count(len(resend), 'message')} not confirmed before the connection dropped")
        flushed = 0
        for req in self.requests.take_outbox():
            if self.requests.expired(req, now):
                self.listener.request_not_sent(req, f"queued more than {int(self.requests.queue_max_age)}s ago")
            elif not self.online():  # lost again meanwhile
                self.requests.outbox.append(req)
            else:
                self.transmit(req, flushed=True)
                flushed += req.action == "chat"
        if flushed:
            self.listener.connection_notice(f"sent {_count(flushed, 'message')} queued while not connected")

    def transmit(self, req: Request, flushed: bool = False) -> None:
        now = self.clock.seconds()
        req.id = self.link.send(req.action, req.data)
        self.requests.sent(req, now)
        if req.action == "joinRoom":
            self.membership.started(req.data["roomName"], req, rejoin=req.internal)
        if not req.internal:
            self.listener.request_sent(req, flushed)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'s' if n != 1 else ''}"
