"""The terminal client against a real three-node cluster, in pseudo terminals.

Two users run ``python -m chatnet.client`` under pexpect (TERM=xterm,
100x30), type commands, and the test reads what they see from the ``--log``
transcript (and, where useful, from the terminal output): direct chat both
ways, a room joined with its history, room chat, ``/stats``, ``/popular``,
then the node of one user is killed (and later another one stopped with
SIGTERM) and both users reconnect through the gateway and keep chatting.
The clients log in with the delivery extensions: after the kill the room
messages posted while a user was away come back exactly once by ``resume``
(not by joining the room again), and at the end a direct message to a user
who has left is queued and delivered when they log in again.
Every wait is bounded.
"""
from __future__ import annotations

import codecs
import os
import re
import select
import signal
import sys
import threading
import time
from pathlib import Path

import pytest


pexpect = pytest.importorskip("pexpect")

SESSION_TIMEOUT = 2.0
REPO = Path(__file__).resolve().parent.parent
ROWS, COLS = 30, 100
STAMP = r"\[\d\d:\d\d:\d\d\] "
ANSI = re.compile(r"\x1b(\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)|[()][0-9A-Za-z]|[=>78DEHMc])")


@pytest.fixture
def cluster(three_nodes):
    return three_nodes


class TerminalClient:
    """One terminal client in a pseudo terminal.

    A thread keeps reading the terminal (so that the client never blocks on
    a full pty) into ``output``; the transcript file is read back with
    :meth:`lines` and waited on with :meth:`wait`.
    """

    def __init__(self, tmp_path: Path, gateway_port: int, user: str):
        self.user = user
        self.log = tmp_path / f"{user}.transcript"
        self.debug_log = tmp_path / f"{user}.debug.log"
        env = dict(os.environ)
        env.update(TERM="xterm", LANG="C.UTF-8", LC_ALL="C.UTF-8", PYTHONUNBUFFERED="1",
                   PYTHONPATH=os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p))
        env.pop("CHATNET_PASSWORD", None)
        self.child = pexpect.spawn(
            sys.executable,
            ["-m", "chatnet.client", "--gateway", f"http://127.0.0.1:{gateway_port}",
             "--user", user, "--log", str(self.log), "--debug-log", str(self.debug_log)],
            cwd=str(REPO), env=env, dimensions=(ROWS, COLS), encoding="utf-8", codec_errors="replace",
            timeout=5,
        )
        self._output: list[str] = []
        self.reader_end: str | None = None
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._drain, name=f"pty-{user}", daemon=True)
        self._reader.start()

    def _drain(self) -> None:
        # plain reads of the pty (not pexpect's read, which also waits for the process)
        fd = self.child.child_fd
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        while True:
            try:
                ready, _, _ = select.select([fd], [], [], 0.2)
                if not ready:
                    continue
                chunk = os.read(fd, 65536)
            except (OSError, ValueError) as exc:  # EIO once the client has ended
                self.reader_end = repr(exc)
                return
            if not chunk:
                self.reader_end = "end of file"
                return
            with self._lock:
                self._output.append(decoder.decode(chunk))

    # -- looking ---------------------------------------------------------------

    def screen_text(self) -> str:
        """Everything the client wrote to its terminal, escape sequences removed."""
        with self._lock:
            raw = "".join(self._output)
        return ANSI.sub("", raw)

    def lines(self) -> list[str]:
        try:
            text = self.log.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        # a line being written has no newline yet
        return text.split("\n")[:-1]

    def mark(self) -> int:
        """The number of transcript lines so far, to wait for what comes after."""
        return len(self.lines())

    def wait(self, pattern: str, since: int = 0, timeout: float = 15.0) -> re.Match:
        """The first transcript line from line C{since} on matching C{pattern}
        (a regex searched after the time stamp)."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            lines = self.lines()
            for line in lines[since:]:
                body = re.sub(f"^{STAMP}", "", line)
                found = regex.search(body)
                if found:
                    return found
            if time.monotonic() > deadline or not self.child.isalive():
                raise AssertionError(
                    f"{self.user}: no transcript line matching {pattern!r} within {timeout}s "
                    f"(alive={self.child.isalive()}, terminal reader: {self.reader_end or 'running'}; frames in {self.debug_log}); transcript since line {since}:\n"
                    + "\n".join(lines[since:][-40:])
                    + "\nscreen output (escape sequences removed), last part:\n" + self.screen_text()[-3000:])
            time.sleep(0.05)

    def wait_screen(self, text: str, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.screen_text():
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.user}: {text!r} not on the screen; last output:\n"
                                     + self.screen_text()[-2000:])
            time.sleep(0.05)

    # -- typing ------------------------------------------------------------------

    def type(self, line: str) -> int:
        """Type C{line} and enter; returns the transcript mark from before."""
        mark = self.mark()
        self.child.send(line)
        self.child.send("\r")
        return mark

    def node(self) -> str:
        """The node the client says it is on (``/whoami``)."""
        mark = self.type("/whoami")
        return self.wait(rf"^\*\*\* you are {self.user}, on node (\S+);", mark).group(1)

    def wait_exit(self, timeout: float = 10.0) -> int | None:
        """Wait until the client has ended (its terminal closed); its exit status."""
        self._reader.join(timeout)
        if self._reader.is_alive():
            raise AssertionError(f"{self.user}: still running after {timeout}s")
        deadline = time.monotonic() + timeout
        while self.child.isalive() and time.monotonic() < deadline:
            time.sleep(0.05)
        self.child.close()
        return self.child.exitstatus

    def close(self) -> None:
        if self.child.isalive():
            try:
                self.child.send("/exit\r")
                self.wait_exit(5)
            except Exception:
                pass
        if self.child.isalive():
            self.child.kill(signal.SIGKILL)
        self.child.close(force=True)
        self._reader.join(2)


@pytest.fixture
def terminals(tmp_path, cluster):
    started: list[TerminalClient] = []

    def start(user: str) -> TerminalClient:
        term = TerminalClient(tmp_path, cluster.gateway_port, user)
        started.append(term)
        return term

    yield start
    for term in started:
        term.close()


def test_two_users_chat_through_failover(cluster, terminals):
    began = time.monotonic()
    # earlier room messages, from a plain protocol client; they also make the popular words
    poster = cluster.client(username="user3")
    assert poster.request("joinRoom", {"roomName": "room1"})["action"] == "joinRoom"
    history = ["zebra zebra zebra zebra zebra zebra yak yak yak yak yak",
               "xerus xerus xerus xerus zebra"]
    for text in history:
        poster.send("chat", {"roomName": "room1", "isGroup": True, "message": text})
    for text in history:
        poster.expect(lambda f, t=text: f["action"] == "chat" and f["data"]["message"] == t, timeout=5)

    a = terminals("user1")
    a.wait(r"^\*\*\* connected to (\S+) as user1$")
    b = terminals("user2")
    b.wait(r"^\*\*\* connected to (\S+) as user2$")
    node_a, node_b = a.node(), b.node()
    assert {node_a, node_b} <= set(cluster.nodes)
    # the status bar shows who and where
    a.wait_screen(f"user1 | {node_a} |")

    # direct chat both ways (not echoed: the sender's line is its own "->" line)
    mark_a, mark_b = a.type("/msg user2 hi bee"), b.mark()
    a.wait(r"^-> <user2> hi bee$", mark_a)
    b.wait(r"^<user1> hi bee$", mark_b)
    mark_a, mark_b = a.mark(), b.type("/chat user1 hello ay")
    b.wait(r"^-> <user1> hello ay$", mark_b)
    a.wait(r"^<user2> hello ay$", mark_a)

    # joining a room shows its history, marked as such, then the join
    mark = a.type("/join room1")
    for text in history:
        a.wait(rf"^\(history\) #room1 <user3> {re.escape(text)}$", mark)
    a.wait(r"^\*\*\* joined #room1 \(2 members, 2 earlier messages\)$", mark)
    mark = b.type("/joinRoom room1")
    b.wait(rf"^\(history\) #room1 <user3> {re.escape(history[0])}$", mark)
    b.wait(r"^\*\*\* joined #room1 \(3 members, 2 earlier messages\)$", mark)
    joined = a.lines()
    assert joined.index(next(l for l in joined if "(history) #room1 <user3> xerus" in l)) < \
        joined.index(next(l for l in joined if "*** joined #room1" in l))
    a.wait_screen("[#room1] ")

    # room chat: a line without / goes to the current room, echoed to everyone
    mark_a, mark_b = a.type("room words from one"), b.mark()
    a.wait(r"^#room1 <user1> room words from one$", mark_a)
    b.wait(r"^#room1 <user1> room words from one$", mark_b)
    poster.expect(lambda f: f["action"] == "chat" and f["data"]["message"] == "room words from one", timeout=5)
    mark_a, mark_b = a.mark(), b.type("/chat room:room1 reply of two")
    a.wait(r"^#room1 <user2> reply of two$", mark_a)
    b.wait(r"^#room1 <user2> reply of two$", mark_b)

    # /stats: how long and where
    mark = a.type("/stats user2")
    stats = a.wait(r"^\*\*\* user2: online (\d\dd \d\dh \d\dm (\d\d)s) on node (\S+)$", mark)
    assert stats.group(3) == node_b
    assert stats.group(1).startswith("00d 00h 00m ") and int(stats.group(2)) < 60
    a.wait_screen(f"user2: online {stats.group(1)} on node {node_b}")

    # /popular n: the ranked list
    mark = b.type("/popular 3")
    b.wait(r"^\*\*\* popular words \(top 3\):$", mark)
    b.wait(r"^\*\*\*\s+1\. zebra\s+7$", mark)
    b.wait(r"^\*\*\*\s+2\. yak\s+5$", mark)
    b.wait(r"^\*\*\*\s+3\. xerus\s+4$", mark)

    # kill -9 the node user1 is on: user1 (and user2 if it was there) reconnect elsewhere
    victims = [t for t, n in ((a, node_a), (b, node_b)) if n == node_a]
    survivor = next(n for n in cluster.nodes if n != node_a)
    away_poster = cluster.client(survivor)
    away_poster.login("user4", features=["ack"])
    assert away_poster.request("joinRoom", {"roomName": "room1"})["action"] == "joinRoom"  # only members post
    marks = {t.user: t.mark() for t in (a, b)}
    killed = time.monotonic()
    cluster.nodes[node_a].kill()
    # posted while user1 is away: it cannot log in again within 0.4s (the first retry
    # waits 0.5s, less at most 20% jitter)
    missed = [f"missed while away {i}" for i in range(3)]
    for text in missed:
        post_acked(away_poster, {"roomName": "room1", "isGroup": True, "message": text})
    posted = time.monotonic()
    # typed at once: into the dead connection or queued; either way it arrives, once
    a.type("typed during the outage")
    a.type("/msg user2 direct during the outage")
    for term in victims:
        term.wait(rf"^!!! disconnected: lost connection to {node_a}$", marks[term.user])
        found = term.wait(r"^\*\*\* reconnected to (\S+)$", marks[term.user], timeout=SESSION_TIMEOUT + 15)
        assert found.group(1) != node_a
    reconnected = time.monotonic()
    print(f"kill -9 {node_a}: reconnected after {reconnected - killed:.1f}s (posted after {posted - killed:.2f}s)")
    assert posted - killed < 0.4, "too slow to post before the reconnect"
    killed_node, node_a, node_b = node_a, a.node(), b.node()
    assert killed_node not in (node_a, node_b)
    b.wait(r"^#room1 <user1> typed during the outage$", marks["user2"])
    b.wait(r"^<user1> direct during the outage$", marks["user2"])
    a.wait_screen(f"user1 | {node_a} | online")
    for term in victims:
        # resumed, not re-joined: what was missed came before "reconnected", each message once
        bodies = [re.sub(f"^{STAMP}", "", line) for line in term.lines()[marks[term.user]:]]
        assert not any(body.startswith(("*** rejoined", "(history)")) for body in bodies), bodies
        back = next(i for i, body in enumerate(bodies) if body.startswith("*** reconnected to "))
        for text in missed:
            line = f"#room1 <user4> {text}"
            assert bodies.count(line) == 1, (term.user, line, bodies)
            assert bodies.index(line) < back, (term.user, line, bodies)
        caught_up = [body for body in bodies[:back] if body.startswith("*** caught up: ")]
        assert caught_up and int(caught_up[0].split()[3]) >= len(missed), bodies
        frames = term.debug_log.read_text(encoding="utf-8")
        assert re.search(r"-> \S+ \d+ resume \{", frames), f"no resume frame in {term.debug_log}"
    for term in (a, b):
        if term not in victims:
            for text in missed:
                term.wait(rf"^#room1 <user4> {text}$", marks[term.user])
    away_poster.close()
    chat_both_ways(a, b, "after kill")

    # graceful stop (SIGTERM, close code 4001) of the node user2 is on now
    stopped = node_b
    victims = [t for t, n in ((a, node_a), (b, node_b)) if n == stopped]
    marks = {t.user: t.mark() for t in (a, b)}
    process = cluster.nodes[stopped]
    process.process.send_signal(signal.SIGTERM)
    for term in victims:
        term.wait(rf"^!!! disconnected: {stopped} is shutting down$", marks[term.user])
        found = term.wait(r"^\*\*\* reconnected to (\S+)$", marks[term.user], timeout=SESSION_TIMEOUT + 15)
        assert found.group(1) != stopped
    process.process.wait(10)
    assert a.node() == b.node()
    chat_both_ways(a, b, "after stop")

    # nothing was lost, refused or shown twice on the way
    for term in (a, b):
        lines = term.lines()
        errors = [l for l in lines if re.match(f"{STAMP}!!! (not |internal|.*\\(4\\d\\d\\)$)", l)]
        assert errors == [], (term.user, errors)
        chats = [re.sub(STAMP, "", l) for l in lines if re.match(f"{STAMP}(#room1 |<|-> )", l)]
        assert len(chats) == len(set(chats)), (term.user, chats)
    assert sum(l.endswith("] #room1 <user1> typed during the outage") for l in b.lines()) == 1
    assert sum(l.endswith("] <user1> direct during the outage") for l in b.lines()) == 1

    # /exit leaves at once, with a clean exit status
    b.child.send("/exit\r")
    assert b.wait_exit(10) == 0, (b.user, b.child.exitstatus, b.child.signalstatus)

    # a direct message to user2, who has left: queued, and delivered when user2 logs in again
    watcher = cluster.client(a.node(), "user5")
    deadline = time.monotonic() + 10
    while watcher.request("userInfo", {"username": "user2"})["action"] == "userInfo":
        assert time.monotonic() < deadline, "user2 still online 10s after leaving"
        time.sleep(0.1)
    watcher.close()
    mark = a.type("/msg user2 while you were offline")
    a.wait(r"^-> <user2> while you were offline$", mark)
    a.wait(r"^\*\*\* queued for user2 \(offline\)$", mark)
    b = terminals("user2")
    b.wait(r"^\*\*\* connected to (\S+) as user2$")
    b.wait(r"^<user1> while you were offline$")
    b.wait(r"^\*\*\* 1 message received while you were offline$")
    assert sum(l.endswith("] <user1> while you were offline") for l in b.lines()) == 1

    for term in (a, b):
        term.child.send("/exit\r")
    for term in (a, b):
        assert term.wait_exit(10) == 0, (term.user, term.child.exitstatus, term.child.signalstatus)
    print(f"terminal e2e took {time.monotonic() - began:.1f}s")


def post_acked(client, data: dict, timeout: float = 10.0) -> dict:
    """Send a chat request with a protocol client until the node acks it (a
    room operation may be refused with 503 while the leader fails over)."""
    deadline = time.monotonic() + timeout
    while True:
        answer = client.request("chat", data, timeout=5)
        if answer["action"] == "ack":
            return answer["data"]
        assert answer["action"] == "error" and answer["data"]["code"] == 503, answer
        assert time.monotonic() < deadline, answer
        time.sleep(0.2)


def chat_both_ways(a: TerminalClient, b: TerminalClient, tag: str) -> None:
    """Direct messages both ways and a room message each, all seen by the other."""
    words = tag.replace(" ", "-")
    mark_a, mark_b = a.type(f"/msg user2 direct {words} one"), b.mark()
    a.wait(rf"^-> <user2> direct {words} one$", mark_a)
    b.wait(rf"^<user1> direct {words} one$", mark_b)
    mark_a, mark_b = a.mark(), b.type(f"/msg user1 direct {words} two")
    a.wait(rf"^<user2> direct {words} two$", mark_a)
    mark_a, mark_b = a.type(f"room {words} one"), b.mark()
    a.wait(rf"^#room1 <user1> room {words} one$", mark_a)
    b.wait(rf"^#room1 <user1> room {words} one$", mark_b)
    mark_a, mark_b = a.mark(), b.type(f"room {words} two")
    a.wait(rf"^#room1 <user2> room {words} two$", mark_a)
    b.wait(rf"^#room1 <user2> room {words} two$", mark_b)


def test_terminal_starts_in_world_and_uses_the_live_commands(cluster, terminals):
    """The client starts in world (a line goes there without /join; /room
    world needs none), the private-room hint names the room; where the nodes
    grant ``live``: /history goes back to the room's first message, /edit and
    /delete change the user's messages for another member, another member's
    typing shows in the status bar and an invitation is shown."""
    other = cluster.client()
    granted = other.login("user5", features=["ack", "live"]).get("features") or []
    a = terminals("user1")
    a.wait(r"^\*\*\* connected to (\S+) as user1$")
    a.wait_screen("[#world] ")
    mark = a.type("hello world, no join needed")
    a.wait(r"^#world <user1> hello world, no join needed$", mark)
    mark = a.type("/create nook private")
    a.wait(r"^\*\*\* created #nook \(private: /invite nook <user> lets someone in\)$", mark)
    a.wait(r"^\*\*\* joined #nook", mark)
    mark = a.type("/room world")
    a.wait(r"^\*\*\* current room: #world$", mark)
    if "live" not in granted:
        pytest.skip("the nodes do not grant the extension live (docs/protocol.md) yet")

    assert other.request("createRoom", {"roomName": "tales"})["action"] == "createRoom"
    for i in range(1, 61):
        post_acked(other, {"roomName": "tales", "isGroup": True, "message": f"tale {i}"})
    mark = a.type("/join tales")
    a.wait(r"^\(history\) #tales <user5> tale 60$", mark)
    a.wait(r"^\*\*\* joined #tales", mark)
    assert not any("tale 10" == line.rsplit("> ", 1)[-1] for line in a.lines()[mark:])
    mark = a.type("/history")
    a.wait(r"^\(history\) #tales <user5> tale 1$", mark)
    a.wait(r"^\(history\) #tales <user5> tale 10$", mark)
    a.wait_screen("that is the first message")

    mark = a.type("my first line")
    a.wait(r"^#tales <user1> my first line$", mark)
    mark = a.type("my second line")
    a.wait(r"^#tales <user1> my second line$", mark)
    mark = a.type("/edit 2 my first line, edited")
    a.wait(r"^\*\*\* edited: my first line, edited$", mark)
    edited = other.expect(action="messageEdited", timeout=10)["data"]
    assert (edited["roomName"], edited["message"], edited["by"]) == ("tales", "my first line, edited", "user1")
    mark = a.type("/delete")
    a.wait(r"^\*\*\* message deleted$", mark)
    deleted = other.expect(action="messageDeleted", timeout=10)["data"]
    assert (deleted["roomName"], deleted["by"]) == ("tales", "user1")

    other.send("typing", {"roomName": "tales"})
    a.wait_screen("user5 is typing...")

    assert other.request("createRoom", {"roomName": "den", "private": True})["action"] == "createRoom"
    mark = a.mark()
    assert other.request("invite", {"roomName": "den", "username": "user1"})["action"] == "invite"
    a.wait(r"^\*\*\* user5 invited you to #den: /join den$", mark)
    mark = a.type("/join den")
    a.wait(r"^\*\*\* joined #den", mark)
    other.close()
