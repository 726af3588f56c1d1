"""Chat messages coming in: each shown once, its seq noted, our own ones confirmed."""

from __future__ import annotations

from typing import Any, Callable

from chatnet.client.listener import ConnectionListener
from chatnet.client.membership import Membership
from chatnet.client.requests import Requests
from chatnet.client.resume import ResumeTracker, SeenMessages
from chatnet.domain.names import SYSTEM


class Inbox:
    """What the node delivers: ``chat``, ``ack`` / ``queued``, ``offline``.

    ``username()`` is the session's user (it may change at login).  While a
    resume is under way (``resume.holding``) chat frames and the ``offline``
    summary are held, and shown by :meth:`show_held` once it is over.
    """

    def __init__(self, listener: ConnectionListener, *, username: Callable[[], str | None],
                 requests: Requests, resume: ResumeTracker, membership: Membership,
                 seen: SeenMessages):
        self.listener = listener
        self.username = username
        self.requests = requests
        self.resume = resume
        self.membership = membership
        self.seen = seen

    def chat(self, data: dict) -> None:
        if self.resume.holding:
            self.resume.hold(data)
        else:
            self._show(data)

    def show_held(self) -> None:
        """Show what was held while resuming: per channel, in seq order."""
        frames, offline = self.resume.release()
        for data in frames:
            self._show(data)
        if offline is not None:
            self.listener.offline_summary(*offline)

    def accepted(self, action: str, data: dict, re_id: Any) -> None:
        """``ack`` (the node accepted a chat message) or ``queued`` (stored for an offline user)."""
        req = self.requests.take("chat", re_id) if re_id is not None else None
        if req is None:
            return
        self.requests.confirmed(req)
        msg_id = data.get("msgId")
        if not req.data.get("isGroup"):
            peer = str(req.data.get("to") or "")
            if peer:
                self.resume.saw(f"dm:{peer}", data.get("seq"))
            if isinstance(msg_id, str) and msg_id:
                self.seen.remember(msg_id)  # shown when sent: not again if a replay brings it
        if action == "queued":
            self.listener.direct_queued(req, data)

    def offline(self, data: dict) -> None:
        delivered, dropped = data.get("delivered"), data.get("dropped")
        delivered = delivered if isinstance(delivered, int) else 0
        dropped = dropped if isinstance(dropped, int) else 0
        if self.resume.holding:
            self.resume.hold_offline(delivered, dropped)
        else:
            self.listener.offline_summary(delivered, dropped)

    def _show(self, data: dict) -> None:
        room = data.get("roomName") or ""
        sender = str(data.get("from") or "")
        message = data.get("message")
        if not isinstance(message, str):
            message = "" if message is None else str(message)
        msg_id = data.get("msgId")
        key = msg_id if isinstance(msg_id, str) and msg_id else (room, sender, data.get("ts"), message)
        if not self.seen.remember(key):
            return
        me = self.username()
        system = data.get("system") is True
        own_direct = not room and sender == me and not system
        # the server API's direct messages are the conversation "system",
        # whatever name they show
        peer = SYSTEM if system and not room else sender
        elsewhere = False
        if own_direct:
            # one of ours, replayed: it was shown when sent, and its ack got lost
            req = self.requests.confirm_direct(message)
            if req is not None:
                peer = str(req.data.get("to") or "")
            elif isinstance(data.get("to"), str) and data["to"]:
                # sent from another session of ours (multi): shown here too
                peer, elsewhere = data["to"], True
        if room or not own_direct or peer != sender:
            self.resume.saw(f"room:{room}" if room else f"dm:{peer}", data.get("seq"))
        if own_direct and peer != sender and not elsewhere:
            return
        history = self.membership.history(room)
        if room and sender == me:
            self.requests.confirm_room(room, message)
        self.listener.chat_received(data, history)
