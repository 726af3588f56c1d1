"""``--zookeeper-auth``: nodes authenticate to ZooKeeper with a digest
identity and only that identity may change chatnet's znodes."""
import json

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import NoAuthError
from twisted.python import usage

from chatnet.tap_node import Options
from tests.harness import ChatCluster, make_chroot

AUTH = "chatnet:zk-pw"


def parse(*args):
    options = Options()
    options.parseOptions(["--cluster-secret", "s", *args])
    return options.config()


def test_option_and_environment(monkeypatch):
    monkeypatch.delenv("CHATNET_ZOOKEEPER_AUTH", raising=False)
    assert parse().zookeeper_auth == ""
    assert parse("--zookeeper-auth", "u:p:w").zookeeper_auth == "u:p:w"
    monkeypatch.setenv("CHATNET_ZOOKEEPER_AUTH", "env:pw")
    assert parse().zookeeper_auth == "env:pw"
    assert parse("--zookeeper-auth", "cli:pw").zookeeper_auth == "cli:pw"
    for bad in ("nopassword", ":pw", "user:"):
        with pytest.raises(usage.UsageError):
            parse("--zookeeper-auth", bad)


def kazoo(cluster, auth=None):
    zk = KazooClient(cluster.zk_hosts, timeout=5, auth_data=[("digest", auth)] if auth else None)
    zk.start(timeout=10)
    return zk


@pytest.fixture
def cluster(tmp_path, redis_server, zookeeper_server, mongo_server):
    c = ChatCluster(tmp_path, redis_server, zookeeper_server, mongo_server, nodes=2,
                    extra_args=["--zookeeper-auth", AUTH])
    # the chroot exists with an open ACL, and so does /chatnet/nodes (left by
    # a cluster that ran without credentials)
    make_chroot(zookeeper_server.port, c.chroot)
    zk = kazoo(c)
    zk.ensure_path("/chatnet/nodes")
    zk.stop()
    zk.close()
    c.start()
    yield c
    c.stop()


@pytest.mark.process
def test_cluster_with_zookeeper_auth_works_and_strangers_cannot_change_it(cluster):
    assert cluster.leader() in ("node1", "node2")
    alice = cluster.client("node1", username="user1")
    bob = cluster.client("node2", username="user2")
    try:
        alice.send("chat", {"to": "user2", "message": "across nodes"})
        assert bob.expect(action="chat")["data"]["message"] == "across nodes"
    finally:
        alice.close()
        bob.close()

    stranger = kazoo(cluster)
    try:
        # anybody may read the membership ...
        info = json.loads(stranger.get("/chatnet/nodes/node1")[0])
        assert info["nodeId"] == "node1"
        # ... nobody else may change it
        with pytest.raises(NoAuthError):
            stranger.delete("/chatnet/nodes/node1")
        with pytest.raises(NoAuthError):
            stranger.set("/chatnet/nodes/node1", b'{"internalHost": "10.6.6.6"}')
        with pytest.raises(NoAuthError):
            stranger.create("/chatnet/nodes/intruder", b"{}", ephemeral=True)
        with pytest.raises(NoAuthError):
            stranger.create("/chatnet/election/n_", b"intruder", ephemeral=True, sequence=True)
        with pytest.raises(NoAuthError):
            stranger.delete("/chatnet/election", recursive=True)
        assert stranger.exists("/chatnet/nodes/node1")
    finally:
        stranger.stop()
        stranger.close()
    wrong = kazoo(cluster, auth="chatnet:guess")
    try:
        with pytest.raises(NoAuthError):
            wrong.delete("/chatnet/nodes/node2")
    finally:
        wrong.stop()
        wrong.close()
    assert sorted(n["nodeId"] for n in cluster.wait_for_nodes(2)) == ["node1", "node2"]
