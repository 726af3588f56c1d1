"""The web client (GET / of the gateway) in real Chromium, driven by
Playwright, against a real three-node cluster.

The page is used as people use it and as screen readers see it: by the
labels and roles of its accessibility contract (fields "User name" and
"Password", button "Log in", the log "Messages", the text field "Message",
the status with the node id and "online"). Scenarios: two browser users
chat directly and in a room; a browser user and a protocol client chat;
a second login of the same user replaces the page's session (which then
says so and does not reconnect); the server API disconnects the user
(close 4010) and the page says so and does not reconnect either; the node of a browser user is killed with
``kill -9`` and the page reconnects through the gateway and catches up,
nothing missing or doubled, and sends what was typed meanwhile.

A screenshot of each scenario's end state is saved under the folder printed
at the start of the run (``CHATNET_SCREENSHOTS`` if set). Every wait is
bounded.
"""
import json
import os
import re
import time
import urllib.request
from pathlib import Path

import pytest

from tests.harness import ChatCluster

playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect

CHROMIUM = "/usr/bin/chromium"
WAIT_MS = 30000
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
API_KEY = "web-client-tests-api-key"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, redis_server, zookeeper_server, mongo_server):
    c = ChatCluster(tmp_path_factory.mktemp("cluster"), redis_server, zookeeper_server, mongo_server,
                    nodes=3, session_timeout=2.0, extra_args=["--rate-limit", "0"], api_key=API_KEY)
    c.start()
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is needed (Debian package chromium)")
    expect.set_options(timeout=WAIT_MS)
    with playwright_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def screenshots(request, tmp_path_factory):
    folder = Path(os.environ.get("CHATNET_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"web client screenshots: {folder}")
    return folder


@pytest.fixture
def web(browser, cluster, screenshots):
    """Opens the web client for a user: ``web(username, viewport=...)``."""
    users = []

    def open_page(username, viewport=DESKTOP):
        user = WebUser(browser, f"http://127.0.0.1:{cluster.gateway_port}/", username, screenshots, viewport)
        users.append(user)
        return user

    yield open_page
    for user in users:
        user.close()


@pytest.fixture
def peers(cluster):
    made = []

    def make(node_id, username, **login):
        client = cluster.client(node_id)
        client.login(username, **login)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


class WebUser:
    """One person in one browser context with the page open and logged in."""

    def __init__(self, browser, url, username, screenshots, viewport):
        self.username = username
        self.screenshots = screenshots
        self.context = browser.new_context(viewport=viewport)
        self.page = self.context.new_page()
        self.errors = []
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.page.goto(url)
        self.page.get_by_label("User name").fill(username)
        self.page.get_by_label("Password").fill("")
        self.page.get_by_role("button", name="Log in").click()
        self.status = self.page.get_by_role("status")
        expect(self.status).to_contain_text("online")
        self.log = self.page.get_by_role("log", name="Messages")
        self.box = self.page.get_by_label("Message", exact=True)
        self.sidebar = self.page.get_by_role("complementary", name="Conversations")

    @property
    def node(self):
        text = self.status.inner_text()
        found = re.search(r"(\S+) · online", text)
        assert found, text
        return found.group(1)

    def type(self, line):
        self.box.fill(line)
        self.box.press("Enter")

    def line(self, text):
        """The chat line (sender and text) of ``text`` in the current conversation."""
        return self.log.locator(".msg").filter(has=self.page.locator(".text", has_text=re.compile(
            rf"^{re.escape(text)}$")))

    def expect_line(self, sender, text):
        line = self.line(text)
        expect(line).to_have_count(1)
        expect(line.locator(".from")).to_have_text(sender)
        return line

    def texts(self):
        """The texts of the chat lines of the current conversation, top to bottom."""
        return self.log.locator(".msg .text").all_inner_texts()

    def count(self, text):
        return self.line(text).count()

    def open_conversation(self, name):
        self.sidebar.get_by_role("button", name=re.compile(rf"^{re.escape(name)}\b")).first.click()

    def shot(self, name):
        path = self.screenshots / f"{name}.png"
        self.page.screenshot(path=str(path))
        return path

    def close(self):
        try:
            self.context.close()
        except Exception:
            pass
        assert not [e for e in self.errors if "WebSocket" not in e and "Failed to load" not in e], self.errors


def peer_send(peer, data, timeout=30.0):
    """Send a chat from a harness client until the node accepts it (ack or
    queued), across a failover (503, 404 while the recipient's node is found dead)."""
    deadline = time.monotonic() + timeout
    while True:
        answer = peer.request("chat", data)
        if answer["action"] in ("ack", "queued"):
            return answer
        assert answer["action"] == "error" and answer["data"]["code"] in (404, 503), answer
        assert time.monotonic() < deadline, f"not accepted in {timeout}s: {answer}"
        time.sleep(0.2)


# -- the scenarios -------------------------------------------------------------------------


def test_two_browser_users_chat_directly_and_in_a_room(web):
    alice, bob = web("user1"), web("user2")
    # a direct message by slash command; it opens the conversation, marked as one's own
    alice.type("/msg user2 hello bob, are you there?")
    expect(alice.page.locator("#conv-name")).to_have_text("@user2")
    own = alice.expect_line("user1", "hello bob, are you there?")
    expect(own).to_have_class(re.compile(r"\bown\b"))
    # bob sees an unread conversation, opens it and answers with Enter
    expect(bob.sidebar.locator("#dm-list .badge")).to_have_text("1")
    bob.open_conversation("user1")
    bob.expect_line("user1", "hello bob, are you there?")
    bob.type("yes! what's up?")
    alice.expect_line("user2", "yes! what's up?")

    # a room: alice joins by typing, bob by clicking it in the list of other rooms
    alice.type("/join room1")
    expect(alice.page.locator("#conv-name")).to_have_text("#room1")
    expect(alice.log).to_contain_text("joined #room1")
    bob.sidebar.get_by_role("button", name="Join #room1").click()
    expect(bob.page.locator("#conv-name")).to_have_text("#room1")
    alice.type("welcome to room1")
    bob.expect_line("user1", "welcome to room1")  # the history or live, once
    bob.type("thanks user1, nice room")
    mention = alice.expect_line("user2", "thanks user1, nice room")
    expect(mention).to_have_class(re.compile(r"\bmention\b"))
    expect(mention.locator("mark")).to_have_text("user1")
    alice.expect_line("user1", "welcome to room1")
    assert alice.count("welcome to room1") == 1

    # /popular and /stats without typing: their answers in the conversation
    alice.page.get_by_role("button", name="Popular words").click()
    expect(alice.log).to_contain_text("popular words")
    alice.line("thanks user1, nice room").get_by_role("button", name="user2").click()
    expect(alice.log).to_contain_text(re.compile(r"user2: online \d\dd \d\dh \d\dm \d\ds on node node\d"))
    # ... and typed, in the words of the terminal client
    bob.type("/stats user1")
    expect(bob.log).to_contain_text(re.compile(r"user1: online \d\dd \d\dh \d\dm \d\ds on node node\d"))
    bob.type("/help")
    expect(bob.log).to_contain_text("/popular [n]")
    # posting to a room one has not joined is refused by the node (403), and said so
    bob.type("/chat room:room2 anyone?")
    expect(bob.log).to_contain_text("not delivered to #room2")
    alice.shot("01-direct-and-room-alice")
    bob.shot("01-direct-and-room-bob")


def test_a_browser_user_and_a_protocol_client_chat(web, peers):
    carol = web("user3", viewport=PHONE)
    dave = peers("node2", "user4", features=["ack"])
    dave.send("chat", {"to": "user3", "message": "hi carol, from the terminal"})
    expect(carol.sidebar.locator("#dm-list .badge")).to_have_text("1")
    carol.page.get_by_role("button", name="Rooms and conversations").click()
    carol.open_conversation("user4")
    carol.expect_line("user4", "hi carol, from the terminal")
    carol.type("hello dave, from my phone")
    got = dave.expect(lambda f: f["data"]["from"] == "user3", action="chat", timeout=20)
    assert got["data"]["message"] == "hello dave, from my phone" and got["data"]["roomName"] == ""
    # the automatic room world: no join needed, both ways
    carol.type("/room world")
    expect(carol.page.locator("#conv-name")).to_have_text("#world")
    ack = dave.request("chat", {"roomName": "world", "isGroup": True, "message": "hello world from dave"})
    assert ack["action"] == "ack", ack
    carol.expect_line("user4", "hello world from dave")
    carol.type("hello world from carol")
    got = dave.expect(lambda f: f["data"]["from"] == "user3", action="chat", timeout=20)
    assert (got["data"]["roomName"], got["data"]["message"]) == ("world", "hello world from carol")
    carol.type("/stats user4")
    expect(carol.log).to_contain_text(re.compile(r"user4: online \d\dd \d\dh \d\dm \d\ds on node node2"))
    carol.type("/popular 3")
    expect(carol.log).to_contain_text(re.compile(r"popular words \(top \d\):"))
    carol.shot("02-phone-with-terminal-client")
    carol.page.get_by_role("button", name="Rooms and conversations").click()
    carol.page.wait_for_function("() => document.getElementById('sidebar').getBoundingClientRect().left >= 0")
    carol.shot("02-phone-side-list")


def test_a_second_login_elsewhere_replaces_the_page_which_does_not_reconnect(web, peers, cluster):
    erin = web("user5")
    erin.type("/msg user6 see you later")
    other = next(n for n in ("node1", "node2", "node3") if n != erin.node)
    elsewhere = peers(other, "user5")
    expect(erin.status).to_contain_text("replaced")
    expect(erin.page.locator("#banner")).to_contain_text("Replaced")
    expect(erin.log).to_contain_text("replaced by a newer login")
    expect(erin.line("see you later")).not_to_contain_text("sending")
    # the page stays away: the new session is not taken back
    frames = elsewhere.quiet(3.0)
    assert not [f for f in frames if f.get("action") == "error"], frames
    assert elsewhere.closed is None
    info = elsewhere.request("userInfo", {"username": "user5"})
    assert info["data"]["nodeId"] == other, info
    assert "online" not in erin.status.inner_text()
    erin.shot("03-replaced")


def api(cluster, method, path):
    """(status, JSON answer) of a server API request (docs/api.md)."""
    request = urllib.request.Request(f"http://127.0.0.1:{cluster.gateway_port}/api/v1{path}", method=method,
                                     headers={"Authorization": f"Bearer {API_KEY}"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_disconnected_by_the_server_api_the_page_does_not_reconnect(web, cluster):
    gina = web("user9")
    status, answer = api(cluster, "POST", "/users/user9/disconnect")
    assert status == 200 and answer["sessionsClosed"] == 1, answer
    expect(gina.status).to_contain_text("disconnected by the server")
    expect(gina.page.locator("#banner")).to_contain_text("Disconnected by the server")
    expect(gina.log).to_contain_text("The server disconnected this session")
    # the page stays away
    time.sleep(3.0)  # longer than the first reconnect delay: it would be back by now
    status, answer = api(cluster, "GET", "/presence/user9")
    assert status == 200 and answer["online"] is False, answer
    assert "online" not in gina.status.inner_text()
    gina.shot("03-disconnected")


def test_the_same_user_in_two_browser_contexts_receives_in_both_and_sees_their_own(web, peers):
    laptop, phone = web("user7"), web("user7", viewport=PHONE)
    henry = peers("node1", "user8", features=["ack"])
    assert henry.request("chat", {"to": "user7", "message": "hello, both of you"})["action"] == "ack"
    phone.page.get_by_role("button", name="Rooms and conversations").click()
    for page in (laptop, phone):
        expect(page.sidebar.locator("#dm-list .badge")).to_have_text("1")
        page.open_conversation("user8")
        page.expect_line("user8", "hello, both of you")
    # what is typed on the laptop shows on the phone as one's own, and reaches henry
    laptop.type("typed on the laptop")
    got = henry.expect(lambda f: f["data"]["from"] == "user7", action="chat", timeout=20)
    assert got["data"]["message"] == "typed on the laptop"
    for page in (laptop, phone):
        own = page.expect_line("user7", "typed on the laptop")
        expect(own).to_have_class(re.compile(r"\bown\b"))
    # in a room, both ways
    for page in (laptop, phone):
        if page is phone:
            page.page.get_by_role("button", name="Rooms and conversations").click()
        page.type("/room world")
        expect(page.page.locator("#conv-name")).to_have_text("#world")
    phone.type("typed on the phone, to the world")
    for page in (laptop, phone):
        own = page.expect_line("user7", "typed on the phone, to the world")
        expect(own).to_have_class(re.compile(r"\bown\b"))
    henry.send("chat", {"roomName": "world", "isGroup": True, "message": "henry to the world"})
    for page in (laptop, phone):
        page.expect_line("user8", "henry to the world")
        expect(page.status).to_contain_text("online")
    # /stats names every node the user is on (the gateway may have put both on one)
    nodes = sorted({laptop.node, phone.node})
    laptop.type("/stats user7")
    where = f"nodes {', '.join(nodes)}" if len(nodes) > 1 else f"node {nodes[0]}"
    expect(laptop.log).to_contain_text(re.compile(rf"user7: online \d\dd \d\dh \d\dm \d\ds on {where}"))
    laptop.shot("06-same-user-laptop")
    phone.shot("06-same-user-phone")


def test_the_page_reconnects_after_its_node_is_killed_and_catches_up(web, peers, cluster):
    frank = web("user6")
    frank.page.get_by_label("Room to join").fill("room2")
    frank.page.get_by_role("button", name="Join room").click()
    expect(frank.page.locator("#conv-name")).to_have_text("#room2")
    killed = frank.node
    other = next(n for n in ("node1", "node2", "node3") if n != killed)
    grace = peers(other, "user7", features=["ack", "offline"])
    assert grace.request("joinRoom", {"roomName": "room2"})["action"] in ("chat", "joinRoom")
    peer_send(grace, {"roomName": "room2", "isGroup": True, "message": "before the crash"})
    frank.expect_line("user7", "before the crash")
    frank.type("frank says hi before")
    grace.expect(lambda f: f["data"].get("message") == "frank says hi before", action="chat", timeout=20)
    peer_send(grace, {"to": "user6", "message": "a direct one before"})

    cluster.nodes[killed].kill()
    expect(frank.status).to_contain_text("reconnecting")
    frank.type("typed while the node was down")
    expect(frank.line("typed while the node was down")).to_contain_text("waiting for the connection")
    during = [f"while you were away {i}" for i in range(1, 4)]
    for text in during:
        peer_send(grace, {"roomName": "room2", "isGroup": True, "message": text})
    peer_send(grace, {"to": "user6", "message": "a direct one while away"})

    expect(frank.status).to_contain_text("online", timeout=60000)
    assert frank.node != killed
    # the typed message went out once, after the reconnect
    sent = grace.expect(lambda f: f["data"].get("message") == "typed while the node was down", action="chat",
                        timeout=30)
    assert sent["data"]["from"] == "user6"
    # a last live message: everything before it has arrived by then
    peer_send(grace, {"roomName": "room2", "isGroup": True, "message": "after the reconnect"})
    frank.expect_line("user7", "after the reconnect")
    for text in ["before the crash", *during, "after the reconnect"]:
        frank.expect_line("user7", text)
    for text in ["frank says hi before", "typed while the node was down"]:
        frank.expect_line("user6", text)
    texts = ["before the crash", *during, "after the reconnect", "frank says hi before",
             "typed while the node was down"]
    assert {t: frank.count(t) for t in texts} == {t: 1 for t in texts}
    assert [f["data"]["message"] for f in grace.chats(timeout=1.0)].count("typed while the node was down") == 0
    shown = [t for t in frank.texts() if t in texts]
    theirs = ["before the crash", *during, "after the reconnect"]
    assert [t for t in shown if t in theirs] == theirs, shown  # in the order sent
    room_shot = frank.shot("04-after-kill-room")
    frank.open_conversation("user7")
    for text in ["a direct one before", "a direct one while away"]:
        frank.expect_line("user7", text)
        assert frank.count(text) == 1
    assert frank.texts() == ["a direct one before", "a direct one while away"]
    assert room_shot.exists()
    frank.shot("04-after-kill-direct")


def test_login_with_a_password_and_refusals_shown_on_the_form(browser, cluster, screenshots):
    context = browser.new_context(viewport=DESKTOP)
    try:
        page = context.new_page()
        page.goto(f"http://127.0.0.1:{cluster.gateway_port}/")
        error = page.get_by_role("alert")
        page.get_by_label("User name").fill("secret1")
        # wrong passwords: 401, then the user name is locked out for a while (429, said with its message)
        for attempt in range(1, 30):
            page.get_by_label("Password").fill(f"wrong-{attempt}")
            page.get_by_role("button", name="Log in").click()
            expect(error).not_to_have_text("")
            expect(page.get_by_role("button", name="Log in")).to_be_enabled()
            if "too many failed logins" in error.inner_text():
                break
            expect(error).to_contain_text("cannot log in")
            page.evaluate("() => { document.getElementById('login-error').textContent = ''; }")
        else:
            raise AssertionError(f"never locked out: {error.inner_text()}")
        expect(error).to_contain_text(re.compile(r"too many failed logins; try again in \d+ s"))
        page.screenshot(path=str(screenshots / "05-login-throttled.png"))
        # the right password, once the lock-out is over
        deadline = time.monotonic() + 60
        while True:
            page.evaluate("() => { document.getElementById('login-error').textContent = ''; }")
            page.get_by_label("Password").fill("pw-secret1")
            page.get_by_role("button", name="Log in").click()
            status = page.get_by_role("status")
            try:
                expect(status).to_contain_text("online", timeout=5000)
                break
            except AssertionError:
                assert "too many failed logins" in error.inner_text(), error.inner_text()
                assert time.monotonic() < deadline, "still locked out after 60 s"
        expect(page.get_by_role("log", name="Messages")).to_contain_text("connected to")
    finally:
        context.close()


def test_a_browser_user_and_the_terminal_client_chat(web, cluster, tmp_path):
    """The real terminal client (chatnet-client in a pseudo terminal) and a
    browser page, directly and in a room."""
    from tests.test_urwid_e2e import TerminalClient

    erin = web("user5")
    term = TerminalClient(tmp_path, cluster.gateway_port, "user6")
    try:
        term.wait(r"^\*\*\* connected to (\S+) as user6$")
        mark = term.type("/msg user5 hello erin, from the terminal")
        term.wait(r"^-> <user5> hello erin, from the terminal$", mark)
        erin.open_conversation("user6")
        erin.expect_line("user6", "hello erin, from the terminal")
        mark = term.mark()
        erin.type("hello terminal, from the browser")
        term.wait(r"^<user5> hello terminal, from the browser$", mark)
        mark = term.type("/join room4")
        term.wait(r"^\*\*\* joined #room4", mark)
        erin.type("/join room4")
        expect(erin.page.locator("#conv-name")).to_have_text("#room4")
        mark = term.type("room words from the terminal")
        erin.expect_line("user6", "room words from the terminal")
        erin.type("room words from the browser")
        term.wait(r"^#room4 <user5> room words from the browser$", mark)
        erin.shot("07-browser-and-terminal-client")
    finally:
        term.close()


def test_a_browser_user_creates_a_private_room_and_moderates_it(web, peers):
    owner = web("user15")
    owner.type("/create webclub private")
    expect(owner.log).to_contain_text("created #webclub (private")
    expect(owner.page.get_by_role("heading", name=re.compile("webclub"))).to_be_visible()
    guest = peers(owner.node, "user16")
    refused = guest.request("joinRoom", {"roomName": "webclub"})
    assert refused["action"] == "error" and refused["data"]["code"] == 403, refused
    owner.type("/invite webclub user16")
    expect(owner.log).to_contain_text("user16 invited to #webclub")
    assert guest.request("joinRoom", {"roomName": "webclub"})["action"] == "joinRoom"
    owner.type("/mute webclub user16 10m")
    expect(owner.log).to_contain_text("user16 muted in #webclub")  # its answer: the one confirmation
    notice = guest.expect(action="roomNotice")["data"]
    assert (notice["action"], notice["username"], notice["by"]) == ("mute", "user16", "user15")
    muted = guest.request("chat", {"roomName": "webclub", "isGroup": True, "message": "can I talk"})
    assert muted["action"] == "error" and muted["data"]["code"] == 403, muted
    owner.type("/kick webclub user16")
    expect(owner.log).to_contain_text("user16 kicked out of #webclub")
    assert guest.expect(action="roomNotice")["data"]["action"] == "kick"
    owner.type("/role webclub user15 admin")
    expect(owner.log).to_contain_text("the owner's role cannot change (403)")
    owner.shot("moderation")
