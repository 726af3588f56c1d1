"""Fuzzing a real node's internal port before authentication: random bytes,
random and mutated AMP boxes (every command name, random arguments, the
handshake with wrong MACs, huge lengths). Whatever arrives is answered with
an AMP error (a Challenge with a nonce at most) or the connection is closed;
nothing gets done, the node's memory stays bounded and it keeps serving its
WebSocket clients and its peers."""
import socket

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chatnet.protocols import amp_commands as cmd
from chatnet.protocols.internal import PRE_AUTH_SECONDS, client_mac
from tests.harness import ChatCluster
from tests.rawamp import RawPeer, encode, rss_kib

pytestmark = pytest.mark.process  # twistd chat nodes (tests/tiers.py)

COMMANDS = [c.commandName for c in (cmd.Challenge, cmd.Authenticate, cmd.SessionChanged, cmd.Deliver,
                                    cmd.DeliverMany, cmd.RoomDeliver, cmd.RoomMember, cmd.RoomNotice)]
ARGUMENTS = sorted({name for c in (cmd.Authenticate, cmd.SessionChanged, cmd.Deliver, cmd.DeliverMany,
                                   cmd.RoomDeliver, cmd.RoomMember, cmd.RoomNotice) for name, _ in c.arguments})
SPECIAL = [b"_command", b"_ask", b"_answer", b"_error", b"_error_code", b"_error_description"]
VICTIM = "user5"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, redis_server, zookeeper_server, mongo_server):
    c = ChatCluster(tmp_path_factory.mktemp("fuzz"), redis_server, zookeeper_server, mongo_server, nodes=2,
                    extra_args=["--rate-limit", "0"])
    c.start()
    yield c
    c.stop()


# -- what is sent ---------------------------------------------------------------

values = st.one_of(
    st.binary(max_size=64),
    st.sampled_from([b"", b"0", b"-1", b"True", b"False", b"1" * 40, VICTIM.encode(),
                     b"\x00\x05user5", b'{"from":"evil"}', b"\xff\xfe"]),
    st.integers(0, 2000).map(lambda n: b"v" * n),
)
keys = st.one_of(st.sampled_from(SPECIAL + ARGUMENTS), st.binary(min_size=1, max_size=12))


@st.composite
def command_box(draw):
    """A well-formed box of a real command name with random arguments."""
    name = draw(st.sampled_from(COMMANDS))
    pairs = [(b"_command", name), (b"_ask", str(draw(st.integers(0, 99))).encode())]
    pairs += draw(st.lists(st.tuples(keys, values), max_size=8))
    if name == cmd.Deliver.commandName and draw(st.booleans()):
        pairs += [(b"msgId", b"fuzz"), (b"data", b'{"message":"fuzz"}'),
                  (b"usernames", b"\x00\x05" + VICTIM.encode()), (b"everyone", b"True")]
    return encode(pairs)


@st.composite
def handshake_with_wrong_mac(draw):
    node = draw(st.sampled_from(["node1", "node2", "ghost", ""]))
    mac = draw(st.one_of(st.binary(min_size=32, max_size=32),
                         st.just(client_mac(b"not the secret", b"n" * 32, node)), st.binary(max_size=40)))
    return encode([(b"_command", b"Challenge"), (b"_ask", b"1")]) + encode(
        [(b"_command", b"Authenticate"), (b"_ask", b"2"), (b"nodeId", node.encode()),
         (b"nonce", draw(st.binary(max_size=40))), (b"mac", mac)])


huge_lengths = st.sampled_from([
    b"\xff\xff" + b"k" * 300,                       # a key longer than AMP allows
    b"\x00\x01k\xff\xff" + b"v" * 1000,             # a value announced at 64 KiB, cut short
    b"\x00\x08_command\xff\xff",                    # a length and nothing else
    b"\x00\x01a\x13\x88" + b"x" * 5000 + b"\x00\x01b\xff\xff" + b"y" * 100,  # beyond the pre-auth bytes
])


@st.composite
def mutated(draw):
    """A valid box with a few bytes changed, inserted or removed."""
    data = bytearray(draw(st.one_of(command_box(), handshake_with_wrong_mac())))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, max(0, len(data) - 1)))
        op = draw(st.sampled_from(["flip", "insert", "delete"]))
        if op == "flip" and data:
            data[at] ^= draw(st.integers(1, 255))
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=4))
        elif data:
            del data[at]
    return bytes(data)


payloads = st.lists(
    st.one_of(st.binary(max_size=3000), command_box(), handshake_with_wrong_mac(), huge_lengths, mutated()),
    min_size=1, max_size=4,
).map(b"".join)


# -- what must hold -------------------------------------------------------------


def exchange(port, payload):
    """Send C{payload}, close our side, and return every box the node sent
    back before it closed (and whether what it sent parsed as boxes)."""
    peer = RawPeer(port, timeout=10)
    try:
        try:
            peer.sock.sendall(payload)
            peer.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # dropped while we were still sending
        boxes = []
        while True:
            box = peer.read_box(timeout=10)
            if box is None:
                return boxes
            boxes.append(box)
    finally:
        peer.close()


def answers_until_closed(peer, timeout):
    """Every box the node sends until it closes the connection by itself."""
    boxes = []
    try:
        while (box := peer.read_box(timeout=timeout)) is not None:
            boxes.append(box)
    except AssertionError:
        raise AssertionError(f"a fuzzed unauthenticated connection was left open; answers: {boxes}")
    return boxes


def assert_nothing_done(boxes):
    for box in boxes:
        if b"_error" in box:
            continue
        # the only answer a stranger may get: a Challenge's nonce
        assert set(box) == {b"_answer", b"nonce"}, f"an unauthenticated peer got {box}"


@pytest.fixture(scope="module")
def watch(cluster):
    """The victim logged in on node1 (every fuzzed Deliver targets it) and
    node1's RSS at the start."""
    victim = cluster.client("node1", username=VICTIM)
    yield victim, rss_kib(cluster.nodes["node1"].pid)
    victim.close()


@settings(max_examples=250, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(payload=payloads)
def test_fuzz_before_authentication(cluster, watch, payload):
    assert_nothing_done(exchange(cluster.nodes["node1"].internal_port, payload))


@settings(max_examples=6, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(batch=st.lists(payloads, min_size=8, max_size=8))
def test_fuzzed_connections_are_closed_by_the_node(cluster, watch, batch):
    """Without our side closing: the node ends each connection itself, at
    once for a refused or oversize one, after the pre-auth time for one
    that has not finished its handshake."""
    peers = [RawPeer(cluster.nodes["node1"].internal_port, timeout=10) for _ in batch]
    try:
        for peer, payload in zip(peers, batch):
            try:
                peer.sock.sendall(payload)
            except OSError:
                pass
        for peer in peers:
            assert_nothing_done(answers_until_closed(peer, timeout=PRE_AUTH_SECONDS + 10))
    finally:
        for peer in peers:
            peer.close()


def test_after_the_fuzzing_the_node_is_unharmed(cluster, watch):
    victim, rss_before = watch
    assert victim.chats(0.5) == [], "a fuzzed command was carried out"
    grown = rss_kib(cluster.nodes["node1"].pid) - rss_before
    assert grown < 16 * 1024, f"node1 grew by {grown} KiB while being fuzzed"
    # clients are served, and the nodes still talk to each other
    alice = cluster.client("node2", username="user1")
    try:
        alice.send("chat", {"to": VICTIM, "message": "from node2"})
        assert victim.expect(action="chat")["data"]["message"] == "from node2"
        victim.send("chat", {"to": "user1", "message": "and back"})
        assert alice.expect(action="chat")["data"]["message"] == "and back"
    finally:
        alice.close()
