"""The client side of the protocol: one logged-in session kept alive across nodes.

:class:`ChatConnection` is the session.  It composes a
:class:`~chatnet.client.transport.Link` (the WebSocket, found through the
gateway and found again when lost), :class:`~chatnet.client.requests.Requests`
(queued, pending and unconfirmed requests), a
:class:`~chatnet.client.resume.ResumeTracker` (last seqs, catching up) and
:class:`~chatnet.client.membership.Membership` (rooms and joins), and reports to a
:class:`~chatnet.client.listener.ConnectionListener`.
"""

from __future__ import annotations

from typing import Any, Callable

from twisted.internet import defer

from chatnet.client.inbox import Inbox
from chatnet.client.listener import ConnectionListener
from chatnet.client.membership import Membership
from chatnet.client.outgoing import Outgoing
from chatnet.client.requests import Request, RequestIds, Requests
from chatnet.client.resume import ResumeTracker, SeenMessages
from chatnet.client.text import clean_text
from chatnet.client.transport import Attempt, Link, LinkOwner, describe_exception
from chatnet.protocols.constants import DISCONNECTED, FEATURES, GOING_AWAY, REPLACED, TOO_SLOW, is_automatic

#: answers handed to the listener as they are
_ANSWERS = ("userInfo", "popular", "listRooms", "createRoom", "invite", "kick", "ban", "mute", "setRole",
            "history", "edit", "delete")
#: what the extension ``live`` pushes (docs/protocol.md), shown by the listener
_PUSHED = ("messageEdited", "messageDeleted", "typing", "members", "read")
#: asked of the node at login: the shared extensions and ``live``
CLIENT_FEATURES = tuple(dict.fromkeys((*FEATURES, "live")))


class ChatConnection(LinkOwner):
    """One session (a little over 300 lines: the state machine below is
    kept in one place; its parts, the link, the requests, the resume and
    the membership, are classes of their own).

    States: ``idle`` (not started), ``gateway`` (asking for a node),
    ``connecting``, ``login``, ``resuming`` (waiting for the replay of what
    was missed after a reconnect), ``joining`` (re-joining rooms after a
    reconnect), ``online``, ``waiting`` (backoff before asking the gateway
    again; ``retry_reason`` and ``retry_at`` tell why and until when),
    ``stopped`` (``stop_reason``: login refused, session taken over, closed).

    The login asks for the extensions in ``features``; ``server_features``
    holds those the node granted (empty for a node that answers without
    ``features``: then nothing that needs one is used).  Requests made while
    not ``online`` are queued and sent, in order, once the connection is
    back; one older than ``queue_max_age`` seconds is reported as not sent
    instead.  After a reconnect, with ``resume`` the node replays what was
    missed (rooms it cannot replay are joined again for their history);
    without it every room is joined again.

    ``link_options`` go to :class:`~chatnet.client.transport.Link`
    (``gateway_host``, ``backoff``, ``quick_retry``, ``jitter``, ``rng``,
    ``attempt_timeout``).
    """

    def __init__(
        self,
        listener: ConnectionListener,
        *,
        clock: Any,
        lookup: Callable[[], Any],
        connector: Callable[[str, Attempt], Any],
        username: str | None = None,
        password: str | None = None,
        join_timeout: float = 10.0,
        queue_limit: int = 200,
        queue_max_age: float = 600.0,
        confirm_window: float = 30.0,
        features: tuple[str, ...] = CLIENT_FEATURES,
        **link_options: Any,
    ):
        self.listener = listener
        self.clock = clock
        self.username = username
        self.password = password
        self.features = tuple(features)
        #: the extensions the node of the current (or last) connection granted
        self.server_features: frozenset[str] = frozenset()
        self.state = "idle"
        self.session_id: str | None = None
        self.stop_reason: str | None = None
        self.ever_online = False
        self.link = Link(self, clock=clock, ids=RequestIds(clock), lookup=lookup, connector=connector,
                         **link_options)
        self.requests = Requests(clock, self.link, queue_limit=queue_limit, queue_max_age=queue_max_age,
                                 confirm_window=confirm_window)
        self.resume = ResumeTracker(clock, timeout=join_timeout, on_timeout=self._resume_timed_out)
        self.membership = Membership(clock, listener, requests=self.requests, resume=self.resume,
                                     timeout=join_timeout, on_settled=self._check_rejoined)
        self.outgoing = Outgoing(clock, listener, link=self.link, requests=self.requests,
                                 membership=self.membership, username=lambda: self.username,
                                 online=lambda: self.state == "online" and self.link.transport is not None)
        self.inbox = Inbox(listener, username=lambda: self.username, requests=self.requests,
                           resume=self.resume, membership=self.membership, seen=SeenMessages())
        self._reconnecting = False

    # -- what the user interface reads ------------------------------------------

    @property
    def online(self) -> bool:
        return self.state == "online"

    @property
    def node_id(self) -> str | None:
        return self.link.node_id

    @property
    def retry_reason(self) -> str | None:
        return self.link.retry_reason

    @property
    def retry_at(self) -> float | None:
        return self.link.retry_at if self.state == "waiting" else None

    @property
    def rooms(self) -> list[str]:
        """The rooms joined, in join order."""
        return self.membership.rooms

    @property
    def outbox(self) -> list[Request]:
        """Requests waiting for the connection."""
        return self.requests.outbox

    @property
    def last_seq(self) -> dict[str, int]:
        """The last seq seen per conversation (``room:<name>`` / ``dm:<peer>``), for a later resume."""
        return self.resume.last_seq

    # -- what the user interface does (and ``outgoing``: its requests) ----------

    def start(self) -> None:
        """Start (or start again after ``stopped``) connecting through the gateway."""
        if self.state not in ("idle", "stopped"):
            return
        self.stop_reason = None
        self.link.start()

    def reconnect(self) -> None:
        """Drop the current connection, if any, and ask the gateway for a node now."""
        self._cancel_timers()
        self.link.abandon("reconnecting")
        self._after_loss()
        self.stop_reason = None
        self.link.start()

    def close(self) -> defer.Deferred:
        """Close for good (the user leaves).  Fires once closed, at most a second later."""
        self._cancel_timers()
        attempt = self.link.stop()
        self._set_state("stopped", stop_reason="closed")
        return self.link.close(attempt)

    # -- state ------------------------------------------------------------------

    def _set_state(self, state: str, *, stop_reason: str | None = None) -> None:
        self.state = state
        if state == "stopped":
            self.stop_reason = stop_reason
        self.listener.connection_state(self)

    def _cancel_timers(self) -> None:
        self.link.cancel_timers()
        self.resume.end()
        self.membership.cancel_timers()

    def _after_loss(self) -> None:
        """Bookkeeping when a connection is gone: what was in flight goes back to the queue."""
        self.requests.lost(self.clock.seconds())
        self.membership.clear()
        self.resume.end()
        self.inbox.show_held()  # what came before the connection dropped is still news

    # -- the link ---------------------------------------------------------------

    def link_state(self, state: str) -> None:
        self._set_state(state)

    def link_notice(self, text: str, kind: str = "system") -> None:
        self.listener.connection_notice(text, kind)

    def link_error(self, exc: Any) -> None:
        value = getattr(exc, "value", exc)
        self.listener.connection_notice(f"internal error: {describe_exception(value)}", "error")

    def link_opened(self) -> None:
        data: dict[str, Any] = {"username": self.username}
        if self.password:
            data["password"] = self.password
        if self.features:
            data["features"] = list(self.features)
        self._set_state("login")
        self.link.send("login", data)

    def link_lost(self, code: int | None, reason: str | None) -> None:
        if self.state == "stopped":
            self.listener.connection_state(self)
            return
        if code == REPLACED:  # the 409 frame got lost
            self._taken_over()
            return
        if code == DISCONNECTED:
            self._disconnected(reason)
            return
        was_online = self.state in ("online", "joining", "resuming")
        why = _why_closed(self.node_id, code, reason)
        self._after_loss()
        if was_online:
            self.listener.connection_notice(f"disconnected: {why}", "error")
            self.link.retry(why, quick=True, reported=True)
        else:
            self.link.retry(why)

    def link_pong(self, payload: bytes) -> None:
        self.requests.pong(payload)

    def link_frame(self, action: Any, data: dict, re_id: Any) -> None:
        self.requests.answered(re_id)
        try:
            if action == "login":
                self._on_login(data)
            elif action == "chat":
                self.inbox.chat(data)
            elif action in ("ack", "queued"):
                self.inbox.accepted(action, data, re_id)
            elif action == "offline":
                self.inbox.offline(data)
            elif action == "resume":
                self._on_resume_answer(data, re_id)
            elif action == "error":
                self._on_error(data, re_id)
            elif action == "joinRoom":
                self.membership.join_answered(data, re_id)
            elif action == "leaveRoom":
                self.membership.leave_answered(data, re_id)
            elif action == "roomNotice":
                self.membership.noticed(data, self.username)
            elif action in _ANSWERS:
                self.listener.request_answered(action, data, self.requests.take(action, re_id))
            elif action in _PUSHED:
                self.listener.pushed(action, data)
        except Exception as exc:  # never let a strange frame kill the client
            self.link_error(exc)

    # -- login, and catching up after a reconnect -------------------------------

    def _on_login(self, data: dict) -> None:
        if self.state != "login":
            return
        self.link.established()
        self.session_id = data.get("sessionId")
        if data.get("nodeId"):
            self.link.node_id = str(data["nodeId"])
        if isinstance(data.get("username"), str) and data["username"]:
            self.username = data["username"]
        granted = data.get("features")
        self.server_features = frozenset(
            f for f in (granted if isinstance(granted, list) else []) if f in self.features)
        self.requests.acked = "ack" in self.server_features
        if isinstance(data.get("rooms"), list):  # live: the user's rooms, with unread counts
            self.listener.rooms_at_login(data["rooms"])
        reconnect = self.ever_online
        self._reconnecting = reconnect
        self.ever_online = True
        if reconnect and "resume" in self.server_features:
            self._set_state("resuming")
            self.resume.begin()
            self.resume.sent(self.link.send("resume", self.resume.request(self.rooms)))
        else:
            self._rejoin(list(self.rooms))

    def _rejoin(self, rooms: list[str]) -> None:
        """Join ``rooms`` again (for their history), then go online."""
        if rooms:
            self._set_state("joining")
            self.outgoing.rejoin(rooms)
        else:
            self._finish_connect()

    def _resume_timed_out(self) -> None:
        if self.state == "resuming":
            self._resume_failed("no answer to resume")

    def _resume_failed(self, why: str) -> None:
        self.resume.end()
        self.inbox.show_held()
        self.listener.connection_notice(f"{why}; joining the rooms again", "error")
        self._rejoin(list(self.rooms))

    def _on_resume_answer(self, data: dict, re_id: Any) -> None:
        if self.state != "resuming" or (re_id is not None and not self.resume.answers(re_id)):
            return
        self.resume.end()
        self.inbox.show_held()
        replayed = data.get("replayed")
        too_old = data.get("tooOld")
        too_old = [item for item in too_old if isinstance(item, dict)] if isinstance(too_old, list) else []
        self.listener.resumed(replayed if isinstance(replayed, int) else 0, too_old)
        rooms = [item["roomName"] for item in too_old if isinstance(item.get("roomName"), str)]
        # a room no longer replayable: its last 50 messages, by joining it again
        self._rejoin([r for r in dict.fromkeys(rooms) if r in self.rooms or is_automatic(r)])

    def _finish_connect(self) -> None:
        self._set_state("online")
        if self._reconnecting:
            self.listener.connection_notice(f"reconnected to {self.node_id}")
        else:
            self.listener.connection_notice(f"connected to {self.node_id} as {self.username}")
        self.outgoing.flush()

    def _check_rejoined(self) -> None:
        if self.state == "joining" and not self.membership.rejoining():
            self._finish_connect()

    # -- errors -----------------------------------------------------------------

    def _on_error(self, data: dict, re_id: Any) -> None:
        try:
            code = int(data.get("code") or 0)
        except (TypeError, ValueError):
            code = 0
        message = clean_text(str(data.get("message") or data.get("ext") or "error"))
        if code == 409:
            self._taken_over()
        elif self.state == "login":
            if code == 401:
                self.link.refused(None)
                self._set_state("stopped", stop_reason=f"login refused: {message}")
                self.listener.login_failed(code, message)
            else:
                self.link.refused(f"login failed on {self.node_id}: {message} ({code})")
        elif self.state == "resuming" and self.resume.answers(re_id):
            self._resume_failed(f"resume refused: {message} ({code})")
        else:
            self._request_failed(code, message, self.requests.pop(re_id) if re_id is not None else None)

    def _request_failed(self, code: int, message: str, req: Request | None) -> None:
        if req is not None and req.action == "joinRoom" and self.membership.join_failed(req, code, message):
            return
        if req is not None and req.action == "chat":
            self.requests.confirmed(req)
        self.listener.request_failed(code, message, req)

    def _taken_over(self) -> None:
        self._cancel_timers()
        self.link.halt()
        self._after_loss()
        self.requests.drop_recheck()
        self.listener.connection_notice(
            "this session was taken over by a newer login of the same user elsewhere; "
            "not reconnecting (/reconnect to take it back)", "error")
        self._set_state("stopped", stop_reason="session taken over by another login")
        self.outgoing.drop_queue("the session was taken over")

    def _disconnected(self, reason: str | None) -> None:
        """The server's operator ended this user's sessions (close 4010):
        like a take-over, the client does not come back by itself."""
        self._cancel_timers()
        self.link.halt()
        self._after_loss()
        self.requests.drop_recheck()
        self.listener.connection_notice(
            f"disconnected by the server{': ' + reason if reason else ''}; "
            "not reconnecting (/reconnect to try again)", "error")
        self._set_state("stopped", stop_reason="disconnected by the server")
        self.outgoing.drop_queue("disconnected by the server")


def _why_closed(node: str | None, code: int | None, reason: str | None) -> str:
    """What the user is told when the connection to ``node`` closed with ``code``."""
    if code == GOING_AWAY:
        return f"{node} is shutting down"
    if code == TOO_SLOW:  # (or no login in time): reconnect and resume
        return f"{node} closed the connection: {reason or 'too slow'}"
    if code == 1001:
        return f"{node} is going away"
    if code == 1000:
        return f"{node} closed the connection"
    if code in (None, 1005, 1006):
        return f"lost connection to {node}"
    return f"connection to {node} closed ({code}{': ' + reason if reason else ''})"
