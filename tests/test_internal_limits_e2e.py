"""The internal port of real nodes against peers that are not (or not
entirely) cluster members: an endless box, an idle connection, a stolen
node id, a session announced for another node. The nodes keep serving
their clients throughout.

node1's internal port is on 127.0.0.1 and node2's on 127.0.0.2 (outgoing
links leave from there too), so that a node id is bound to an address."""
import time

import pytest

from chatnet.protocols.internal import MAX_BOX_BYTES, PRE_AUTH_SECONDS
from tests.harness import ChatCluster
from tests.rawamp import RawPeer, flood, rss_kib

INTERFACES = {"node1": "127.0.0.1", "node2": "127.0.0.2"}


class TwoAddressCluster(ChatCluster):
    def node_args(self, node_id, port, internal_port):
        args = super().node_args(node_id, port, internal_port)
        args[args.index("--internal") + 1] = f"tcp:{internal_port}:interface={INTERFACES[node_id]}"
        return args


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, redis_server, zookeeper_server, mongo_server):
    c = TwoAddressCluster(tmp_path_factory.mktemp("limits"), redis_server, zookeeper_server, mongo_server,
                          nodes=2, extra_args=["--rate-limit", "0"])
    c.start()
    yield c
    c.stop()


def peer(cluster, node_id, source="127.0.0.1"):
    return RawPeer(cluster.nodes[node_id].internal_port, host=INTERFACES[node_id], source=source)


def assert_chat_works(cluster, text):
    alice = cluster.client("node1", username="user1")
    bob = cluster.client("node2", username="user2")
    try:
        alice.send("chat", {"to": "user2", "message": text})
        assert bob.expect(action="chat")["data"]["message"] == text
        bob.send("chat", {"to": "user1", "message": text + " back"})
        assert alice.expect(action="chat")["data"]["message"] == text + " back"
    finally:
        alice.close()
        bob.close()


def test_endless_box_before_auth_is_cut_and_memory_stays(cluster):
    pid = cluster.nodes["node1"].pid
    assert_chat_works(cluster, "warm up")
    before = rss_kib(pid)
    peers = [peer(cluster, "node1") for _ in range(3)]
    try:
        for p in peers:
            sent = flood(p, limit_bytes=30 * 1024 * 1024)
            assert p.closed(timeout=10), "the node kept reading an endless unauthenticated box"
            assert sent < 30 * 1024 * 1024
        grown = rss_kib(pid) - before
    finally:
        for p in peers:
            p.close()
    assert grown < 8 * 1024, f"node1 grew by {grown} KiB"
    assert_chat_works(cluster, "still here")


def test_idle_unauthenticated_connection_is_closed(cluster):
    idle = peer(cluster, "node1")
    try:
        start = time.monotonic()
        assert idle.closed(timeout=PRE_AUTH_SECONDS + 10), "an idle unauthenticated connection stayed open"
        assert time.monotonic() - start >= PRE_AUTH_SECONDS - 1
    finally:
        idle.close()


def test_oversize_box_after_auth_closes(cluster):
    # from 127.0.0.1, node1's address: the handshake as node1 to node2 is accepted
    member = peer(cluster, "node2", source="127.0.0.1")
    try:
        answer = member.login(cluster.secret.encode(), "node1")
        assert answer is not None and b"mac" in answer, answer
        # (what the kernel's socket buffers take in before the reset arrives
        # is counted as sent too: a few MB at most)
        sent = flood(member, limit_bytes=100 * MAX_BOX_BYTES)
        assert member.closed(timeout=10), "an oversize box did not close the connection"
        assert sent < 100 * MAX_BOX_BYTES
    finally:
        member.close()
    assert_chat_works(cluster, "after an oversize box")


def test_a_stolen_or_unknown_node_id_is_refused(cluster):
    secret = cluster.secret.encode()
    # node2 is registered at 127.0.0.2: claiming it from 127.0.0.1 fails
    thief = peer(cluster, "node1", source="127.0.0.1")
    try:
        answer = thief.login(secret, "node2")
        assert answer is not None and answer.get(b"_error_code") == b"AUTH_FAILED", answer
        assert thief.closed(timeout=10)
    finally:
        thief.close()
    stranger = peer(cluster, "node1", source="127.0.0.1")
    try:
        answer = stranger.login(secret, "node9")
        assert answer is not None and answer.get(b"_error_code") == b"UNKNOWN_NODE", answer
        assert stranger.closed(timeout=10)
    finally:
        stranger.close()
    assert_chat_works(cluster, "after the thieves")


def test_session_changed_for_a_foreign_node_is_refused(cluster):
    member = peer(cluster, "node2", source="127.0.0.1")
    try:
        assert b"mac" in member.login(cluster.secret.encode(), "node1")
        session = dict(username=b"user3", sessionId=b"s", loginTime=b"1", alliance=b"", version=b"999",
                       online=b"True")
        answer = member.call(b"SessionChanged", nodeId=b"node2", **session)
        assert answer.get(b"_error_code") == b"WRONG_NODE", answer
        answer = member.call(b"SessionChanged", nodeId=b"node1", **session)
        assert b"_answer" in answer, answer
    finally:
        member.close()
