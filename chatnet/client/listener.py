"""What a client session tells its user interface."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chatnet.client.requests import Request

if TYPE_CHECKING:
    from chatnet.client.connection import ChatConnection


class ConnectionListener:
    """What :class:`ChatConnection` tells its user.  Every method may be left as is."""

    def connection_state(self, conn: "ChatConnection") -> None:
        """``conn.state`` (or its details) changed."""

    def connection_notice(self, text: str, kind: str = "system") -> None:
        """Something to tell the user; ``kind`` is ``"system"`` or ``"error"``."""

    def chat_received(self, data: dict, history: bool) -> None:
        """A chat frame not seen before; ``history`` when replayed by a join."""

    def request_sent(self, request: Request, flushed: bool) -> None:
        """A request went out; ``flushed`` when it had been queued while disconnected."""

    def request_queued(self, request: Request) -> None:
        """A request waits for the connection."""

    def request_not_sent(self, request: Request, reason: str) -> None:
        """A queued request is given up."""

    def request_answered(self, action: str, data: dict, request: Request | None) -> None:
        """An answer frame (``userInfo``, ``popular``, ``listRooms``, and those of the room
        moderation: ``createRoom``, ``invite``, ``kick``, ``ban``, ``mute``, ``setRole``)."""

    def request_failed(self, code: int, message: str, request: Request | None) -> None:
        """An ``error`` frame other than a login failure or a takeover."""

    def room_joined(self, room: str, members: Any, rejoin: bool, history: int) -> None:
        """A join (or re-join after reconnecting) finished."""

    def room_left(self, room: str) -> None:
        """The node confirmed a ``leaveRoom``."""

    def rooms_at_login(self, rooms: list) -> None:
        """The login answer's ``rooms`` (extension ``live``): as ``listRooms`` lists them, with ``unread``."""

    def pushed(self, action: str, data: dict) -> None:
        """A frame of the extension ``live``: ``messageEdited``, ``messageDeleted``, ``typing``, ``members``, ``read``."""

    def room_notice(self, data: dict) -> None:
        """A ``roomNotice``: someone was kicked, banned or muted in a room of the user's."""

    def login_failed(self, code: int, message: str) -> None:
        """The node refused the login; the connection stopped."""

    def direct_queued(self, request: Request | None, data: dict) -> None:
        """A direct message was stored for a user who is not online (``queued``)."""

    def offline_summary(self, delivered: int, dropped: int) -> None:
        """After login: how many messages queued while offline came, how many were dropped."""

    def resumed(self, replayed: int, too_old: list) -> None:
        """The node answered ``resume``; ``too_old`` names the channels it could not replay."""
