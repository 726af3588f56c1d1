"""The load generator's side of the Socket.IO peer: the Socket.IO 4 /
Engine.IO 4 framing (chatnet/bench/socketio.py, pure), the options and
cluster directories of ``--target socketio``, ``--messages``, the compare
table, and the Socket.IO client against an in-process server speaking the
wire format (handshake, acks, the server's ping)."""

import json

import orjson
import pytest
import pytest_twisted
from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from hypothesis import given, settings, strategies as st
from twisted.internet import reactor

from chatnet.bench import cli, compare, options, socketio
from chatnet.bench.cpu import read_cluster_dir
from tests.test_loadgen_units import SHORT, fake_cluster  # noqa: F401 - the fixture

# ---------------------------------------------------------------------------
# the framing
# ---------------------------------------------------------------------------


def test_encode_event_without_and_with_ack_id():
    assert socketio.encode_event("chat", {"to": "u2", "message": "hi"}) == \
        b'42["chat",{"to":"u2","message":"hi"}]'
    assert socketio.encode_event("login", {"username": "u1"}, ack_id=17) == \
        b'4217["login",{"username":"u1"}]'
    assert socketio.encode_event("ping") == b'42["ping"]'
    assert socketio.encode_ack(3, {"ok": True}) == b'433[{"ok":true}]'
    for bad in (-1, True, "1", 1.5):
        with pytest.raises(ValueError):
            socketio.encode_event("x", ack_id=bad)
        with pytest.raises(ValueError):
            socketio.encode_ack(bad)


def test_decode_engine_packets():
    p = socketio.decode(b'0{"sid":"abc","upgrades":[],"pingInterval":25000,"pingTimeout":20000}')
    assert p.eio == socketio.EIO_OPEN and p.sio is None
    assert p.data["sid"] == "abc" and p.data["pingInterval"] == 25000
    assert socketio.decode(b"2") == socketio.Packet(socketio.EIO_PING)
    assert socketio.decode(b"3probe").data == "probe"
    assert socketio.decode(b"1").eio == socketio.EIO_CLOSE
    assert socketio.decode(b"6").eio == socketio.EIO_NOOP
    assert socketio.decode("2").eio == socketio.EIO_PING  # a str frame too


def test_decode_socketio_packets():
    p = socketio.decode(b'40{"sid":"s1"}')
    assert (p.eio, p.sio, p.namespace, p.ack_id, p.data) == \
        (socketio.EIO_MESSAGE, socketio.SIO_CONNECT, "/", None, {"sid": "s1"})
    p = socketio.decode(b'42["chat",{"message":"m"}]')
    assert p.event == "chat" and p.args == [{"message": "m"}] and p.ack_id is None
    p = socketio.decode(b'4212["login",{"username":"u"}]')
    assert p.event == "login" and p.ack_id == 12
    p = socketio.decode(b'4312[{"nodeId":"sio1"}]')
    assert p.sio == socketio.SIO_ACK and p.ack_id == 12 and p.args == [{"nodeId": "sio1"}]
    assert p.event is None
    p = socketio.decode(b'42/admin,7["x",1,2]')
    assert p.namespace == "/admin" and p.ack_id == 7 and p.event == "x" and p.args == [1, 2]
    p = socketio.decode(b'44{"message":"not authorized"}')
    assert p.sio == socketio.SIO_CONNECT_ERROR and p.data == {"message": "not authorized"}
    assert socketio.decode(b"41").sio == socketio.SIO_DISCONNECT


@pytest.mark.parametrize("frame", [
    b"", b"7", b"x", b"4", b"47", b"4x", b"0{", b'42{"a":1}', b"42[]", b"42[1]", b'42["a"',
    b"43[1]", b'431{"a":1}', b"42/admin", b'451-["x",{"_placeholder":true,"num":0}]',
])
def test_decode_refuses_what_is_no_packet(frame):
    with pytest.raises(socketio.ProtocolError):
        socketio.decode(frame)


def test_event_of_is_the_cheap_path_of_plain_events():
    assert socketio.event_of(b'42["chat",{"message":"m"}]') == ("chat", {"message": "m"})
    assert socketio.event_of(b'42["hello"]') == ("hello", None)
    for frame in (b"2", b'4212["login",{}]', b'42/admin,["x"]', b'42[1]', b'42["x",', b"431[1]"):
        assert socketio.event_of(frame) is None


def test_websocket_url():
    want = "ws://127.0.0.1:3001/socket.io/?EIO=4&transport=websocket"
    assert socketio.websocket_url("ws://127.0.0.1:3001/") == want
    assert socketio.websocket_url("ws://127.0.0.1:3001") == want
    assert socketio.websocket_url("127.0.0.1:3001") == want
    assert socketio.websocket_url("http://127.0.0.1:3001/") == want
    assert socketio.websocket_url(want) == want
    assert socketio.websocket_url("https://h:1/") == "wss://h:1/socket.io/?EIO=4&transport=websocket"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2 ** 53), 2 ** 53) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(st.text(min_size=1, max_size=20), st.lists(json_values, max_size=3),
       st.none() | st.integers(0, 2 ** 40))
def test_an_encoded_event_decodes_to_itself(name, args, ack_id):
    frame = socketio.encode_event(name, *args, ack_id=ack_id)
    p = socketio.decode(frame)
    assert (p.event, p.args, p.ack_id, p.namespace) == (name, args, ack_id, "/")
    if ack_id is None:
        assert socketio.event_of(frame) == (name, args[0] if args else None)
    else:
        assert socketio.event_of(frame) is None


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 2 ** 40), st.lists(json_values, max_size=3))
def test_an_encoded_ack_decodes_to_itself(ack_id, args):
    p = socketio.decode(socketio.encode_ack(ack_id, *args))
    assert (p.sio, p.ack_id, p.args) == (socketio.SIO_ACK, ack_id, args)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=60) | st.builds(lambda b: b"4" + b, st.binary(max_size=60)))
def test_any_frame_decodes_or_is_a_protocol_error(frame):
    try:
        p = socketio.decode(frame)
    except socketio.ProtocolError:
        return
    assert isinstance(p, socketio.Packet)


# ---------------------------------------------------------------------------
# options and the peer's cluster directory
# ---------------------------------------------------------------------------


def _peer_dir(tmp_path):
    urls = [f"ws://127.0.0.1:{p}/socket.io/?EIO=4&transport=websocket" for p in (3001, 3002)]
    procs = [{"name": "redis", "pid": 11, "port": 6400, "cmdline": ["redis-server"]}]
    procs += [{"name": f"sio{i}", "pid": 20 + i, "kind": "socketio", "role": "node",
               "cmdline": ["node", "server.js"]} for i in (1, 2)]
    (tmp_path / "pids.json").write_text(json.dumps(
        {"dir": str(tmp_path), "target": "socketio", "nodes": urls, "processes": procs}))
    return urls


def test_read_cluster_dir_of_a_peer(tmp_path):
    urls = _peer_dir(tmp_path)
    c = read_cluster_dir(str(tmp_path))
    assert c["target"] == "socketio" and c["nodes"] == urls and c["gateway"] is None
    assert c["node_pids"] == {"sio1": 21, "sio2": 22}
    assert c["store_pids"] == {"redis": 11}


def test_options_of_a_peer_directory(tmp_path):
    urls = _peer_dir(tmp_path)
    o = options.parse_args(["direct", "--cluster-dir", str(tmp_path)])
    assert o.target == "socketio" and o.nodes == ",".join(urls) and o.gateway is None
    assert o.cluster_pids == {"sio1": 21, "sio2": 22}
    o = options.parse_args(["direct", "--gateway", "http://h:1"])
    assert o.target == "chatnet" and o.messages == 0


@pytest.mark.parametrize("argv", [
    ["direct", "--target", "socketio", "--gateway", "http://h:1"],
    ["rooms", "--target", "socketio", "--nodes", "ws://h:1/"],
    ["connections", "--target", "socketio", "--nodes", "ws://h:1/"],
    ["room", "--target", "socketio", "--nodes", "ws://h:1/", "--create-users", "--mongo", "mongodb://h/"],
    ["direct", "--nodes", "ws://h:1/", "--messages", "-1"],
])
def test_option_checks_of_the_peer(argv, capsys):
    with pytest.raises(SystemExit):
        options.parse_args(argv)


# ---------------------------------------------------------------------------
# --messages: a fixed number per sender
# ---------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_messages_per_sender_end_the_send_phase(fake_cluster):  # noqa: F811
    c = fake_cluster(nodes=2)
    argv = ["direct", "--gateway", c.gateway, "--pairs", "3", "--window", "4", "--messages", "25",
            *SHORT]
    argv[argv.index("--duration") + 1] = "60"
    r = await cli.run_async(argv)
    assert "error" not in r, r
    assert r["sent"] == r["delivered"] == 75 and r["lost"] == 0, r
    assert r["params"]["messages"] == 25
    assert r["wall_seconds"] < 30, r  # ended by the count, not by --duration
    assert r["bench_cpu_s"] is not None and r["target"] == "chatnet"


@pytest_twisted.ensureDeferred
async def test_messages_per_sender_in_a_room(fake_cluster):  # noqa: F811
    c = fake_cluster(nodes=3)
    argv = ["room", "--gateway", c.gateway, "--members", "6", "--senders", "2", "--window", "5",
            "--messages", "10", *SHORT]
    argv[argv.index("--duration") + 1] = "60"
    r = await cli.run_async(argv)
    assert "error" not in r, r
    assert r["sent"] == 20 and r["delivered"] == r["expected"] == 120 and r["lost"] == 0, r
    assert r["wall_seconds"] < 30, r


# ---------------------------------------------------------------------------
# the Socket.IO client against an in-process server speaking the wire format
# ---------------------------------------------------------------------------


class FakeSocketIO:
    def __init__(self):
        self.users = {}  # username -> protocol
        self.rooms = {}
        self.pongs = 0
        self.ports = []


class FakeSocketIOProtocol(WebSocketServerProtocol):
    """The server's side of bench/peers/socketio/server.js, in Python: it
    opens the session, pings right after the namespace connect, and serves
    login, joinRoom and chat."""

    username = None

    def onOpen(self):
        self.sendMessage(b'0{"sid":"e1","upgrades":[],"pingInterval":25000,"pingTimeout":20000}')

    def emit(self, name, data):
        self.sendMessage(socketio.encode_event(name, data))

    def onMessage(self, payload, isBinary):
        s = self.factory.server
        if payload == b"40":
            self.sendMessage(b'40{"sid":"s1"}')
            self.sendMessage(b"2")
            return
        if payload == b"3":
            s.pongs += 1
            return
        p = socketio.decode(payload)
        name, data = p.event, p.args[0]
        if name == "login":
            self.username = data["username"]
            s.users[self.username] = self
            self.sendMessage(socketio.encode_ack(p.ack_id, {"username": self.username,
                                                            "nodeId": self.factory.node_id}))
        elif name == "joinRoom":
            s.rooms.setdefault(data["roomName"], set()).add(self.username)
            self.sendMessage(socketio.encode_ack(p.ack_id, {"roomName": data["roomName"]}))
        elif name == "chat":
            out = {"from": self.username, "message": data["message"], "ts": 1, "format": "text"}
            if data.get("isGroup"):
                out["roomName"] = data["roomName"]
                for member in s.rooms.get(data["roomName"], ()):
                    s.users[member].emit("chat", out)
            else:
                out["roomName"] = ""
                s.users[data["to"]].emit("chat", out)


@pytest.fixture
def fake_socketio():
    server = FakeSocketIO()
    ports = []
    for i in range(3):
        f = WebSocketServerFactory()
        f.protocol = FakeSocketIOProtocol
        f.server = server
        f.node_id = f"sio{i + 1}"
        port = reactor.listenTCP(0, f, interface="127.0.0.1")
        ports.append(port)
        server.ports.append(port.getHost().port)
    yield server
    for p in ports:
        p.stopListening()


@pytest_twisted.ensureDeferred
async def test_socketio_client_direct_and_room(fake_socketio):
    nodes = ",".join(f"ws://127.0.0.1:{p}/" for p in fake_socketio.ports)
    r = await cli.run_async(["direct", "--target", "socketio", "--nodes", nodes, "--pairs", "3",
                             "--window", "3", *SHORT])
    assert "error" not in r, r
    assert r["target"] == "socketio"
    assert r["sent"] > 30 and r["delivered"] == r["sent"] and r["lost"] == 0, r
    assert r["same_node_pairs"] == 0, r
    assert r["nodes"] == {"sio1": 2, "sio2": 2, "sio3": 2}, r
    assert fake_socketio.pongs == 6  # every client answered the server's ping
    assert r["errors"] == {}, r

    r = await cli.run_async(["room", "--target", "socketio", "--nodes", nodes, "--members", "6",
                             "--senders", "2", "--user-start", "20", *SHORT])
    assert "error" not in r, r
    assert r["delivered"] == r["expected"] == r["sent"] * 6 and r["lost"] == 0, r


# ---------------------------------------------------------------------------
# the compare table
# ---------------------------------------------------------------------------


def _result(scenario, rate, lost=0, nodes=None, stores=None, delivered=1000):
    return {"scenario": scenario, "msgs_per_s": rate, "p50_ms": 10.0, "p99_ms": 40.0,
            "sent": delivered, "delivered": delivered, "lost": lost, "duplicated": 0,
            "node_cpu_s": nodes or {}, "store_cpu_s": stores or {}, "bench_cpu_s": 0.5,
            "command": "chatnet-bench ..."}


def test_compare_rows_and_table():
    rows = [
        compare.row("chatnet", _result("direct", 4000.0, nodes={"node1": 0.2, "node2": 0.2},
                                       stores={"redis": 0.05, "mongo": 0.1})),
        compare.row("socketio", _result("direct", 5000.0, nodes={"sio1": 0.1, "sio2": 0.1},
                                        stores={"redis": 0.01})),
        compare.row("chatnet", _result("direct", 3000.0, lost=2)),
        compare.row("socketio", _result("direct", 6000.0)),
    ]
    assert rows[0]["server_cpu_s"] == 0.55
    assert rows[0]["server_cpu_us_per_delivery"] == 550.0
    assert rows[0]["cpu_us_per_delivery"]["mongo"] == 100.0
    text = compare.table(rows, "socketio", ["direct"])
    assert "| direct msgs/s (median) | 3,500 | 5,500 | 0.64 |" in text
    assert "| direct lost (all runs) | 2 | 0 | |" in text
    assert text.count("\n| ") >= 4 + 8
    assert orjson.dumps(rows)  # the JSON lines


def test_compare_light_is_direct_at_100_messages_a_second():
    """`light` runs the load generator's `direct` at 10 pairs x 10/s, and its
    rows keep their own name in the table."""
    assert compare.BENCH_SCENARIO["light"] == "direct"
    args = compare.SCENARIO_ARGS["light"]
    pairs, rate = int(args[args.index("--pairs") + 1]), float(args[args.index("--rate") + 1])
    assert pairs * rate == 100 and args[args.index("--window") + 1] == "0"
    assert options.build_parser().parse_args(["direct", "--nodes", "ws://h:1/", *args]).rate == rate
    rows = [compare.row(system, {**_result("direct", 100.0), "scenario": "light", "pairs": 10})
            for system in ("chatnet", "socketio")]
    text = compare.table(rows, "socketio", ["light"])
    assert "| light msgs/s (median) | 100 | 100 | 1.00 |" in text
    assert rows[0]["pairs_or_members"] == 10


@pytest.mark.process  # it starts a busy process and an idle one
def test_compare_settle_reports_the_work_left_behind(tmp_path):
    """`settle` reads each listed process's CPU until they are idle: a
    sleeping process used none, a busy one is reported with what it used
    (waited for at most the limit)."""
    import subprocess
    import sys

    idle = subprocess.Popen(["sleep", "60"])
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        (tmp_path / "pids.json").write_text(json.dumps({"processes": [
            {"name": "idle", "pid": idle.pid}, {"name": "busy", "pid": busy.pid}]}))
        _waited, used = compare.settle(tmp_path, limit=1.0)
        assert set(used) == {"busy"} and used["busy"] > 0, used
        busy.kill()
        busy.wait()
        (tmp_path / "pids.json").write_text(json.dumps({"processes": [
            {"name": "idle", "pid": idle.pid}]}))
        assert compare.settle(tmp_path, limit=5.0)[1] == {}
    finally:
        for p in (idle, busy):
            p.kill()
            p.wait()
