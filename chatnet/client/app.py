"""The terminal client: the screen glued to the session, the command line, ``main``."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Callable
from urllib.parse import urlsplit, urlunsplit

from twisted.internet import defer

from chatnet.client.commands import (
    failure_prefix,
    format_popular,
    moderation_text,
    notice_text,
    format_rooms,
    format_stats,
    joined_text,
    offline_text,
    room_entries,
)
from chatnet.client.connection import ChatConnection
from chatnet.client.dispatch import CommandDispatcher
from chatnet.client.listener import ConnectionListener
from chatnet.client.requests import Request
from chatnet.client.text import clean_text, fmt_time, one_line
from chatnet.client.transcript import Transcript
from chatnet.client.transport import Attempt, GatewayClient, connect_websocket, describe_exception
from chatnet.protocols.constants import WORLD

#: messages asked for by one /history (or page up at the top)
HISTORY_PAGE = 50
#: own messages remembered per room for /edit N and /delete N
OWN_KEPT = 100
#: seconds a `typing` frame shows its sender in the status bar
TYPING_SHOWN = 5.0

try:
    import urwid

    from chatnet.client.widgets import (
        PALETTE,
        ChatScreen,
        InputLine,
        MessagePane,
        chat_entry,
        pane_line,
        prompt_caption,
        state_text,
        status_markup,
    )
except ImportError as exc:  # installed without the "client" extra
    if exc.name != "urwid":
        raise
    urwid = None

DEFAULT_GATEWAY = "http://127.0.0.1:8888"


class ChatApp(ConnectionListener):
    """The terminal client: widgets and the session glued together (a
    little over 300 lines: one short method per listener event; commands
    are in L{chatnet.client.dispatch}).

    ``clock`` is the reactor (or a ``task.Clock`` in tests); ``lookup`` and
    ``connector`` default to the real gateway and WebSocket.  ``widget`` is
    the top urwid widget.  ``on_exit`` is called when the user leaves,
    ``redraw`` whenever something changed outside of a keypress.  What
    typed commands do is :class:`~chatnet.client.dispatch.CommandDispatcher`'s.
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
        connector: Callable[[str, Attempt], Any] | None = None,
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
            def connector(url: str, attempt: Attempt) -> Any:
                return connect_websocket(clock, url, attempt)
        self.conn = ChatConnection(self, clock=clock, lookup=lookup, connector=connector,
                                   username=username, password=password,
                                   gateway_host=urlsplit(gateway).hostname, **conn_options)
        self.commands = CommandDispatcher(self, self.conn)
        self.current_room: str | None = None
        self.unread: dict[str, int] = {}
        self.known_users: set[str] = set()
        self.known_rooms: set[str] = set()
        self.unsent: list[str] = []
        self.exited = False
        self._history_open: set[str] = set()
        self._switch_on_join: set[str] = set()
        #: per room, the ids of the user's own messages seen, oldest first (for /edit and /delete)
        self.own_messages: dict[str, list[str]] = {}
        #: per room, the lowest seq shown (where /history goes on from)
        self.first_seq: dict[str, int] = {}
        #: per room (or user, for a direct conversation), who is typing and until when
        self.typing: dict[str, dict[str, float]] = {}
        self._seq_of: dict[str, int] = {}
        self._ticker: Any = None
        self._initial_rooms = [r.lstrip("#") for r in rooms if r.strip("# ")]

        self.pane = MessagePane()
        self.pane.on_top = self.load_earlier
        self.status_text = urwid.Text("")
        self.input = InputLine(self.handle_line, self.commands.complete)
        self.widget = ChatScreen(self)
        self.mode = "chat"
        self.refresh_status()

    # -- life cycle ---------------------------------------------------------------

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
        # every user is in world (no join needed): the current room until another is joined
        if not self.current_room:
            self.current_room = WORLD
        for room in self._initial_rooms:
            self.switch_on_join(room)
            self.conn.outgoing.join_on_connect(room)
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
        for req in self.conn.outgoing.drop_queue("the client was closed"):
            self.unsent.append(f"not sent: {one_line(req.describe())}")
        self.on_exit()

    def shutdown(self) -> defer.Deferred:
        """Close the connection (for the reactor's shutdown)."""
        d = self.conn.close()
        if self.transcript is not None:
            d.addBoth(lambda r: (self.transcript.close(), r)[1])
        return d

    # -- output -------------------------------------------------------------------

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
        entry = chat_entry(data, history, self.conn.username, self.clock.seconds())
        seq, msg_id = data.get("seq"), data.get("msgId")
        if entry.room and isinstance(seq, int) and not isinstance(seq, bool):
            self.first_seq[entry.room] = min(seq, self.first_seq.get(entry.room, seq))
        if entry.own and entry.room and isinstance(msg_id, str) and not data.get("deleted"):
            ids = self.own_messages.setdefault(entry.room, [])
            self._seq_of[msg_id] = seq if isinstance(seq, int) else 0
            if msg_id not in ids:
                ids.append(msg_id)
                ids.sort(key=lambda i: self._seq_of.get(i, 0))
                for old in ids[:-OWN_KEPT]:
                    self._seq_of.pop(old, None)
                del ids[:-OWN_KEPT]
        if entry.sender and entry.room and self.typing.get(entry.room, {}).pop(entry.sender, None):
            self._changed()
        if entry.sender and entry.sender != "?":
            self.known_users.add(entry.sender)
        if entry.room:
            self.known_rooms.add(entry.room)
            if not history and not entry.own and entry.room != self.current_room:
                self.unread[entry.room] = self.unread.get(entry.room, 0) + 1
        self.add_line(entry.when, entry.mark, entry.mark_attr, entry.body, entry.log)

    def show_own_direct(self, user: str, text: str) -> None:
        user, text = clean_text(user), clean_text(text)
        self.add_line(self.clock.seconds(), ">", "mark_own",
                      [("own", f"-> <{user}>"), " ", ("own_text", text)], f"-> <{user}> {one_line(text)}")

    def show_rooms(self, rooms: Any) -> None:
        """The ``/rooms`` answer (``rooms`` not a list: the rooms joined)."""
        if isinstance(rooms, list):
            self.known_rooms.update(name for name, _ in room_entries(rooms))
        self.notice("\n".join(format_rooms(rooms, self.conn.rooms, self.current_room)))

    # -- status bar ---------------------------------------------------------------

    def refresh_status(self) -> None:
        state = state_text(self.conn, self.mode, self.gateway, self.clock.seconds())
        self.status_text.set_text(status_markup(self.conn, state, self.current_room, self.unread,
                                                self.pane.new_below, self.typing_now()))
        caption = prompt_caption(self.mode, self.conn.username, self.current_room)
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

    # -- rooms --------------------------------------------------------------------

    def switch_room(self, room: str | None) -> None:
        self.current_room = room
        if room:
            self.unread.pop(room, None)
        self.refresh_status()

    def switch_on_join(self, room: str) -> None:
        """Make ``room`` the current one once joined."""
        self._switch_on_join.add(room)

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

    # -- the session's news -----------------------------------------------------

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
            self.show_rooms(data.get("rooms"))
            self._unread_from(data.get("rooms"), lambda room: room in self.conn.rooms)
        elif action == "history":
            self._show_history(data, request)
        elif action == "edit":
            self.notice(f"edited: {clean_text(one_line(str(data.get('message', ''))))}")
        elif action == "delete":
            self._forget_own(data.get("msgId") or (request.data.get("msgId") if request is not None else None))
            self.notice("message deleted")
        elif action in ("createRoom", "invite", "kick", "ban", "mute", "setRole"):
            if request is not None and not data.get("roomName"):
                data = {**request.data, **data}
            self.notice(moderation_text(action, data))
            if action == "createRoom" and isinstance(data.get("roomName"), str):
                # the owner is a member: joining makes it a room of this session
                self.switch_on_join(data["roomName"])
                self.conn.outgoing.join(data["roomName"])

    # -- the extension live -----------------------------------------------------

    def load_earlier(self) -> None:
        """``/history``, or page up at the top: the page of messages before the first one shown."""
        room = self.current_room
        if not room:
            self.notice("no current room: /room <room> first", "error")
            return
        first = self.first_seq.get(room)
        if first is not None and first <= 1:
            self.notice(f"no earlier messages in #{room}")
            return
        data = {"roomName": room, "limit": HISTORY_PAGE}
        if first is not None:
            data["before"] = first
        self.conn.outgoing.request("history", data)

    def _show_history(self, data: dict, request: Request | None) -> None:
        room = data.get("roomName") or (request.data.get("roomName") if request is not None else None)
        messages = [m for m in data.get("messages") or [] if isinstance(m, dict)] \
            if isinstance(data.get("messages"), list) else []
        if not messages:
            self.notice(f"no earlier messages in #{clean_text(str(room))}")
            return
        seqs = [m["seq"] for m in messages if isinstance(m.get("seq"), int)]
        span = f" ({min(seqs)} to {max(seqs)})" if seqs else ""
        self.divider(f"earlier messages of #{clean_text(str(room))}{span}")
        for m in messages:
            self.show_chat({**m, "roomName": m.get("roomName") or room}, True)
        more = "; /history or page up for more" if data.get("more") else "; that is the first message"
        self.divider(f"end of earlier messages of #{clean_text(str(room))}{more}")

    def pushed(self, action: str, data: dict) -> None:
        where = data.get("roomName")
        place = f"#{clean_text(where)}" if isinstance(where, str) and where else \
            f"the conversation with {clean_text(str(data.get('conversation') or data.get('to') or data.get('from')))}"
        by = clean_text(str(data.get("by") or "?"))
        if action == "messageEdited":
            self.notice(f"{by} edited a message in {place}: {clean_text(one_line(str(data.get('message', ''))))}")
        elif action == "messageDeleted":
            self._forget_own(data.get("msgId"))
            self.notice(f"{by} deleted a message in {place}")
        elif action == "typing":
            who = data.get("from")
            key = where if isinstance(where, str) and where else who
            if isinstance(who, str) and isinstance(key, str):
                self.typing.setdefault(key, {})[who] = self.clock.seconds() + TYPING_SHOWN
                self.clock.callLater(TYPING_SHOWN + 0.1, self._changed)
                self._changed()
        elif action == "read":
            if isinstance(where, str):
                self.unread.pop(where, None)
                self._changed()

    def rooms_at_login(self, rooms: list) -> None:
        # the rooms the user is a member of (joined here or on another device)
        self._unread_from(rooms, lambda room: True)

    def _unread_from(self, rooms: Any, counted: Callable[[str], bool]) -> None:
        """Unread counts from the server's read markers (``unread`` of ``listRooms`` and of the login answer)."""
        for entry in rooms if isinstance(rooms, list) else []:
            if not isinstance(entry, dict) or not isinstance(entry.get("roomName"), str):
                continue
            room, unread = entry["roomName"], entry.get("unread")
            if isinstance(unread, int) and not isinstance(unread, bool) and room != self.current_room \
                    and counted(room):
                if unread > 0:
                    self.unread[room] = unread
                else:
                    self.unread.pop(room, None)
        self._changed()

    def typing_now(self) -> list[str]:
        """Who is typing in the current room, or to this user directly."""
        now = self.clock.seconds()
        names = set()
        for key, who in self.typing.items():
            for name, until in list(who.items()):
                if until <= now:
                    del who[name]
                elif key == self.current_room or key == name:
                    names.add(name)
        return sorted(names)

    def _forget_own(self, msg_id: Any) -> None:
        for ids in self.own_messages.values():
            if msg_id in ids:
                ids.remove(msg_id)

    def room_notice(self, data: dict) -> None:
        # something done to the user (kicked, muted) is shown as an error; an invitation is not
        mine = data.get("username") == self.conn.username and data.get("kind") != "invited"
        self.notice(notice_text(data, self.conn.username, self.clock.seconds() * 1000), "error" if mine else "system")

    def request_failed(self, code: int, message: str, request: Request | None) -> None:
        if request is not None and request.action == "listRooms" and code == 400:  # an old node
            self.show_rooms(None)
            return
        self.notice(f"{failure_prefix(request)}{message} ({code})", "error")

    def direct_queued(self, request: Request | None, data: dict) -> None:
        user = data.get("to") if isinstance(data.get("to"), str) and data.get("to") else \
            (request.data.get("to") if request is not None else "?")
        self.notice(f"queued for {user} (offline)")

    def offline_summary(self, delivered: int, dropped: int) -> None:
        self.notice(offline_text(delivered, dropped))

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
        self.notice(joined_text(room, members, history))
        if room in self._switch_on_join or not self.current_room or self.current_room == WORLD:
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


    # -- input --------------------------------------------------------------------

    def handle_line(self, line: str) -> None:
        try:
            if self.mode in ("username", "password"):
                self._prompt_answered(line)
            else:
                self.commands.run(line)
        except Exception as exc:  # a bug must not end the session
            self.notice(f"internal error: {describe_exception(exc)}", "error")
        self._changed()

    def _prompt_answered(self, line: str) -> None:
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
    if urwid is None:
        print("chatnet-client needs urwid: pip install 'chatnet[client]'", file=sys.stderr)
        return 2
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
