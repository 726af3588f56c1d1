"""The terminal client's room commands: /create, /invite, /kick, /ban,
/mute, /role, and the room notices (widget level, as tests/test_urwid_client.py)."""
from __future__ import annotations

import re

import pytest

from chatnet.client.commands import MUTE_MAX, Command, UsageError, notice_text, parse_command, parse_duration
from tests.test_urwid_client import T0, connected_app, frame, join, screen, type_keys, type_line, input_text  # noqa: F401


@pytest.mark.parametrize("line, expected", [
    ("/create club", Command("create", room="club")),
    ("/create #club private", Command("create", room="club", private=True)),
    ("/createRoom club", Command("create", room="club")),
    ("/invite club bob", Command("invite", room="club", user="bob")),
    ("/kick #club @bob", Command("kick", room="club", user="bob")),
    ("/ban room:club bob", Command("ban", room="club", user="bob")),
    ("/mute club bob 30", Command("mute", room="club", user="bob", count=30)),
    ("/mute club bob 10m", Command("mute", room="club", user="bob", count=600)),
    ("/mute club bob 7d", Command("mute", room="club", user="bob", count=MUTE_MAX)),
    ("/role club bob admin", Command("role", room="club", user="bob", role="admin")),
    ("/setRole club bob Member", Command("role", room="club", user="bob", role="member")),
])
def test_parse_room_commands(line, expected):
    assert parse_command(line) == expected


@pytest.mark.parametrize("line", [
    "/create", "/create a b", "/create club public", "/invite club", "/kick club", "/ban a b c",
    "/mute club bob", "/mute club bob 0", "/mute club bob 8d", "/mute club bob soon", "/role club bob owner",
    "/role club bob",
])
def test_room_command_usage(line):
    assert isinstance(parse_command(line), UsageError)


def test_durations():
    assert [parse_duration(w) for w in ("45", "45s", "2m", "3h", "1d", "x", "1w", "")] == \
        [45, 45, 120, 10800, 86400, None, None, None]


def test_notice_text():
    now = T0 * 1000
    mute = {"roomName": "club", "action": "mute", "username": "bob", "by": "ann", "until": now + 90_000}
    assert notice_text(mute, "alice", now) == "bob was muted in #club by ann for 00d 00h 01m 30s"
    assert notice_text({**mute, "action": "kick"}, "bob", now) == "you were kicked out of #club by ann"
    assert notice_text({**mute, "action": "ban"}, "alice", now) == "bob was banned from #club by ann"


def test_create_joins_the_new_room():
    app, net, clock, t, attempt = connected_app()
    type_line(app, "/create club private")
    req = t.last("createRoom")
    assert req["data"] == {"roomName": "club", "private": True}
    attempt.message(frame("createRoom", {"roomName": "club", "private": True, "owner": "alice"}, req["id"]))
    join_req = t.last("joinRoom")
    assert join_req["data"]["roomName"] == "club"
    attempt.message(frame("joinRoom", {"roomName": "club", "members": 1}, join_req["id"]))
    assert app.conn.rooms == ["club"] and app.current_room == "club"
    assert "created #club (private" in screen(app)


def test_moderation_requests_answers_and_errors():
    app, net, clock, t, attempt = connected_app()
    join(app, t, attempt, "club")
    type_line(app, "/mute club bob 2m")
    req = t.last("mute")
    assert req["data"] == {"roomName": "club", "username": "bob", "seconds": 120}
    attempt.message(frame("mute", {"roomName": "club", "username": "bob", "until": int(T0 * 1000) + 120_000},
                          req["id"]))
    for line, action, extra in (("/invite club carl", "invite", {}), ("/kick club bob", "kick", {}),
                                ("/role club dan admin", "setRole", {"role": "admin"})):
        type_line(app, line)
        req = t.last(action)
        assert req["data"] == {"roomName": "club", "username": line.split()[2], **extra}
        attempt.message(frame(action, req["data"], req["id"]))
    type_line(app, "/ban club olga")
    req = t.last("ban")
    attempt.message(frame("error", {"code": 403, "message": "nobody may ban the owner of room club", "ext": "ban"},
                          req["id"]))
    text = screen(app)
    for line in ("bob muted in #club", "carl invited to #club", "bob kicked out of #club",
                 "dan is an admin of #club now", "/ban olga from #club: nobody may ban the owner of room club (403)"):
        assert line in text, text


def test_notices_and_being_kicked():
    app, net, clock, t, attempt = connected_app()
    join(app, t, attempt, "club")
    join(app, t, attempt, "other")
    attempt.message(frame("roomNotice", {"roomName": "club", "action": "mute", "username": "bob", "by": "ann",
                                         "until": int(T0 * 1000) + 60_000}))
    assert app.conn.rooms == ["club", "other"]
    attempt.message(frame("roomNotice", {"roomName": "club", "action": "kick", "username": "alice", "by": "ann"}))
    assert app.conn.rooms == ["other"] and app.current_room == "other"
    text = screen(app)
    assert "bob was muted in #club by ann for 00d 00h 01m 00s" in text
    assert "you were kicked out of #club by ann" in text and "left #club" in text


def test_completion_of_room_commands():
    app, net, clock, t, attempt = connected_app()
    join(app, t, attempt, "club")
    app.known_users.add("bob")
    type_keys(app, list("/kick cl") + ["tab"])
    assert input_text(app) == "/kick club "
    type_keys(app, list("b") + ["tab"])
    assert input_text(app) == "/kick club bob "


def test_rooms_lists_private_ones_as_such():
    app, net, clock, t, attempt = connected_app()
    join(app, t, attempt, "club")
    type_line(app, "/rooms")
    req = t.last("listRooms")
    attempt.message(frame("listRooms", {"rooms": [{"roomName": "club", "members": 2, "private": True},
                                                  {"roomName": "open", "members": 1}]}, req["id"]))
    text = screen(app)
    assert re.search(r"#club\s+2 members\s+\(private, joined, current\)", text), text
    assert re.search(r"#open\s+1 member\s*$", text, re.M), text
