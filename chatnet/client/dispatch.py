"""What each slash command does, and tab completion of the input line."""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING

from chatnet.client.commands import COMMAND_NAMES, Command, UsageError, help_lines, parse_command, spec_for
from chatnet.protocols.constants import WORLD

if TYPE_CHECKING:
    from chatnet.client.app import ChatApp
    from chatnet.client.connection import ChatConnection


class CommandDispatcher:
    """Runs the commands typed on ``app``'s input line against the session ``conn``.

    ``app`` is the screen: it shows notices, knows the current room and the
    user and room names seen so far (for completion).
    """

    def __init__(self, app: "ChatApp", conn: "ChatConnection"):
        self.app = app
        self.conn = conn
        self.out = conn.outgoing

    def run(self, line: str) -> None:
        """Run one input line (in chat mode)."""
        cmd = parse_command(line)
        if cmd is None:
            return
        if isinstance(cmd, UsageError):
            for text in cmd.lines():
                self.app.notice(text, "error")
            return
        getattr(self, f"_cmd_{cmd.name}")(cmd)

    def _report_send(self, outcome: str, what: str) -> None:
        if outcome == "refused":
            self.app.notice(f"not sent: {what} (too many messages waiting for the connection)", "error")

    def _cmd_say(self, cmd: Command) -> None:
        room = self.app.current_room
        if not room:
            self.app.notice("you are not in a room: /join <room> to join one, or /msg <user> <words> "
                            "for a direct message", "error")
            return
        self._report_send(self.out.send_room(room, cmd.text), f"#{room} {cmd.text}")

    def _cmd_chat(self, cmd: Command) -> None:
        if cmd.room:
            self._report_send(self.out.send_room(cmd.room, cmd.text), f"#{cmd.room} {cmd.text}")
        else:
            self.app.known_users.add(cmd.user)
            self._report_send(self.out.send_direct(cmd.user, cmd.text), f"-> {cmd.user} {cmd.text}")

    def _cmd_join(self, cmd: Command) -> None:
        if cmd.room in self.conn.rooms:
            self.app.switch_room(cmd.room)
            self.app.notice(f"already in #{cmd.room}; it is the current room now")
            return
        self.app.known_rooms.add(cmd.room)
        self.app.switch_on_join(cmd.room)
        self._report_send(self.out.join(cmd.room), f"/join {cmd.room}")

    def _cmd_leave(self, cmd: Command) -> None:
        room = cmd.room or self.app.current_room
        if not room:
            self.app.notice("usage: /leave [room] (you have no current room)", "error")
            return
        if room not in self.conn.rooms:
            self.app.notice(f"you are not in #{room}", "error")
            return
        self._report_send(self.out.leave(room), f"/leave {room}")

    def _cmd_room(self, cmd: Command) -> None:
        rooms = self.conn.rooms
        if cmd.room is None:
            if not rooms:
                self.app.notice("no rooms joined: /join <room>")
            else:
                current = self.app.current_room
                listed = " ".join(f"[#{r}]" if r == current else f"#{r}" for r in rooms)
                self.app.notice(f"your rooms: {listed}")
            return
        if cmd.room not in rooms and cmd.room != WORLD:
            self.app.notice(f"you are not in #{cmd.room}: /join {cmd.room} first", "error")
            return
        self.app.switch_room(cmd.room)
        self.app.notice(f"current room: #{cmd.room}")

    def _cmd_history(self, cmd: Command) -> None:
        self.app.load_earlier()

    def _cmd_edit(self, cmd: Command) -> None:
        target = self._own(cmd.count, "edit")
        if target:
            room, msg_id = target
            self._report_send(self.out.request("edit", {"roomName": room, "msgId": msg_id, "message": cmd.text}),
                              f"/edit {cmd.text}")

    def _cmd_delete(self, cmd: Command) -> None:
        target = self._own(cmd.count, "delete")
        if target:
            room, msg_id = target
            self._report_send(self.out.request("delete", {"roomName": room, "msgId": msg_id}), "/delete")

    def _own(self, count: int, what: str) -> tuple[str, str] | None:
        """The room and id of the user's ``count``-th last message in the current room."""
        room = self.app.current_room
        ids = self.app.own_messages.get(room or "", [])
        if not room or len(ids) < count:
            self.app.notice(f"no message of yours to {what} in {'#' + room if room else 'no room'}"
                            f"{f' (you have {len(ids)} here)' if ids else ''}", "error")
            return None
        return room, ids[-count]

    def _cmd_rooms(self, cmd: Command) -> None:
        if self.conn.online:
            self.out.request("listRooms", {})
        else:
            self.app.show_rooms(None)

    def _cmd_create(self, cmd: Command) -> None:
        self.app.known_rooms.add(cmd.room)
        self._report_send(self.out.request("createRoom", {"roomName": cmd.room, "private": cmd.private}),
                          f"/create {cmd.room}")

    def _moderate(self, action: str, cmd: Command, **data) -> None:
        self.app.known_users.add(cmd.user)
        self._report_send(self.out.request(action, {"roomName": cmd.room, "username": cmd.user, **data}),
                          f"/{cmd.name} {cmd.room} {cmd.user}")

    def _cmd_invite(self, cmd: Command) -> None:
        self._moderate("invite", cmd)

    def _cmd_kick(self, cmd: Command) -> None:
        self._moderate("kick", cmd)

    def _cmd_ban(self, cmd: Command) -> None:
        self._moderate("ban", cmd)

    def _cmd_mute(self, cmd: Command) -> None:
        self._moderate("mute", cmd, seconds=cmd.count)

    def _cmd_role(self, cmd: Command) -> None:
        self._moderate("setRole", cmd, role=cmd.role)

    def _cmd_stats(self, cmd: Command) -> None:
        self.app.known_users.add(cmd.user)
        self._report_send(self.out.request("userInfo", {"username": cmd.user}), f"/stats {cmd.user}")

    def _cmd_popular(self, cmd: Command) -> None:
        self._report_send(self.out.request("popular", {"n": cmd.count}), f"/popular {cmd.count}")

    def _cmd_whoami(self, cmd: Command) -> None:
        conn = self.conn
        where = f"on node {conn.node_id}" if conn.online else f"not connected (last node {conn.node_id or '-'})"
        rooms = " ".join(f"#{r}" for r in conn.rooms) or "none"
        current = f"#{self.app.current_room}" if self.app.current_room else "none"
        self.app.notice(f"you are {conn.username}, {where}; rooms: {rooms}; current room: {current}")

    def _cmd_reconnect(self, cmd: Command) -> None:
        self.app.notice("reconnecting through the gateway")
        self.conn.reconnect()

    def _cmd_help(self, cmd: Command) -> None:
        self.app.notice("\n".join(help_lines(cmd.topic)))

    def _cmd_exit(self, cmd: Command) -> None:
        self.app.exit()

    # -- completion -------------------------------------------------------------

    def complete(self, text: str, pos: int) -> list[tuple[str, int]]:
        """Completions of ``text`` at ``pos``: ``(new text, new position)`` each (urwid's ``text_completer``)."""
        before, after = text[:pos], text[pos:]
        word = re.search(r"\S*$", before).group(0)
        start = pos - len(word)
        previous = before[:start].split()
        suffix = " "
        known_users = self.app.known_users
        if not previous and word.startswith("/"):
            candidates = [f"/{n}" for n in COMMAND_NAMES]
        elif previous and previous[0].startswith("/"):
            spec = spec_for(previous[0][1:])
            name = spec.name if spec else ""
            first_arg = len(previous) == 1
            users = sorted(known_users)
            if name == "chat" and first_arg:
                if word.startswith("#"):
                    candidates = [f"#{r}" for r in self._rooms_for_completion()]
                else:
                    candidates = [f"room:{r}" for r in self._rooms_for_completion()] + users
            elif name in ("create", "invite", "kick", "ban", "mute", "role") and first_arg:
                candidates = self._rooms_for_completion()
            elif name in ("invite", "kick", "ban", "mute", "role") and len(previous) == 2:
                candidates = users
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
            candidates = sorted(known_users)
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
        return list(dict.fromkeys([*self.conn.rooms, *sorted(self.app.known_rooms)]))
