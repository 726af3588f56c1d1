"""Operating a real node: event plugins (the shipped RabbitMQ export across a
broker restart, a third-party drop-in plugin that raises and hangs),
Prometheus metrics and /health on node and gateway, JSON logs."""
import json
import textwrap
import time
import urllib.error
import urllib.request
import uuid

import pika
import pytest
from prometheus_client.parser import text_string_to_metric_families

from devtools.localservices import ChatProcess, free_port
from tests.harness import ChatCluster, make_chroot, wait_until

FLAKY_PLUGIN = '''
from chatnet.ops.events import ChatEventPlugin

flaky = ChatEventPlugin("flaky", "flaky_listener.Flaky", "Raises on logins, never answers on messages.")
'''

FLAKY_LISTENER = '''
from twisted.internet import defer


class Flaky:
    def __init__(self, node, options):
        self.options = options

    def user_online(self, username, nodeId):
        raise RuntimeError("flaky listener: " + self.options.get("say", ""))

    def message_accepted(self, message):
        return defer.Deferred()  # never fires
'''


@pytest.fixture(scope="module")
def plugin_dir(tmp_path_factory):
    """A directory for PYTHONPATH with a drop-in plugin, as a third party ships one."""
    root = tmp_path_factory.mktemp("dropin")
    (root / "chatnet" / "plugins").mkdir(parents=True)
    (root / "chatnet" / "plugins" / "flaky_plugin.py").write_text(textwrap.dedent(FLAKY_PLUGIN))
    (root / "flaky_listener.py").write_text(textwrap.dedent(FLAKY_LISTENER))
    return root


@pytest.fixture(scope="module")
def ops(tmp_path_factory, redis_server, zookeeper_server, mongo_server, rabbitmq_server, plugin_dir):
    exchange = f"chatnet.test.{uuid.uuid4().hex[:8]}"
    metrics_port, gateway_metrics_port = free_port(), free_port()
    c = ChatCluster(
        tmp_path_factory.mktemp("ops"), redis_server, zookeeper_server, mongo_server, nodes=1,
        extra_args=[
            "--plugin", f"export:url={rabbitmq_server.url},exchange={exchange},retry-max=1,buffer=100",
            "--plugin", "flaky:say=hello",
            "--metrics", f"tcp:{metrics_port}:interface=127.0.0.1",
            "--log-format", "json",
        ],
        gateway_args=["--metrics", f"tcp:{gateway_metrics_port}:interface=127.0.0.1", "--log-format", "json"],
        env={"PYTHONPATH": str(plugin_dir)},
    )
    c.exchange = exchange
    c.metrics_port = metrics_port
    c.gateway_metrics_port = gateway_metrics_port
    c.rabbitmq = rabbitmq_server
    c.start()
    yield c
    c.stop()


def get(port, path):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def samples(port):
    status, body = get(port, "/metrics")
    assert status == 200
    out = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def value(metrics, name, **labels):
    return metrics.get((name, tuple(sorted(labels.items()))), 0.0)


class Consumer:
    """A queue bound to the export exchange, read with pika's blocking client."""

    def __init__(self, url, exchange):
        self.url = url
        self.exchange = exchange
        self.queue = f"{exchange}.q"
        with self._channel() as channel:
            channel.exchange_declare(self.exchange, exchange_type="topic", durable=True)
            channel.queue_declare(self.queue, durable=True)
            channel.queue_bind(self.queue, self.exchange, routing_key="chat.#")

    def _channel(self):
        consumer = self

        class Opened:
            def __enter__(self):
                self.connection = pika.BlockingConnection(pika.URLParameters(consumer.url))
                return self.connection.channel()

            def __exit__(self, *exc):
                self.connection.close()

        return Opened()

    def receive(self, msg_ids, timeout=30.0):
        """The exported documents of C{msg_ids} (duplicates merged), waiting
        up to C{timeout} seconds (reconnecting while the broker is away)."""
        wanted, got = set(msg_ids), {}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not wanted <= set(got):
            try:
                with self._channel() as channel:
                    while time.monotonic() < deadline and not wanted <= set(got):
                        method, properties, body = channel.basic_get(self.queue, auto_ack=True)
                        if method is None:
                            time.sleep(0.05)
                            continue
                        assert properties.content_type == "application/json"
                        document = json.loads(body)
                        document["routingKey"] = method.routing_key
                        got[document["msgId"]] = document
            except pika.exceptions.AMQPError:
                time.sleep(0.2)
        missing = wanted - set(got)
        assert not missing, f"not exported within {timeout}s: {missing}"
        return got


def send_direct(sender, receiver, text):
    """Send C{text} to C{receiver}'s user; returns its msgId once received."""
    sender.send("chat", {"to": receiver.username, "message": text})
    frame = receiver.expect(lambda f: f.get("action") == "chat" and f["data"]["message"] == text, timeout=10)
    return frame["data"]["msgId"]


def test_export_survives_a_broker_restart(ops):
    consumer = Consumer(ops.rabbitmq.url, ops.exchange)
    alice, bob = ops.client(username="user1"), ops.client(username="user2")
    try:
        first = send_direct(alice, bob, "exported once")
        [doc] = consumer.receive([first]).values()
        assert doc["from"] == "user1" and doc["to"] == "user2" and doc["message"] == "exported once"
        assert doc["channel"] == "dm:user1\nuser2" and doc["roomName"] == ""
        assert doc["nodeId"] == "node1" and doc["routingKey"] == "chat.direct"
        assert isinstance(doc["seq"], int) and isinstance(doc["ts"], int)

        ops.rabbitmq.stop()
        try:
            # chat goes on while the broker is away; the messages wait in the node
            later = [send_direct(alice, bob, f"while away {i}") for i in range(3)]
            node = samples(ops.metrics_port)
            assert value(node, "chatnet_export_connected") == 0
            assert value(node, "chatnet_export_buffered") >= 3
        finally:
            ops.rabbitmq.start()
        after = send_direct(alice, bob, "after the restart")
        got = consumer.receive(later + [after], timeout=45)
        assert [got[m]["message"] for m in later] == [f"while away {i}" for i in range(3)]
        node = wait_until(lambda: (lambda m: m if value(m, "chatnet_export_buffered") == 0 else None)(
            samples(ops.metrics_port)), 10, "the export buffer to drain")
        assert value(node, "chatnet_export_published_total") >= 5
        assert value(node, "chatnet_export_dropped_total") == 0
        assert value(node, "chatnet_export_connected") == 1
    finally:
        alice.close()
        bob.close()


def test_a_failing_plugin_never_breaks_chat(ops):
    alice, bob = ops.client(username="user3"), ops.client(username="user4")
    try:
        for i in range(5):
            send_direct(alice, bob, f"despite the plugin {i}")
        node = samples(ops.metrics_port)
        assert value(node, "chatnet_plugin_failures_total", plugin="flaky") >= 2  # its login handler raised
        assert value(node, "chatnet_plugin_pending", plugin="flaky") >= 5  # and it never answers
        assert value(node, "chatnet_plugin_failures_total", plugin="export") == 0
    finally:
        alice.close()
        bob.close()
    text = ops.nodes["node1"].log_path.read_text()
    assert "flaky listener: hello" in text  # the traceback is logged


def test_node_metrics_and_health(ops):
    before = samples(ops.metrics_port)
    alice, bob = ops.client(username="user5"), ops.client(username="user6")
    try:
        send_direct(alice, bob, "counted")
        alice.send("chat", {"to": "nobody-online", "message": "x"})
        alice.error(404)
        for _ in range(60):  # over the default burst of 40 frames
            alice.send("popular", {"n": 1})
        alice.error(429)
        after = samples(ops.metrics_port)
        assert value(after, "chatnet_logins_total") - value(before, "chatnet_logins_total") == 2
        assert value(after, "chatnet_messages_accepted_total", kind="direct") > value(
            before, "chatnet_messages_accepted_total", kind="direct")
        assert value(after, "chatnet_messages_delivered_total") > value(before, "chatnet_messages_delivered_total")
        assert value(after, "chatnet_requests_rejected_total", code="404") >= 1
        assert value(after, "chatnet_requests_rejected_total", code="429") >= 1
        assert value(after, "chatnet_rate_limit_hits_total") >= 1
        assert value(after, "chatnet_connections") >= 2
        assert value(after, "chatnet_leader") == 1
        assert value(after, "chatnet_zookeeper_registered") == 1
        assert ("chatnet_store_errors_total", (("store", "redis"),)) in after
    finally:
        alice.close()
        bob.close()
    status, body = get(ops.metrics_port, "/health")
    assert status == 200, body
    assert json.loads(body) == {"status": "ok", "checks": {"zookeeper": True, "redis": True, "mongodb": True}}
    assert get(ops.metrics_port, "/nothing")[0] == 404


def test_gateway_metrics_and_health(ops):
    for port in (ops.gateway_port, ops.gateway_metrics_port):
        status, body = get(port, "/health")
        assert status == 200, body
        assert json.loads(body)["checks"] == {"redis": True, "nodes": 1}
    assert ops.gateway_get("/server")[0] == 200
    gateway = samples(ops.gateway_metrics_port)
    assert value(gateway, "chatnet_gateway_requests_total", path="/server", status="200") >= 1
    assert value(gateway, "chatnet_gateway_nodes") == 1


def test_logs_are_json_lines(ops):
    # a login: the flaky plugin raises, which is logged (with its failure)
    ops.client(username="user9").close()
    wait_until(lambda: "flaky listener: hello" in ops.nodes["node1"].log_path.read_text() or None, 10,
               "the plugin's failure in the log")
    for path, process in ((ops.nodes["node1"].log_path, "node"), (ops.gateway.log_path, "gateway")):
        lines = [line for line in path.read_text().splitlines() if line.strip()]
        assert lines, path
        events = [json.loads(line) for line in lines]  # every line is one JSON object
        for event in events:
            assert {"time", "level", "namespace", "message"} <= set(event)
        if process == "node":
            [serving] = [e for e in events if "serving clients" in e["message"]]
            assert serving["node"] == "node1" and serving["level"] == "info"
            assert isinstance(serving["port"], int)
            assert any(e.get("plugin") == "flaky" and "failure" in e for e in events)


def test_health_fails_without_the_stores(tmp_path, zookeeper_server, mongo_server):
    """A node whose Redis is gone answers 503 on /health; so does a gateway."""
    dead_redis = f"redis://127.0.0.1:{free_port()}/0"
    chroot = make_chroot(zookeeper_server.port)
    port, metrics_port, gateway_port = free_port(), free_port(), free_port()
    node = ChatProcess(
        "chatnode",
        ["--zookeeper", f"127.0.0.1:{zookeeper_server.port}{chroot}", "--redis", dead_redis,
         "--mongo", f"mongodb://127.0.0.1:{mongo_server.port}/t{uuid.uuid4().hex[:8]}",
         "--listen", f"tcp:{port}:interface=127.0.0.1", "--cluster-secret", "s",
         "--metrics", f"tcp:{metrics_port}:interface=127.0.0.1", "--store-timeout", "0.5"],
        tmp_path / "node.log", ready_port=port, ready_log="serving clients",
    )
    gateway = ChatProcess(
        "chatgateway", ["--listen", f"tcp:{gateway_port}:interface=127.0.0.1", "--redis", dead_redis],
        tmp_path / "gateway.log", ready_port=gateway_port,
    )
    try:
        node.start(timeout=60)
        gateway.start(timeout=60)
        status, body = get(metrics_port, "/health")
        assert status == 503
        checks = json.loads(body)["checks"]
        assert checks == {"zookeeper": True, "redis": False, "mongodb": True}
        status, body = get(gateway_port, "/health")
        assert status == 503 and json.loads(body)["checks"] == {"redis": False, "nodes": 0}
    finally:
        node.stop()
        gateway.stop()


def test_edits_and_deletions_are_exported_from_a_node(ops):
    """A real node with the export plugin: a direct message's edit and
    deletion reach a queue bound to ``chat.direct.*`` (the edits and
    deletions of direct messages, not the messages)."""
    queue = f"{ops.exchange}.revisions"
    connection = pika.BlockingConnection(pika.URLParameters(ops.rabbitmq.url))
    try:
        channel = connection.channel()
        channel.exchange_declare(ops.exchange, exchange_type="topic", durable=True)
        channel.queue_declare(queue)
        channel.queue_bind(queue, ops.exchange, routing_key="chat.direct.*")
    finally:
        connection.close()
    alice, bob = ops.client(), ops.client(username="user6")
    try:
        assert "live" in alice.login("user5", features=["ack", "live"]).get("features", [])
        msg_id = send_direct(alice, bob, "typo")
        assert alice.request("edit", {"to": "user6", "msgId": msg_id, "message": "fixed"})["action"] == "edit"
        assert alice.request("delete", {"to": "user6", "msgId": msg_id})["action"] == "delete"
        got = []
        deadline = time.monotonic() + 30
        connection = pika.BlockingConnection(pika.URLParameters(ops.rabbitmq.url))
        try:
            channel = connection.channel()
            while len(got) < 2 and time.monotonic() < deadline:
                method, _, body = channel.basic_get(queue, auto_ack=True)
                if method is None:
                    time.sleep(0.05)
                    continue
                got.append((method.routing_key, json.loads(body)))
        finally:
            connection.close()
        assert [(key, doc["event"], doc["msgId"], doc["from"], doc["to"], doc["by"], doc.get("message"))
                for key, doc in got] == [
            ("chat.direct.edited", "edited", msg_id, "user5", "user6", "user5", "fixed"),
            ("chat.direct.deleted", "deleted", msg_id, "user5", "user6", "user5", None)]
        assert got[0][1]["nodeId"] == "node1" and isinstance(got[1][1]["deletedAt"], int)
    finally:
        alice.close()
        bob.close()
