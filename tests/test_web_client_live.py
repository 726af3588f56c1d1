"""The web client's scroll-back, edits, typing line, read state,
invitations, notifications and the rough edges of issue 24, in real
Chromium (Playwright).

Two kinds of scenario:

* against a real three-node cluster (tests/harness.py ChatCluster), as the
  other web client tests: the failed join, the phone layout, moderation
  confirmed once, no self-mention mark, the private-room hint; and, where
  the nodes grant the extension ``live`` (docs/protocol.md), scroll-back
  across more than 100 messages, edit and delete seen by another browser,
  the typing line and an invitation between two browsers;
* against recorded frames: the page's WebSocket is answered in the test
  (Playwright's ``route_web_socket``) with the frames docs/protocol.md
  gives for ``live``, so that the client's handling of every frame is
  checked whatever the nodes run.

Every wait is bounded; screenshots of the end states go to the folder
printed at the start (``CHATNET_SCREENSHOTS`` if set).
"""
import json
import os
import re
import time
from pathlib import Path

import pytest

from tests.harness import ChatCluster

pytestmark = pytest.mark.process  # Chromium and twistd chat processes (tests/tiers.py)

playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect

CHROMIUM = "/usr/bin/chromium"
WAIT_MS = 30000
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
T0 = int(time.time() * 1000) - 600_000  # ms: the recorded messages' times, ten minutes ago


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, redis_server, zookeeper_server, mongo_server):
    c = ChatCluster(tmp_path_factory.mktemp("cluster"), redis_server, zookeeper_server, mongo_server,
                    nodes=3, session_timeout=2.0, extra_args=["--rate-limit", "0"])
    c.start()
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture(scope="module")
def live(cluster):
    """Whether the cluster's nodes grant the extension ``live``."""
    client = cluster.client()
    try:
        granted = client.login("user19", features=["live"]).get("features") or []
    finally:
        client.close()
    return "live" in granted


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
    """``web(username, viewport=..., node=ScriptedNode)``: the page, logged in."""
    pages = []

    def open_page(username, viewport=DESKTOP, node=None, notifications=False):
        page = Page(browser, f"http://127.0.0.1:{cluster.gateway_port}/", username, screenshots, viewport,
                    node, notifications)
        pages.append(page)
        return page

    yield open_page
    for page in pages:
        page.close()


# a browser's Notification, recorded: what the page would show
RECORD_NOTIFICATIONS = """
window.__notified = [];
window.Notification = class {
  static permission = "granted";
  static requestPermission() { return Promise.resolve("granted"); }
  constructor(title, options) { window.__notified.push({title, body: options && options.body}); }
  close() {}
};
"""


class Page:
    """One person in one browser context, the page open and logged in."""

    def __init__(self, browser, url, username, screenshots, viewport, node, notifications):
        self.username = username
        self.screenshots = screenshots
        self.context = browser.new_context(viewport=viewport)
        self.page = self.context.new_page()
        self.errors = []
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        if notifications:
            self.page.add_init_script(RECORD_NOTIFICATIONS)
        if node is not None:
            node.attach(self.page)
        self.page.goto(url)
        self.page.get_by_label("User name").fill(username)
        self.page.get_by_role("button", name="Log in").click()
        self.status = self.page.get_by_role("status")
        expect(self.status).to_contain_text("online")
        self.log = self.page.get_by_role("log", name="Messages")
        self.box = self.page.get_by_label("Message", exact=True)
        self.sidebar = self.page.get_by_role("complementary", name="Conversations")

    def type(self, line):
        self.box.fill(line)
        self.box.press("Enter")

    def line(self, text):
        return self.log.locator(".msg").filter(has=self.page.locator(".text", has_text=re.compile(
            rf"^{re.escape(text)}$")))

    def texts(self):
        return self.log.locator(".msg .text").all_inner_texts()

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


def wait_for(predicate, what, timeout=WAIT_MS / 1000, page=None):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        if page is not None:
            page.wait_for_timeout(50)  # lets Playwright deliver the page's frames
        else:
            time.sleep(0.05)


# -- the recorded node ----------------------------------------------------------------


def message(seq, sender="user7", room="room1", text=None, **extra):
    return {"from": sender, "roomName": room, "message": f"m{seq}" if text is None else text,
            "ts": T0 + seq * 1000, "format": "text", "msgId": f"{seq:024x}", "seq": seq, **extra}


class ScriptedNode:
    """Answers the page's WebSocket with the frames docs/protocol.md gives a
    client with ``ack``, ``resume`` and ``live``: login, listRooms, joinRoom
    (the last 50 messages), history (pages before a seq), chat (ack), edit,
    delete; ``typing`` and ``read`` are recorded. ``push`` sends a frame."""

    def __init__(self, rooms=None, listed=None, login_rooms=None):
        self.rooms = rooms or {}  # room -> its messages, by seq
        self.listed = listed or [{"roomName": "world", "members": 3, "member": True, "unread": 0}]
        self.login_rooms = login_rooms
        self.received = []
        self.ws = None
        self.page = None

    def attach(self, page):
        self.page = page
        page.route_web_socket(re.compile(r"^ws://"), self._opened)

    def _opened(self, ws):
        self.ws = ws
        ws.on_message(self._message)

    def push(self, action, data, re_id=None):
        frame = {"action": action, "data": data}
        if re_id is not None:
            frame["re"] = re_id
        self.ws.send(json.dumps(frame))

    def requests(self, action):
        return [f for f in self.received if f.get("action") == action]

    def _message(self, text):
        f = json.loads(text)
        self.received.append(f)
        action, data, rid = f.get("action"), f.get("data") or {}, f.get("id")
        if action == "login":
            answer = {"username": data["username"], "sessionId": "s1", "nodeId": "node9",
                      "features": ["ack", "resume", "live"]}
            if self.login_rooms is not None:
                answer["rooms"] = self.login_rooms
            self.push("login", answer, rid)
        elif action == "listRooms":
            self.push("listRooms", {"rooms": self.listed}, rid)
        elif action == "joinRoom":
            room = data["roomName"]
            for m in self.rooms.get(room, [])[-50:]:
                self.push("chat", m)
            self.push("joinRoom", {"roomName": room, "members": 3}, rid)
        elif action == "history":
            room = data["roomName"]
            older = [m for m in self.rooms.get(room, []) if m["seq"] < data.get("before", 1 << 62)]
            page = older[-data.get("limit", 50):]
            self.push("history", {"roomName": room, "messages": page, "more": len(older) > len(page)}, rid)
        elif action == "chat":
            room = data.get("roomName")
            msgs = self.rooms.setdefault(room, [])
            seq = (msgs[-1]["seq"] if msgs else 0) + 1
            m = message(seq, sender=self.page_user(), room=room, text=data["message"])
            msgs.append(m)
            self.push("ack", {"msgId": m["msgId"], "seq": seq, "ts": m["ts"]}, rid)
            self.push("chat", m)
        elif action == "edit":
            self.push("edit", {"roomName": data["roomName"], "msgId": data["msgId"], "seq": 1,
                               "message": data["message"], "editedAt": T0 + 99000}, rid)
        elif action == "delete":
            self.push("delete", {"roomName": data["roomName"], "msgId": data["msgId"], "seq": 1}, rid)
        elif action == "createRoom":
            self.push("createRoom", {"roomName": data["roomName"], "private": bool(data.get("private")),
                                     "owner": self.page_user()}, rid)

    def page_user(self):
        return self.requests("login")[0]["data"]["username"]


# -- recorded frames --------------------------------------------------------------------


def test_scroll_back_loads_every_earlier_message_once_in_order(web):
    node = ScriptedNode(rooms={"room1": [message(seq) for seq in range(1, 131)]})
    me = web("user1", node=node)
    me.type("/join room1")
    expect(me.line("m130")).to_have_count(1)
    assert me.texts() == [f"m{seq}" for seq in range(81, 131)]
    # the button: the page before the first message shown
    me.page.get_by_role("button", name="Load earlier messages").click()
    expect(me.line("m31")).to_have_count(1)
    assert node.requests("history")[-1]["data"] == {"roomName": "room1", "before": 81, "limit": 50}, [r["data"] for r in node.requests("history")]
    # what was read stays in view: the log did not jump to the bottom
    assert me.page.evaluate("document.getElementById('messages').scrollTop") > 0
    # scrolled to the top (the mouse wheel): the next page, by itself
    me.log.hover()
    me.page.mouse.wheel(0, -100000)
    expect(me.line("m1")).to_have_count(1)
    assert node.requests("history")[-1]["data"] == {"roomName": "room1", "before": 31, "limit": 50}
    assert me.texts() == [f"m{seq}" for seq in range(1, 131)]
    expect(me.page.get_by_role("button", name="Load earlier messages")).to_have_count(0)
    asked = len(node.requests("history"))
    me.page.mouse.wheel(0, -100000)
    me.page.wait_for_timeout(300)
    assert len(node.requests("history")) == asked  # nothing before seq 1
    me.shot("live-scroll-back")


def test_edit_and_delete_own_messages_and_a_moderator_deletes_others(web):
    node = ScriptedNode()
    me = web("user1", node=node)
    me.type("/create club")
    expect(me.page.locator("#conv-name")).to_have_text("#club")
    me.type("first try, with a typo")
    mine = me.line("first try, with a typo")
    expect(mine.get_by_role("button", name="Edit this message")).to_have_count(1)
    mine.hover()
    mine.get_by_role("button", name="Edit this message").click()
    editor = me.page.get_by_label("Edited message")
    editor.fill("first try, fixed")
    editor.press("Enter")
    fixed = me.line("first try, fixed")
    expect(fixed.locator(".edited")).to_have_text("edited")
    msg_id = node.requests("edit")[-1]["data"]["msgId"]
    assert node.requests("edit")[-1]["data"] == {"roomName": "club", "msgId": msg_id, "message": "first try, fixed"}
    # someone else's message: the owner may delete it (two clicks: Delete, then Delete?)
    node.push("chat", message(2, sender="user7", room="club", text="spam spam"))
    other = me.line("spam spam")
    expect(other.get_by_role("button", name="Delete this message")).to_have_count(1)
    expect(other.get_by_role("button", name="Edit this message")).to_have_count(0)
    other.hover()
    other.get_by_role("button", name="Delete this message").click()
    assert not node.requests("delete")
    other.get_by_role("button", name="Delete this message").click()
    expect(me.log.locator(".msg.deleted .tombstone")).to_have_text(["message deleted"])
    assert node.requests("delete")[-1]["data"] == {"roomName": "club", "msgId": f"{2:024x}"}
    # a deletion by someone else, and an edit: as every member's page gets them
    node.push("chat", message(3, sender="user7", room="club", text="helo"))
    node.push("messageEdited", {"roomName": "club", "msgId": f"{3:024x}", "seq": 3, "message": "hello",
                                "editedAt": T0 + 5000, "by": "user7"})
    expect(me.line("hello").locator(".edited")).to_have_count(1)
    node.push("messageDeleted", {"roomName": "club", "msgId": msg_id, "seq": 1, "by": "user1"})
    expect(me.log.locator(".msg.deleted")).to_have_count(2)
    expect(me.line("first try, fixed")).to_have_count(0)
    # the typed commands
    me.type("/edit hello again")
    expect(me.log).to_contain_text("you have no message here to edit")
    me.shot("live-edit-delete")


def test_a_room_member_does_not_get_a_delete_button_on_others_messages(web):
    node = ScriptedNode(rooms={"room1": [message(1, text="not mine")]})
    me = web("user1", node=node)
    me.type("/join room1")
    expect(me.line("not mine")).to_have_count(1)
    expect(me.line("not mine").locator("button.msg-action")).to_have_count(0)


def test_the_typing_line_and_typing_sent_at_most_every_three_seconds(web):
    node = ScriptedNode(rooms={"room1": [message(1)]})
    me = web("user1", node=node)
    me.type("/join room1")
    expect(me.line("m1")).to_have_count(1)
    typing = me.page.locator("#typing")
    node.push("typing", {"roomName": "room1", "from": "user7"})
    expect(typing).to_have_text("user7 is typing...")
    node.push("typing", {"roomName": "room1", "from": "user8"})
    expect(typing).to_have_text("user7 and user8 are typing...")
    # their message ends it for them; the rest fades by itself after about 5 s
    node.push("chat", message(2, sender="user7"))
    expect(typing).to_have_text("user8 is typing...")
    expect(typing).to_have_text("", timeout=8000)
    # another room's typing is not shown here
    node.push("typing", {"roomName": "room2", "from": "user9"})
    me.page.wait_for_timeout(200)
    expect(typing).to_have_text("")
    # the user types: one `typing`, however many keys
    me.box.press_sequentially("hello there", delay=20)
    me.page.wait_for_timeout(200)
    assert [f["data"] for f in node.requests("typing")] == [{"roomName": "room1"}]
    # a command is not typing
    me.box.fill("")
    me.box.press_sequentially("/rooms", delay=10)
    assert len(node.requests("typing")) == 1


def test_an_invitation_is_listed_with_a_join_button(web):
    node = ScriptedNode(rooms={"club": [message(1, room="club", text="welcome")]})
    me = web("user1", node=node)
    node.push("roomNotice", {"roomName": "club", "action": "invite", "kind": "invited", "username": "user1",
                             "by": "user7"})
    invite = me.sidebar.get_by_role("button", name="Join #club, invited by user7")
    expect(invite).to_be_visible()
    expect(me.page.locator("#invite-heading")).to_be_visible()
    expect(me.log).to_contain_text("user7 invited you to #club")
    me.shot("live-invitation")
    invite.click()
    expect(me.page.locator("#conv-name")).to_have_text("#club")
    expect(me.line("welcome")).to_have_count(1)
    expect(me.page.locator("#invite-list li")).to_have_count(0)
    expect(me.page.locator("#invite-heading")).to_be_hidden()


def test_unread_counts_from_the_login_answer_and_cleared_by_read_elsewhere(web):
    node = ScriptedNode(rooms={"room3": [message(s, room="room3") for s in range(1, 8)]},
                        login_rooms=[{"roomName": "world", "members": 3, "member": True, "unread": 0},
                                     {"roomName": "room3", "members": 2, "member": True, "unread": 4}])
    me = web("user1", node=node)
    badge = me.sidebar.get_by_role("button", name=re.compile(r"^# room3")).locator(".badge")
    expect(badge).to_have_text("4")
    expect(me.page).to_have_title("(4) chatnet")
    # read on another device: the count goes
    node.push("read", {"roomName": "room3", "seq": 7})
    expect(badge).to_have_count(0)
    expect(me.page).to_have_title("chatnet")
    # viewing the room sends its read marker
    me.sidebar.get_by_role("button", name=re.compile(r"^# room3")).click()
    node.push("chat", message(8, room="room3"))
    wait_for(lambda: node.requests("read"), "a read marker", page=me.page)
    assert node.requests("read")[-1]["data"] == {"roomName": "room3", "seq": 8}


def test_mentions_and_direct_messages_are_notified_while_the_page_is_hidden(web):
    node = ScriptedNode(rooms={"room1": [message(1)]})
    me = web("user1", node=node, notifications=True)
    me.type("/join room1")
    expect(me.line("m1")).to_have_count(1)
    node.push("chat", message(2, text="user1, look at this"))  # visible: no notification
    expect(me.line("user1, look at this")).to_have_count(1)
    me.page.evaluate("Object.defineProperty(document, 'hidden', {configurable: true, get: () => true})")
    node.push("chat", message(3, text="just chatting"))
    node.push("chat", message(4, text="hey user1!"))
    node.push("chat", {"from": "user8", "roomName": "", "message": "psst", "ts": T0, "format": "text",
                       "msgId": "f" * 24, "seq": 1})
    notified = wait_for(lambda: len(me.page.evaluate("window.__notified")) >= 2 and
                        me.page.evaluate("window.__notified"), "two notifications", page=me.page)
    assert notified == [{"title": "user7 in #room1", "body": "hey user1!"}, {"title": "user8", "body": "psst"}]
    expect(me.page).to_have_title(re.compile(r"^\(3\) chatnet$"))


# -- the real cluster -------------------------------------------------------------------------


def test_a_failed_join_leaves_no_room_and_says_so_by_the_join_form(web):
    me = web("user1")
    me.type("/join alliance:red")
    error = me.page.locator("#join-error")
    expect(error).to_contain_text("cannot join #alliance:red")
    expect(me.page.get_by_role("alert").filter(has_text="cannot join #alliance:red").first).to_be_visible()
    expect(me.page.locator("#room-list")).not_to_contain_text("alliance:red")
    expect(me.page.locator("#conv-name")).to_have_text("#world")
    expect(me.log).not_to_contain_text("cannot join")
    # the same from the side panel's form
    me.page.get_by_label("Room to join").fill("no-such-room")
    me.page.get_by_label("Room to join").press("Enter")
    expect(error).to_contain_text("cannot join #no-such-room")
    expect(me.page.locator("#room-list")).not_to_contain_text("no-such-room")
    me.shot("live-failed-join")


def test_phone_layout_has_no_shadow_strip_and_the_placeholder_fits(web):
    me = web("user2", viewport=PHONE)
    me.type("hello from a phone")
    expect(me.line("hello from a phone")).to_have_count(1)
    # the hidden side panel casts nothing on the left edge: the strip looks the
    # same with the panel taken out of the page
    strip = {"x": 0, "y": 120, "width": 6, "height": 500}
    with_panel = me.page.screenshot(clip=strip, animations="disabled")
    me.page.evaluate("document.getElementById('sidebar').style.display = 'none'")
    without_panel = me.page.screenshot(clip=strip, animations="disabled")
    me.page.evaluate("document.getElementById('sidebar').style.display = ''")
    assert with_panel == without_panel
    # the composer's placeholder fits its box
    fits = me.page.evaluate("""() => {
      const box = document.getElementById('message');
      const style = getComputedStyle(box);
      const ctx = document.createElement('canvas').getContext('2d');
      ctx.font = `${style.fontWeight} ${style.fontSize} ${style.fontFamily}`;
      const room = box.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
      return {text: box.placeholder, width: ctx.measureText(box.placeholder).width, room};
    }""")
    assert fits["width"] <= fits["room"], fits
    me.shot("live-phone")
    # the menu opens the panel, and then it casts its shadow
    me.page.get_by_role("button", name=re.compile("Rooms and conversations")).click()
    expect(me.sidebar).to_be_visible()
    me.page.wait_for_timeout(400)  # the panel slides in
    me.shot("live-phone-menu")


def test_moderation_is_confirmed_once_and_own_name_is_not_marked(web, cluster):
    owner = web("user3")
    owner.type("/create den private")
    expect(owner.log).to_contain_text("created #den (private: /invite den <user> lets someone in)")
    owner.type("/invite den user4")
    expect(owner.log).to_contain_text("user4 invited to #den")
    other = web("user4")
    other.type("/join den")
    expect(other.page.locator("#conv-name")).to_have_text("#den")
    owner.page.get_by_role("button", name=re.compile(r"^# den")).click()
    owner.type("/mute den user4 10m")
    expect(owner.log).to_contain_text("muted in #den")
    owner.page.wait_for_timeout(1500)  # the room's notice, if it were shown too, came by now
    assert len(owner.log.locator("li").filter(has_text=re.compile("muted in #den")).all()) == 1
    owner.type("this is user3 speaking")
    line = owner.line("this is user3 speaking")
    expect(line).to_have_count(1)
    expect(line.locator("mark")).to_have_count(0)


# -- the real cluster with the extension live ---------------------------------------------------


@pytest.fixture
def live_cluster(live):
    if not live:
        pytest.skip("the nodes do not grant the extension live (docs/protocol.md) yet")


def test_live_scroll_back_edit_delete_typing_and_invitation_between_browsers(web, cluster, live_cluster):
    poster = cluster.client()
    poster.login("user15", features=["ack"])
    poster.request("createRoom", {"roomName": "longroom"})
    for i in range(1, 131):
        answer = poster.request("chat", {"roomName": "longroom", "isGroup": True, "message": f"line {i}"})
        assert answer["action"] == "ack", answer
    reader = web("user16")
    reader.type("/join longroom")
    expect(reader.line("line 130")).to_have_count(1)
    reader.page.get_by_role("button", name="Load earlier messages").click()
    expect(reader.line("line 80")).to_have_count(1)
    reader.log.hover()
    reader.page.mouse.wheel(0, -100000)
    expect(reader.line("line 1")).to_have_count(1)
    assert reader.texts() == [f"line {i}" for i in range(1, 131)]
    poster.close()

    writer = web("user17")
    writer.type("/join longroom")
    expect(writer.line("line 130")).to_have_count(1)
    writer.type("a message with a tpyo")
    mine = writer.line("a message with a tpyo")
    mine.hover()
    mine.get_by_role("button", name="Edit this message").click()
    writer.page.get_by_label("Edited message").fill("a message without typo")
    writer.page.get_by_label("Edited message").press("Enter")
    expect(reader.line("a message without typo").locator(".edited")).to_have_count(1)
    # typing reaches the other browser
    # (a node relays one `typing` per user and room a second, the page sends one every 3 s:
    # typing for 4 s gets one through whatever came just before)
    writer.box.press_sequentially("still typing here", delay=250)
    expect(reader.page.locator("#typing")).to_have_text("user17 is typing...")
    writer.box.fill("")
    fixed = writer.line("a message without typo")
    fixed.hover()
    fixed.get_by_role("button", name="Delete this message").click()
    fixed.get_by_role("button", name="Delete this message").click()
    expect(reader.log.locator(".msg.deleted")).to_have_count(1)
    expect(writer.log.locator(".msg.deleted")).to_have_count(1)

    # an invitation
    writer.type("/create hideout private")
    expect(writer.page.locator("#conv-name")).to_have_text("#hideout")
    writer.type("/invite hideout user16")
    reader.sidebar.get_by_role("button", name="Join #hideout, invited by user17").click()
    expect(reader.page.locator("#conv-name")).to_have_text("#hideout")
    reader.shot("live-cluster-reader")
