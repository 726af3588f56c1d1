"""Outages longer than the timeouts, with real processes: after them every
still-connected user is reachable again and every node and the gateway serve
again, by themselves. Each test breaks stores of its own (``services``)."""
import time

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import NoNodeError

from tests.harness import ChatCluster

SESSION_TIMEOUT = 2.0


def wait_until(predicate, timeout, what, interval=0.1):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
        except AssertionError as e:
            last = e
        else:
            if last:
                return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


@pytest.fixture
def paused():
    """Servers paused by the test: resumed whatever happens."""
    servers = []
    yield servers
    for server in servers:
        server.resume()


def reachable(sender, recipient, tag):
    """A direct message from C{sender} reaches C{recipient} and userInfo says online."""
    info = sender.request("userInfo", {"username": recipient.username}, timeout=5)
    if info["action"] != "userInfo":
        return False
    text = f"ping {tag} {time.monotonic()}"
    sender.send("chat", {"to": recipient.username, "message": text})
    got = [f["data"]["message"] for f in recipient.chats(1.0)]
    errors = [f for f in sender.quiet(0.05) if f.get("action") == "error"]
    return text in got and not errors


def node_sessions(cluster):
    """Node id -> the ZooKeeper session that owns its ephemeral C{/chatnet/nodes/<id>}."""
    zk = KazooClient(cluster.zk_hosts, timeout=5)
    zk.start(timeout=10)
    try:
        owners = {}
        for node in zk.get_children("/chatnet/nodes"):
            try:
                owners[node] = zk.get(f"/chatnet/nodes/{node}")[1].ephemeralOwner
            except NoNodeError:
                pass
        return owners
    finally:
        zk.stop()
        zk.close()


def test_zookeeper_pause_longer_than_the_session_timeout(tmp_path, services, redis_server, mongo_server, paused):
    zookeeper = services.zookeeper()
    cluster = ChatCluster(tmp_path, redis_server, zookeeper, mongo_server, nodes=3,
                          session_timeout=SESSION_TIMEOUT, extra_args=["--rate-limit", "0"]).start()
    try:
        users = {node: cluster.client(node, f"user{i}") for i, node in enumerate(sorted(cluster.nodes), 1)}
        clients = list(users.values())
        before = node_sessions(cluster)
        assert set(before) == set(cluster.nodes)
        zookeeper.pause()
        paused.append(zookeeper)
        time.sleep(SESSION_TIMEOUT * 3)  # the nodes see ZooKeeper gone for longer than their sessions
        # A node reconnecting the moment ZooKeeper resumes could renew its
        # session before ZooKeeper's expiry tick: the nodes are held (SIGSTOP)
        # until ZooKeeper, running again, has expired every session.
        mark = {}
        for node, process in cluster.nodes.items():
            process.pause()
            paused.append(process)
            mark[node] = process.log_mark()
        zookeeper.resume()
        wait_until(lambda: not node_sessions(cluster), 30, "ZooKeeper expiring the nodes' sessions")
        for process in cluster.nodes.values():
            process.resume()
        for node, process in cluster.nodes.items():
            process.wait_for_log("zookeeper session lost", timeout=30, since=mark[node])
            process.wait_for_log("registered in zookeeper", timeout=30, since=mark[node])

        def all_registered():
            sessions = node_sessions(cluster)
            return sessions if set(sessions) == set(cluster.nodes) else None

        after = wait_until(all_registered, 30, "every node registered again")
        assert all(after[node] != before[node] for node in cluster.nodes), (before, after)
        for i, recipient in enumerate(clients):
            sender = clients[(i + 1) % len(clients)]
            wait_until(lambda: reachable(sender, recipient, i), 15,
                       f"{recipient.username} reachable from {sender.username}")
        # the leader's automatic room knows every user again
        text = "world after the pause"
        clients[0].send("chat", {"roomName": "world", "isGroup": True, "message": text})
        for client in clients:
            wait_until(lambda: text in [f["data"]["message"] for f in client.chats(0.5)], 10,
                       f"{client.username} gets the world message")
        cluster.wait_for_nodes(3)
    finally:
        cluster.stop()


def test_redis_stall_then_kill_and_restart(tmp_path, services, zookeeper_server, mongo_server, paused):
    redis = services.redis()
    cluster = ChatCluster(tmp_path, redis, zookeeper_server, mongo_server, nodes=1,
                          session_timeout=SESSION_TIMEOUT,
                          extra_args=["--rate-limit", "0", "--store-timeout", "1"]).start()
    try:
        a = cluster.client("node1")
        a.login("user1", features=["ack"])
        b = cluster.client("node1", "user2")
        redis.pause()
        paused.append(redis)
        a.send("chat", {"to": "user2", "message": "while stalled"})
        a.error(503, timeout=10)
        time.sleep(3)  # both the node and the gateway reconnect to the stalled server
        redis.kill()
        redis.start()

        def acked():
            frame = a.request("chat", {"to": "user2", "message": "after"}, timeout=5)
            return frame["action"] == "ack"

        wait_until(acked, 20, "a chat acked after redis came back")
        wait_until(lambda: cluster.gateway_get("/server")[0] == 200, 20, "the gateway answering 200")
        assert "after" in [f["data"]["message"] for f in b.chats(2)]
    finally:
        cluster.stop()
