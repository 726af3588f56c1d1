"""Real clients against real nodes, each with its default options (which
offer permessage-deflate): Node's ws, Python's websockets and Chromium. Each
logs in and chats with a harness client, against a node with compression off
(the default: the offer is declined) and one with --compression deflate (the
offer is accepted).

The Node client's package is installed by this module's set-up with npm, into
.cache/node under the repository (ignored by git)."""
import fcntl
import http.server
import json
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.harness import ChatCluster

ROOT = Path(__file__).resolve().parent.parent
NODE_SCRIPT = ROOT / "tests" / "node" / "ws_client.js"
NODE_CACHE = ROOT / ".cache" / "node"
WS_VERSION = "8"
CHROMIUM = "/usr/bin/chromium"
NO_NETWORK = ("ENOTFOUND", "EAI_AGAIN", "ECONNREFUSED", "ETIMEDOUT", "ENETUNREACH")

# node1: --compression off (the default), node2: --compression deflate
NODES = {"off": "node1", "deflate": "node2"}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, redis_server, zookeeper_server, mongo_server):
    c = ChatCluster(tmp_path_factory.mktemp("cluster"), redis_server, zookeeper_server, mongo_server,
                    nodes=1, extra_args=["--rate-limit", "0"])
    c.start()
    try:
        c.start_node("node2", extra=["--compression", "deflate"])
        c.wait_for_nodes(2)
        yield c
    finally:
        c.stop()


def url(cluster, compression):
    return f"ws://127.0.0.1:{cluster.port(NODES[compression])}/"


@pytest.fixture
def peer(cluster):
    """A harness client logged in on node1 (it offers deflate too; node1 declines)."""
    made = []

    def make(username):
        client = cluster.client("node1", username=username)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


def assert_offline(client, username, timeout=5.0):
    deadline = time.monotonic() + timeout
    while True:
        info = client.request("userInfo", {"username": username})
        if info["action"] == "error":
            assert info["data"]["code"] == 404, info
            return
        assert time.monotonic() < deadline, f"{username} still online: {info}"
        time.sleep(0.05)


# -- Node.js ws --------------------------------------------------------------------


@pytest.fixture(scope="session")
def node_ws():
    """NODE_PATH of an installed ws package (npm install, once, under a lock)."""
    npm, node = shutil.which("npm"), shutil.which("node")
    if not npm or not node:
        pytest.fail("node and npm are needed for the real Node.js client")
    NODE_CACHE.mkdir(parents=True, exist_ok=True)
    modules = NODE_CACHE / "node_modules"
    with open(NODE_CACHE / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (modules / "ws" / "package.json").exists():
            result = subprocess.run(
                [npm, "install", "--prefix", str(NODE_CACHE), "--no-save", "--no-audit", "--no-fund",
                 f"ws@{WS_VERSION}"],
                capture_output=True, text=True, timeout=300,
            )
            if result.returncode != 0:
                output = result.stdout + result.stderr
                if any(code in output for code in NO_NETWORK):
                    pytest.skip(f"npm cannot reach its registry: {output[-500:]}")
                pytest.fail(f"npm install ws failed: {output[-2000:]}")
    return str(modules)


class NodeClient:
    """tests/node/ws_client.js as a process; its stdout lines are JSON."""

    def __init__(self, node_path, ws_url, username, peer):
        self.process = subprocess.Popen(
            ["node", str(NODE_SCRIPT), ws_url, username, peer],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "NODE_PATH": node_path},
        )
        self.lines = []
        self.stderr = ""
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.process.stdout:
            self.lines.append(json.loads(line))

    def line(self, key, timeout=20.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.lines:
                if key in line:
                    return line
            if self.process.poll() is not None and not self._reader.is_alive():
                break
            time.sleep(0.02)
        raise AssertionError(f"no {key!r} line from the node client: {self.lines} {self.finish(1)}")

    def finish(self, timeout=20.0):
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        self._reader.join(5)
        return code, self.process.stderr.read()


@pytest.mark.parametrize("compression", ["off", "deflate"])
def test_node_ws_client_logs_in_and_chats(cluster, peer, node_ws, compression):
    username, other = f"user{3 if compression == 'off' else 4}", f"user{5 if compression == 'off' else 6}"
    python = peer(other)
    client = NodeClient(node_ws, url(cluster, compression), username, other)
    try:
        ready = client.line("ready")
        if compression == "off":
            assert ready["extensions"] == ""
        else:
            assert ready["extensions"].startswith("permessage-deflate"), ready
        got = python.expect(lambda f: f["data"]["from"] == username, action="chat")
        assert got["data"]["message"] == f"hello from {username}"
        python.send("chat", {"to": username, "message": "hello from python"})
        assert client.line("chat")["chat"] == "hello from python"
        assert client.finish() == (0, "")
    finally:
        if client.process.poll() is None:
            client.process.kill()
            client.finish()
    assert_offline(python, username)


# -- Python websockets -------------------------------------------------------------


@pytest.mark.parametrize("compression", ["off", "deflate"])
def test_python_websockets_client_logs_in_and_chats(cluster, peer, compression):
    from websockets.sync.client import connect

    username, other = f"user{7 if compression == 'off' else 8}", f"user{9 if compression == 'off' else 10}"
    python = peer(other)
    with connect(url(cluster, compression), open_timeout=10) as ws:  # default options: offers deflate
        offered = ws.request.headers.get("Sec-WebSocket-Extensions", "")
        assert offered.startswith("permessage-deflate")
        negotiated = ws.response.headers.get("Sec-WebSocket-Extensions")
        if compression == "off":
            assert negotiated is None
        else:
            assert negotiated and negotiated.startswith("permessage-deflate"), negotiated

        def receive(action):
            deadline = time.monotonic() + 10
            while True:
                frame = json.loads(ws.recv(timeout=max(0.01, deadline - time.monotonic())))
                if frame["action"] == action:
                    return frame

        ws.send(json.dumps({"id": 1, "action": "login", "data": {"username": username}}))
        assert receive("login")["data"]["username"] == username
        ws.send(json.dumps({"id": 2, "action": "popular", "data": {"n": "2"}}))
        assert isinstance(receive("popular")["data"]["words"], list)
        # large enough that a compressing node really compresses it
        text = "hello from websockets " * 50
        ws.send(json.dumps({"id": 3, "action": "chat", "data": {"to": other, "message": text}}))
        assert python.expect(lambda f: f["data"]["from"] == username, action="chat")["data"]["message"] == text
        python.send("chat", {"to": username, "message": "hello from python " * 50})
        assert receive("chat")["data"]["message"] == "hello from python " * 50
    assert_offline(python, username)


# -- Chromium ----------------------------------------------------------------------

PAGE_SCRIPT = """([url, username]) => new Promise((resolve) => {
    const state = window.chat = {opened: false, errors: 0, frames: [], closed: null};
    const ws = window.ws = new WebSocket(url);
    ws.onopen = () => {
        state.opened = true;
        ws.send(JSON.stringify({id: 1, action: "login", data: {username}}));
    };
    ws.onerror = () => { state.errors += 1; resolve({...state, extensions: ws.extensions}); };
    ws.onclose = (e) => { state.closed = e.code; };
    ws.onmessage = (e) => {
        const frame = JSON.parse(e.data);
        state.frames.push(frame);
        if (frame.action === "login") resolve({...state, extensions: ws.extensions});
    };
    setTimeout(() => resolve({...state, extensions: ws.extensions, timedOut: true}), 20000);
})"""


class _Page(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"<!doctype html><title>chat</title><p>chat</p>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def page_url():
    """A page served from the loopback address, as a web app on the same
    network as its chat node (Chromium blocks a public origin, such as
    about:blank's, from opening connections to a local address)."""
    yield from _serve_page()


def _serve_page():
    """Serve L{_Page} on a free loopback port while the caller's fixture lives."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is needed (Debian package chromium)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield chromium
        chromium.close()


@pytest.mark.parametrize("compression", ["off", "deflate"])
def test_chromium_logs_in_and_chats(cluster, peer, browser, page_url, compression):
    username, other = f"user{11 if compression == 'off' else 12}", f"user{13 if compression == 'off' else 14}"
    python = peer(other)
    page = browser.new_page()
    try:
        page.goto(page_url)
        state = page.evaluate(PAGE_SCRIPT, [url(cluster, compression), username])
        assert state["opened"] and not state["errors"] and not state.get("timedOut"), state
        assert state["frames"][0]["action"] == "login", state
        if compression == "off":
            assert state["extensions"] == ""
        else:
            assert state["extensions"].startswith("permessage-deflate"), state
        python.send("chat", {"to": username, "message": "hello from python"})
        page.wait_for_function(
            "() => window.chat.frames.some(f => f.action === 'chat' && f.data.message === 'hello from python')",
            timeout=10000,
        )
        page.evaluate(
            "([to]) => window.ws.send(JSON.stringify({id: 2, action: 'chat', data: {to, message: 'hello from chromium'}}))",
            [other],
        )
        got = python.expect(lambda f: f["data"]["from"] == username, action="chat")
        assert got["data"]["message"] == "hello from chromium"
        page.evaluate("() => window.ws.close(1000)")
        page.wait_for_function("() => window.chat.closed !== null", timeout=10000)
        assert page.evaluate("() => window.chat") ["errors"] == 0
        assert page.evaluate("() => window.chat.closed") == 1000
    finally:
        page.close()
    assert_offline(python, username)


# -- --allowed-origins ---------------------------------------------------------------


@pytest.fixture(scope="module")
def other_page_url():
    """A second page, of another origin (another port)."""
    yield from _serve_page()


def test_allowed_origins_refuse_a_page_of_another_origin(cluster, browser, page_url, other_page_url):
    allowed = page_url.rstrip("/")
    node = cluster.start_node("node3", extra=["--allowed-origins", f"https://chat.example, {allowed}"])
    ws_url = f"ws://127.0.0.1:{node.ready_port}/"
    try:
        page = browser.new_page()
        try:
            page.goto(page_url)
            state = page.evaluate(PAGE_SCRIPT, [ws_url, "user15"])
            assert state["opened"] and state["frames"][0]["action"] == "login", state
            page.evaluate("() => window.ws.close(1000)")
            page.goto(other_page_url)
            state = page.evaluate(PAGE_SCRIPT, [ws_url, "user16"])
            assert not state["opened"] and state["errors"] == 1, state
        finally:
            page.close()

        from websockets.exceptions import InvalidStatus
        from websockets.sync.client import connect

        def handshake(origin):
            try:
                with connect(ws_url, origin=origin, open_timeout=10):
                    return 101
            except InvalidStatus as e:
                return e.response.status_code

        assert handshake(other_page_url.rstrip("/")) == 403
        assert handshake(allowed) == 101
        assert handshake(None) == 101  # not a browser: no Origin
    finally:
        node.stop()
