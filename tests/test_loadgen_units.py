"""Unit tests of the load generator's accounting, plus short runs against an
in-process fake cluster (two WebSocket "nodes" and a gateway speaking the
client protocol) that can drop, duplicate or refuse messages."""

import os
import sys
import types

import orjson
import pytest
import pytest_twisted
from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from twisted.internet import reactor
from twisted.web import resource, server

from chatnet.bench import cli, client, options, report, targets
from chatnet.bench.tracker import (
    DUPLICATE,
    NEW,
    UNEXPECTED,
    UNKNOWN,
    Tracker,
    message_text,
    parse_message_key,
    percentile,
)

# ---------------------------------------------------------------------------
# percentile
# ---------------------------------------------------------------------------


def test_percentile_empty():
    assert percentile([], 50) is None
    assert percentile([], 99) is None


def test_percentile_single_value():
    assert percentile([7.0], 0) == 7.0
    assert percentile([7.0], 50) == 7.0
    assert percentile([7.0], 99) == 7.0
    assert percentile([7.0], 100) == 7.0


def test_percentile_nearest_rank():
    values = list(range(1, 101))  # 1..100
    assert percentile(values, 50) == 50
    assert percentile(values, 99) == 99
    assert percentile(values, 100) == 100
    assert percentile(values, 1) == 1
    assert percentile(values, 0) == 1
    assert percentile(values, 99.5) == 100


def test_percentile_small_lists():
    assert percentile([1, 2, 3, 4], 50) == 2
    assert percentile([1, 2, 3, 4], 51) == 3
    assert percentile([1, 2, 3, 4], 99) == 4
    assert percentile([1, 2], 50) == 1
    assert percentile([10, 20, 30], 66) == 20
    assert percentile([10, 20, 30], 67) == 30


def test_percentile_tail_is_not_hidden():
    # one slow message in a hundred is the p99 of 100 values
    values = sorted([1.0] * 99 + [250.0])
    assert percentile(values, 99) == 1.0
    values = sorted([1.0] * 98 + [250.0, 300.0])
    assert percentile(values, 99) == 250.0
    assert percentile(values, 50) == 1.0


# ---------------------------------------------------------------------------
# message text
# ---------------------------------------------------------------------------


def test_message_text_round_trip():
    prefix = "bench:123:"
    assert parse_message_key(prefix, message_text("123", 4, 17)) == (4, 17)
    padded = message_text("123", 4, 17, size=100)
    assert len(padded) == 100
    assert parse_message_key(prefix, padded) == (4, 17)


def test_message_text_of_other_runs_is_ignored():
    prefix = "bench:123:"
    assert parse_message_key(prefix, message_text("999", 4, 17)) is None
    assert parse_message_key(prefix, "bench:1234:4:17") is None
    assert parse_message_key(prefix, "hello") is None
    assert parse_message_key(prefix, "bench:123:x:1") is None
    assert parse_message_key(prefix, "bench:123:4") is None
    assert parse_message_key(prefix, None) is None
    assert parse_message_key(prefix, 12) is None


def test_message_text_has_no_letters_a_filter_could_mask():
    text = message_text("0123456789", 12, 345, size=40)
    assert set(text) <= set("bench:0123456789.")


def test_spread_round_robin():
    assert options.spread(7, 3) == [0, 1, 2, 0, 1, 2, 0]
    assert options.spread(3, 3, offset=1) == [1, 2, 0]
    with pytest.raises(ValueError):
        options.spread(1, 0)


# ---------------------------------------------------------------------------
# tracker: loss, duplicates, latency, throughput
# ---------------------------------------------------------------------------


def test_tracker_all_delivered():
    t = Tracker()
    t.start_measure(0.0)
    for n in range(10):
        t.on_send((0, n), frozenset({1}), t=float(n))
    for n in range(10):
        assert t.on_receive((0, n), 1, t=n + 0.010) == NEW
    t.stop_measure(10.0)
    s = t.summary()
    assert s["sent"] == 10
    assert s["expected"] == 10
    assert s["delivered"] == 10
    assert s["lost"] == 0
    assert s["duplicated"] == 0
    assert s["p50_ms"] == pytest.approx(10.0, abs=1e-6)
    assert s["p99_ms"] == pytest.approx(10.0, abs=1e-6)
    assert s["msgs_per_s"] == pytest.approx(1.0)
    assert s["seconds"] == pytest.approx(10.0)
    assert t.pending == 0


def test_tracker_lost_counts_missing_deliveries():
    t = Tracker()
    t.on_send((0, 0), frozenset({1}), t=0.0)
    t.on_send((0, 1), frozenset({1}), t=0.0)
    t.on_send((0, 2), frozenset({1}), t=0.0)
    t.on_receive((0, 1), 1, t=0.001)
    assert t.lost == 2
    assert t.lost_messages() == 2
    assert t.summary()["lost"] == 2
    assert t.summary()["delivered"] == 1


def test_tracker_duplicates_are_not_deliveries():
    t = Tracker()
    t.start_measure(0.0)
    t.on_send((0, 0), frozenset({1}), t=0.0)
    assert t.on_receive((0, 0), 1, t=0.001) == NEW
    assert t.on_receive((0, 0), 1, t=0.002) == DUPLICATE
    assert t.on_receive((0, 0), 1, t=0.003) == DUPLICATE
    s = t.summary()
    assert s["delivered"] == 1
    assert s["duplicated"] == 2
    assert s["lost"] == 0
    # a duplicate adds no latency sample
    assert s["latency_samples"] == 1


def test_tracker_room_fan_out():
    members = frozenset({0, 1, 2, 3})
    t = Tracker()
    t.on_send((0, 0), members, t=0.0)
    t.on_send((2, 0), members, t=0.0)
    for m in (0, 1, 2, 3):
        assert t.on_receive((0, 0), m, t=0.005) == NEW
    for m in (0, 1, 3):
        assert t.on_receive((2, 0), m, t=0.005) == NEW
    assert t.on_receive((2, 0), 1, t=0.006) == DUPLICATE
    s = t.summary()
    assert s["sent"] == 2
    assert s["expected"] == 8
    assert s["delivered"] == 7
    assert s["lost"] == 1
    assert s["lost_messages"] == 1
    assert s["duplicated"] == 1


def test_tracker_unexpected_and_unknown():
    t = Tracker()
    t.on_send((0, 0), frozenset({1}), t=0.0)
    assert t.on_receive((0, 0), 5, t=0.1) == UNEXPECTED
    assert t.on_receive((9, 9), 1, t=0.1) == UNKNOWN
    s = t.summary()
    assert s["unexpected"] == 1
    assert t.unknown == 1
    assert s["delivered"] == 0
    assert s["lost"] == 1


def test_tracker_rejected_messages_stay_lost():
    t = Tracker()
    t.on_send((0, 0), frozenset({1}), t=0.0)
    t.on_reject((0, 0))
    t.on_reject((0, 0))
    s = t.summary()
    assert s["rejected"] == 1
    assert s["lost"] == 1


def test_tracker_same_key_twice_is_a_bug():
    t = Tracker()
    t.on_send((0, 0), frozenset({1}), t=0.0)
    with pytest.raises(ValueError):
        t.on_send((0, 0), frozenset({1}), t=0.0)


def test_tracker_warmup_excluded_from_latency_and_rate():
    t = Tracker()
    # warm-up: slow message, not measured
    t.on_send((0, 0), frozenset({1}), t=0.0)
    t.on_receive((0, 0), 1, t=0.5)
    t.start_measure(1.0)
    for n in range(1, 5):
        t.on_send((0, n), frozenset({1}), t=1.0 + n * 0.1)
        t.on_receive((0, n), 1, t=1.0 + n * 0.1 + 0.002)
    t.stop_measure(3.0)
    s = t.summary()
    assert s["delivered"] == 5
    assert s["latency_samples"] == 4
    assert s["p99_ms"] == pytest.approx(2.0, abs=1e-6)
    assert s["max_ms"] == pytest.approx(2.0, abs=1e-6)
    assert s["msgs_per_s"] == pytest.approx(4 / 2.0)
    assert s["seconds"] == pytest.approx(2.0)


def test_tracker_latency_percentiles():
    t = Tracker()
    t.start_measure(0.0)
    for n in range(100):
        t.on_send((0, n), frozenset({1}), t=0.0)
    for n in range(100):
        t.on_receive((0, n), 1, t=(n + 1) / 1000.0)  # 1..100 ms
    t.stop_measure(1.0)
    s = t.summary()
    assert s["p50_ms"] == pytest.approx(50.0)
    assert s["p90_ms"] == pytest.approx(90.0)
    assert s["p99_ms"] == pytest.approx(99.0)
    assert s["max_ms"] == pytest.approx(100.0)
    assert s["mean_ms"] == pytest.approx(50.5)


def test_tracker_reordering():
    t = Tracker()
    for n in range(3):
        t.on_send((0, n), frozenset({1, 2}), t=0.0)
    for n in (0, 1, 2):
        t.on_receive((0, n), 1, t=0.1)
    for n in (0, 2, 1):
        t.on_receive((0, n), 2, t=0.1)
    assert t.reordered == 1
    assert t.lost == 0


def test_summary_without_measure_window():
    s = Tracker().summary()
    assert s["sent"] == 0
    assert s["msgs_per_s"] is None
    assert s["p50_ms"] is None
    assert s["p99_ms"] is None


# ---------------------------------------------------------------------------
# options and helpers
# ---------------------------------------------------------------------------


def test_parse_args_requires_a_cluster():
    with pytest.raises(SystemExit):
        options.parse_args(["direct"])
    opts = options.parse_args(["direct", "--gateway", "http://127.0.0.1:1"])
    assert opts.pairs == 20 and opts.window == 5 and opts.duration == 10.0
    assert opts.drain == 5.0


def test_parse_args_checks():
    with pytest.raises(SystemExit):
        options.parse_args(["room", "--nodes", "ws://h:1/", "--members", "2", "--senders", "3"])
    with pytest.raises(SystemExit):
        options.parse_args(["direct", "--nodes", "ws://h:1/", "--window", "0"])
    with pytest.raises(SystemExit):
        options.parse_args(["connections", "--nodes", "ws://h:1/", "--create-users"])
    opts = options.parse_args(["direct", "--nodes", "ws://h:1/", "--window", "0", "--rate", "10"])
    assert opts.window == 0


def test_user_prefix_default():
    small = options.parse_args(["direct", "--nodes", "ws://h:1/", "--pairs", "20"])
    assert options.user_prefix(small) == "user"
    big = options.parse_args(["connections", "--nodes", "ws://h:1/", "--clients", "10000"])
    assert options.user_prefix(big) == "bench"
    own = options.parse_args(["direct", "--nodes", "ws://h:1/", "--user-prefix", "x"])
    assert options.user_prefix(own) == "x"
    assert options.user_names("bench", 1, 3) == ["bench1", "bench2", "bench3"]


def test_node_urls():
    n = targets.node_from_url("127.0.0.1:9001")
    assert (n.url, n.host, n.port, n.secure) == ("ws://127.0.0.1:9001/", "127.0.0.1", 9001, False)
    n = targets.node_from_url("wss://example.org/chat")
    assert (n.port, n.secure, n.path) == (443, True, "/chat")
    nodes = targets.nodes_from_gateway_answer(
        [
            {"host": "10.0.0.5", "port": 9001, "nodeId": "a", "isLeader": True, "connections": 3},
            {"host": "0.0.0.0", "port": 9002, "nodeId": "b", "isLeader": False, "connections": 0},
        ],
        "http://gw.local:8080",
    )
    assert [(x.url, x.nodeId) for x in nodes] == [
        ("ws://10.0.0.5:9001/", "a"),
        ("ws://gw.local:9002/", "b"),
    ]
    assert nodes[0].extra == {"isLeader": True, "connections": 3}
    assert targets.gateway_base("127.0.0.1:8080/server") == "http://127.0.0.1:8080"
    with pytest.raises(ValueError):
        targets.nodes_from_gateway_answer({"host": "x"}, "http://gw")


def test_pick_node():
    nodes = targets.nodes_from_gateway_answer(
        [{"host": "h", "port": 1, "nodeId": "a"}, {"host": "h", "port": 2, "nodeId": "b"}],
        "http://gw",
    )
    assert targets.pick_node(nodes, None).nodeId == "a"
    assert targets.pick_node(nodes, "b").port == 2
    assert targets.pick_node(nodes, "1").nodeId == "b"
    with pytest.raises(RuntimeError):
        targets.pick_node(nodes, "zzz")


def test_read_rss_and_listening_pid():
    assert targets.read_rss_kb(os.getpid()) > 0
    assert targets.read_rss_kb(2**22 + 12345) is None
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    try:
        assert targets.find_listening_pid(s.getsockname()[1]) == os.getpid()
    finally:
        s.close()


def test_filter_scenario_calls_filter_bench(monkeypatch):
    calls = []
    fake = types.ModuleType("chatnet.bench.filter_bench")

    def run_filter_bench(seconds, filter=None):
        assert filter is None  # the node's own list unless --profanity-file names one
        calls.append(seconds)
        return {"mb_per_s": 12.5, "msgs_per_s": 1000.0}

    fake.run_filter_bench = run_filter_bench
    monkeypatch.setitem(sys.modules, "chatnet.bench.filter_bench", fake)
    r = cli.run(["filter", "--duration", "0.5"])
    assert calls == [0.5]
    assert r["scenario"] == "filter"
    assert r["mb_per_s"] == 12.5
    assert r["msgs_per_s"] == 1000.0
    assert r["command"] == "chatnet-bench filter --duration 0.5"
    for k in report.RESULT_KEYS:
        assert k in r


# ---------------------------------------------------------------------------
# short runs against a fake cluster
# ---------------------------------------------------------------------------


class FakeCluster:
    """The client-visible behaviour of a cluster, in memory."""

    def __init__(self, drop_every=0, dup_every=0, refuse=None, known_users=None, mute_logins=()):
        self.mute_logins = mute_logins  # users whose login is never answered
        self.online = {}  # username -> protocol
        self.rooms = {"room1": set()}
        self.history = {"room1": [{"from": "old", "roomName": "room1",
                                   "message": "bench:0000000001:0:0", "ts": 1,
                                   "format": "text"}]}
        self.drop_every = drop_every
        self.dup_every = dup_every
        self.refuse = refuse  # error code answered to every chat
        self.known_users = known_users
        self.chats = 0
        self.ports = []

    def deliver(self, proto, data):
        self.chats += 1
        if self.drop_every and self.chats % self.drop_every == 0:
            return
        proto.frame("chat", data)
        if self.dup_every and self.chats % self.dup_every == 0:
            proto.frame("chat", data)


class FakeNodeProtocol(WebSocketServerProtocol):
    username = None
    frame_id = 0

    def frame(self, action, data, re=None):
        FakeNodeProtocol.frame_id += 1
        msg = {"id": FakeNodeProtocol.frame_id, "action": action, "data": data}
        if re is not None:
            msg["re"] = re
        self.sendMessage(orjson.dumps(msg), False)

    def error(self, code, message, re):
        self.frame("error", {"code": code, "message": message, "ext": ""}, re)

    def onMessage(self, payload, isBinary):
        c = self.factory.cluster
        msg = orjson.loads(payload)
        action, data, fid = msg["action"], msg["data"], msg["id"]
        if action == "login":
            name = data["username"]
            if c.known_users is not None and name not in c.known_users:
                return self.error(401, "login failed", fid)
            if name in c.mute_logins:
                return None
            self.username = name
            c.online[name] = self
            return self.frame("login", {"username": name, "sessionId": "s",
                                        "nodeId": self.factory.node_id}, fid)
        if action == "joinRoom":
            room = data["roomName"]
            c.rooms.setdefault(room, set()).add(self.username)
            for old in c.history.get(room, []):
                self.frame("chat", old)
            return self.frame("joinRoom", {"roomName": room,
                                           "members": len(c.rooms[room])}, fid)
        if action == "chat":
            if c.refuse:
                return self.error(c.refuse, "refused", fid)
            out = {"from": self.username, "message": data["message"],
                   "ts": data.get("ts", 0), "format": "text", "msgId": "0" * 24, "seq": 1}
            if data.get("isGroup"):
                room = data["roomName"]
                out["roomName"] = room
                for member in c.rooms.get(room, ()):
                    p = c.online.get(member)
                    if p is not None:
                        c.deliver(p, out)
                return
            out["roomName"] = ""
            p = c.online.get(data["to"])
            if p is None:
                return self.error(404, f"user {data['to']} is not on line", fid)
            return c.deliver(p, out)
        return self.error(400, "unknown action", fid)

    def onClose(self, wasClean, code, reason):
        c = self.factory.cluster
        if self.username and c.online.get(self.username) is self:
            del c.online[self.username]


class FakeGateway(resource.Resource):
    isLeaf = True

    def __init__(self, cluster):
        super().__init__()
        self.cluster = cluster

    def render_GET(self, request):
        request.setHeader(b"content-type", b"application/json")
        return orjson.dumps([
            {"host": "127.0.0.1", "port": port, "nodeId": node_id,
             "isLeader": i == 0, "connections": 0}
            for i, (node_id, port) in enumerate(self.cluster.ports)
        ])


@pytest.fixture
def fake_cluster():
    made = []

    def make(nodes=2, **kw):
        cluster = FakeCluster(**kw)
        for i in range(nodes):
            f = WebSocketServerFactory()
            f.protocol = FakeNodeProtocol
            f.cluster = cluster
            f.node_id = f"node{i}"
            port = reactor.listenTCP(0, f, interface="127.0.0.1")
            made.append(port)
            cluster.ports.append((f.node_id, port.getHost().port))
        gw = reactor.listenTCP(0, server.Site(FakeGateway(cluster)), interface="127.0.0.1")
        made.append(gw)
        cluster.gateway = f"http://127.0.0.1:{gw.getHost().port}"
        return cluster

    yield make
    for p in made:
        p.stopListening()


SHORT = ["--duration", "1", "--warmup", "0.2", "--drain", "1", "--settle", "0.05",
         "--progress", "0", "--quiet"]


@pytest_twisted.ensureDeferred
async def test_direct_against_fake_cluster(fake_cluster):
    c = fake_cluster(nodes=2)
    r = await cli.run_async(["direct", "--gateway", c.gateway, "--pairs", "4",
                                 "--window", "3", *SHORT])
    assert "error" not in r, r
    assert r["scenario"] == "direct"
    assert r["sent"] > 100
    assert r["delivered"] == r["sent"]
    assert r["lost"] == 0 and r["duplicated"] == 0
    assert r["msgs_per_s"] > 0
    assert 0 < r["p50_ms"] <= r["p99_ms"]
    assert r["pairs"] == 4 and r["same_node_pairs"] == 0
    assert r["nodes"] == {"node0": 4, "node1": 4}
    assert r["command"].startswith("chatnet-bench direct --gateway ")
    for k in report.RESULT_KEYS:
        assert k in r


@pytest_twisted.ensureDeferred
async def test_room_ignores_history_and_counts_fan_out(fake_cluster):
    c = fake_cluster(nodes=3)
    nodes = ",".join(f"ws://127.0.0.1:{port}/" for _, port in c.ports)
    r = await cli.run_async(["room", "--nodes", nodes, "--members", "6",
                                 "--senders", "2", "--window", "2", *SHORT])
    assert "error" not in r, r
    assert r["members"] == 6 and r["senders"] == 2
    assert r["expected"] == r["sent"] * 6
    assert r["delivered"] == r["expected"]
    assert r["lost"] == 0 and r["duplicated"] == 0 and r["unexpected"] == 0
    assert r["nodes"] == {"node0": 2, "node1": 2, "node2": 2}


@pytest_twisted.ensureDeferred
async def test_losses_and_duplicates_are_reported(fake_cluster):
    c = fake_cluster(nodes=2, drop_every=7, dup_every=5)
    r = await cli.run_async(["direct", "--gateway", c.gateway, "--pairs", "2",
                                 "--window", "4", "--msg-timeout", "0.1", *SHORT])
    assert "error" not in r, r
    assert r["lost"] > 0
    assert r["duplicated"] > 0
    assert r["timeouts"] > 0  # lost messages freed their window slots
    assert r["delivered"] + r["lost"] == r["expected"] == r["sent"]


@pytest_twisted.ensureDeferred
async def test_an_unanswered_login_does_not_hang_the_run(fake_cluster):
    c = fake_cluster(nodes=2, mute_logins={"user2"})
    r = await cli.run_async(["direct", "--gateway", c.gateway, "--pairs", "2",
                             "--window", "2", "--connect-timeout", "1", *SHORT])
    assert "error" not in r, r
    assert r["pairs"] == 1  # the pair of user2 could not log in
    assert r["delivered"] == r["sent"] > 0
    assert any("no answer to login" in n for n in r["notes"]), r["notes"]


@pytest_twisted.ensureDeferred
async def test_rate_limit_hint(fake_cluster):
    c = fake_cluster(nodes=2, refuse=429)
    r = await cli.run_async(["direct", "--gateway", c.gateway, "--pairs", "1",
                                 "--window", "1", *SHORT])
    assert r["errors"].get("429", 0) > 0
    assert r["rejected"] > 0
    assert r["delivered"] == 0 and r["lost"] == r["sent"]
    assert any("--rate-limit 0" in n for n in r["notes"])


@pytest_twisted.ensureDeferred
async def test_rate_mode(fake_cluster):
    c = fake_cluster(nodes=2)
    r = await cli.run_async(["direct", "--gateway", c.gateway, "--pairs", "2",
                                 "--rate", "50", "--window", "0", *SHORT])
    assert "error" not in r, r
    # 2 senders x 50/s x 1 s, with some slack for timer granularity
    assert 60 <= r["sent"] <= 110
    assert r["lost"] == 0


@pytest_twisted.ensureDeferred
async def test_login_failure_hint(fake_cluster):
    c = fake_cluster(nodes=2, known_users={"user1", "user2"})
    r = await cli.run_async(["room", "--gateway", c.gateway, "--members", "4",
                                 "--senders", "1", *SHORT])
    assert r["members"] == 2
    assert any("--create-users" in n for n in r["notes"])


@pytest_twisted.ensureDeferred
async def test_connections_against_fake_node(fake_cluster):
    c = fake_cluster(nodes=2)
    r = await cli.run_async(["connections", "--gateway", c.gateway, "--clients", "50",
                                 "--node", "node1", "--duration", "0.2",
                                 "--connect-concurrency", "10", "--progress", "0", "--quiet"])
    assert "error" not in r, r
    assert r["logged_in"] == 50 and r["alive"] == 50
    assert r["nodes"] == {"node1": 50}
    # the fake node listens in this very process
    assert r["node_pid"] == os.getpid()
    assert r["rss_before_kb"] > 0 and r["rss_per_conn_kb"] is not None
    assert r["p50_ms"] is not None
    assert r["sent"] == 50 and r["delivered"] == 50 and r["lost"] == 0


@pytest_twisted.ensureDeferred
async def test_no_node_is_an_error_line():
    r = await cli.run_async(["direct", "--nodes", "ws://127.0.0.1:1/", "--pairs", "1",
                                 "--connect-timeout", "2", *SHORT])
    assert r["error"]
    assert r["lost"] is None or r["lost"] == 0
    assert r["command"].startswith("chatnet-bench direct")


def test_create_users_inserts_missing_users_once(mongo_server):
    import uuid

    import pymongo

    url = f"mongodb://127.0.0.1:{mongo_server.port}/bench{uuid.uuid4().hex[:8]}"
    assert targets.create_users(url, ["bench1", "bench2", "bench3"]) == 3
    assert targets.create_users(url, ["bench2", "bench3", "bench4"]) == 1
    mongo = pymongo.MongoClient(url)
    try:
        db = mongo.get_default_database()
        names = sorted(d["username"] for d in db.users.find())
        doc = db.users.find_one({"username": "bench1"})
        mongo.drop_database(db.name)
    finally:
        mongo.close()
    assert names == ["bench1", "bench2", "bench3", "bench4"]
    assert "passwordHash" not in doc


def test_chat_frame_ids_carry_the_key():
    for key in [(0, 0), (3, 17), (1000, (1 << 26) - 1), ((1 << 26) - 1, 5)]:
        fid = client.chat_frame_id(key)
        assert fid < 2**53
        assert client.key_of_chat_frame_id(fid) == key
    assert client.key_of_chat_frame_id(int(1.8e15)) is None
    assert client.key_of_chat_frame_id(None) is None
    assert client.key_of_chat_frame_id("12") is None
