"""chatnet terminal client: urwid on the Twisted reactor.

Usage::

    chatnet-client [--gateway http://127.0.0.1:8888] [--user NAME] [--password PW]
                   [--join ROOM[,ROOM...]] [--log FILE] [--debug-log FILE]

``--debug-log`` gets Twisted's log and a line for every frame sent (``->``)
and received (``<-``), passwords masked.

What is missing on the command line is asked for inside the UI: the user name
first; the login is tried without a password, and a password is asked for when
the node answers 401.  The client asks the gateway for a node (``GET
/server``), connects to it over WebSocket, logs in and keeps the connection up:
when the node goes away it asks the gateway again with backoff, logs in again,
catches up and sends what was typed in the meantime.

The login asks for the protocol extensions ``ack``, ``offline`` and
``resume`` (docs/protocol.md).  Where the node grants them, sent messages are
confirmed by their ``ack`` and those not acked when the connection drops are
sent again; a direct message to a user who is not online is queued by the
node; after a reconnect one ``resume`` request, with the last seq seen per room
and per conversation, brings what was missed (rooms it cannot replay are
joined again for their last 50 messages).  A node that grants nothing gets
the plain protocol: rooms are joined again after a reconnect for their
history, direct messages are confirmed by a ping.

Screen
------

* the message pane: one line per message or notice, ``HH:MM:SS`` then a mark
  column (``>`` own message, ``~`` history, ``@`` mentions you, ``*`` notice,
  ``!`` error), then ``#room <sender> text`` (no room tag for direct
  messages; ``-> <user> text`` for a direct message you sent);
* the status bar: user, node id, connection state, current room, unread
  counts of the other rooms;
* the input line: history with up/down, tab completion of commands, user and
  room names, esc clears it.  Page up/page down scroll the pane, ctrl-n and
  ctrl-p switch to the next/previous joined room, ctrl-d on an empty line or
  ``/exit`` leaves.

Commands: ``/help`` lists them (``/chat``, ``/msg``, ``/join``, ``/joinRoom``,
``/leave``, ``/room``, ``/rooms``, ``/stats``, ``/popular``, ``/whoami``,
``/reconnect``, ``/help``, ``/exit``).  A line that does not start with ``/``
goes to the current room; ``//text`` sends ``/text``.

Transcript (``--log FILE``)
---------------------------

The file is created (truncated) at start and written in UTF-8, one line per
event, flushed at once, so that a script can wait for lines.  Every line starts
with the local time ``[HH:MM:SS]`` (the message's ``ts`` for chat lines, the
local clock otherwise) and one space::

    [12:01:02] <user2> hello                  direct message received
    [12:01:02] -> <user2> hello               direct message you sent
    [12:01:02] #room1 <user2> hi              room message (your own ones too)
    [12:01:02] (history) #room1 <user2> hi    replayed when joining a room
    [12:01:02] *** reconnected to node2       notice or command output
    [12:01:02] !!! user bob is not on line (404)   error

Notices a script may wait for: ``*** connected to <node> as <user>``,
``*** joined #<room> (<n> members)`` (``*** rejoined #<room>`` after a
reconnect), ``*** reconnected to <node>``, ``*** queued (not connected): ...``,
``*** queued for <user> (offline)``, ``*** caught up: <n> missed messages``
(before ``reconnected``), ``*** <n> messages received while you were
offline`` (``; <m> older ones were dropped``),
``*** <user>: online 00d 01h 02m 03s on node <node>`` (``/stats``).
Errors: ``!!! disconnected: <reason>``, ``!!! usage: ...``,
``!!! not sent: ...``.  A newline inside a message
is written as the two characters ``\\n``; other control characters as ``?``.

Structure
---------

* :func:`parse_command` turns an input line into a :class:`Command` or a
  :class:`UsageError`, with no side effect.
* :class:`ChatConnection` owns the WebSocket: gateway lookup, connect, login,
  reconnect with backoff (``clock.callLater``), resuming (or re-joining rooms),
  the queue of requests made while disconnected, acks, de-duplication of chat
  frames by ``msgId`` and the last ``seq`` per room and conversation.  It talks to
  the network only through two injected callables, ``lookup()`` (a Deferred
  firing with the gateway's answer) and ``connector(url, attempt)``, and
  reports to a :class:`ConnectionListener`.
* :class:`ChatApp` is the listener and owns the urwid widgets
  (:class:`MessagePane`, :class:`InputLine`, the status bar, :class:`ChatScreen`).
"""

from __future__ import annotations

import argparse
import os
import random
import re
import sys
import time
import unicodedata
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Any, Callable
from urllib.parse import urlsplit, urlunsplit

import orjson
import urwid
from twisted.internet import defer
from twisted.logger import Logger

DEFAULT_GATEWAY = "http://127.0.0.1:8888"

#: every frame sent and received, for ``--debug-log`` (passwords masked)
_trace = Logger(namespace="chatnet.client.frames")

# ---------------------------------------------------------------------------
# commands (pure)
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class CommandSpec:
    name: str  # canonical name
    usage: str
    help: str
    aliases: tuple[str, ...] = ()


COMMAND_SPECS: tuple[CommandSpec, ...] = (
    CommandSpec("chat", "/chat <user> <words...>  or  /chat room:<room> <words...>",
                "send a direct message, or a message to a room"),
    CommandSpec("msg", "/msg <user> <words...>", "send a direct message"),
    CommandSpec("join", "/join <room>", "join a room (shows its last 50 messages) and make it current",
                aliases=("joinRoom",)),
    CommandSpec("leave", "/leave [room]", "leave a room (default: the current one)"),
    CommandSpec("room", "/room [room]", "switch the current room, where lines without / go"),
    CommandSpec("rooms", "/rooms", "list the rooms"),
    CommandSpec("stats", "/stats <user>", "how long a user has been online, and on which node"),
    CommandSpec("popular", "/popular [n]", "the n most used words right now (default 10)"),
    CommandSpec("whoami", "/whoami", "who and where you are"),
    CommandSpec("reconnect", "/reconnect", "connect again through the gateway"),
    CommandSpec("help", "/help [command]", "list the commands, or explain one"),
    CommandSpec("exit", "/exit", "leave the client", aliases=("quit",)),
)

_SPEC_BY_NAME: dict[str, CommandSpec] = {}
for _spec in COMMAND_SPECS:
    for _n in (_spec.name, *_spec.aliases):
        _SPEC_BY_NAME[_n.lower()] = _spec

#: every name a command can be typed with, in the spelling of the help
COMMAND_NAMES: tuple[str, ...] = tuple(n for s in COMMAND_SPECS for n in (s.name, *s.aliases))

POPULAR_DEFAULT = 10
POPULAR_MAX = 1000


@dataclass(frozen=True)
class Command:
    """A parsed input line.

    ``name`` is the canonical command name (aliases resolved), or ``"say"`` for
    a line to the current room.  ``room`` and ``user`` are bare names (no
    ``#``, no ``room:``).
    """

    name: str
    user: str | None = None
    room: str | None = None
    text: str | None = None
    count: int | None = None
    topic: str | None = None


@dataclass(frozen=True)
class UsageError:
    """Wrong use of a command: what to show instead of doing anything."""

    message: str
    usage: str | None = None
    command: str | None = None

    def lines(self) -> list[str]:
        out = [self.message] if self.message else []
        if self.usage:
            out.append(f"usage: {self.usage}")
        return out


def _room_arg(word: str) -> str:
    if word.startswith("room:"):
        word = word[5:]
    return word.lstrip("#")


def parse_command(line: str) -> Command | UsageError | None:
    """Parse one input line.  ``None`` for an empty line."""
    line = line.rstrip("\r\n")
    if not line.strip():
        return None
    if not line.startswith("/"):
        return Command("say", text=line.rstrip())
    if line.startswith("//"):
        return Command("say", text=line[1:].rstrip())
    parts = line[1:].split(None, 1)
    if not parts:
        return UsageError("a command name must follow the /; /help lists the commands")
    head = parts[0]
    rest = parts[1].strip() if len(parts) > 1 else ""
    spec = _SPEC_BY_NAME.get(head.lower())
    if spec is None:
        return UsageError(f"unknown command /{head}; /help lists the commands")
    args = rest.split()

    def bad(msg: str = "") -> UsageError:
        return UsageError(msg, spec.usage, spec.name)

    name = spec.name
    if name in ("chat", "msg"):
        words = rest.split(None, 1)
        if len(words) < 2 or not words[1].strip():
            return bad()
        target, text = words[0], words[1].strip()
        if name == "chat" and (target.startswith("room:") or target.startswith("#")):
            room = _room_arg(target)
            if not room:
                return bad("the room name is missing")
            return Command("chat", room=room, text=text)
        if target.startswith("#") or target.startswith("room:"):
            return bad("/msg sends to a user; use /chat room:<room> for a room")
        return Command("chat", user=target, text=text)
    if name == "join":
        if len(args) != 1 or not _room_arg(args[0]):
            return bad()
        return Command("join", room=_room_arg(args[0]))
    if name in ("leave", "room"):
        if len(args) > 1:
            return bad()
        if args and not _room_arg(args[0]):
            return bad()
        return Command(name, room=_room_arg(args[0]) if args else None)
    if name == "stats":
        if len(args) != 1:
            return bad()
        return Command("stats", user=args[0].lstrip("@"))
    if name == "popular":
        if len(args) > 1:
            return bad()
        if not args:
            return Command("popular", count=POPULAR_DEFAULT)
        if not args[0].isdigit() or int(args[0]) > POPULAR_MAX:
            return bad(f"n must be a whole number from 0 to {POPULAR_MAX}")
        return Command("popular", count=int(args[0]))
    if name == "help":
        if len(args) > 1:
            return bad()
        if args:
            topic = args[0].lstrip("/")
            if topic.lower() not in _SPEC_BY_NAME:
                return bad(f"no command /{topic}")
            return Command("help", topic=_SPEC_BY_NAME[topic.lower()].name)
        return Command("help")
    # commands without arguments
    if args:
        return bad()
    return Command(name)


def help_lines(topic: str | None = None) -> list[str]:
    if topic:
        spec = _SPEC_BY_NAME[topic.lower()]
        aka = f" (also /{', /'.join(spec.aliases)})" if spec.aliases else ""
        return [f"{spec.usage}{aka}", f"  {spec.help}"]
    width = len("/chat room:<room> <words...>")
    out = ["commands:"]
    for s in COMMAND_SPECS:
        aka = f" (also /{', /'.join(s.aliases)})" if s.aliases else ""
        if s.name == "chat":
            out.append(f"  {'/chat <user> <words...>':<{width}}  send a direct message")
            out.append(f"  {'/chat room:<room> <words...>':<{width}}  send a message to a room")
            continue
        out.append(f"  {s.usage:<{width}}  {s.help}{aka}")
    out.append(f"  {'<words...>':<{width}}  a line without / goes to the current room (//x sends /x)")
    out.append("keys: up/down history, tab completes, page up/down scroll, "
               "ctrl-n/ctrl-p next/previous room, esc clears the line, ctrl-d on an empty line leaves")
    return out


# ---------------------------------------------------------------------------
# formatting helpers (pure)
# ---------------------------------------------------------------------------


def format_duration(seconds: float) -> str:
    """``00d 01h 02m 03s``."""
    s = max(0, int(seconds))
    d, s = divmod(s, 86400)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    return f"{d:02d}d {h:02d}h {m:02d}m {s:02d}s"


def format_stats(data: dict, now: float) -> str:
    """The ``/stats`` line from a ``userInfo`` answer: ``user: online 00d 01h 02m 03s on node <id>``."""
    user = clean_text(str(data.get("username") or "?"))
    node = clean_text(str(data.get("nodeId") or "?"))
    if data.get("isOnline") is False:
        return f"{user}: offline"
    online_for = data.get("onlineFor")
    if not isinstance(online_for, str) or not online_for.strip():
        login_time = data.get("loginTime")
        if isinstance(login_time, (int, float)) and not isinstance(login_time, bool):
            online_for = format_duration(now - login_time / 1000.0)
        else:
            online_for = "?"
    return f"{user}: online {clean_text(online_for)} on node {node}"


def format_popular(words: Any, asked: int | None = None) -> list[str]:
    """The ranked list of a ``popular`` answer (``["w1", "c1", "w2", "c2", ...]``)."""
    if not isinstance(words, list):
        words = []
    pairs = [(clean_text(str(w)), clean_text(str(c))) for w, c in zip(words[0::2], words[1::2])]
    if not pairs:
        return ["popular words: none in the recent window"]
    width = max(len(w) for w, _ in pairs)
    out = [f"popular words (top {len(pairs)}):"]
    for i, (w, c) in enumerate(pairs, 1):
        out.append(f"{i:>3}. {w:<{width}}  {c}")
    return out


def clean_text(text: str) -> str:
    """Replace control characters (terminal escapes) by ``?``; keep newlines, tabs become spaces."""
    if not isinstance(text, str):
        text = str(text)
    if text.isprintable():
        return text
    out = []
    for ch in text:
        if ch == "\n":
            out.append(ch)
        elif ch == "\t":
            out.append(" ")
        elif unicodedata.category(ch) in ("Cc", "Cs"):
            out.append("?")
        else:
            out.append(ch)
    return "".join(out)


def one_line(text: str) -> str:
    """A message as one transcript line: newline written as ``\\n``."""
    return text.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\\n")


def fmt_time(seconds: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(seconds))


def text_matches(sent: str, got: str) -> bool:
    """Whether ``got`` (as the server delivered it, profanity masked) is the message ``sent``."""
    sent, got = sent.strip(), got.strip()
    if sent == got:
        return True
    return len(sent) == len(got) and all(g == s or g == "*" for s, g in zip(sent, got))


# ---------------------------------------------------------------------------
# connection layer
# ---------------------------------------------------------------------------


class GatewayError(Exception):
    """The gateway gave no node; ``short`` is for the status bar, ``str()`` the whole story."""

    def __init__(self, short: str, detail: str = ""):
        super().__init__(f"{short}: {detail}" if detail else short)
        self.short = short
        self.detail = detail


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
        return self.action


@dataclass
class _JoinTracker:
    request: Request | None
    rejoin: bool
    history: int = 0
    timer: Any = None


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
        """An answer frame (``userInfo``, ``popular``, ``listRooms``)."""

    def request_failed(self, code: int, message: str, request: Request | None) -> None:
        """An ``error`` frame other than a login failure or a takeover."""

    def room_joined(self, room: str, members: Any, rejoin: bool, history: int) -> None:
        """A join (or re-join after reconnecting) finished."""

    def room_left(self, room: str) -> None:
        """The node confirmed a ``leaveRoom``."""

    def login_failed(self, code: int, message: str) -> None:
        """The node refused the login; the connection stopped."""

    def direct_queued(self, request: Request | None, data: dict) -> None:
        """A direct message was stored for a user who is not online (``queued``)."""

    def offline_summary(self, delivered: int, dropped: int) -> None:
        """After login: how many messages queued while offline came, how many were dropped."""

    def resumed(self, replayed: int, too_old: list) -> None:
        """The node answered ``resume``; ``too_old`` names the channels it could not replay."""


class _Attempt:
    """Callbacks of one WebSocket connection attempt, handed to the connector.

    The connector calls ``opened(transport)`` once the WebSocket is open (the
    transport has ``sendMessage(payload, isBinary=False)`` and
    ``sendClose(code, reason)``), ``message(payload)`` for each text frame,
    ``closed(code, reason)`` when it is closed, ``failed(reason)`` when it
    could not connect at all, and ``pong(payload)`` for a WebSocket pong
    (the transport may have ``sendPing(payload)``).  Calls for an attempt
    the connection has given up are ignored.
    """

    def __init__(self, conn: "ChatConnection", server: dict, url: str):
        self.conn = conn
        self.server = server
        self.url = url
        self.transport: Any = None
        self.handle: Any = None

    def opened(self, transport: Any) -> None:
        self.conn._on_open(self, transport)

    def message(self, payload: bytes | str) -> None:
        self.conn._on_message(self, payload)

    def closed(self, code: int | None = 1006, reason: str | None = "") -> None:
        self.conn._on_close(self, code, reason)

    def failed(self, reason: Any = "") -> None:
        self.conn._on_fail(self, reason)

    def pong(self, payload: bytes) -> None:
        self.conn._on_pong(self, payload)


#: close code of a session replaced by a newer login (after the 409 error frame)
REPLACED_CLOSE_CODE = 4009

#: actions whose request is sent again after a reconnect when it was never answered
_IDEMPOTENT = frozenset({"joinRoom", "leaveRoom", "userInfo", "popular", "listRooms"})

#: protocol extensions asked for at login (docs/protocol.md, "Extensions")
FEATURES = ("ack", "offline", "resume")

#: the rooms every user is in without joining them
_AUTOMATIC_ROOM = re.compile(r"^(world|alliance:.*)$")


class ChatConnection:
    """The client side of the protocol: one logged-in session kept alive across nodes.

    States: ``idle`` (not started), ``gateway`` (asking for a node),
    ``connecting``, ``login``, ``resuming`` (waiting for the replay of what
    was missed after a reconnect), ``joining`` (re-joining rooms after a
    reconnect), ``online``, ``waiting`` (backoff before asking the gateway
    again; ``retry_reason`` and ``retry_at`` tell why and until when),
    ``stopped`` (``stop_reason``: login refused, session taken over, closed).

    The login asks for the extensions in ``features``; ``server_features``
    holds those the node granted (empty for a node that answers without
    ``features``: then nothing below that needs one is used).

    Requests made while not ``online`` are queued and sent, in order, once
    the connection is back; a queued request older than ``queue_max_age``
    seconds is reported as not sent instead.

    After a reconnect, with ``resume`` the connection sends the last seq seen
    per room and per conversation and the node replays what was missed; rooms
    it cannot replay (``tooOld``) are joined again for their history.
    Without ``resume`` every room is joined again for its history.

    With ``ack`` a chat message is confirmed by its ``ack`` (or ``queued``)
    answer; every message not confirmed when the connection drops is sent
    again after the reconnect (unless the replay shows it).  Without ``ack``
    room messages are confirmed by their echo (or the re-join's history) and
    direct messages by the pong of a ping sent after them, or by the answer
    to a later request, within ``confirm_window`` seconds.
    """

    BACKOFF = (1.0, 2.0, 4.0, 8.0, 15.0, 30.0)

    def __init__(
        self,
        listener: ConnectionListener,
        *,
        clock: Any,
        lookup: Callable[[], Any],
        connector: Callable[[str, _Attempt], Any],
        username: str | None = None,
        password: str | None = None,
        gateway_host: str | None = None,
        backoff: tuple[float, ...] = BACKOFF,
        quick_retry: float = 0.5,
        jitter: float = 0.2,
        rng: Callable[[], float] = random.random,
        attempt_timeout: float = 20.0,
        join_timeout: float = 10.0,
        queue_limit: int = 200,
        queue_max_age: float = 600.0,
        confirm_window: float = 30.0,
        features: tuple[str, ...] = FEATURES,
    ):
        self.listener = listener
        self.clock = clock
        self.lookup = lookup
        self.connector = connector
        self.username = username
        self.password = password
        self.gateway_host = gateway_host
        self.backoff = tuple(backoff) or (1.0,)
        self.quick_retry = quick_retry
        self.jitter = jitter
        self.rng = rng
        self.attempt_timeout = attempt_timeout
        self.join_timeout = join_timeout
        self.queue_limit = queue_limit
        self.queue_max_age = queue_max_age
        self.confirm_window = confirm_window
        self.features = tuple(features)
        #: the extensions the node of the current (or last) connection granted
        self.server_features: frozenset[str] = frozenset()

        self.state = "idle"
        self.node_id: str | None = None
        self.node_url: str | None = None
        self.session_id: str | None = None
        self.retry_reason: str | None = None
        self.retry_at: float | None = None
        self.stop_reason: str | None = None
        self.ever_online = False
        self.rooms: list[str] = []  # joined rooms, in join order
        self.outbox: list[Request] = []
        #: last seq seen per conversation (``room:<name>`` / ``dm:<peer>``), for a later resume
        self.last_seq: dict[str, int] = {}
        self.transport: Any = None

        self._attempt: _Attempt | None = None
        self._token: object | None = None
        self._retry_call: Any = None
        self._attempt_timer: Any = None
        self._failures = 0
        self._reported: str | None = None
        self._login_id: int | None = None
        self._sent: OrderedDict[int, Request] = OrderedDict()
        self._joins: dict[str, _JoinTracker] = {}
        self._unconfirmed: list[Request] = []
        self._recheck: list[Request] = []
        self._seen: set = set()
        self._seen_order: deque = deque()
        self._last_id = 0
        self._counter = 0
        self._close_waiter: tuple[_Attempt, defer.Deferred] | None = None
        self._reconnecting = False
        self._probe: int | None = None  # id of the last direct message a ping was sent after
        self._resume_id: int | None = None
        self._resume_timer: Any = None
        self._resume_buffer: list[dict] | None = None  # chat frames held while resuming
        self._resume_offline: tuple[int, int] | None = None

    # -- public API -------------------------------------------------------

    @property
    def online(self) -> bool:
        return self.state == "online"

    def start(self) -> None:
        """Start (or start again after ``stopped``) connecting through the gateway."""
        if self.state not in ("idle", "stopped"):
            return
        self.stop_reason = None
        self._failures = 0
        self._reported = None
        self._lookup()

    def reconnect(self) -> None:
        """Drop the current connection, if any, and ask the gateway for a node now."""
        self._cancel_timers()
        attempt, self._attempt = self._attempt, None
        if attempt is not None:
            self._drop(attempt, 1000, "reconnecting")
        self._after_loss()
        self.transport = None
        self.stop_reason = None
        self._failures = 0
        self._reported = None
        self._lookup()

    def close(self) -> defer.Deferred:
        """Close for good (the user leaves).  Fires once closed, at most a second later."""
        self._cancel_timers()
        self._token = None
        attempt, self._attempt = self._attempt, None
        self.transport = None
        d: defer.Deferred = defer.Deferred()
        self._set_state("stopped", stop_reason="closed")
        if attempt is not None and attempt.transport is not None:
            self._close_waiter = (attempt, d)
            try:
                attempt.transport.sendClose(1000, "bye")
            except Exception:
                pass
            self.clock.callLater(1.0, self._close_done)
        else:
            if attempt is not None:
                self._drop(attempt, 1000, "bye")
            d.callback(None)
        return d

    def request(self, action: str, data: dict) -> str:
        """Send a request now, or queue it.  Returns ``"sent"``, ``"queued"`` or ``"refused"``."""
        req = Request(action, dict(data), queued_at=self.clock.seconds())
        if self.state == "online" and self.transport is not None:
            self._transmit(req)
            return "sent"
        if len(self.outbox) >= self.queue_limit:
            return "refused"
        self.outbox.append(req)
        self.listener.request_queued(req)
        return "queued"

    def send_room(self, room: str, text: str) -> str:
        return self.request("chat", {"roomName": room, "isGroup": True, "message": text,
                                     "ts": int(self.clock.seconds() * 1000), "format": "text"})

    def send_direct(self, user: str, text: str) -> str:
        return self.request("chat", {"to": user, "isGroup": False, "message": text,
                                     "ts": int(self.clock.seconds() * 1000), "format": "text"})

    def join(self, room: str) -> str:
        return self.request("joinRoom", {"roomName": room, "username": self.username})

    def leave(self, room: str) -> str:
        return self.request("leaveRoom", {"roomName": room})

    def drop_queue(self, reason: str) -> list[Request]:
        """Give up every queued request, telling the listener; returns them."""
        items, self.outbox = self.outbox, []
        for req in items:
            self.listener.request_not_sent(req, reason)
        return items

    # -- state ------------------------------------------------------------

    def _set_state(self, state: str, *, stop_reason: str | None = None) -> None:
        self.state = state
        if state != "waiting":
            self.retry_at = None
        if state == "stopped":
            self.stop_reason = stop_reason
        self.listener.connection_state(self)

    def _cancel_timers(self) -> None:
        for name in ("_retry_call", "_attempt_timer", "_resume_timer"):
            call = getattr(self, name)
            setattr(self, name, None)
            if call is not None and call.active():
                call.cancel()
        for tracker in self._joins.values():
            if tracker.timer is not None and tracker.timer.active():
                tracker.timer.cancel()

    def _next_id(self) -> int:
        self._counter = (self._counter + 1) % 1000
        rid = int(self.clock.seconds() * 1000) * 1000 + self._counter
        rid = max(rid, self._last_id + 1)
        self._last_id = rid
        return rid

    # -- gateway and connect ----------------------------------------------

    def _lookup(self) -> None:
        self._retry_call = None
        token = self._token = object()
        self._set_state("gateway")
        d = defer.maybeDeferred(self.lookup)
        d.addCallbacks(lambda server: self._got_server(token, server),
                       lambda failure: self._lookup_failed(token, failure))
        d.addErrback(self._internal_error)

    def _lookup_failed(self, token: object, failure: Any) -> None:
        if token is not self._token:
            return
        exc = failure.value
        if isinstance(exc, GatewayError):
            self._retry(exc.short, str(exc))
        else:
            self._retry("cannot reach gateway", f"cannot reach gateway: {describe_exception(exc)}")

    def _got_server(self, token: object, server: Any) -> None:
        if token is not self._token:
            return
        try:
            url = server_url(server, self.gateway_host)
        except ValueError as exc:
            self._retry("the gateway gave no usable node", f"the gateway gave no usable node: {exc}")
            return
        node = str(server.get("nodeId") or f"{server.get('host')}:{server.get('port')}")
        self.node_id = node
        self.node_url = url
        attempt = _Attempt(self, server, url)
        self._attempt = attempt
        self._set_state("connecting")
        self._attempt_timer = self.clock.callLater(self.attempt_timeout, self._attempt_timed_out, attempt)
        try:
            attempt.handle = self.connector(url, attempt)
        except Exception as exc:  # a bad URL, say
            self._on_fail(attempt, describe_exception(exc))

    def _attempt_timed_out(self, attempt: _Attempt) -> None:
        self._attempt_timer = None
        if attempt is not self._attempt:
            return
        self._attempt = None
        self._drop(attempt, 1000, "timeout")
        self.transport = None
        what = "no login answer from" if attempt.transport is not None else "timed out connecting to"
        self._retry(f"{what} {self.node_id}")

    def _drop(self, attempt: _Attempt, code: int, reason: str) -> None:
        try:
            if attempt.transport is not None:
                attempt.transport.sendClose(code, reason)
            elif attempt.handle is not None and hasattr(attempt.handle, "disconnect"):
                attempt.handle.disconnect()
        except Exception:
            pass

    def _retry(self, reason: str, detail: str | None = None, *, quick: bool = False) -> None:
        if quick:
            delay = self.quick_retry
        else:
            delay = self.backoff[min(self._failures, len(self.backoff) - 1)]
            self._failures += 1
        if self.jitter:
            delay *= 1 + self.jitter * (2 * self.rng() - 1)
        delay = max(0.0, delay)
        self.retry_reason = reason
        if reason != self._reported:
            self._reported = reason
            self.listener.connection_notice(f"{detail or reason}; retrying in {max(1, round(delay))}s", "error")
        self._token = None
        self.state = "waiting"
        self.retry_at = self.clock.seconds() + delay
        self._retry_call = self.clock.callLater(delay, self._lookup)
        self.listener.connection_state(self)

    # -- transport callbacks ----------------------------------------------

    def _on_fail(self, attempt: _Attempt, reason: Any) -> None:
        if attempt is not self._attempt:
            return
        self._attempt = None
        self._cancel_attempt_timer()
        self._retry(f"cannot connect to {self.node_id}",
                    f"cannot connect to {self.node_id} ({attempt.url}): {describe_exception(reason)}")

    def _on_open(self, attempt: _Attempt, transport: Any) -> None:
        if attempt is not self._attempt:
            try:
                transport.sendClose(1000, "not needed")
            except Exception:
                pass
            return
        attempt.transport = transport
        self.transport = transport
        data: dict[str, Any] = {"username": self.username}
        if self.password:
            data["password"] = self.password
        if self.features:
            data["features"] = list(self.features)
        self._set_state("login")
        self._login_id = self._send_frame("login", data)

    def _on_close(self, attempt: _Attempt, code: int | None, reason: str | None) -> None:
        if self._close_waiter is not None and self._close_waiter[0] is attempt:
            self._close_done()
            return
        if attempt is not self._attempt:
            return
        self._attempt = None
        self.transport = None
        self._cancel_attempt_timer()
        if attempt.transport is None:
            self._retry(f"cannot connect to {self.node_id}",
                        f"cannot connect to {self.node_id} ({attempt.url}): {reason or code}")
            return
        if self.state == "stopped":
            self.listener.connection_state(self)
            return
        if code == REPLACED_CLOSE_CODE:  # the 409 frame got lost
            self._taken_over()
            return
        was_online = self.state in ("online", "joining", "resuming")
        node = self.node_id
        if code == 4001:
            why = f"{node} is shutting down"
        elif code == 1001:
            why = f"{node} is going away"
        elif code == 1000:
            why = f"{node} closed the connection"
        elif code in (None, 1005, 1006):
            why = f"lost connection to {node}"
        else:
            why = f"connection to {node} closed ({code}{': ' + reason if reason else ''})"
        self._after_loss()
        if was_online:
            self.listener.connection_notice(f"disconnected: {why}", "error")
            self._reported = why
            self._retry(why, quick=True)
        else:
            self._retry(why)

    def _close_done(self) -> None:
        waiter, self._close_waiter = self._close_waiter, None
        if waiter is not None and not waiter[1].called:
            waiter[1].callback(None)

    def _cancel_attempt_timer(self) -> None:
        timer, self._attempt_timer = self._attempt_timer, None
        if timer is not None and timer.active():
            timer.cancel()

    def _after_loss(self) -> None:
        """Bookkeeping when a connection is gone: what was in flight goes back to the queue."""
        now = self.clock.seconds()
        requeue = [r for r in self._sent.values()
                   if r.action in _IDEMPOTENT and not r.internal]
        for r in requeue:
            r.id = None
        self.outbox[0:0] = requeue
        self._sent.clear()
        for tracker in self._joins.values():
            if tracker.timer is not None and tracker.timer.active():
                tracker.timer.cancel()
        self._joins.clear()
        window = self.queue_max_age if "ack" in self.server_features else self.confirm_window
        self._recheck.extend(r for r in self._unconfirmed
                             if r.sent_at is not None and now - r.sent_at <= window)
        self._unconfirmed.clear()
        self._login_id = None
        self._probe = None
        self._resume_id = None
        timer, self._resume_timer = self._resume_timer, None
        if timer is not None and timer.active():
            timer.cancel()
        if self._resume_buffer is not None:  # what came before the connection dropped is still news
            self._flush_resume_buffer()

    # -- frames -----------------------------------------------------------

    def _send_frame(self, action: str, data: dict) -> int:
        rid = self._next_id()
        _trace.info("-> {node} {id} {action} {data}", node=self.node_id, id=rid, action=action,
                    data={k: ("***" if k == "password" else v) for k, v in data.items()})
        self.transport.sendMessage(orjson.dumps({"id": rid, "action": action, "data": data}), isBinary=False)
        return rid

    def _transmit(self, req: Request, flushed: bool = False) -> None:
        now = self.clock.seconds()
        req.id = self._send_frame(req.action, req.data)
        req.sent_at = now
        self._sent[req.id] = req
        while self._sent:
            oldest = next(iter(self._sent.values()))
            if now - (oldest.sent_at or now) <= 120 or len(self._sent) < 2:
                break
            self._sent.popitem(last=False)
        if req.action == "joinRoom":
            room = req.data["roomName"]
            self._start_join(room, _JoinTracker(req, rejoin=req.internal))
        elif req.action == "chat":
            window = self.queue_max_age if "ack" in self.server_features else self.confirm_window
            self._unconfirmed = [r for r in self._unconfirmed if now - (r.sent_at or now) <= window]
            self._unconfirmed.append(req)
            if not req.data.get("isGroup") and "ack" not in self.server_features:
                self._send_probe()
        if not req.internal:
            self.listener.request_sent(req, flushed)

    def _start_join(self, room: str, tracker: _JoinTracker) -> None:
        old = self._joins.get(room)
        if old is not None and old.timer is not None and old.timer.active():
            old.timer.cancel()
        tracker.timer = self.clock.callLater(self.join_timeout, self._join_timed_out, room, tracker)
        self._joins[room] = tracker

    def _on_message(self, attempt: _Attempt, payload: bytes | str) -> None:
        _trace.info("<- {node} {state}{stale} {frame}", node=attempt.server.get("nodeId", attempt.url),
                    state=self.state, stale="" if attempt is self._attempt else " (stale attempt)",
                    frame=bytes(payload[:500]) if isinstance(payload, (bytes, bytearray)) else payload[:500])
        if attempt is not self._attempt:
            return
        try:
            frame = orjson.loads(payload)
        except orjson.JSONDecodeError:
            self.listener.connection_notice("the node sent a frame that is not JSON; ignored", "error")
            return
        if not isinstance(frame, dict):
            return
        data = frame.get("data")
        if not isinstance(data, dict):
            data = {}
        re_id = frame.get("re")
        action = frame.get("action")
        if isinstance(re_id, int) and not isinstance(re_id, bool) and self._unconfirmed \
                and "ack" not in self.server_features:
            self._confirm_directs(re_id)
        try:
            if action == "login":
                self._on_login(data, re_id)
            elif action == "chat":
                if self._resume_buffer is not None:
                    self._resume_buffer.append(data)
                else:
                    self._on_chat(data)
            elif action in ("ack", "queued"):
                self._on_accepted(action, data, re_id)
            elif action == "offline":
                self._on_offline(data)
            elif action == "resume":
                self._on_resume_answer(data, re_id)
            elif action == "error":
                self._on_error(data, re_id)
            elif action == "joinRoom":
                self._on_join_answer(data, re_id)
            elif action == "leaveRoom":
                self._on_leave_answer(data, re_id)
            elif action in ("userInfo", "popular", "listRooms"):
                req = self._take(action, re_id)
                self.listener.request_answered(action, data, req)
        except Exception as exc:  # never let a strange frame kill the client
            self._internal_error(exc)

    def _take(self, action: str, re_id: Any) -> Request | None:
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

    def _on_login(self, data: dict, re_id: Any) -> None:
        if self.state != "login":
            return
        self._cancel_attempt_timer()
        self._login_id = None
        self.session_id = data.get("sessionId")
        if data.get("nodeId"):
            self.node_id = str(data["nodeId"])
        if isinstance(data.get("username"), str) and data["username"]:
            self.username = data["username"]
        self._failures = 0
        self._reported = None
        granted = data.get("features")
        self.server_features = frozenset(
            f for f in (granted if isinstance(granted, list) else []) if f in self.features)
        reconnect = self.ever_online
        self._reconnecting = reconnect
        self.ever_online = True
        if reconnect and "resume" in self.server_features:
            self._send_resume()
        else:
            self._rejoin(list(self.rooms))

    def _rejoin(self, rooms: list[str]) -> None:
        """Join ``rooms`` again (for their history), then go online."""
        if rooms:
            self._set_state("joining")
            for room in rooms:
                req = Request("joinRoom", {"roomName": room, "username": self.username},
                              queued_at=self.clock.seconds(), internal=True)
                self._transmit(req)
        else:
            self._finish_connect()

    # -- resume -----------------------------------------------------------

    def resume_data(self) -> dict:
        """The ``resume`` request: the last seq seen per room and per conversation."""
        rooms: dict[str, int] = {}
        conversations: dict[str, int] = {}
        for room in self.rooms:
            rooms[room] = self.last_seq.get(f"room:{room}", 0)
        for channel, seq in self.last_seq.items():
            kind, _, name = channel.partition(":")
            if not name:
                continue
            if kind == "room":
                rooms.setdefault(name, seq)
            elif kind == "dm":
                conversations[name] = seq
        return {"rooms": dict(list(rooms.items())[-1000:]),
                "conversations": dict(list(conversations.items())[-1000:])}

    def _send_resume(self) -> None:
        self._set_state("resuming")
        self._resume_buffer = []
        self._resume_offline = None
        self._resume_id = self._send_frame("resume", self.resume_data())
        self._resume_timer = self.clock.callLater(self.join_timeout, self._resume_timed_out)

    def _resume_timed_out(self) -> None:
        self._resume_timer = None
        if self.state != "resuming":
            return
        self._resume_id = None
        self._flush_resume_buffer()
        self.listener.connection_notice("no answer to resume; joining the rooms again", "error")
        self._rejoin(list(self.rooms))

    def _resume_done(self) -> None:
        self._resume_id = None
        timer, self._resume_timer = self._resume_timer, None
        if timer is not None and timer.active():
            timer.cancel()
        self._flush_resume_buffer()

    def _flush_resume_buffer(self) -> None:
        """Show the chat frames held while resuming: per channel, in seq order."""
        frames, self._resume_buffer = self._resume_buffer or [], None
        groups: OrderedDict[Any, list[dict]] = OrderedDict()
        for data in frames:
            room = data.get("roomName") or ""
            groups.setdefault(("room", room) if room else ("dm", data.get("from")), []).append(data)
        for group in groups.values():
            group.sort(key=lambda d: d.get("seq") if isinstance(d.get("seq"), int) else 0)
            for data in group:
                self._on_chat(data)
        offline, self._resume_offline = self._resume_offline, None
        if offline is not None:
            self.listener.offline_summary(*offline)

    def _on_resume_answer(self, data: dict, re_id: Any) -> None:
        if self.state != "resuming" or (re_id is not None and re_id != self._resume_id):
            return
        self._resume_done()
        replayed = data.get("replayed")
        too_old = data.get("tooOld")
        too_old = [item for item in too_old if isinstance(item, dict)] if isinstance(too_old, list) else []
        self.listener.resumed(replayed if isinstance(replayed, int) else 0, too_old)
        rooms = [item["roomName"] for item in too_old if isinstance(item.get("roomName"), str)]
        # a room no longer replayable: its last 50 messages, by joining it again
        self._rejoin([r for r in dict.fromkeys(rooms) if r in self.rooms or _AUTOMATIC_ROOM.match(r)])

    def _on_resume_failed(self, code: int, message: str) -> None:
        self._resume_done()
        self.listener.connection_notice(f"resume refused: {message} ({code}); joining the rooms again", "error")
        self._rejoin(list(self.rooms))

    # -- delivery extensions ------------------------------------------------

    def _on_accepted(self, action: str, data: dict, re_id: Any) -> None:
        """``ack`` (the node accepted a chat message) or ``queued`` (stored for an offline user)."""
        req = self._take("chat", re_id) if re_id is not None else None
        if req is None:
            return
        for pending in (self._unconfirmed, self._recheck):
            if req in pending:
                pending.remove(req)
        msg_id = data.get("msgId")
        if not req.data.get("isGroup"):
            peer = str(req.data.get("to") or "")
            seq = data.get("seq")
            if peer and isinstance(seq, int) and not isinstance(seq, bool):
                channel = f"dm:{peer}"
                if seq > self.last_seq.get(channel, -1):
                    self.last_seq[channel] = seq
            if isinstance(msg_id, str) and msg_id:
                self._remember(msg_id)  # shown when sent: not again if a replay brings it
        if action == "queued":
            self.listener.direct_queued(req, data)

    def _on_offline(self, data: dict) -> None:
        delivered, dropped = data.get("delivered"), data.get("dropped")
        delivered = delivered if isinstance(delivered, int) else 0
        dropped = dropped if isinstance(dropped, int) else 0
        if self._resume_buffer is not None:
            self._resume_offline = (delivered, dropped)
        else:
            self.listener.offline_summary(delivered, dropped)

    def _finish_connect(self) -> None:
        self._set_state("online")
        if self._reconnecting:
            self.listener.connection_notice(f"reconnected to {self.node_id}")
        else:
            self.listener.connection_notice(f"connected to {self.node_id} as {self.username}")
        now = self.clock.seconds()
        resend, self._recheck = self._recheck, []
        for req in resend:
            again = Request(req.action, dict(req.data), queued_at=req.queued_at, resent=True)
            self._transmit(again, flushed=True)
        if resend:
            n = len(resend)
            self.listener.connection_notice(
                f"sent again {n} message{'s' if n != 1 else ''} not confirmed before the connection dropped")
        items, self.outbox = self.outbox, []
        flushed = 0
        for req in items:
            if now - req.queued_at > self.queue_max_age:
                self.listener.request_not_sent(req, f"queued more than {int(self.queue_max_age)}s ago")
                continue
            if self.state != "online" or self.transport is None:  # lost again meanwhile
                self.outbox.append(req)
                continue
            self._transmit(req, flushed=True)
            flushed += req.action == "chat"
        if flushed:
            self.listener.connection_notice(
                f"sent {flushed} message{'s' if flushed != 1 else ''} queued while not connected")

    def _join_timed_out(self, room: str, tracker: _JoinTracker) -> None:
        # a server without the joinRoom answer extension: the join went through (an error would have come)
        if self._joins.get(room) is tracker:
            tracker.timer = None
            self._join_done(room, None, tracker)

    def _on_join_answer(self, data: dict, re_id: Any) -> None:
        req = self._take("joinRoom", re_id)
        room = data.get("roomName")
        if not isinstance(room, str) or not room:
            room = req.data.get("roomName") if req is not None else None
        if not room:
            return
        tracker = self._joins.get(room)
        if tracker is not None and tracker.timer is not None and tracker.timer.active():
            tracker.timer.cancel()
        self._join_done(room, data.get("members"), tracker)

    def _join_done(self, room: str, members: Any, tracker: _JoinTracker | None) -> None:
        self._joins.pop(room, None)
        if tracker is not None and tracker.request is not None and tracker.request.id is not None:
            self._sent.pop(tracker.request.id, None)
        if room not in self.rooms:
            self.rooms.append(room)
        rejoin = tracker.rejoin if tracker is not None else False
        self.listener.room_joined(room, members, rejoin, tracker.history if tracker is not None else 0)
        self._check_rejoined()

    def _check_rejoined(self) -> None:
        if self.state == "joining" and not any(t.rejoin for t in self._joins.values()):
            self._finish_connect()

    def _on_leave_answer(self, data: dict, re_id: Any) -> None:
        req = self._take("leaveRoom", re_id)
        room = data.get("roomName")
        if not isinstance(room, str) or not room:
            room = req.data.get("roomName") if req is not None else None
        if not room:
            return
        if room in self.rooms:
            self.rooms.remove(room)
        self.last_seq.pop(f"room:{room}", None)
        self.listener.room_left(room)

    def _remember(self, key: Any) -> bool:
        """Note a message as seen; False if it had been seen already."""
        if key in self._seen:
            return False
        self._seen.add(key)
        self._seen_order.append(key)
        if len(self._seen_order) > 20000:
            self._seen.discard(self._seen_order.popleft())
        return True

    def _on_chat(self, data: dict) -> None:
        room = data.get("roomName") or ""
        sender = str(data.get("from") or "")
        message = data.get("message")
        if not isinstance(message, str):
            message = "" if message is None else str(message)
        msg_id = data.get("msgId")
        key = msg_id if isinstance(msg_id, str) and msg_id else (room, sender, data.get("ts"), message)
        if not self._remember(key):
            return
        own_direct = not room and sender == self.username
        peer = sender
        if own_direct:
            # one of ours, replayed: it was shown when sent, and its ack got lost
            req = self._confirm_direct(message)
            if req is not None:
                peer = str(req.data.get("to") or "")
        seq = data.get("seq")
        if isinstance(seq, int) and not isinstance(seq, bool) and (room or not own_direct or peer != sender):
            channel = f"room:{room}" if room else f"dm:{peer}"
            if seq > self.last_seq.get(channel, -1):
                self.last_seq[channel] = seq
        if own_direct and peer != sender:
            return
        tracker = self._joins.get(room) if room else None
        history = tracker is not None
        if tracker is not None:
            tracker.history += 1
        if room and sender == self.username:
            self._confirm(room, message)
        self.listener.chat_received(data, history)

    def _confirm_direct(self, message: str) -> Request | None:
        for pending in (self._recheck, self._unconfirmed):
            for i, req in enumerate(pending):
                if not req.data.get("isGroup") and text_matches(req.data.get("message", ""), message):
                    return pending.pop(i)
        return None

    def _confirm(self, room: str, message: str) -> None:
        for pending in (self._unconfirmed, self._recheck):
            for i, req in enumerate(pending):
                if req.data.get("roomName") == room and text_matches(req.data.get("message", ""), message):
                    del pending[i]
                    return

    # Direct messages are not echoed.  The node handles the frames of a
    # connection in order, so a direct message has reached the node once an
    # answer to a later request comes back, or the pong of a WebSocket ping
    # sent after it.  One that has not when the connection drops is sent again.

    def _send_probe(self) -> None:
        send_ping = getattr(self.transport, "sendPing", None)
        if self._probe is not None or send_ping is None:
            return
        last = next((r.id for r in reversed(self._unconfirmed)
                     if r.id is not None and not r.data.get("isGroup")), None)
        if last is None:
            return
        self._probe = last
        _trace.info("-> ping after {id}", id=last)
        try:
            send_ping(b"c%d" % last)
        except Exception:
            self._probe = None

    def _on_pong(self, attempt: _Attempt, payload: bytes) -> None:
        _trace.info("<- pong {payload!r}", payload=payload)
        if attempt is not self._attempt or self._probe is None:
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

    def _on_error(self, data: dict, re_id: Any) -> None:
        try:
            code = int(data.get("code") or 0)
        except (TypeError, ValueError):
            code = 0
        message = clean_text(str(data.get("message") or data.get("ext") or "error"))
        if code == 409:
            self._taken_over()
            return
        if self.state == "login":
            self._cancel_attempt_timer()
            attempt, self._attempt = self._attempt, None
            if code == 401:
                if attempt is not None:
                    self._drop(attempt, 1000, "login failed")
                self.transport = None
                self._token = None
                self._set_state("stopped", stop_reason=f"login refused: {message}")
                self.listener.login_failed(code, message)
            else:
                if attempt is not None:
                    self._drop(attempt, 1000, "login failed")
                self.transport = None
                self._retry(f"login failed on {self.node_id}: {message} ({code})")
            return
        if self.state == "resuming" and re_id is not None and re_id == self._resume_id:
            self._on_resume_failed(code, message)
            return
        req = None
        if re_id is not None:
            req = self._sent.pop(re_id, None)
        if req is not None and req.action == "joinRoom":
            room = req.data.get("roomName")
            tracker = self._joins.pop(room, None)
            if tracker is not None and tracker.timer is not None and tracker.timer.active():
                tracker.timer.cancel()
            if req.internal:
                if room in self.rooms:
                    self.rooms.remove(room)
                self.listener.connection_notice(f"could not re-join #{room}: {message} ({code})", "error")
                self.listener.room_left(room)
                self._check_rejoined()
                return
        if req is not None and req.action == "chat":
            for pending in (self._unconfirmed, self._recheck):
                if req in pending:
                    pending.remove(req)
        self.listener.request_failed(code, message, req)

    def _taken_over(self) -> None:
        self._cancel_timers()
        self._token = None
        self._after_loss()
        self._recheck.clear()
        self.listener.connection_notice(
            "this session was taken over by a newer login of the same user elsewhere; "
            "not reconnecting (/reconnect to take it back)", "error")
        self._set_state("stopped", stop_reason="session taken over by another login")
        self.drop_queue("the session was taken over")

    def _internal_error(self, exc: Any) -> None:
        value = getattr(exc, "value", exc)
        self.listener.connection_notice(f"internal error: {describe_exception(value)}", "error")


def describe_exception(exc: Any) -> str:
    value = getattr(exc, "value", exc)  # a Failure
    if isinstance(value, BaseException):
        text = str(value).strip() or type(value).__name__
        name = type(value).__name__
        if "refused" in text.lower():
            return "connection refused"
        if name in ("TimeoutError", "TCPTimedOutError", "CancelledError"):
            return "timed out"
        if name == "DNSLookupError":
            return "unknown host"
        return text.splitlines()[0][:200]
    return str(value)[:200]


def server_url(server: Any, gateway_host: str | None = None) -> str:
    """The ws:// URL of a gateway answer (``url``, else ``host`` and ``port``)."""
    if not isinstance(server, dict):
        raise ValueError("not a JSON object")
    url = server.get("url")
    if not (isinstance(url, str) and url.startswith(("ws://", "wss://"))):
        host, port = server.get("host"), server.get("port")
        if not host or not isinstance(port, (int, str)) or not str(port).isdigit():
            raise ValueError(f"no url, host or port in {server!r}"[:200])
        if ":" in str(host) and not str(host).startswith("["):
            host = f"[{host}]"
        url = f"ws://{host}:{int(port)}/"
    parts = urlsplit(url)
    if gateway_host and parts.hostname in ("0.0.0.0", "::", ""):
        netloc = gateway_host if ":" not in gateway_host else f"[{gateway_host}]"
        if parts.port:
            netloc += f":{parts.port}"
        url = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
    return url


# -- the real network: gateway over HTTP, node over autobahn ---------------


class GatewayClient:
    """``GET /server`` on the gateway with ``twisted.web.client.Agent``."""

    def __init__(self, reactor: Any, gateway: str, timeout: float = 10.0):
        from twisted.web.client import Agent

        self.reactor = reactor
        self.gateway = gateway.rstrip("/")
        self.timeout = timeout
        self.agent = Agent(reactor, connectTimeout=timeout)

    def server(self) -> defer.Deferred:
        from twisted.web.client import readBody
        from twisted.web.http_headers import Headers

        url = f"{self.gateway}/server"
        d = self.agent.request(b"GET", url.encode("utf-8"),
                               Headers({b"User-Agent": [b"chatnet-client"], b"Accept": [b"application/json"]}))

        def got(response: Any) -> defer.Deferred:
            body = readBody(response)
            body.addCallback(lambda raw: self._parse(response.code, raw))
            return body

        d.addCallback(got)
        d.addTimeout(self.timeout, self.reactor)

        def explain(failure: Any) -> Any:
            if failure.check(GatewayError):
                return failure
            raise GatewayError("cannot reach gateway", f"{self.gateway}: {describe_exception(failure.value)}")

        d.addErrback(explain)
        return d

    @staticmethod
    def _parse(code: int, raw: bytes) -> dict:
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            body = None
        if code == 503:
            msg = body.get("error") if isinstance(body, dict) else None
            raise GatewayError("no chat node available", f"gateway: {msg or 'no chat node available'}")
        if code != 200 or not isinstance(body, dict):
            raise GatewayError("the gateway gave no node", f"gateway answered {code}")
        return body


def connect_websocket(reactor: Any, url: str, attempt: _Attempt, timeout: float = 10.0) -> Any:
    """Open ``url`` with autobahn and feed ``attempt``; returns the connector."""
    from autobahn.twisted.websocket import WebSocketClientFactory, WebSocketClientProtocol, connectWS

    class Protocol(WebSocketClientProtocol):
        def onOpen(self) -> None:
            attempt.opened(self)

        def onMessage(self, payload: bytes, isBinary: bool) -> None:
            if not isBinary:
                attempt.message(payload)

        def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
            attempt.closed(code, reason)

        def onPong(self, payload: bytes) -> None:
            attempt.pong(payload)

    class Factory(WebSocketClientFactory):
        protocol = Protocol

        def clientConnectionFailed(self, connector: Any, reason: Any) -> None:
            attempt.failed(reason)

    factory = Factory(url, reactor=reactor)
    factory.setProtocolOptions(openHandshakeTimeout=timeout, closeHandshakeTimeout=2,
                               autoPingInterval=15, autoPingTimeout=10)
    context = None
    if factory.isSecure:
        from twisted.internet import ssl

        context = ssl.optionsForClientTLS(factory.host)
    return connectWS(factory, context, timeout=timeout)


# ---------------------------------------------------------------------------
# UI
# ---------------------------------------------------------------------------

NICK_ATTRS = ("nick0", "nick1", "nick2", "nick3", "nick4", "nick5", "nick6", "nick7")

PALETTE = [
    ("time", "dark gray", ""),
    ("room", "dark cyan", ""),
    ("text", "", ""),
    ("own", "white,bold", ""),
    ("own_text", "light gray", ""),
    ("mark_own", "light green,bold", ""),
    ("history", "dark gray", ""),
    ("mark_history", "dark gray", ""),
    ("mention", "yellow,bold", ""),
    ("mark_mention", "yellow,bold", ""),
    ("system", "dark cyan", ""),
    ("mark_system", "dark cyan,bold", ""),
    ("error", "light red", ""),
    ("mark_error", "light red,bold", ""),
    ("divider", "dark gray", ""),
    ("status", "black", "light gray"),
    ("status_user", "black,bold", "light gray"),
    ("status_ok", "dark green,bold", "light gray"),
    ("status_busy", "black", "brown"),
    ("status_bad", "white,bold", "dark red"),
    ("status_unread", "dark blue,bold", "light gray"),
    ("prompt", "light cyan,bold", ""),
    ("nick0", "light red", ""),
    ("nick1", "light green", ""),
    ("nick2", "yellow", ""),
    ("nick3", "light blue", ""),
    ("nick4", "light magenta", ""),
    ("nick5", "light cyan", ""),
    ("nick6", "brown", ""),
    ("nick7", "dark magenta", ""),
]


def nick_attr(name: str) -> str:
    import zlib

    return NICK_ATTRS[zlib.crc32(name.encode("utf-8")) % len(NICK_ATTRS)]


def pane_line(stamp: str, mark: str, mark_attr: str, body: list) -> urwid.Widget:
    """One pane entry: time and mark in a fixed column, the body wrapping under itself."""
    left = urwid.Text([("time", stamp), " ", (mark_attr, mark), " "])
    return urwid.Columns([(len(stamp) + 3, left), urwid.Text(body)])


class MessagePane(urwid.ListBox):
    """The scrolling message pane; follows new lines unless scrolled up."""

    def __init__(self, max_lines: int = 5000):
        self.walker = urwid.SimpleFocusListWalker([])
        super().__init__(self.walker)
        self.max_lines = max_lines
        self._size: tuple[int, int] | None = None
        self.new_below = 0

    def render(self, size: tuple[int, int], focus: bool = False) -> urwid.Canvas:
        self._size = size
        canvas = super().render(size, focus)
        if self.at_bottom():
            self.new_below = 0
        return canvas

    def at_bottom(self) -> bool:
        if not self.walker or self._size is None:
            return True
        return "bottom" in self.ends_visible(self._size)

    def add(self, widget: urwid.Widget) -> None:
        follow = self.at_bottom()
        self.walker.append(widget)
        extra = len(self.walker) - self.max_lines
        if extra > 0:
            del self.walker[:extra]
        if follow:
            self.scroll_to_end()
        else:
            self.new_below += 1

    def scroll_to_end(self) -> None:
        if self.walker:
            self.set_focus(len(self.walker) - 1)
            self.set_focus_valign("bottom")
        self.new_below = 0

    def keypress(self, size: tuple[int, int], key: str) -> str | None:
        self._size = size
        result = super().keypress(size, key)
        if self.at_bottom():
            self.new_below = 0
        return result


class InputLine(urwid.Edit):
    """The input line: enter hands the line over, up/down walk the history, tab completes."""

    def __init__(self, on_line: Callable[[str], None], completer: Callable[[str, int], list] | None,
                 history_size: int = 500):
        super().__init__("> ", text_completer=completer)
        self.on_line = on_line
        self.history: list[str] = []
        self.history_size = history_size
        self.secret = False
        self._hist_pos: int | None = None
        self._draft = ""
        self._completer = completer

    def set_secret(self, secret: bool) -> None:
        self.secret = secret
        self.set_mask("*" if secret else None)
        self.text_completer = None if secret else self._completer

    def keypress(self, size: tuple[int], key: str) -> str | None:
        if key == "enter":
            line = self.edit_text
            self.set_edit_text("")
            self._hist_pos = None
            self._draft = ""
            if line.strip() and not self.secret and (not self.history or self.history[-1] != line):
                self.history.append(line)
                del self.history[:-self.history_size]
            self.on_line(line)
            return None
        if key == "esc":
            self.set_edit_text("")
            self._hist_pos = None
            return None
        if key in ("up", "down"):
            if super().keypress(size, key) is None:  # moved inside a wrapped line
                return None
            if self.secret:
                return None
            self._walk_history(-1 if key == "up" else 1)
            return None
        return super().keypress(size, key)

    def _walk_history(self, step: int) -> None:
        if not self.history:
            return
        if self._hist_pos is None:
            if step > 0:
                return
            self._draft = self.edit_text
            pos = len(self.history) - 1
        else:
            pos = self._hist_pos + step
            if pos < 0:
                return
            if pos >= len(self.history):
                self._hist_pos = None
                self.set_edit_text(self._draft)
                self.set_edit_pos(len(self._draft))
                return
        self._hist_pos = pos
        self.set_edit_text(self.history[pos])
        self.set_edit_pos(len(self.history[pos]))


class ChatScreen(urwid.Frame):
    """The top widget: pane, status bar, input line; routes the global keys."""

    def __init__(self, app: "ChatApp"):
        self.app = app
        self.footer_pile = urwid.Pile([urwid.AttrMap(app.status_text, "status"), app.input])
        self.footer_pile.focus_position = 1
        super().__init__(app.pane, footer=self.footer_pile, focus_part="footer")

    def keypress(self, size: tuple[int, int], key: str) -> str | None:
        if key in ("page up", "page down", "ctrl up", "ctrl down", "meta up", "meta down"):
            maxcol, maxrow = size
            (htrim, ftrim), _ = self.frame_top_bottom(size, True)
            body = (maxcol, max(1, maxrow - htrim - ftrim))
            pane_key = {"ctrl up": "up", "meta up": "up", "ctrl down": "down", "meta down": "down"}.get(key, key)
            self.app.pane.keypress(body, pane_key)
            self.app.refresh_status()
            return None
        if key in ("ctrl n", "ctrl p"):
            self.app.cycle_room(1 if key == "ctrl n" else -1)
            return None
        if key == "ctrl d" and not self.app.input.edit_text:
            self.app.exit()
            return None
        return super().keypress(size, key)


class Transcript:
    """The plain ``--log`` transcript."""

    def __init__(self, path: str):
        self.file = open(path, "w", encoding="utf-8", buffering=1)

    def write(self, line: str) -> None:
        try:
            self.file.write(line + "\n")
            self.file.flush()
        except (OSError, ValueError):
            pass

    def close(self) -> None:
        try:
            self.file.close()
        except OSError:
            pass


class ChatApp(ConnectionListener):
    """The terminal client: widgets, commands and the connection glued together.

    ``clock`` is the reactor (or a ``task.Clock`` in tests); ``lookup`` and
    ``connector`` default to the real gateway and WebSocket.  ``widget`` is
    the top urwid widget.  ``on_exit`` is called when the user leaves,
    ``redraw`` whenever something changed outside of a keypress.
    """

    def __init__(
        self,
        *,
        gateway: str = DEFAULT_GATEWAY,
        username: str | None = None,
        password: str | None = None,
        rooms: tuple[str, ...] | list[str] = (),
        clock: Any = None,
        lookup: Callable[[], Any] | None = None,
        connector: Callable[[str, _Attempt], Any] | None = None,
        transcript: Transcript | None = None,
        on_exit: Callable[[], None] | None = None,
        redraw: Callable[[], None] | None = None,
        **conn_options: Any,
    ):
        if clock is None:
            from twisted.internet import reactor as clock
        self.clock = clock
        self.gateway = gateway
        self.transcript = transcript
        self.on_exit = on_exit or (lambda: None)
        self.redraw = redraw or (lambda: None)
        if lookup is None:
            lookup = GatewayClient(clock, gateway).server
        if connector is None:
            def connector(url: str, attempt: _Attempt) -> Any:
                return connect_websocket(clock, url, attempt)
        self.conn = ChatConnection(self, clock=clock, lookup=lookup, connector=connector,
                                   username=username, password=password,
                                   gateway_host=urlsplit(gateway).hostname, **conn_options)
        self.current_room: str | None = None
        self.unread: dict[str, int] = {}
        self.known_users: set[str] = set()
        self.known_rooms: set[str] = set()
        self.unsent: list[str] = []
        self.exited = False
        self._history_open: set[str] = set()
        self._switch_on_join: set[str] = set()
        self._ticker: Any = None
        self._initial_rooms = [r.lstrip("#") for r in rooms if r.strip("# ")]

        self.pane = MessagePane()
        self.status_text = urwid.Text("")
        self.input = InputLine(self.handle_line, self.complete)
        self.widget = ChatScreen(self)
        self.mode = "chat"
        self.refresh_status()

    # -- life cycle ---------------------------------------------------------

    def start(self) -> None:
        self.notice(f"chatnet client; gateway {self.gateway}; /help lists the commands")
        if not self.conn.username:
            self._ask_username()
            return
        self._begin()

    def _begin(self) -> None:
        self.mode = "chat"
        self.input.set_secret(False)
        self.known_users.add(self.conn.username)
        for room in self._initial_rooms:
            if room not in self.conn.rooms and not any(
                    r.action == "joinRoom" and r.data.get("roomName") == room for r in self.conn.outbox):
                self.conn.outbox.append(Request("joinRoom", {"roomName": room, "username": self.conn.username},
                                                queued_at=self.clock.seconds()))
        self._initial_rooms = []
        self.conn.start()
        self.refresh_status()

    def _ask_username(self) -> None:
        self.mode = "username"
        self.input.set_secret(False)
        self.notice("enter your user name")
        self.refresh_status()

    def exit(self) -> None:
        if self.exited:
            return
        self.exited = True
        for req in self.conn.drop_queue("the client was closed"):
            self.unsent.append(f"not sent: {one_line(req.describe())}")
        self.on_exit()

    def shutdown(self) -> defer.Deferred:
        """Close the connection (for the reactor's shutdown)."""
        d = self.conn.close()
        if self.transcript is not None:
            d.addBoth(lambda r: (self.transcript.close(), r)[1])
        return d

    # -- output -------------------------------------------------------------

    def _changed(self) -> None:
        self.refresh_status()
        try:
            self.redraw()
        except Exception:
            pass

    def add_line(self, when: float, mark: str, mark_attr: str, body: list, log: str) -> None:
        stamp = fmt_time(when)
        self.pane.add(pane_line(stamp, mark, mark_attr, body))
        if self.transcript is not None:
            self.transcript.write(f"[{stamp}] {log}")
        self._changed()

    def notice(self, text: str, kind: str = "system") -> None:
        text = clean_text(text)
        now = self.clock.seconds()
        for line in text.split("\n"):
            if kind == "error":
                self.add_line(now, "!", "mark_error", [("error", line)], f"!!! {line}")
            else:
                self.add_line(now, "*", "mark_system", [("system", line)], f"*** {line}")

    def divider(self, text: str) -> None:
        stamp = fmt_time(self.clock.seconds())
        self.pane.add(pane_line(stamp, " ", "divider", [("divider", f"--- {text} ---")]))
        self._changed()

    def show_chat(self, data: dict, history: bool) -> None:
        sender = clean_text(str(data.get("from") or "?"))
        room = clean_text(str(data.get("roomName") or ""))
        message = data.get("message")
        text = clean_text(message if isinstance(message, str) else str(message or ""))
        ts = data.get("ts")
        when = ts / 1000.0 if isinstance(ts, (int, float)) and not isinstance(ts, bool) else self.clock.seconds()
        me = self.conn.username
        own = sender == me
        mention = bool(not own and me and re.search(rf"(?<![\w]){re.escape(me)}(?![\w])", text, re.IGNORECASE))
        body: list = []
        if room:
            body.append(("history" if history else "room", f"#{room} "))
        if history:
            mark, mark_attr = "~", "mark_history"
            body += [("history", f"<{sender}> {text}")]
        else:
            if own:
                mark, mark_attr = ">", "mark_own"
            elif mention:
                mark, mark_attr = "@", "mark_mention"
            else:
                mark, mark_attr = " ", "text"
            body += [("own" if own else nick_attr(sender), f"<{sender}>"), " ",
                     ("own_text" if own else "mention" if mention else "text", text)]
        log = f"{'(history) ' if history else ''}{'#' + room + ' ' if room else ''}<{sender}> {one_line(text)}"
        if sender and sender != "?":
            self.known_users.add(sender)
        if room:
            self.known_rooms.add(room)
            if not history and not own and room != self.current_room:
                self.unread[room] = self.unread.get(room, 0) + 1
        self.add_line(when, mark, mark_attr, body, log)

    def show_own_direct(self, user: str, text: str) -> None:
        user, text = clean_text(user), clean_text(text)
        self.add_line(self.clock.seconds(), ">", "mark_own",
                      [("own", f"-> <{user}>"), " ", ("own_text", text)], f"-> <{user}> {one_line(text)}")

    # -- status bar -----------------------------------------------------------

    def state_text(self) -> tuple[str, str]:
        conn = self.conn
        state = conn.state
        if state == "online":
            return "online", "status_ok"
        if state == "idle":
            return ("waiting for your user name" if self.mode == "username" else "not connected"), "status_busy"
        if state == "gateway":
            return f"asking gateway {self.gateway}", "status_busy"
        if state == "connecting":
            return f"connecting to {conn.node_id}", "status_busy"
        if state == "login":
            return f"logging in on {conn.node_id}", "status_busy"
        if state == "joining":
            return "re-joining rooms", "status_busy"
        if state == "resuming":
            return "catching up", "status_busy"
        if state == "waiting":
            left = max(1, round((conn.retry_at or 0) - self.clock.seconds()))
            label = "disconnected" if conn.ever_online else "not connected"
            return f"{label}: {conn.retry_reason}, retrying in {left}s", "status_bad"
        if state == "stopped":
            if self.mode == "password":
                return f"offline: {conn.stop_reason}; enter the password", "status_bad"
            return f"offline: {conn.stop_reason}", "status_bad"
        return state, "status"

    def status_markup(self) -> list:
        conn = self.conn
        user = conn.username or "(no user)"
        node = conn.node_id or "-"
        state, state_attr = self.state_text()
        room = f"#{self.current_room}" if self.current_room else "no room"
        parts: list = [("status_user", f" {user} "), ("status", f"| {node} |"), (state_attr, f" {state} "),
                       ("status", f"| {room} ")]
        unread = [f"#{r}({n})" for r, n in self.unread.items() if n and r != self.current_room]
        if unread:
            parts += [("status", "| unread "), ("status_unread", " ".join(unread)), ("status", " ")]
        queued = len(conn.outbox)
        if queued:
            parts.append(("status", f"| {queued} queued "))
        if self.pane.new_below:
            parts.append(("status_unread", f"| {self.pane.new_below} new below (page down) "))
        return parts

    def refresh_status(self) -> None:
        self.status_text.set_text(self.status_markup())
        if self.mode == "username":
            caption = [("prompt", "user name: ")]
        elif self.mode == "password":
            caption = [("prompt", f"password for {self.conn.username}: ")]
        elif self.current_room:
            caption = [("prompt", f"[#{self.current_room}] ")]
        else:
            caption = [("prompt", "> ")]
        if self.input.caption != "".join(t for _, t in caption):
            self.input.set_caption(caption)
        waiting = self.conn.state == "waiting"
        if waiting and self._ticker is None:
            self._ticker = self.clock.callLater(0.5, self._tick)
        elif not waiting and self._ticker is not None:
            if self._ticker.active():
                self._ticker.cancel()
            self._ticker = None

    def _tick(self) -> None:
        self._ticker = None
        self._changed()

    # -- rooms ------------------------------------------------------------------

    def switch_room(self, room: str | None) -> None:
        self.current_room = room
        if room:
            self.unread.pop(room, None)
        self.refresh_status()

    def cycle_room(self, step: int) -> None:
        rooms = self.conn.rooms
        if not rooms:
            self.notice("no rooms joined: /join <room>")
            return
        if self.current_room in rooms:
            i = (rooms.index(self.current_room) + step) % len(rooms)
        else:
            i = 0
        self.switch_room(rooms[i])
        self.redraw()

    # -- listener ---------------------------------------------------------------

    def connection_state(self, conn: ChatConnection) -> None:
        self._changed()

    def connection_notice(self, text: str, kind: str = "system") -> None:
        self.notice(text, kind)

    def chat_received(self, data: dict, history: bool) -> None:
        room = data.get("roomName") or ""
        if history and room not in self._history_open:
            self._history_open.add(room)
            self.divider(f"history of #{clean_text(room)}")
        self.show_chat(data, history)

    def request_queued(self, request: Request) -> None:
        self.notice(f"queued (not connected): {clean_text(one_line(request.describe()))}; "
                    "it is sent after reconnecting")

    def request_sent(self, request: Request, flushed: bool) -> None:
        d = request.data
        if request.action == "chat" and not d.get("isGroup") and not request.resent:
            self.known_users.add(d.get("to", ""))
            self.show_own_direct(d.get("to", ""), d.get("message", ""))

    def request_not_sent(self, request: Request, reason: str) -> None:
        self.notice(f"not sent: {one_line(request.describe())} ({reason})", "error")

    def request_answered(self, action: str, data: dict, request: Request | None) -> None:
        if action == "userInfo":
            if isinstance(data.get("username"), str):
                self.known_users.add(data["username"])
            self.notice(format_stats(data, self.clock.seconds()))
        elif action == "popular":
            self.notice("\n".join(format_popular(data.get("words"))))
        elif action == "listRooms":
            self._show_rooms(data.get("rooms"))

    def request_failed(self, code: int, message: str, request: Request | None) -> None:
        what = ""
        if request is not None:
            d = request.data
            if request.action == "chat":
                what = f"not delivered to #{d.get('roomName')}: " if d.get("isGroup") \
                    else f"not delivered to {d.get('to')}: "
            elif request.action == "joinRoom":
                what = f"cannot join #{d.get('roomName')}: "
            elif request.action == "leaveRoom":
                what = f"cannot leave #{d.get('roomName')}: "
            elif request.action == "userInfo":
                what = f"/stats {d.get('username')}: "
            elif request.action == "popular":
                what = "/popular: "
            elif request.action == "listRooms":
                what = "/rooms: "
                if code == 400:
                    self._show_rooms(None)
                    return
        self.notice(f"{what}{message} ({code})", "error")

    def direct_queued(self, request: Request | None, data: dict) -> None:
        user = data.get("to") if isinstance(data.get("to"), str) and data.get("to") else \
            (request.data.get("to") if request is not None else "?")
        self.notice(f"queued for {user} (offline)")

    def offline_summary(self, delivered: int, dropped: int) -> None:
        text = f"{delivered} message{'s' if delivered != 1 else ''} received while you were offline"
        if dropped:
            text += f"; {dropped} older one{'s were' if dropped != 1 else ' was'} dropped"
        self.notice(text)

    def resumed(self, replayed: int, too_old: list) -> None:
        if replayed:
            self.notice(f"caught up: {replayed} missed message{'s' if replayed != 1 else ''}")
        for item in too_old:
            if isinstance(item.get("roomName"), str):
                self.notice(f"too much missed in #{item['roomName']}; showing its latest messages")
            elif isinstance(item.get("with"), str):
                self.notice(f"direct messages with {item['with']} missed while disconnected "
                            "could not all be fetched", "error")

    def room_joined(self, room: str, members: Any, rejoin: bool, history: int) -> None:
        self.known_rooms.add(room)
        if room in self._history_open:
            self._history_open.discard(room)
            self.divider(f"end of history of #{clean_text(room)}")
        if rejoin:
            self.notice(f"rejoined #{room}")
            return
        count = f"{members} member{'s' if members != 1 else ''}" if isinstance(members, int) else "joined"
        more = f", {history} earlier message{'s' if history != 1 else ''}" if history else ""
        self.notice(f"joined #{room} ({count}{more})" if isinstance(members, int) else f"joined #{room}{more}")
        if room in self._switch_on_join or not self.current_room:
            self._switch_on_join.discard(room)
            self.switch_room(room)

    def room_left(self, room: str) -> None:
        self.notice(f"left #{room}")
        self.unread.pop(room, None)
        if self.current_room == room:
            self.switch_room(self.conn.rooms[-1] if self.conn.rooms else None)

    def login_failed(self, code: int, message: str) -> None:
        self.notice(f"login as {self.conn.username} failed: {message} ({code})", "error")
        self.notice("enter the password (an empty line to log in with another user name)")
        self.mode = "password"
        self.input.set_secret(True)
        self._changed()

    # -- input ------------------------------------------------------------------

    def handle_line(self, line: str) -> None:
        try:
            self._handle_line(line)
        except Exception as exc:  # a bug must not end the session
            self.notice(f"internal error: {describe_exception(exc)}", "error")
        self._changed()

    def _handle_line(self, line: str) -> None:
        if self.mode in ("username", "password"):
            stripped = line.strip()
            if stripped.lower() in ("/exit", "/quit"):
                self.exit()
                return
            if self.mode == "username":
                if not stripped or stripped.startswith("/") or len(stripped.split()) != 1:
                    self.notice("a user name is one word, not starting with /", "error")
                    return
                self.conn.username = stripped
                self.conn.password = None
                self._begin()
                return
            if not line:
                self.conn.password = None
                self._ask_username()
                return
            self.conn.password = line
            self._begin()
            return
        cmd = parse_command(line)
        if cmd is None:
            return
        if isinstance(cmd, UsageError):
            for text in cmd.lines():
                self.notice(text, "error")
            return
        getattr(self, f"_cmd_{cmd.name}")(cmd)

    def _report_send(self, outcome: str, what: str) -> None:
        if outcome == "refused":
            self.notice(f"not sent: {what} (too many messages waiting for the connection)", "error")

    def _cmd_say(self, cmd: Command) -> None:
        if not self.current_room:
            self.notice("you are not in a room: /join <room> to join one, or /msg <user> <words> "
                        "for a direct message", "error")
            return
        self._report_send(self.conn.send_room(self.current_room, cmd.text), f"#{self.current_room} {cmd.text}")

    def _cmd_chat(self, cmd: Command) -> None:
        if cmd.room:
            self._report_send(self.conn.send_room(cmd.room, cmd.text), f"#{cmd.room} {cmd.text}")
        else:
            self.known_users.add(cmd.user)
            self._report_send(self.conn.send_direct(cmd.user, cmd.text), f"-> {cmd.user} {cmd.text}")

    def _cmd_join(self, cmd: Command) -> None:
        if cmd.room in self.conn.rooms:
            self.switch_room(cmd.room)
            self.notice(f"already in #{cmd.room}; it is the current room now")
            return
        self.known_rooms.add(cmd.room)
        self._switch_on_join.add(cmd.room)
        self._report_send(self.conn.join(cmd.room), f"/join {cmd.room}")

    def _cmd_leave(self, cmd: Command) -> None:
        room = cmd.room or self.current_room
        if not room:
            self.notice("usage: /leave [room] (you have no current room)", "error")
            return
        if room not in self.conn.rooms:
            self.notice(f"you are not in #{room}", "error")
            return
        self._report_send(self.conn.leave(room), f"/leave {room}")

    def _cmd_room(self, cmd: Command) -> None:
        if cmd.room is None:
            if not self.conn.rooms:
                self.notice("no rooms joined: /join <room>")
            else:
                listed = " ".join(f"[#{r}]" if r == self.current_room else f"#{r}" for r in self.conn.rooms)
                self.notice(f"your rooms: {listed}")
            return
        if cmd.room not in self.conn.rooms:
            self.notice(f"you are not in #{cmd.room}: /join {cmd.room} first", "error")
            return
        self.switch_room(cmd.room)
        self.notice(f"current room: #{cmd.room}")

    def _cmd_rooms(self, cmd: Command) -> None:
        if self.conn.online:
            self.conn.request("listRooms", {})
        else:
            self._show_rooms(None)

    def _show_rooms(self, rooms: Any) -> None:
        joined = self.conn.rooms
        if not isinstance(rooms, list):
            if not joined:
                self.notice("you are in no room: /join <room>")
            else:
                self.notice("your rooms: " + " ".join(
                    f"[#{r}]" if r == self.current_room else f"#{r}" for r in joined))
            return
        entries = []
        for item in rooms:
            if isinstance(item, dict) and isinstance(item.get("roomName"), str):
                entries.append((item["roomName"], item.get("members")))
            elif isinstance(item, str):
                entries.append((item, None))
        if not entries:
            self.notice("no rooms yet: /join <room> creates one")
            return
        lines = [f"rooms ({len(entries)}):"]
        width = max(len(name) for name, _ in entries) + 1
        for name, members in sorted(entries, key=lambda e: e[0].lower()):
            self.known_rooms.add(name)
            count = f"{members} member{'s' if members != 1 else ''}" if isinstance(members, int) else ""
            tags = ", ".join(t for t, on in (("joined", name in joined), ("current", name == self.current_room))
                             if on)
            lines.append(f"  {'#' + name:<{width}}  {count}{'  (' + tags + ')' if tags else ''}".rstrip())
        self.notice("\n".join(lines))

    def _cmd_stats(self, cmd: Command) -> None:
        self.known_users.add(cmd.user)
        self._report_send(self.conn.request("userInfo", {"username": cmd.user}), f"/stats {cmd.user}")

    def _cmd_popular(self, cmd: Command) -> None:
        self._report_send(self.conn.request("popular", {"n": cmd.count}), f"/popular {cmd.count}")

    def _cmd_whoami(self, cmd: Command) -> None:
        conn = self.conn
        where = f"on node {conn.node_id}" if conn.online else f"not connected (last node {conn.node_id or '-'})"
        rooms = " ".join(f"#{r}" for r in conn.rooms) or "none"
        current = f"#{self.current_room}" if self.current_room else "none"
        self.notice(f"you are {conn.username}, {where}; rooms: {rooms}; current room: {current}")

    def _cmd_reconnect(self, cmd: Command) -> None:
        self.notice("reconnecting through the gateway")
        self.conn.reconnect()

    def _cmd_help(self, cmd: Command) -> None:
        self.notice("\n".join(help_lines(cmd.topic)))

    def _cmd_exit(self, cmd: Command) -> None:
        self.exit()

    # -- completion -------------------------------------------------------------

    def complete(self, text: str, pos: int) -> list[tuple[str, int]]:
        before, after = text[:pos], text[pos:]
        word = re.search(r"\S*$", before).group(0)
        start = pos - len(word)
        previous = before[:start].split()
        suffix = " "
        if not previous and word.startswith("/"):
            candidates = [f"/{n}" for n in COMMAND_NAMES]
        elif previous and previous[0].startswith("/"):
            spec = _SPEC_BY_NAME.get(previous[0][1:].lower())
            name = spec.name if spec else ""
            first_arg = len(previous) == 1
            users = sorted(self.known_users)
            if name == "chat" and first_arg:
                if word.startswith("#"):
                    candidates = [f"#{r}" for r in self._rooms_for_completion()]
                else:
                    candidates = [f"room:{r}" for r in self._rooms_for_completion()] + users
            elif name in ("msg", "stats") and first_arg:
                candidates = users
            elif name == "join" and first_arg:
                candidates = self._rooms_for_completion()
            elif name in ("leave", "room") and first_arg:
                candidates = list(self.conn.rooms)
            elif name == "help" and first_arg:
                candidates = list(COMMAND_NAMES)
            elif name in ("chat", "msg"):
                candidates = users
            else:
                return []
        else:
            candidates = sorted(self.known_users)
            if not previous:
                suffix = ": "
        matches = list(dict.fromkeys(c for c in candidates if c and c.lower().startswith(word.lower())))
        if not matches:
            return []
        if len(matches) == 1:
            repl = matches[0] + suffix
            return [(before[:start] + repl + after, start + len(repl))]
        common = os.path.commonprefix(matches)
        if len(common) > len(word):
            return [(before[:start] + common + after, start + len(common))]
        return [(before[:start] + m + suffix + after, start + len(m) + len(suffix)) for m in matches]

    def _rooms_for_completion(self) -> list[str]:
        return list(dict.fromkeys([*self.conn.rooms, *sorted(self.known_rooms)]))


# ---------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="chatnet-client",
        description="Terminal client for chatnet. What is missing is asked for inside the UI.")
    parser.add_argument("--gateway", default=os.environ.get("CHATNET_GATEWAY", DEFAULT_GATEWAY),
                        help="gateway base URL (default: %(default)s, or $CHATNET_GATEWAY)")
    parser.add_argument("--user", help="user name (asked for when missing)")
    parser.add_argument("--password", default=os.environ.get("CHATNET_PASSWORD"),
                        help="password (or $CHATNET_PASSWORD; asked for when the node wants one)")
    parser.add_argument("--join", action="append", default=[], metavar="ROOM[,ROOM...]",
                        help="rooms to join once connected")
    parser.add_argument("--log", metavar="FILE", help="write a plain transcript to FILE")
    parser.add_argument("--debug-log", metavar="FILE", help="write Twisted's log and every frame to FILE")
    args = parser.parse_args(argv)
    parts = urlsplit(args.gateway if "://" in args.gateway else f"http://{args.gateway}")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        parser.error(f"--gateway must be an http:// or https:// URL, not {args.gateway!r}")
    args.gateway = urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))
    args.rooms = [r.strip().lstrip("#") for item in args.join for r in item.split(",") if r.strip().lstrip("#")]
    return args


def _start_logging(path: str | None) -> None:
    """Keep Twisted's and autobahn's log off the screen (into ``path`` when given)."""
    from twisted.logger import FilteringLogObserver, LogLevel, LogLevelFilterPredicate, globalLogBeginner
    from twisted.logger import textFileLogObserver

    if path:
        observer = FilteringLogObserver(textFileLogObserver(open(path, "a", encoding="utf-8")),
                                        [LogLevelFilterPredicate(LogLevel.info)])
        observers = [observer]
    else:
        observers = [lambda event: None]
    globalLogBeginner.beginLoggingTo(observers, discardBuffer=True, redirectStandardIO=False)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    transcript = None
    if args.log:
        try:
            transcript = Transcript(args.log)
        except OSError as exc:
            print(f"chatnet-client: cannot write {args.log}: {exc.strerror}", file=sys.stderr)
            return 2
    _start_logging(args.debug_log)

    from twisted.internet import reactor

    pending_redraw: list = []
    loop: urwid.MainLoop | None = None

    def redraw() -> None:
        if loop is None or pending_redraw:
            return
        pending_redraw.append(loop.set_alarm_in(0, lambda *_: pending_redraw.clear()))

    def stop() -> None:
        if reactor.running:
            reactor.stop()

    app = ChatApp(gateway=args.gateway, username=args.user, password=args.password, rooms=args.rooms,
                  clock=reactor, transcript=transcript, on_exit=stop, redraw=redraw)
    loop = urwid.MainLoop(app.widget, PALETTE, event_loop=urwid.TwistedEventLoop(reactor=reactor),
                          handle_mouse=False)
    reactor.addSystemEventTrigger("before", "shutdown", app.shutdown)
    reactor.callWhenRunning(app.start)
    try:
        loop.run()
    except KeyboardInterrupt:
        pass
    finally:
        if transcript is not None:
            transcript.close()
    for line in app.unsent:
        print(f"chatnet-client: {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
