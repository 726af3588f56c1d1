"""End-to-end harness: real ``twistd chatnode``/``chatgateway`` processes and a
plain WebSocket client that speaks PROTOCOL.md byte for byte, as an old
client would (no password, no protocol extensions unless asked; its
handshake offers permessage-deflate as every real client's does).

Each :class:`ChatCluster` lives in its own namespace of the shared stores (a
ZooKeeper chroot, a Redis database, a MongoDB database), so clusters of
different tests never see each other. Every wait is bounded.
"""
import itertools
import json
import secrets
import time
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor

import pymongo
import websocket
from kazoo.client import KazooClient

from devtools.localservices import ChatProcess, free_port
from chatnet.ops.seed import seed

_redis_dbs = itertools.cycle(range(1, 16))


class ChatCluster:
    def __init__(self, root, redis, zookeeper, mongo, nodes=1, session_timeout=3.0, extra_args=(),
                 gateway_args=(), env=None, redis_url=None, api_key=None):
        """C{redis_url}: the URL the nodes and the gateway are given instead
        of a database of C{redis} (a C{redis+sentinel://} one, say); C{redis}
        is then the server that is emptied at the start. C{api_key}: the
        gateway serves the server API with this key (and joins the cluster
        for it)."""
        self.root = root
        self.redis_server = redis
        self.zookeeper_server = zookeeper
        self.mongo_server = mongo
        tag = uuid.uuid4().hex[:8]
        self.chroot = f"/t-{tag}"
        if redis_url is None:
            self.redis_db = next(_redis_dbs)
            self.redis_url = f"redis://127.0.0.1:{redis.port}/{self.redis_db}"
        else:
            self.redis_db = int(redis_url.rstrip("/").rsplit("/", 1)[1])
            self.redis_url = redis_url
        self.mongo_url = f"mongodb://127.0.0.1:{mongo.port}/t{tag}"
        self.zk_hosts = f"127.0.0.1:{zookeeper.port}{self.chroot}"
        self.secret = secrets.token_hex(16)
        self.session_timeout = session_timeout
        self.extra_args = list(extra_args)
        self.gateway_args = list(gateway_args)
        self.api_key = api_key
        if api_key:
            self.gateway_args += ["--api-key", api_key, "--zookeeper", self.zk_hosts,
                                  "--cluster-secret", self.secret, "--internal-host", "127.0.0.1"]
        self.env = env
        self.node_count = nodes
        self.nodes = {}
        self.gateway = None
        self.gateway_port = None

    # -- set-up ------------------------------------------------------------------

    def start(self, users=20, rooms=5):
        _redis_flush(self.redis_server.port, self.redis_db)
        make_chroot(self.zookeeper_server.port, self.chroot)
        seed(self.mongo_url, users, rooms, passwords=[("secret1", "pw-secret1")])
        # node1 first, so that it is the leader; the others together
        with ThreadPoolExecutor(max_workers=self.node_count + 1) as pool:
            first = [pool.submit(self.start_gateway), pool.submit(self.start_node, "node1")]
            _results(first)
            _results([pool.submit(self.start_node, f"node{i}") for i in range(2, self.node_count + 1)])
        self.wait_for_nodes(self.node_count)
        self.wait_until_meshed()
        return self

    def wait_until_meshed(self, timeout=30.0):
        """Wait until every node sees a user logged in on every other node:
        the gateway shows the leader's view of the cluster, and another
        node may learn of a new member a moment later."""
        if len(self.nodes) < 2:
            return
        names = {node: f"probe-{node}" for node in self.nodes}
        client = pymongo.MongoClient(self.mongo_url, serverSelectionTimeoutMS=10000)
        try:
            users = client.get_default_database().users
            for name in names.values():
                users.update_one({"username": name}, {"$setOnInsert": {"username": name}}, upsert=True)
        finally:
            client.close()
        probes = {node: self.client(node, name, offer_deflate=False) for node, name in names.items()}
        try:
            pending = {(a, b) for a in names for b in names if a != b}
            deadline = time.monotonic() + timeout
            while pending and time.monotonic() < deadline:
                for a, b in sorted(pending):
                    if probes[a].request("userInfo", {"username": names[b]})["action"] == "userInfo":
                        pending.discard((a, b))
                if pending:
                    time.sleep(0.05)
            if pending:
                raise AssertionError(f"nodes that do not see each other's users after {timeout}s: {sorted(pending)}")
        finally:
            for probe in probes.values():
                probe.close()

    def node_args(self, node_id, port, internal_port):
        return [
            "--zookeeper", self.zk_hosts,
            "--redis", self.redis_url,
            "--mongo", self.mongo_url,
            "--listen", f"tcp:{port}:interface=127.0.0.1",
            "--internal", f"tcp:{internal_port}:interface=127.0.0.1",
            "--cluster-secret", self.secret,
            "--node-id", node_id,
            "--zk-session-timeout", str(self.session_timeout),
            "--open-login",
            *self.extra_args,
        ]

    def start_node(self, node_id, port=None, extra=()):
        old = self.nodes.get(node_id)
        port = port or (old.ready_port if old else free_port())
        internal = free_port()
        process = ChatProcess(
            "chatnode",
            self.node_args(node_id, port, internal) + list(extra),
            self.root / f"{node_id}-{int(time.time() * 1000)}.log",
            name=node_id,
            ready_port=port,
            ready_log="serving clients",
            env=self.env,
        )
        process.internal_port = internal
        process.start(timeout=60)
        self.nodes[node_id] = process
        return process

    def start_gateway(self):
        self.gateway_port = free_port()
        self.gateway = ChatProcess(
            "chatgateway",
            ["--listen", f"tcp:{self.gateway_port}:interface=127.0.0.1", "--redis", self.redis_url,
             *self.gateway_args],
            self.root / "gateway.log",
            ready_port=self.gateway_port,
            env=self.env,
        )
        self.gateway.start(timeout=60)

    def stop(self):
        running = [p for p in list(self.nodes.values()) + [self.gateway] if p is not None and p.running]
        if running:
            with ThreadPoolExecutor(max_workers=len(running)) as pool:
                list(pool.map(_stop, running))

    # -- looking ---------------------------------------------------------------

    def port(self, node_id):
        return self.nodes[node_id].ready_port

    def gateway_get(self, path):
        url = f"http://127.0.0.1:{self.gateway_port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def servers(self):
        status, body = self.gateway_get("/server?all=1")
        return json.loads(body) if status == 200 else []

    def leader(self):
        for node in self.servers():
            if node["isLeader"]:
                return node["nodeId"]
        return None

    def wait_for_nodes(self, count, timeout=30.0, exclude=()):
        """Wait until the gateway lists C{count} nodes (none of C{exclude})
        with a leader among them."""
        deadline = time.monotonic() + timeout
        listed = []
        while time.monotonic() < deadline:
            listed = self.servers()
            ids = {n["nodeId"] for n in listed}
            if len(listed) == count and not ids & set(exclude) and any(n["isLeader"] for n in listed):
                return listed
            time.sleep(0.1)
        raise AssertionError(f"gateway lists {listed}, wanted {count} nodes without {exclude}")

    def client(self, node_id=None, username=None, **kwargs):
        node_id = node_id or next(iter(self.nodes))
        client = WsClient(self.port(node_id), **kwargs)
        if username:
            client.login(username)
        return client


def wait_until(predicate, timeout, what, interval=0.1):
    """The first true value of C{predicate()}, tried every C{interval}
    seconds; an AssertionError naming C{what} after C{timeout} seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def _stop(process):
    try:
        process.stop()
    except Exception:
        process.kill()


def _results(futures):
    """Wait for every future; raise the first failure."""
    errors = [f.exception() for f in futures]
    for error in errors:
        if error is not None:
            raise error


def make_chroot(zookeeper_port, chroot=None):
    """Create a ZooKeeper chroot (a fresh one by default) and return it."""
    chroot = chroot or f"/t-{uuid.uuid4().hex[:8]}"
    zk = KazooClient(f"127.0.0.1:{zookeeper_port}", timeout=5)
    zk.start(timeout=10)
    zk.ensure_path(chroot)
    zk.stop()
    zk.close()
    return chroot


def _redis_flush(port, db):
    from devtools.localservices import redis_command

    redis_command(port, "EVAL", "redis.call('SELECT', ARGV[1]) return redis.call('FLUSHDB')", "0", str(db))


#: what browsers, Node's ws and Python's websockets offer in their handshake
DEFLATE_OFFER = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits"


class WsClient:
    """A blocking WebSocket client of one connection; frames are kept in
    arrival order and looked up with :meth:`expect`.

    Its handshake offers permessage-deflate, as real clients do; it cannot
    decompress, so it needs a node that declines (``--compression off``, the
    default)."""

    _ids = itertools.count(int(time.time() * 1000) * 1000)

    def __init__(self, port, host="127.0.0.1", timeout=10.0, offer_deflate=True):
        self.port = port
        self.timeout = timeout
        header = [DEFLATE_OFFER] if offer_deflate else []
        self.ws = websocket.create_connection(f"ws://{host}:{port}/", timeout=timeout, header=header)
        # a node that accepted the offer would send frames this client cannot read
        extensions = (self.ws.getheaders() or {}).get("sec-websocket-extensions")
        assert not extensions, f"the node accepted {extensions!r}: run it with --compression off"
        self.frames = []
        self.closed = None

    def send(self, action, data=None, **extra):
        frame_id = next(self._ids)
        frame = {"id": frame_id, "action": action, "data": {} if data is None else data, **extra}
        self.ws.send(json.dumps(frame))
        return frame_id

    def send_raw(self, payload, binary=False):
        if binary:
            self.ws.send_binary(payload)
        else:
            self.ws.send(payload)

    def _read(self, timeout):
        self.ws.settimeout(max(0.01, timeout))
        try:
            opcode, payload = self.ws.recv_data(control_frame=False)
        except websocket.WebSocketTimeoutException:
            return None
        except (websocket.WebSocketConnectionClosedException, ConnectionError, OSError):
            self.closed = self.closed or (1006, "")
            return None
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
            self.closed = (code, payload[2:].decode("utf-8", "replace"))
            return None
        frame = json.loads(payload)
        self.frames.append(frame)
        return frame

    def expect(self, predicate=None, timeout=None, action=None):
        """The first unconsumed frame matching; raises AssertionError after
        C{timeout} seconds."""
        if action is not None:
            wanted = predicate or (lambda f: True)
            predicate = lambda f: f.get("action") == action and wanted(f)  # noqa: E731
        predicate = predicate or (lambda f: True)
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        index = 0
        while True:
            while index < len(self.frames):
                frame = self.frames[index]
                if predicate(frame):
                    del self.frames[index]
                    return frame
                index += 1
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self.closed:
                raise AssertionError(f"no matching frame; got {self.frames[-10:]} closed={self.closed}")
            self._read(remaining)

    def answer(self, request_id, timeout=None):
        return self.expect(lambda f: f.get("re") == request_id, timeout)

    def error(self, code, timeout=None):
        frame = self.expect(lambda f: f.get("action") == "error", timeout)
        assert frame["data"]["code"] == code, frame
        return frame["data"]

    def request(self, action, data=None, timeout=None):
        """Send and return the answer frame (an error frame included)."""
        return self.answer(self.send(action, data), timeout)

    def login(self, username, **data):
        frame = self.request("login", {"username": username, **data})
        assert frame["action"] == "login", frame
        self.username = username
        return frame["data"]

    def chats(self, timeout=0.5, count=None, settle=0.2):
        """The chat frames that arrived.

        Without C{count}: every chat frame arriving within C{timeout}
        seconds. With C{count}: as soon as C{count} chat frames are in (at
        most C{timeout} seconds, 15 by default, so a loaded machine does not
        fail the test), plus whatever arrives in the next C{settle} seconds,
        so a duplicate still shows."""
        if count is not None and timeout == 0.5:
            timeout = 15.0
        end = time.monotonic() + timeout
        while time.monotonic() < end and not self.closed:
            if count is not None and sum(f.get("action") == "chat" for f in self.frames) >= count:
                end = min(end, time.monotonic() + settle)
                count = None
            self._read(end - time.monotonic())
        chats = [f for f in self.frames if f.get("action") == "chat"]
        self.frames = [f for f in self.frames if f.get("action") != "chat"]
        return chats

    def quiet(self, timeout=0.3):
        """Frames that arrive within C{timeout} (expected: none)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end and not self.closed:
            self._read(end - time.monotonic())
        frames, self.frames = self.frames, []
        return frames

    def wait_closed(self, timeout=10.0):
        end = time.monotonic() + timeout
        while not self.closed and time.monotonic() < end:
            self._read(end - time.monotonic())
        return self.closed

    def close(self):
        try:
            self.ws.close(timeout=1)
        except Exception:
            pass

