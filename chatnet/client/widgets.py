"""The urwid widgets of the terminal client: message pane, input line, status bar, screen."""

from __future__ import annotations

import re
import zlib
from typing import TYPE_CHECKING, Callable, NamedTuple

import urwid

from chatnet.client.text import clean_text, one_line

if TYPE_CHECKING:
    from chatnet.client.app import ChatApp
    from chatnet.client.connection import ChatConnection

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
        #: called on page up when the top line is shown already (for earlier messages)
        self.on_top: Callable[[], None] | None = None

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
        if key == "page up" and self.on_top is not None and (not self.walker or "top" in self.ends_visible(size)):
            self.on_top()
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


class ChatEntry(NamedTuple):
    """How a chat frame is shown."""

    when: float  # its time
    mark: str
    mark_attr: str
    body: list  # the pane's markup
    log: str  # the transcript line
    sender: str  # cleaned
    room: str  # cleaned, "" for a direct message
    own: bool  # sent by the user


def chat_entry(data: dict, history: bool, me: str | None, now: float) -> ChatEntry:
    """How chat frame ``data`` is shown to user ``me`` (``history``: replayed by a join)."""
    sender = clean_text(str(data.get("from") or "?"))
    room = clean_text(str(data.get("roomName") or ""))
    message = data.get("message")
    text = clean_text(message if isinstance(message, str) else str(message or ""))
    # the extension live: a deleted message is a tombstone, an edited one says so
    if data.get("deleted") is True:
        text = "(message deleted)"
    elif data.get("edited") not in (None, False):
        text += " (edited)"
    ts = data.get("ts")
    when = ts / 1000.0 if isinstance(ts, (int, float)) and not isinstance(ts, bool) else now
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
    return ChatEntry(when, mark, mark_attr, body, log, sender, room, own)


def state_text(conn: "ChatConnection", mode: str, gateway: str, now: float) -> tuple[str, str]:
    """The connection state in the status bar, and its attribute."""
    state = conn.state
    if state == "online":
        return "online", "status_ok"
    if state == "idle":
        return ("waiting for your user name" if mode == "username" else "not connected"), "status_busy"
    if state == "gateway":
        return f"asking gateway {gateway}", "status_busy"
    if state == "connecting":
        return f"connecting to {conn.node_id}", "status_busy"
    if state == "login":
        return f"logging in on {conn.node_id}", "status_busy"
    if state == "joining":
        return "re-joining rooms", "status_busy"
    if state == "resuming":
        return "catching up", "status_busy"
    if state == "waiting":
        left = max(1, round((conn.retry_at or 0) - now))
        label = "disconnected" if conn.ever_online else "not connected"
        return f"{label}: {conn.retry_reason}, retrying in {left}s", "status_bad"
    if state == "stopped":
        if mode == "password":
            return f"offline: {conn.stop_reason}; enter the password", "status_bad"
        return f"offline: {conn.stop_reason}", "status_bad"
    return state, "status"


def status_markup(conn: "ChatConnection", state: tuple[str, str], current_room: str | None,
                  unread: dict[str, int], new_below: int, typing: list[str] = ()) -> list:
    """The status bar: user, node, ``state``, current room, unread counts, queue, new lines below."""
    user = conn.username or "(no user)"
    node = conn.node_id or "-"
    state_label, state_attr = state
    room = f"#{current_room}" if current_room else "no room"
    parts: list = [("status_user", f" {user} "), ("status", f"| {node} |"), (state_attr, f" {state_label} "),
                   ("status", f"| {room} ")]
    unread_rooms = [f"#{r}({n})" for r, n in unread.items() if n and r != current_room]
    if unread_rooms:
        parts += [("status", "| unread "), ("status_unread", " ".join(unread_rooms)), ("status", " ")]
    queued = len(conn.outbox)
    if queued:
        parts.append(("status", f"| {queued} queued "))
    if new_below:
        parts.append(("status_unread", f"| {new_below} new below (page down) "))
    if typing:
        who = typing[0] if len(typing) == 1 else f"{', '.join(typing[:-1])} and {typing[-1]}"
        parts.append(("status", f"| {who} {'is' if len(typing) == 1 else 'are'} typing... "))
    return parts


def prompt_caption(mode: str, username: str | None, current_room: str | None) -> list:
    """The input line's caption: what is asked for (``mode``), or the current room."""
    if mode == "username":
        return [("prompt", "user name: ")]
    if mode == "password":
        return [("prompt", f"password for {username}: ")]
    if current_room:
        return [("prompt", f"[#{current_room}] ")]
    return [("prompt", "> ")]
