"""Widget-level tests of the terminal client (chatnet/client/).

No servers: the gateway lookup and the WebSocket are fakes, time is a
``twisted.internet.task.Clock``, keys go in with ``widget.keypress`` and the
screen is read back with ``widget.render(size).text``.
"""

from __future__ import annotations

import re
from types import SimpleNamespace

import orjson
import pytest
from twisted.internet import defer
from twisted.internet.task import Clock

from chatnet.client.app import ChatApp
from chatnet.client.commands import (
    POPULAR_DEFAULT,
    Command,
    UsageError,
    format_duration,
    format_popular,
    format_stats,
    parse_command,
)
from chatnet.client.text import fmt_time, text_matches
from chatnet.client.transcript import Transcript
from chatnet.client.transport import GatewayError, server_url

SIZE = (100, 30)
T0 = 1_700_000_000.0  # the fake clock's start


# ---------------------------------------------------------------------------
# fakes
# ---------------------------------------------------------------------------


class FakeTransport:
    """Stands in for the autobahn protocol: records what is sent."""

    def __init__(self):
        self.sent: list[dict] = []
        self.closed = None
        self.pings: list[bytes] = []

    def sendMessage(self, payload, isBinary=False):
        assert not isBinary
        self.sent.append(orjson.loads(payload))

    def sendClose(self, code=None, reason=None):
        self.closed = (code, reason)

    def sendPing(self, payload=None):
        self.pings.append(payload)

    def frames(self, action):
        return [f for f in self.sent if f["action"] == action]

    def last(self, action):
        return self.frames(action)[-1]


class FakeNetwork:
    """The gateway and the connector: ``server`` is the next gateway answer (a dict or an exception)."""

    def __init__(self):
        self.server: object = node_answer("node1", 9001)
        self.lookups = 0
        self.attempts: list = []

    def lookup(self):
        self.lookups += 1
        if isinstance(self.server, Exception):
            return defer.fail(self.server)
        return defer.succeed(self.server)

    def connector(self, url, attempt):
        self.attempts.append((url, attempt))
        return SimpleNamespace(disconnect=lambda: None)

    @property
    def attempt(self):
        return self.attempts[-1][1]


def node_answer(node_id, port):
    return {"host": "127.0.0.1", "port": port, "nodeId": node_id, "url": f"ws://127.0.0.1:{port}/"}


def frame(action, data, re_id=None):
    f = {"id": 1, "action": action, "data": data}
    if re_id is not None:
        f["re"] = re_id
    return orjson.dumps(f)


_transcripts: list = []


@pytest.fixture(autouse=True)
def _close_transcripts():
    yield
    while _transcripts:
        _transcripts.pop().close()


def make_app(username="alice", tmp_path=None, **kw):
    clock = Clock()
    clock.advance(T0)
    net = FakeNetwork()
    exits = []
    transcript = Transcript(str(tmp_path / "log.txt")) if tmp_path is not None else None
    if transcript is not None:
        _transcripts.append(transcript)
    app = ChatApp(gateway="http://gw:8888", username=username, clock=clock, lookup=net.lookup,
                  connector=net.connector, jitter=0, on_exit=lambda: exits.append(True),
                  transcript=transcript, **kw)
    app.exits = exits
    return app, net, clock


def open_and_login(app, net, node="node1", features=None):
    """Open the pending attempt with a fake transport and answer its login
    (with ``features`` granted, or as a node without the extensions)."""
    t = FakeTransport()
    attempt = net.attempt
    attempt.opened(t)
    login = t.last("login")
    answer = {"username": app.conn.username, "sessionId": "s1", "nodeId": node}
    if features is not None:
        answer["features"] = list(features)
    attempt.message(frame("login", answer, login["id"]))
    return t, attempt


def connected_app(tmp_path=None, features=None, **kw):
    app, net, clock = make_app(tmp_path=tmp_path, **kw)
    app.start()
    t, attempt = open_and_login(app, net, features=features)
    return app, net, clock, t, attempt


def join(app, t, attempt, room, history=(), members=3):
    type_line(app, f"/join {room}")
    req = t.last("joinRoom")
    for item in history:
        attempt.message(frame("chat", item))
    attempt.message(frame("joinRoom", {"roomName": room, "members": members}, req["id"]))
    return req


def chat(sender, room, message, ts_offset=0.0, msg_id=None, seq=1):
    return {"from": sender, "roomName": room, "message": message, "ts": int((T0 + ts_offset) * 1000),
            "format": "text", "msgId": msg_id or f"{abs(hash((sender, room, message, ts_offset))):024x}"[:24],
            "seq": seq}


def screen(app, size=SIZE) -> str:
    return "\n".join(line.decode("utf-8") for line in app.widget.render(size, focus=True).text)


def pane_text(app) -> str:
    return "\n".join(line.decode("utf-8") for line in app.pane.render((SIZE[0], SIZE[1] - 2)).text)


def status_line(app) -> str:
    return app.status_text.render((SIZE[0],)).text[0].decode("utf-8")


def type_keys(app, keys):
    for key in keys:
        app.widget.keypress(SIZE, key)


def type_line(app, line):
    type_keys(app, list(line) + ["enter"])


def input_text(app):
    return app.input.edit_text


# ---------------------------------------------------------------------------
# parse_command
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("line, expected", [
    ("hello there", Command("say", text="hello there")),
    ("//me waves", Command("say", text="/me waves")),
    ("/chat bob hi there", Command("chat", user="bob", text="hi there")),
    ("/chat room:lobby hi all", Command("chat", room="lobby", text="hi all")),
    ("/chat #lobby hi", Command("chat", room="lobby", text="hi")),
    ("/msg bob  see you ", Command("chat", user="bob", text="see you")),
    ("/stats bob", Command("stats", user="bob")),
    ("/popular", Command("popular", count=POPULAR_DEFAULT)),
    ("/popular 3", Command("popular", count=3)),
    ("/popular 0", Command("popular", count=0)),
    ("/joinRoom lobby", Command("join", room="lobby")),
    ("/joinroom lobby", Command("join", room="lobby")),
    ("/join #lobby", Command("join", room="lobby")),
    ("/leave", Command("leave")),
    ("/leave lobby", Command("leave", room="lobby")),
    ("/rooms", Command("rooms")),
    ("/room lobby", Command("room", room="lobby")),
    ("/room", Command("room")),
    ("/whoami", Command("whoami")),
    ("/help", Command("help")),
    ("/help joinRoom", Command("help", topic="join")),
    ("/exit", Command("exit")),
    ("/quit", Command("exit")),
    ("/reconnect", Command("reconnect")),
])
def test_parse_command(line, expected):
    assert parse_command(line) == expected


def test_parse_command_empty_line():
    assert parse_command("") is None
    assert parse_command("   ") is None


@pytest.mark.parametrize("line, usage", [
    ("/chat", "/chat <user> <words...>  or  /chat room:<room> <words...>"),
    ("/chat bob", "/chat <user> <words...>  or  /chat room:<room> <words...>"),
    ("/chat room: hi", "/chat <user> <words...>  or  /chat room:<room> <words...>"),
    ("/msg bob", "/msg <user> <words...>"),
    ("/msg #room hi", "/msg <user> <words...>"),
    ("/stats", "/stats <user>"),
    ("/stats a b", "/stats <user>"),
    ("/popular x", "/popular [n]"),
    ("/popular -1", "/popular [n]"),
    ("/popular 1 2", "/popular [n]"),
    ("/joinRoom", "/join <room>"),
    ("/join a b", "/join <room>"),
    ("/leave a b", "/leave [room]"),
    ("/whoami now", "/whoami"),
    ("/exit now", "/exit"),
    ("/help nosuch", "/help [command]"),
])
def test_parse_command_usage(line, usage):
    result = parse_command(line)
    assert isinstance(result, UsageError)
    assert result.usage == usage
    assert f"usage: {usage}" in result.lines()


def test_parse_command_unknown():
    result = parse_command("/frobnicate x")
    assert isinstance(result, UsageError)
    assert "unknown command /frobnicate" in result.message
    assert result.usage is None


# ---------------------------------------------------------------------------
# pure helpers
# ---------------------------------------------------------------------------


def test_format_duration():
    assert format_duration(0) == "00d 00h 00m 00s"
    assert format_duration(3723) == "00d 01h 02m 03s"
    assert format_duration(2 * 86400 + 5) == "02d 00h 00m 05s"
    assert format_duration(-4) == "00d 00h 00m 00s"


def test_format_stats_uses_online_for_or_login_time():
    assert format_stats({"username": "bob", "nodeId": "node2", "isOnline": True,
                         "onlineFor": "00d 00h 05m 12s", "loginTime": 0}, T0) \
        == "bob: online 00d 00h 05m 12s on node node2"
    login_ms = int((T0 - 3723) * 1000)
    assert format_stats({"username": "bob", "nodeId": "node2", "isOnline": True, "loginTime": login_ms}, T0) \
        == "bob: online 00d 01h 02m 03s on node node2"


def test_format_stats_names_every_node_of_a_user_on_several():
    data = {"username": "bob", "nodeId": "node1", "nodes": ["node1", "node3"], "isOnline": True,
            "onlineFor": "00d 00h 00m 06s"}
    assert format_stats(data, T0) == "bob: online 00d 00h 00m 06s on nodes node1, node3"
    assert format_stats(dict(data, nodes=["node1"]), T0) == "bob: online 00d 00h 00m 06s on node node1"


def test_format_popular_ranked():
    lines = format_popular(["hello", "12", "world", "7", "x", "1"])
    assert lines[0] == "popular words (top 3):"
    assert re.match(r"\s+1\. hello\s+12$", lines[1])
    assert re.match(r"\s+2\. world\s+7$", lines[2])
    assert re.match(r"\s+3\. x\s+1$", lines[3])
    assert format_popular([]) == ["popular words: none in the recent window"]


def test_text_matches_masked():
    assert text_matches("you idiot", "you *****")
    assert text_matches("hi", "hi")
    assert not text_matches("hi", "ho")


def test_server_url():
    assert server_url({"url": "ws://10.0.0.1:9001/"}) == "ws://10.0.0.1:9001/"
    assert server_url({"host": "10.0.0.2", "port": 9002}) == "ws://10.0.0.2:9002/"
    assert server_url({"host": "0.0.0.0", "port": 9003}, "gw.example") == "ws://gw.example:9003/"
    with pytest.raises(ValueError):
        server_url({"nodeId": "x"})


# ---------------------------------------------------------------------------
# input line: usage, history, completion
# ---------------------------------------------------------------------------


def test_wrong_usage_shows_usage_line_not_traceback():
    app, net, clock, t, attempt = connected_app()
    type_line(app, "/stats")
    type_line(app, "/popular lots")
    type_line(app, "/nosuch")
    text = screen(app)
    assert "usage: /stats <user>" in text
    assert "n must be a whole number from 0 to 1000" in text
    assert "usage: /popular [n]" in text
    assert "unknown command /nosuch; /help lists the commands" in text
    assert "Traceback" not in text
    assert t.frames("userInfo") == [] and t.frames("popular") == []


def test_help_lists_commands():
    app, *_ = connected_app()
    type_line(app, "/help")
    text = screen(app, (100, 45))
    for usage in ("/chat <user> <words...>", "/chat room:<room> <words...>", "/stats <user>", "/popular [n]",
                  "/join <room>", "/leave [room]", "/rooms", "/msg <user> <words...>", "/room [room]",
                  "/whoami", "/help [command]", "/exit"):
        assert usage in text
    assert "also /joinRoom" in text


def test_input_history_up_down():
    app, *_ = connected_app()
    for line in ("/whoami", "/help stats", "/rooms"):
        type_line(app, line)
    type_keys(app, list("draft"))
    type_keys(app, ["up"])
    assert input_text(app) == "/rooms"
    type_keys(app, ["up"])
    assert input_text(app) == "/help stats"
    type_keys(app, ["up", "up", "up"])
    assert input_text(app) == "/whoami"
    type_keys(app, ["down"])
    assert input_text(app) == "/help stats"
    type_keys(app, ["down", "down"])
    assert input_text(app) == "draft"
    # the input line shows it
    assert "draft" in screen(app).splitlines()[-1]


def test_tab_completes_commands():
    app, *_ = connected_app()
    type_keys(app, list("/st") + ["tab"])
    assert input_text(app) == "/stats "
    type_keys(app, ["esc"])
    assert input_text(app) == ""
    # /jo: common prefix first, then cycle through /join and /joinRoom
    type_keys(app, list("/jo") + ["tab"])
    assert input_text(app) == "/join"
    type_keys(app, ["tab"])
    assert input_text(app) == "/join "
    type_keys(app, ["tab"])
    assert input_text(app) == "/joinRoom "


def test_tab_completes_users_and_rooms():
    app, net, clock, t, attempt = connected_app()
    join(app, t, attempt, "lobby")
    join(app, t, attempt, "lounge")
    attempt.message(frame("chat", chat("bobby", "lobby", "hi")))
    attempt.message(frame("chat", chat("carol", "lobby", "hey")))
    type_keys(app, list("/stats bo") + ["tab"])
    assert input_text(app) == "/stats bobby "
    type_keys(app, ["esc"] + list("/room lou") + ["tab"])
    assert input_text(app) == "/room lounge "
    type_keys(app, ["esc"] + list("/chat room:lob") + ["tab"])
    assert input_text(app) == "/chat room:lobby "
    type_keys(app, ["esc"] + list("/msg ca") + ["tab"])
    assert input_text(app) == "/msg carol "
    # a nick at the start of a plain line
    type_keys(app, ["esc"] + list("car") + ["tab"])
    assert input_text(app) == "carol: "
    # nothing to complete: tab changes nothing
    type_keys(app, ["esc"] + list("/stats zz") + ["tab"])
    assert input_text(app) == "/stats zz"


# ---------------------------------------------------------------------------
# status bar and rendering
# ---------------------------------------------------------------------------


def test_login_frame_and_status_bar():
    app, net, clock, t, attempt = connected_app()
    login = t.frames("login")[0]
    assert login["action"] == "login" and login["data"]["username"] == "alice"
    assert login["data"]["features"] == ["ack", "offline", "resume", "multi", "live"]
    assert app.conn.server_features == frozenset()  # a node that answers without features
    assert "password" not in login["data"]
    assert isinstance(login["id"], int)
    assert net.attempts[0][0] == "ws://127.0.0.1:9001/"
    status = status_line(app)
    assert re.search(r"alice \| node1 \| online \| #world", status), status
    assert "connected to node1 as alice" in screen(app)
    join(app, t, attempt, "room1")
    join(app, t, attempt, "room2")
    type_line(app, "/room room1")
    attempt.message(frame("chat", chat("bob", "room2", "one")))
    attempt.message(frame("chat", chat("bob", "room2", "two", 1)))
    attempt.message(frame("chat", chat("bob", "room1", "here", 2)))
    status = status_line(app)
    assert "alice | node1 | online | #room1" in status
    assert "unread #room2(2)" in status
    # switching reads them
    type_keys(app, ["ctrl n"])
    assert app.current_room == "room2"
    assert "unread" not in status_line(app)
    assert "#room2" in status_line(app)
    assert screen(app).splitlines()[-1].startswith("[#room2] ")


def test_incoming_chat_error_and_history_rendering():
    app, net, clock, t, attempt = connected_app()
    history = [chat("bob", "room1", "old one", -60, seq=1), chat("carol", "room1", "old two", -30, seq=2)]
    join(app, t, attempt, "room1", history=history)
    attempt.message(frame("chat", chat("bob", "room1", "hi alice", 5, seq=3)))
    attempt.message(frame("chat", chat("bob", "", "psst", 6)))
    type_line(app, "hello room")
    sent = t.last("chat")
    assert sent["data"] == {"roomName": "room1", "isGroup": True, "message": "hello room",
                            "ts": int(T0 * 1000), "format": "text"}
    attempt.message(frame("chat", chat("alice", "room1", "hello room", 7, seq=4)))
    attempt.message(frame("error", {"code": 404, "message": "user carol is not on line", "ext": ""}))
    text = screen(app)
    stamp = fmt_time(T0 - 60)
    assert "--- history of #room1 ---" in text
    assert f"{stamp} ~ #room1 <bob> old one" in text
    assert f"{fmt_time(T0 - 30)} ~ #room1 <carol> old two" in text
    assert "--- end of history of #room1 ---" in text
    assert "joined #room1 (3 members, 2 earlier messages)" in text
    assert f"{fmt_time(T0 + 5)} @ #room1 <bob> hi alice" in text  # mentions you
    assert f"{fmt_time(T0 + 6)}   <bob> psst" in text  # direct: no room tag
    assert f"{fmt_time(T0 + 7)} > #room1 <alice> hello room" in text  # own
    assert "! user carol is not on line (404)" in text
    assert app.conn.last_seq == {"room:room1": 4, "dm:bob": 1}


def test_direct_message_shown_locally_as_own():
    app, net, clock, t, attempt = connected_app()
    type_line(app, "/msg bob see you")
    assert t.last("chat")["data"]["to"] == "bob"
    assert t.last("chat")["data"]["isGroup"] is False
    type_line(app, "/chat carol yo")
    rid = t.last("chat")["id"]
    attempt.message(frame("error", {"code": 404, "message": "user carol is not on line"}, rid))
    text = screen(app)
    assert "> -> <bob> see you" in text
    assert "! not delivered to carol: user carol is not on line (404)" in text


def test_own_direct_message_sent_from_another_session_is_shown():
    app, net, clock, t, attempt = connected_app()
    attempt.message(frame("chat", {"from": "alice", "to": "bob", "roomName": "", "message": "sent from my phone",
                                   "ts": int(T0 * 1000), "format": "text", "msgId": "a" * 24, "seq": 3}))
    assert "<alice> sent from my phone" in screen(app)
    assert app.conn.last_seq == {"dm:bob": 3}


def test_the_client_starts_in_world_which_needs_no_join():
    """Every user is in world: a line typed before any /join goes there, and
    /room world switches back to it without a /join; a joined room becomes
    the current one."""
    app, net, clock, t, attempt = connected_app()
    type_line(app, "anyone here?")
    assert t.last("chat")["data"]["roomName"] == "world"
    assert t.frames("joinRoom") == []
    join(app, t, attempt, "room1")
    assert app.current_room == "room1"
    type_line(app, "/room world")
    assert app.current_room == "world"
    assert "current room: #world" in screen(app)
    assert "/join world first" not in screen(app)
    type_line(app, "/room room2")
    assert "you are not in #room2: /join room2 first" in screen(app)


def test_stats_and_popular_answers():
    app, net, clock, t, attempt = connected_app()
    type_line(app, "/stats bob")
    req = t.last("userInfo")
    assert req["data"] == {"username": "bob"}
    attempt.message(frame("userInfo", {"username": "bob", "loginTime": int((T0 - 3723) * 1000),
                                       "nodeId": "node2", "isOnline": True}, req["id"]))
    type_line(app, "/popular 2")
    req = t.last("popular")
    assert req["data"] == {"n": 2}
    attempt.message(frame("popular", {"words": ["hello", "5", "world", "3"]}, req["id"]))
    text = screen(app)
    assert "* bob: online 00d 01h 02m 03s on node node2" in text
    assert "popular words (top 2):" in text
    assert re.search(r"1\. hello\s+5", text) and re.search(r"2\. world\s+3", text)


def test_rooms_and_leave():
    app, net, clock, t, attempt = connected_app()
    join(app, t, attempt, "room1")
    type_line(app, "/rooms")
    req = t.last("listRooms")
    attempt.message(frame("listRooms", {"rooms": [{"roomName": "room1", "members": 3},
                                                  {"roomName": "other", "members": 1}]}, req["id"]))
    text = screen(app)
    assert re.search(r"#room1\s+3 members\s+\(joined, current\)", text)
    assert re.search(r"#other\s+1 member\b", text)
    type_line(app, "/leave")
    req = t.last("leaveRoom")
    assert req["data"] == {"roomName": "room1"}
    attempt.message(frame("leaveRoom", {"roomName": "room1"}, req["id"]))
    assert app.conn.rooms == [] and app.current_room is None
    assert "left #room1" in screen(app)


def test_page_up_scrolls_and_status_tells_new_lines():
    app, net, clock, t, attempt = connected_app()
    join(app, t, attempt, "room1")
    for i in range(60):
        attempt.message(frame("chat", chat("bob", "room1", f"line {i}", i, seq=i + 1)))
    assert "line 59" in screen(app)
    type_keys(app, ["page up", "page up"])
    assert "line 59" not in screen(app)
    attempt.message(frame("chat", chat("bob", "room1", "line 60", 61, seq=62)))
    assert "line 60" not in screen(app)
    assert "1 new below" in status_line(app)
    type_keys(app, ["page down"] * 5)
    assert "line 60" in screen(app)


# ---------------------------------------------------------------------------
# connection state machine
# ---------------------------------------------------------------------------


def test_reconnect_state_machine(tmp_path):
    app, net, clock, t1, a1 = connected_app(tmp_path=tmp_path)
    join(app, t1, a1, "room1", history=[chat("bob", "room1", "before", -10, msg_id="a" * 24, seq=1)])
    assert net.lookups == 1

    # the node goes away
    net.server = GatewayError("no chat node available")
    a1.closed(1006, "connection was closed uncleanly")
    assert app.conn.state == "waiting"
    status = status_line(app)
    assert "disconnected: lost connection to node1, retrying in 1s" in status
    assert "disconnected: lost connection to node1" in screen(app)

    # typed while disconnected: queued, not lost
    type_line(app, "are you there")
    type_line(app, "/msg bob ping")
    assert "queued (not connected): #room1 are you there" in screen(app)
    assert "2 queued" in status_line(app)
    assert t1.frames("chat") == []

    # quick first retry, then backoff while the gateway has no node
    clock.advance(0.5)
    assert net.lookups == 2
    assert "no chat node available, retrying in 1s" in status_line(app)
    clock.advance(1)
    assert net.lookups == 3
    assert "retrying in 2s" in status_line(app)
    clock.advance(1)
    assert "retrying in 1s" in status_line(app)  # the countdown ticks
    net.server = node_answer("node2", 9002)
    clock.advance(1)
    assert net.lookups == 4
    assert net.attempts[-1][0] == "ws://127.0.0.1:9002/"
    assert app.conn.state == "connecting"

    # login again, rooms re-joined, then "reconnected", then the queue
    t2, a2 = open_and_login(app, net, node="node2")
    assert t2.frames("login")[0]["data"]["username"] == "alice"
    rejoin = t2.last("joinRoom")
    assert rejoin["data"]["roomName"] == "room1"
    assert app.conn.state == "joining"
    assert t2.frames("chat") == []  # not before the rooms are back
    assert "reconnected" not in screen(app)
    # history replay: the message already shown is not shown twice, the missed one is
    a2.message(frame("chat", chat("bob", "room1", "before", -10, msg_id="a" * 24, seq=1)))
    a2.message(frame("chat", chat("bob", "room1", "missed", 3, msg_id="b" * 24, seq=2)))
    a2.message(frame("joinRoom", {"roomName": "room1", "members": 3}, rejoin["id"]))
    assert app.conn.state == "online"
    sent = [f["data"] for f in t2.frames("chat")]
    assert sent[0]["roomName"] == "room1" and sent[0]["message"] == "are you there"
    assert sent[1]["to"] == "bob" and sent[1]["message"] == "ping"
    text = screen(app)
    assert text.count("<bob> before") == 1
    assert "~ #room1 <bob> missed" in text
    assert "rejoined #room1" in text
    assert "reconnected to node2" in text
    assert "> -> <bob> ping" in text
    assert "alice | node2 | online | #room1" in status_line(app)
    assert "queued" not in status_line(app)

    log = (tmp_path / "log.txt").read_text().splitlines()
    assert any(re.fullmatch(r"\[\d\d:\d\d:\d\d\] \*\*\* reconnected to node2", line) for line in log)
    assert f"[{fmt_time(T0 - 10)}] (history) #room1 <bob> before" in log
    assert any(line.endswith("] -> <bob> ping") for line in log)
    assert log.index(next(x for x in log if "reconnected to node2" in x)) \
        < log.index(next(x for x in log if x.endswith("-> <bob> ping")))


def test_direct_message_not_confirmed_is_sent_again(tmp_path):
    """A direct message is not echoed: the pong of a ping sent after it
    confirms it; one not confirmed when the node dies goes out again, once."""
    app, net, clock, t1, a1 = connected_app(tmp_path=tmp_path)
    type_line(app, "/msg bob first")
    assert len(t1.pings) == 1
    type_line(app, "/msg bob second")
    assert len(t1.pings) == 1  # one ping in flight at a time
    a1.pong(t1.pings[0])  # confirms "first" only, and asks again for "second"
    assert len(t1.pings) == 2
    a1.pong(b"someone else's ping")
    type_line(app, "/msg carol third")
    a1.closed(1006, "")
    clock.advance(0.5)
    t2, a2 = open_and_login(app, net, node="node2")
    assert [(f["data"]["to"], f["data"]["message"]) for f in t2.frames("chat")] \
        == [("bob", "second"), ("carol", "third")]
    assert "sent again 2 messages not confirmed before the connection dropped" in screen(app)
    log = (tmp_path / "log.txt").read_text()
    for text in ("-> <bob> first", "-> <bob> second", "-> <carol> third"):
        assert log.count(text) == 1, text
    # confirmed on the new node (the pong for "second" asks again for "third"): not sent again
    assert len(t2.pings) == 1
    a2.pong(t2.pings[0])
    assert len(t2.pings) == 2
    a2.pong(t2.pings[1])
    assert len(t2.pings) == 2
    a2.closed(1006, "")
    clock.advance(0.5)
    t3, _ = open_and_login(app, net, node="node3")
    assert t3.frames("chat") == []


def test_direct_message_confirmed_by_a_later_answer():
    app, net, clock, t1, a1 = connected_app()
    type_line(app, "/msg bob hello")
    type_line(app, "/stats bob")
    req = t1.last("userInfo")
    a1.message(frame("userInfo", {"username": "bob", "nodeId": "node1", "isOnline": True,
                                  "onlineFor": "00d 00h 00m 01s"}, req["id"]))
    type_line(app, "/chat carol refused")
    a1.message(frame("error", {"code": 404, "message": "user carol is not on line"}, t1.last("chat")["id"]))
    a1.closed(1006, "")
    clock.advance(0.5)
    t2, _ = open_and_login(app, net, node="node2")
    assert t2.frames("chat") == []


def test_graceful_stop_4001_and_backoff_reset():
    app, net, clock, t1, a1 = connected_app()
    a1.closed(4001, "reconnect through the gateway")
    assert "node1 is shutting down" in status_line(app)
    net.server = node_answer("node2", 9002)
    clock.advance(0.5)
    assert len(net.attempts) == 2
    # the connection to node2 fails: backoff 1s, 2s
    net.attempt.failed("connection refused")
    assert "cannot connect to node2, retrying in 1s" in status_line(app)
    clock.advance(1)
    net.attempt.closed(1006, "handshake failed")  # closed before it opened
    assert "retrying in 2s" in status_line(app)
    clock.advance(2)
    t3, a3 = open_and_login(app, net, node="node2")
    assert app.conn.state == "online"
    assert "reconnected to node2" in screen(app)
    # after a successful login the backoff starts again from the quick retry
    a3.closed(1001, "going away")
    assert "node2 is going away" in status_line(app)
    clock.advance(0.4)
    assert len(net.attempts) == 4
    clock.advance(0.1)
    assert len(net.attempts) == 5


def test_gateway_unreachable_at_start():
    app, net, clock = make_app()
    net.server = GatewayError("cannot reach gateway", "http://gw:8888: connection refused")
    app.start()
    assert app.conn.state == "waiting"
    status = status_line(app)
    assert "not connected: cannot reach gateway, retrying in 1s" in status
    text = screen(app)
    assert "cannot reach gateway: http://gw:8888: connection refused; retrying in 1s" in text
    clock.advance(1)
    assert "retrying in 2s" in status_line(app)
    # the same reason is not repeated in the pane on every retry
    assert pane_text(app).count("cannot reach gateway") == 1
    for _ in range(10):
        clock.advance(30)
    assert "retrying in 30s" in status_line(app)
    net.server = node_answer("node1", 9001)
    clock.advance(30)
    open_and_login(app, net)
    assert "connected to node1 as alice" in screen(app)


def test_login_timeout_retries():
    app, net, clock = make_app()
    app.start()
    t = FakeTransport()
    net.attempt.opened(t)
    assert app.conn.state == "login"
    clock.advance(20)
    assert t.closed is not None
    assert "no login answer from node1" in status_line(app)


def test_session_taken_over_does_not_reconnect():
    app, net, clock, t, attempt = connected_app()
    attempt.message(frame("error", {"code": 409, "message": "session replaced"}))
    attempt.closed(1000, "")
    assert app.conn.state == "stopped"
    assert "offline: session taken over by another login" in status_line(app)
    assert "taken over by a newer login" in screen(app)
    lookups = net.lookups
    clock.advance(120)
    assert net.lookups == lookups
    type_line(app, "/msg bob hello?")
    assert "queued (not connected)" in screen(app)
    type_line(app, "/reconnect")
    assert net.lookups == lookups + 1
    open_and_login(app, net)
    assert "reconnected to node1" in screen(app)


def test_replaced_close_code_without_409_frame():
    app, net, clock, t, attempt = connected_app()
    attempt.closed(4009, "session replaced")
    assert app.conn.state == "stopped"
    assert "offline: session taken over by another login" in status_line(app)
    clock.advance(120)
    assert net.lookups == 1


def test_login_refused_asks_for_password():
    app, net, clock = make_app()
    app.start()
    t = FakeTransport()
    net.attempt.opened(t)
    attempt = net.attempt
    attempt.message(frame("error", {"code": 401, "message": "bad password"}, t.last("login")["id"]))
    assert app.conn.state == "stopped"
    text = screen(app)
    assert "login as alice failed: bad password (401)" in text
    assert "password for alice: " in text.splitlines()[-1]
    type_keys(app, list("s3cret"))
    assert "password for alice: ******" in screen(app).splitlines()[-1]
    type_keys(app, ["enter"])
    t2 = FakeTransport()
    net.attempt.opened(t2)
    assert t2.last("login")["data"] == {"username": "alice", "password": "s3cret",
                                        "features": ["ack", "offline", "resume", "multi", "live"]}
    # the password is not in the input history
    assert app.input.history == []


def test_asks_for_user_name_when_missing():
    app, net, clock = make_app(username=None)
    app.start()
    assert net.lookups == 0
    assert "user name: " in screen(app).splitlines()[-1]
    type_line(app, "two words")
    assert "a user name is one word" in screen(app)
    type_line(app, "dave")
    assert net.lookups == 1
    t, _ = open_and_login(app, net)
    assert t.frames("login")[0]["data"]["username"] == "dave"
    assert "dave | node1 | online" in status_line(app)


def test_unconfirmed_room_message_sent_again_unless_in_history():
    app, net, clock, t1, a1 = connected_app()
    join(app, t1, a1, "room1")
    type_line(app, "first")
    type_line(app, "second")
    # only "first" came back before the node died
    a1.message(frame("chat", chat("alice", "room1", "first", 1, seq=5)))
    a1.closed(1006, "")
    clock.advance(0.5)
    t2, a2 = open_and_login(app, net, node="node2")
    rejoin = t2.last("joinRoom")
    a2.message(frame("joinRoom", {"roomName": "room1", "members": 2}, rejoin["id"]))
    assert [f["data"]["message"] for f in t2.frames("chat")] == ["second"]
    assert "sent again 1 message not confirmed" in screen(app)
    a2.message(frame("chat", chat("alice", "room1", "second", 2, seq=6)))

    # this time the message made it into the history: not sent twice
    type_line(app, "third")
    a2.closed(4001, "")
    clock.advance(0.5)
    t3, a3 = open_and_login(app, net, node="node3")
    rejoin = t3.last("joinRoom")
    a3.message(frame("chat", chat("alice", "room1", "third", 9, seq=9)))
    a3.message(frame("joinRoom", {"roomName": "room1", "members": 2}, rejoin["id"]))
    assert t3.frames("chat") == []


def test_requests_in_flight_are_sent_again():
    app, net, clock, t1, a1 = connected_app()
    type_line(app, "/stats bob")
    a1.closed(1006, "")
    clock.advance(0.5)
    t2, a2 = open_and_login(app, net)
    assert t2.last("userInfo")["data"] == {"username": "bob"}


def test_exit_reports_queued_lines_not_sent(tmp_path):
    app, net, clock, t, attempt = connected_app(tmp_path=tmp_path)
    join(app, t, attempt, "room1")
    attempt.closed(1006, "")
    type_line(app, "lost words")
    type_line(app, "/exit")
    assert app.exits == [True]
    assert app.unsent == ["not sent: #room1 lost words"]
    log = (tmp_path / "log.txt").read_text()
    assert "!!! not sent: #room1 lost words (the client was closed)" in log
    d = app.shutdown()
    assert d.called


def test_close_sends_websocket_close():
    app, net, clock, t, attempt = connected_app()
    d = app.shutdown()
    assert t.closed == (1000, "bye")
    assert not d.called
    attempt.closed(1000, "")
    assert d.called
    clock.advance(60)
    assert net.lookups == 1


def test_transcript_format(tmp_path):
    app, net, clock, t, attempt = connected_app(tmp_path=tmp_path)
    join(app, t, attempt, "room1", history=[chat("user2", "room1", "old\nnews", -5)])
    attempt.message(frame("chat", chat("user2", "", "hello", 1)))
    attempt.message(frame("chat", chat("user2", "room1", "hi \x1b[31mred", 2)))
    log = (tmp_path / "log.txt").read_text().splitlines()
    assert f"[{fmt_time(T0 - 5)}] (history) #room1 <user2> old\\nnews" in log
    assert f"[{fmt_time(T0 + 1)}] <user2> hello" in log
    assert f"[{fmt_time(T0 + 2)}] #room1 <user2> hi ?[31mred" in log
    assert f"[{fmt_time(T0)}] *** connected to node1 as alice" in log
    assert f"[{fmt_time(T0)}] *** joined #room1 (3 members, 1 earlier message)" in log
    for line in log:
        assert re.match(r"\[\d\d:\d\d:\d\d\] ", line), line


# ---------------------------------------------------------------------------
# delivery extensions: ack, offline, resume
# ---------------------------------------------------------------------------

FEATURES = ["ack", "offline", "resume"]


def ack(attempt, request, msg_id, seq):
    attempt.message(frame("ack", {"re": request["id"], "id": msg_id, "msgId": msg_id, "seq": seq,
                                  "ts": int(T0 * 1000)}, request["id"]))


def reconnect(app, net, clock, attempt, node="node2", features=FEATURES):
    attempt.closed(1006, "")
    clock.advance(0.5)
    return open_and_login(app, net, node=node, features=features)


def test_first_login_with_features_sends_no_resume():
    app, net, clock, t, attempt = connected_app(features=FEATURES)
    assert app.conn.server_features == frozenset(FEATURES)
    assert app.conn.state == "online"
    assert t.frames("resume") == []
    assert "connected to node1 as alice" in screen(app)


def test_ack_confirms_messages_and_only_unacked_ones_are_sent_again(tmp_path):
    app, net, clock, t1, a1 = connected_app(tmp_path=tmp_path, features=FEATURES)
    join(app, t1, a1, "room1", history=[chat("bob", "room1", "old", -5, seq=4)])
    type_line(app, "r1")
    r1 = t1.last("chat")
    type_line(app, "r2")
    type_line(app, "/msg bob d1")
    d1 = t1.last("chat")
    type_line(app, "/msg bob d2")
    assert t1.pings == []  # no ping-based confirmation where the node acks
    ack(a1, r1, "1" * 24, 5)
    ack(a1, d1, "2" * 24, 7)
    # a room's seq comes from its chat frames only: an earlier one may still be on its way
    assert app.conn.last_seq == {"room:room1": 4, "dm:bob": 7}
    # a later answer does not confirm a message the node has not acked
    type_line(app, "/stats bob")
    a1.message(frame("userInfo", {"username": "bob", "nodeId": "node1", "isOnline": True,
                                  "onlineFor": "00d 00h 00m 01s"}, t1.last("userInfo")["id"]))

    t2, a2 = reconnect(app, net, clock, a1)
    resume = t2.last("resume")
    assert resume["data"] == {"rooms": {"room1": 4}, "conversations": {"bob": 7}}
    assert app.conn.state == "resuming"
    assert "catching up" in status_line(app)
    assert t2.frames("joinRoom") == [] and t2.frames("chat") == []
    a2.message(frame("resume", {"replayed": 0, "tooOld": []}, resume["id"]))
    assert app.conn.state == "online"
    assert [f["data"].get("roomName") or f["data"]["to"] for f in t2.frames("chat")] == ["room1", "bob"]
    assert [f["data"]["message"] for f in t2.frames("chat")] == ["r2", "d2"]
    text = screen(app)
    assert "reconnected to node2" in text
    assert "sent again 2 messages not confirmed before the connection dropped" in text
    assert "rejoined" not in text
    log = (tmp_path / "log.txt").read_text()
    for line in ("-> <bob> d1", "-> <bob> d2"):
        assert log.count(line) == 1, line

    # acked on the new node: nothing goes out a third time
    for request, n in zip(t2.frames("chat"), (8, 9)):
        ack(a2, request, f"{n:024x}", n)
    t3, a3 = reconnect(app, net, clock, a2, node="node3")
    a3.message(frame("resume", {"replayed": 0, "tooOld": []}, t3.last("resume")["id"]))
    assert t3.frames("chat") == []


def test_error_answer_means_not_sent_again():
    app, net, clock, t1, a1 = connected_app(features=FEATURES)
    type_line(app, "/msg nobody hi")
    a1.message(frame("error", {"code": 404, "message": "user nobody is not on line"}, t1.last("chat")["id"]))
    assert "not delivered to nobody: user nobody is not on line (404)" in screen(app)
    t2, a2 = reconnect(app, net, clock, a1)
    a2.message(frame("resume", {"replayed": 0, "tooOld": []}, t2.last("resume")["id"]))
    assert t2.frames("chat") == []


def test_queued_for_offline_user(tmp_path):
    app, net, clock, t1, a1 = connected_app(tmp_path=tmp_path, features=FEATURES)
    type_line(app, "/msg carol see you later")
    req = t1.last("chat")
    a1.message(frame("queued", {"to": "carol", "msgId": "c" * 24, "seq": 3, "ts": int(T0 * 1000)}, req["id"]))
    assert "* queued for carol (offline)" in screen(app)
    assert app.conn.last_seq == {"dm:carol": 3}
    log = (tmp_path / "log.txt").read_text()
    assert "-> <carol> see you later" in log and "*** queued for carol (offline)" in log
    t2, a2 = reconnect(app, net, clock, a1)
    assert t2.last("resume")["data"] == {"rooms": {}, "conversations": {"carol": 3}}
    a2.message(frame("resume", {"replayed": 0, "tooOld": []}, t2.last("resume")["id"]))
    assert t2.frames("chat") == []


def test_offline_summary_after_login(tmp_path):
    app, net, clock = make_app(tmp_path=tmp_path)
    app.start()
    t, attempt = open_and_login(app, net, features=FEATURES)
    attempt.message(frame("chat", chat("bob", "", "while you were away", -60, seq=1)))
    attempt.message(frame("offline", {"delivered": 1, "dropped": 2}))
    text = screen(app)
    assert "<bob> while you were away" in text
    assert "1 message received while you were offline; 2 older ones were dropped" in text
    assert app.conn.last_seq == {"dm:bob": 1}


def test_resume_replays_what_was_missed_once_and_in_order(tmp_path):
    app, net, clock, t1, a1 = connected_app(tmp_path=tmp_path, features=FEATURES)
    join(app, t1, a1, "room1", history=[chat("bob", "room1", "h1", -9, seq=1),
                                        chat("bob", "room1", "h2", -8, seq=2)])
    a1.message(frame("chat", chat("bob", "", "dm one", -7, seq=3)))
    a1.message(frame("chat", chat("carol", "world", "hello world", -6, seq=10)))
    t2, a2 = reconnect(app, net, clock, a1)
    assert t2.last("resume")["data"] == {"rooms": {"room1": 2, "world": 10}, "conversations": {"bob": 3}}
    # a live message that came before the resume request, then the replay (which has it too)
    live = chat("bob", "room1", "m5", 5, msg_id="5" * 24, seq=5)
    a2.message(frame("chat", live))
    a2.message(frame("chat", chat("bob", "room1", "m3", 3, msg_id="3" * 24, seq=3)))
    a2.message(frame("chat", chat("carol", "room1", "m4", 4, msg_id="4" * 24, seq=4)))
    a2.message(frame("chat", live))
    a2.message(frame("chat", chat("bob", "", "dm two", 6, seq=4)))
    assert "m3" not in screen(app)  # shown once the replay is complete, in order
    a2.message(frame("resume", {"replayed": 4, "tooOld": []}, t2.last("resume")["id"]))
    assert app.conn.state == "online"
    assert t2.frames("joinRoom") == []
    log = [re.sub(r"^\[..:..:..\] ", "", line) for line in (tmp_path / "log.txt").read_text().splitlines()]
    missed = [line for line in log if line in ("#room1 <bob> m3", "#room1 <carol> m4", "#room1 <bob> m5")]
    assert missed == ["#room1 <bob> m3", "#room1 <carol> m4", "#room1 <bob> m5"]
    assert log.count("<bob> dm two") == 1
    assert log.index("*** caught up: 4 missed messages") < log.index("*** reconnected to node2")
    assert app.conn.last_seq == {"room:room1": 5, "dm:bob": 4, "room:world": 10}
    assert "rejoined" not in "\n".join(log)
    # the next reconnect resumes from there
    t3, a3 = reconnect(app, net, clock, a2, node="node3")
    assert t3.last("resume")["data"] == {"rooms": {"room1": 5, "world": 10}, "conversations": {"bob": 4}}


def test_resume_too_old_joins_the_room_again_for_its_history():
    app, net, clock, t1, a1 = connected_app(features=FEATURES)
    join(app, t1, a1, "room1", history=[chat("bob", "room1", "h1", -9, seq=1)])
    join(app, t1, a1, "room2")
    t2, a2 = reconnect(app, net, clock, a1)
    a2.message(frame("resume", {"replayed": 0, "tooOld": [{"roomName": "room1"}, {"with": "bob"}]},
                     t2.last("resume")["id"]))
    assert [f["data"]["roomName"] for f in t2.frames("joinRoom")] == ["room1"]
    assert app.conn.state == "joining"
    a2.message(frame("chat", chat("bob", "room1", "h1", -9, seq=1)))
    a2.message(frame("chat", chat("bob", "room1", "late", 600, seq=700)))
    a2.message(frame("joinRoom", {"roomName": "room1", "members": 2}, t2.last("joinRoom")["id"]))
    assert app.conn.state == "online"
    text = screen(app)
    assert "too much missed in #room1; showing its latest messages" in text
    assert "direct messages with bob missed while disconnected could not all be fetched" in text
    assert "~ #room1 <bob> late" in text and text.count("<bob> h1") == 1
    assert "rejoined #room1" in text and "reconnected to node2" in text
    assert app.conn.rooms == ["room1", "room2"]
    assert app.conn.last_seq["room:room1"] == 700


def test_resume_too_old_automatic_rooms_are_joined_again_but_not_an_empty_alliance():
    """Automatic rooms are joined without a join, yet too old ones are joined again for their history;
    ``alliance:`` without a name is no room, nor is a room the user is not in."""
    app, net, clock, t1, a1 = connected_app(features=FEATURES)
    t2, a2 = reconnect(app, net, clock, a1)
    too_old = [{"roomName": r} for r in ("world", "alliance:", "alliance:red", "elsewhere")]
    a2.message(frame("resume", {"replayed": 0, "tooOld": too_old}, t2.last("resume")["id"]))
    assert [f["data"]["roomName"] for f in t2.frames("joinRoom")] == ["world", "alliance:red"]


def test_resume_refused_or_unanswered_falls_back_to_joining():
    app, net, clock, t1, a1 = connected_app(features=FEATURES)
    join(app, t1, a1, "room1")
    t2, a2 = reconnect(app, net, clock, a1)
    a2.message(frame("error", {"code": 503, "message": "redis unavailable"}, t2.last("resume")["id"]))
    assert t2.last("joinRoom")["data"]["roomName"] == "room1"
    a2.message(frame("joinRoom", {"roomName": "room1", "members": 2}, t2.last("joinRoom")["id"]))
    assert app.conn.state == "online"
    assert "resume refused: redis unavailable (503); joining the rooms again" in screen(app)
    # no answer at all
    t3, a3 = reconnect(app, net, clock, a2, node="node3")
    assert app.conn.state == "resuming"
    clock.advance(10)
    assert t3.last("joinRoom")["data"]["roomName"] == "room1"
    assert "no answer to resume" in screen(app)


def test_node_without_features_after_a_node_with_them():
    """A reconnect to a node that grants nothing: re-join and ping confirmation, as before."""
    app, net, clock, t1, a1 = connected_app(features=FEATURES)
    join(app, t1, a1, "room1")
    t2, a2 = reconnect(app, net, clock, a1, features=None)
    assert t2.frames("resume") == []
    assert t2.last("joinRoom")["data"]["roomName"] == "room1"
    a2.message(frame("joinRoom", {"roomName": "room1", "members": 2}, t2.last("joinRoom")["id"]))
    type_line(app, "/msg bob hi")
    assert len(t2.pings) == 1


def test_own_messages_in_the_replay_are_not_sent_again(tmp_path):
    """The node accepted them but the ack was lost with the connection."""
    app, net, clock, t1, a1 = connected_app(tmp_path=tmp_path, features=FEATURES)
    join(app, t1, a1, "room1")
    a1.message(frame("chat", chat("bob", "", "hey", -3, seq=1)))
    type_line(app, "said in the room")
    type_line(app, "/msg bob said to bob")
    type_line(app, "/msg bob really lost")
    t2, a2 = reconnect(app, net, clock, a1)
    assert t2.last("resume")["data"] == {"rooms": {"room1": 0}, "conversations": {"bob": 1}}
    a2.message(frame("chat", chat("alice", "room1", "said in the room", 1, seq=1)))
    a2.message(frame("chat", chat("alice", "", "said to bob", 2, seq=2)))
    a2.message(frame("resume", {"replayed": 2, "tooOld": []}, t2.last("resume")["id"]))
    assert [f["data"]["message"] for f in t2.frames("chat")] == ["really lost"]
    log = (tmp_path / "log.txt").read_text()
    assert log.count("said to bob") == 1 and log.count("#room1 <alice> said in the room") == 1
    assert app.conn.last_seq == {"dm:bob": 2, "room:room1": 1}


# ---------------------------------------------------------------------------
# entry points
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("args", [
    ["clients/urwid_client.py"],
    ["-m", "clients.urwid_client"],
    ["-m", "chatnet.client"],
])
@pytest.mark.process  # a Python interpreter of its own
def test_entry_points_run_the_client(args):
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parent.parent
    out = subprocess.run([sys.executable, *args, "--help"], cwd=repo, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("usage: chatnet-client")


@pytest.mark.process  # a Python interpreter of its own
def test_without_urwid_the_client_says_what_to_install():
    """A plain ``pip install .`` has no urwid (it is the ``client`` extra)."""
    import subprocess
    import sys
    from pathlib import Path

    code = ("import sys; sys.modules['urwid'] = None\n"
            "from chatnet.client.app import main\n"
            "sys.exit(main(['--user', 'alice']))")
    out = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parent.parent,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert out.stderr.strip() == "chatnet-client needs urwid: pip install 'chatnet[client]'"


def test_disconnected_close_code_stops_reconnecting():
    app, net, clock, t, attempt = connected_app()
    attempt.closed(4010, "disconnected by the server")
    assert app.conn.state == "stopped"
    assert "offline: disconnected by the server" in status_line(app)
    assert "not reconnecting" in screen(app)
    clock.advance(120)
    assert net.lookups == 1
    # the user may still come back by hand
    type_line(app, "/reconnect")
    assert net.lookups == 2


def test_the_server_apis_direct_messages_are_the_conversation_system():
    """A message with system: true (the server API) counts in the
    conversation "system", whatever name it shows, even the user's own."""
    app, net, clock, t, attempt = connected_app()
    for seq, sender in ((1, "system"), (2, "Support"), (3, "alice")):
        attempt.message(frame("chat", {"from": sender, "roomName": "", "message": f"notice {seq}", "system": True,
                                       "ts": int(T0 * 1000), "format": "text", "msgId": f"{seq:024x}", "seq": seq}))
    text = screen(app)
    assert "<Support> notice 2" in text and "<alice> notice 3" in text
    assert app.conn.last_seq == {"dm:system": 3}

def test_too_slow_4008_reconnects_at_once_and_resumes():
    """The node closed the connection because the client read too slowly
    (4008): the client comes back at once (the quick retry) and resumes from
    the last seqs it saw."""
    app, net, clock, t1, a1 = connected_app(features=FEATURES)
    join(app, t1, a1, "room1", history=[chat("bob", "room1", "old", -5, seq=4)])
    a1.closed(4008, "too slow: reconnect and resume")
    assert "node1 closed the connection: too slow: reconnect and resume" in status_line(app)
    clock.advance(0.5)
    t2, a2 = open_and_login(app, net, node="node1", features=FEATURES)
    assert t2.last("resume")["data"] == {"rooms": {"room1": 4}, "conversations": {}}
    a2.message(frame("resume", {"replayed": 0, "tooOld": []}, t2.last("resume")["id"]))
    assert app.conn.state == "online"

# ---------------------------------------------------------------------------
# the extension live (docs/protocol.md): frames as the node sends them
# ---------------------------------------------------------------------------


def test_history_asks_for_the_page_before_the_first_message_shown_and_shows_it():
    """/history (and page up at the top of the pane) asks for the 50 messages
    before the lowest seq shown; the answer is shown between dividers with
    edited texts and tombstones marked, and says whether there is more."""
    app, net, clock, t, attempt = connected_app(features=["ack", "resume", "live"])
    join(app, t, attempt, "room1", history=[chat("bob", "room1", f"m{i}", i, seq=i) for i in (120, 121)])
    type_line(app, "/history")
    req = t.last("history")
    assert req["data"] == {"roomName": "room1", "before": 120, "limit": 50}
    messages = [chat("bob", "room1", "old one", -60, seq=70),
                {**chat("carol", "room1", "", -50, seq=71), "deleted": True},
                {**chat("bob", "room1", "fixed", -40, seq=72), "edited": int(T0 * 1000)}]
    attempt.message(frame("history", {"roomName": "room1", "messages": messages, "more": True}, req["id"]))
    text = pane_text(app)
    assert "earlier messages of #room1 (70 to 72)" in text
    assert "<bob> old one" in text and "<carol> (message deleted)" in text and "<bob> fixed (edited)" in text
    assert "/history or page up for more" in text
    # page up with the whole pane on screen: the page before that
    type_keys(app, ["page up"])
    assert t.last("history")["data"] == {"roomName": "room1", "before": 70, "limit": 50}
    attempt.message(frame("history", {"roomName": "room1", "messages": [chat("dan", "room1", "first", -99, seq=1)],
                                      "more": False}, t.last("history")["id"]))
    assert "that is the first message" in pane_text(app)
    count = len(t.frames("history"))
    type_line(app, "/history")
    assert len(t.frames("history")) == count
    assert "no earlier messages in #room1" in pane_text(app)


def test_tombstones_and_edited_messages_in_a_join_history_and_live():
    app, net, clock, t, attempt = connected_app(features=["ack", "resume", "live"])
    join(app, t, attempt, "room1", history=[{**chat("bob", "room1", "", 1, seq=1), "deleted": True},
                                            {**chat("bob", "room1", "better", 2, seq=2), "edited": int(T0 * 1000)}])
    text = pane_text(app)
    assert "<bob> (message deleted)" in text and "<bob> better (edited)" in text


def test_edit_and_delete_the_last_own_message_or_one_by_number():
    app, net, clock, t, attempt = connected_app(features=["ack", "resume", "live"])
    join(app, t, attempt, "room1")
    ids = ["a" * 24, "b" * 24, "c" * 24]
    for seq, (msg_id, text) in enumerate(zip(ids, ["one", "two", "three"]), start=5):
        attempt.message(frame("chat", chat("alice", "room1", text, seq, msg_id=msg_id, seq=seq)))
    type_line(app, "/edit three, fixed")
    assert t.last("edit")["data"] == {"roomName": "room1", "msgId": ids[2], "message": "three, fixed"}
    attempt.message(frame("edit", {"roomName": "room1", "msgId": ids[2], "seq": 7, "message": "three, fixed",
                                   "editedAt": int(T0 * 1000)}, t.last("edit")["id"]))
    assert "edited: three, fixed" in pane_text(app)
    type_line(app, "/delete 2")
    assert t.last("delete")["data"] == {"roomName": "room1", "msgId": ids[1]}
    attempt.message(frame("delete", {"roomName": "room1", "msgId": ids[1], "seq": 6}, t.last("delete")["id"]))
    assert "message deleted" in pane_text(app)
    # the deleted one no longer counts: the 2nd last is now "one"
    type_line(app, "/delete 2")
    assert t.last("delete")["data"]["msgId"] == ids[0]
    type_line(app, "/delete 9")
    assert "no message of yours to delete in #room1 (you have 2 here)" in pane_text(app)
    assert isinstance(parse_command("/edit"), UsageError)
    assert isinstance(parse_command("/delete x"), UsageError)
    # what others' sessions get
    attempt.message(frame("messageEdited", {"roomName": "room1", "msgId": "d" * 24, "seq": 3, "message": "typo gone",
                                            "editedAt": int(T0 * 1000), "by": "bob"}))
    attempt.message(frame("messageDeleted", {"roomName": "room1", "msgId": "e" * 24, "seq": 4, "by": "bob"}))
    text = pane_text(app)
    assert "bob edited a message in #room1: typo gone" in text
    assert "bob deleted a message in #room1" in text


def test_typing_shows_in_the_status_bar_for_a_while_and_goes_with_the_message():
    app, net, clock, t, attempt = connected_app(features=["ack", "resume", "live"])
    join(app, t, attempt, "room1")
    attempt.message(frame("typing", {"roomName": "room1", "from": "bob"}))
    assert "bob is typing..." in status_line(app)
    attempt.message(frame("typing", {"roomName": "room1", "from": "carol"}))
    assert "bob and carol are typing..." in status_line(app)
    attempt.message(frame("chat", chat("bob", "room1", "done", 1, seq=9)))
    assert "carol is typing..." in status_line(app)
    clock.advance(6)
    assert "typing" not in status_line(app)
    # another room's typing is not this room's
    attempt.message(frame("typing", {"roomName": "room2", "from": "dan"}))
    assert "typing" not in status_line(app)


def test_an_invitation_is_shown_and_the_private_room_hint_names_the_room():
    app, net, clock, t, attempt = connected_app(features=["ack", "resume", "live"])
    attempt.message(frame("roomNotice", {"roomName": "club", "action": "invite", "kind": "invited",
                                         "username": "alice", "by": "bob"}))
    assert "bob invited you to #club: /join club" in pane_text(app)
    type_line(app, "/create games private")
    attempt.message(frame("createRoom", {"roomName": "games", "private": True, "owner": "alice"},
                          t.last("createRoom")["id"]))
    assert "created #games (private: /invite games <user> lets someone in)" in pane_text(app)


def test_unread_counts_of_the_login_answer_are_in_the_status_bar():
    app, net, clock = make_app()
    app.start()
    t = FakeTransport()
    net.attempt.opened(t)
    net.attempt.message(frame("login", {"username": "alice", "sessionId": "s1", "nodeId": "node1",
                                        "features": ["ack", "resume", "live"],
                                        "rooms": [{"roomName": "world", "members": 4, "unread": 0, "member": True},
                                                  {"roomName": "room7", "members": 2, "unread": 5, "member": True}]},
                              t.last("login")["id"]))
    assert "#room7(5)" in status_line(app)


def test_unread_counts_come_from_the_server():
    app, net, clock, t, attempt = connected_app(features=["ack", "resume", "live"])
    join(app, t, attempt, "room1")
    join(app, t, attempt, "room2")
    type_line(app, "/rooms")
    attempt.message(frame("listRooms", {"rooms": [
        {"roomName": "world", "members": 5, "unread": 0, "member": True},
        {"roomName": "room1", "members": 3, "unread": 4, "member": True},
        {"roomName": "room2", "members": 3, "unread": 9, "member": True}]}, t.last("listRooms")["id"]))
    status = status_line(app)
    assert "#room1(4)" in status and "room2(" not in status  # room2 is the current room
    # read on another device
    attempt.message(frame("read", {"roomName": "room1", "seq": 40}))
    assert "#room1(" not in status_line(app)


@pytest.mark.parametrize("head", ["/edit", "/delete", "/history"])
def test_the_live_commands_parse_any_line_to_a_command_or_a_usage_error(head):
    """Whatever follows the command name: a command with a count of at least 1
    (and, for /edit, words), or a usage error; never an exception."""
    from hypothesis import given, settings, strategies as st

    @settings(max_examples=300, deadline=None)
    @given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=60))
    def check(rest):
        parsed = parse_command(f"{head} {rest}")
        assert isinstance(parsed, (Command, UsageError))
        if isinstance(parsed, Command) and head != "/history":
            assert parsed.count >= 1
            if head == "/edit":
                assert parsed.text and parsed.text == parsed.text.strip()

    check()
