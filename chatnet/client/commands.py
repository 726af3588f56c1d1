"""Slash commands of the terminal client: parsing, help, and the text of the answers.

Everything here is pure: :func:`parse_command` turns an input line into a
:class:`Command` or a :class:`UsageError` with no side effect.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from chatnet.client.text import clean_text
from chatnet.protocols.constants import format_duration

__all__ = ["COMMAND_NAMES", "COMMAND_SPECS", "MUTE_MAX", "POPULAR_DEFAULT", "POPULAR_MAX", "Command", "CommandSpec",
           "UsageError", "failure_prefix", "format_duration", "format_popular", "format_rooms", "format_stats",
           "help_lines", "joined_text", "moderation_text", "notice_text", "offline_text", "parse_command",
           "parse_duration", "room_entries", "spec_for"]


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
    CommandSpec("create", "/create <room> [private]", "create a room (yours: you moderate it) and join it",
                aliases=("createRoom",)),
    CommandSpec("invite", "/invite <room> <user>", "let a user join your private room (owner, admins)"),
    CommandSpec("kick", "/kick <room> <user>", "put a member out of a room (owner, admins)"),
    CommandSpec("ban", "/ban <room> <user>", "put a user out of a room for good (owner, admins)"),
    CommandSpec("mute", "/mute <room> <user> <time>", "silence a member for a time: 30, 30s, 10m, 2h, 7d at most "
                "(owner, admins)"),
    CommandSpec("role", "/role <room> <user> admin|member", "make a member an admin, or a member again (owner)",
                aliases=("setRole",)),
    CommandSpec("history", "/history", "show earlier messages of the current room (also page up at the top)"),
    CommandSpec("edit", "/edit [n] <words...>", "replace the text of your last message in the current room "
                "(n: the n-th last, 1 by default)"),
    CommandSpec("delete", "/delete [n]", "delete your last message in the current room (n: the n-th last)"),
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


def spec_for(name: str) -> CommandSpec | None:
    """The command typed as ``name`` (any alias, any case), or None."""
    return _SPEC_BY_NAME.get(name.lower())


#: every name a command can be typed with, in the spelling of the help
COMMAND_NAMES: tuple[str, ...] = tuple(n for s in COMMAND_SPECS for n in (s.name, *s.aliases))

POPULAR_DEFAULT = 10
POPULAR_MAX = 1000
#: the longest mute, in seconds (docs/protocol.md: 7 days)
MUTE_MAX = 7 * 24 * 3600
_TIME_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(word: str) -> int | None:
    """Seconds of ``30``, ``30s``, ``10m``, ``2h``, ``7d``; None if it is no such time."""
    match = re.fullmatch(r"(\d{1,9})([smhd]?)", word.strip().lower())
    return int(match.group(1)) * _TIME_UNITS[match.group(2)] if match else None


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
    role: str | None = None
    private: bool = False


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


def _number(word: str) -> bool:
    """Decimal digits 0-9 only (``isdigit`` also takes ``²`` and other digits ``int`` refuses)."""
    return word.isascii() and word.isdigit() and len(word) <= 9


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
    if name == "create":
        if len(args) not in (1, 2) or not _room_arg(args[0]) or (len(args) == 2 and args[1].lower() != "private"):
            return bad()
        return Command("create", room=_room_arg(args[0]), private=len(args) == 2)
    if name in ("invite", "kick", "ban"):
        if len(args) != 2 or not _room_arg(args[0]):
            return bad()
        return Command(name, room=_room_arg(args[0]), user=args[1].lstrip("@"))
    if name == "mute":
        if len(args) != 3 or not _room_arg(args[0]):
            return bad()
        seconds = parse_duration(args[2])
        if seconds is None or not 1 <= seconds <= MUTE_MAX:
            return bad("the time is 1 s to 7 days: 30, 30s, 10m, 2h or 7d")
        return Command("mute", room=_room_arg(args[0]), user=args[1].lstrip("@"), count=seconds)
    if name == "role":
        if len(args) != 3 or not _room_arg(args[0]) or args[2].lower() not in ("admin", "member"):
            return bad()
        return Command("role", room=_room_arg(args[0]), user=args[1].lstrip("@"), role=args[2].lower())
    if name == "edit":
        words = rest.split(None, 1)
        count = 1
        if words and _number(words[0]) and len(words) == 2:
            count, rest = int(words[0]), words[1].strip()
        if not rest or count < 1:
            return bad()
        return Command("edit", count=count, text=rest)
    if name == "delete":
        if len(args) > 1 or (args and (not _number(args[0]) or int(args[0]) < 1)):
            return bad()
        return Command("delete", count=int(args[0]) if args else 1)
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
# the text of answers
# ---------------------------------------------------------------------------


def format_stats(data: dict, now: float) -> str:
    """The ``/stats`` line from a ``userInfo`` answer: ``user: online 00d 01h 02m 03s on node <id>``
    (``on nodes <id>, <id>`` for a user online on several, with ``multi``)."""
    user = clean_text(str(data.get("username") or "?"))
    nodes = data.get("nodes")
    if isinstance(nodes, list) and len(nodes) > 1:
        where = "nodes " + ", ".join(clean_text(str(n)) for n in nodes)
    else:
        where = "node " + clean_text(str(data.get("nodeId") or "?"))
    if data.get("isOnline") is False:
        return f"{user}: offline"
    online_for = data.get("onlineFor")
    if not isinstance(online_for, str) or not online_for.strip():
        login_time = data.get("loginTime")
        if isinstance(login_time, (int, float)) and not isinstance(login_time, bool):
            online_for = format_duration(now - login_time / 1000.0)
        else:
            online_for = "?"
    return f"{user}: online {clean_text(online_for)} on {where}"


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


def room_entries(rooms: Any) -> list[tuple[str, Any]]:
    """``(name, members)`` of each room of a ``listRooms`` answer."""
    entries = []
    for item in rooms:
        if isinstance(item, dict) and isinstance(item.get("roomName"), str):
            entries.append((item["roomName"], item.get("members")))
        elif isinstance(item, str):
            entries.append((item, None))
    return entries


def format_rooms(rooms: Any, joined: list[str], current: str | None) -> list[str]:
    """The ``/rooms`` lines: the ``listRooms`` answer ``rooms``, or (not a list) the rooms ``joined``."""
    if not isinstance(rooms, list):
        if not joined:
            return ["you are in no room: /join <room>"]
        return ["your rooms: " + " ".join(f"[#{r}]" if r == current else f"#{r}" for r in joined)]
    entries = room_entries(rooms)
    if not entries:
        return ["no rooms yet: /create <room> makes one"]
    private = {r["roomName"] for r in rooms if isinstance(r, dict) and r.get("private") is True}
    lines = [f"rooms ({len(entries)}):"]
    width = max(len(name) for name, _ in entries) + 1
    for name, members in sorted(entries, key=lambda e: e[0].lower()):
        count = f"{members} member{'s' if members != 1 else ''}" if isinstance(members, int) else ""
        tags = ", ".join(t for t, on in (("private", name in private), ("joined", name in joined),
                                         ("current", name == current)) if on)
        lines.append(f"  {'#' + name:<{width}}  {count}{'  (' + tags + ')' if tags else ''}".rstrip())
    return lines


def failure_prefix(request: Any) -> str:
    """What an error answer is about, before its message: ``cannot join #room: ``, ``/popular: ``..."""
    if request is None:
        return ""
    d = request.data
    if request.action == "chat":
        return f"not delivered to #{d.get('roomName')}: " if d.get("isGroup") else f"not delivered to {d.get('to')}: "
    return {
        "joinRoom": f"cannot join #{d.get('roomName')}: ",
        "leaveRoom": f"cannot leave #{d.get('roomName')}: ",
        "userInfo": f"/stats {d.get('username')}: ",
        "popular": "/popular: ",
        "listRooms": "/rooms: ",
        "createRoom": f"cannot create #{d.get('roomName')}: ",
        "invite": f"/invite {d.get('username')} to #{d.get('roomName')}: ",
        "kick": f"/kick {d.get('username')} from #{d.get('roomName')}: ",
        "ban": f"/ban {d.get('username')} from #{d.get('roomName')}: ",
        "mute": f"/mute {d.get('username')} in #{d.get('roomName')}: ",
        "setRole": f"/role {d.get('username')} in #{d.get('roomName')}: ",
    }.get(request.action, "")


def notice_text(data: dict, me: str | None, now_ms: float) -> str:
    """The line of a ``roomNotice``: ``user3 was muted in #club by user2 for 60 s``."""
    room = clean_text(str(data.get("roomName") or "?"))
    user = clean_text(str(data.get("username") or "?"))
    by = clean_text(str(data.get("by") or "?"))
    who = "you were" if data.get("username") == me else f"{user} was"
    action = data.get("action")
    if data.get("kind") == "invited":
        return f"{by} invited you to #{room}: /join {room}"
    if action == "mute":
        until = data.get("until")
        left = ""
        if isinstance(until, (int, float)) and not isinstance(until, bool):
            left = " for " + format_duration(max(0.0, (until - now_ms) / 1000.0))
        return f"{who} muted in #{room} by {by}{left}"
    verb = {"kick": "kicked out of", "ban": "banned from"}.get(action)
    if verb is None:
        return f"#{room}: {clean_text(str(action))} {user} by {by}"
    return f"{who} {verb} #{room} by {by}"


def moderation_text(action: str, data: dict) -> str:
    """The line of the answer to a moderation the user asked for."""
    room = clean_text(str(data.get("roomName") or "?"))
    user = clean_text(str(data.get("username") or "?"))
    if action == "createRoom":
        private = f" (private: /invite {room} <user> lets someone in)" if data.get("private") else ""
        return f"created #{room}{private}"
    if action == "setRole":
        return f"{user} is {'an admin' if data.get('role') == 'admin' else 'a member'} of #{room} now"
    done = {"invite": "invited to", "kick": "kicked out of", "ban": "banned from", "mute": "muted in"}
    return f"{user} {done.get(action, action)} #{room}"


def joined_text(room: str, members: Any, history: int) -> str:
    """The notice of a join: ``joined #room (3 members, 2 earlier messages)``."""
    more = f", {history} earlier message{'s' if history != 1 else ''}" if history else ""
    if not isinstance(members, int):
        return f"joined #{room}{more}"
    return f"joined #{room} ({members} member{'s' if members != 1 else ''}{more})"


def offline_text(delivered: int, dropped: int) -> str:
    """The notice of an ``offline`` frame."""
    text = f"{delivered} message{'s' if delivered != 1 else ''} received while you were offline"
    if dropped:
        text += f"; {dropped} older one{'s were' if dropped != 1 else ' was'} dropped"
    return text
