"""The export plugin's buffer, without a broker: bounded, oldest dropped first,
drops counted and logged; and its options. Then messages, edits and
deletions through a real RabbitMQ broker."""
import json
import time

import pika
import pytest
import pytest_twisted
from twisted.internet import reactor, task
from twisted.logger import globalLogPublisher

from chatnet.domain.messages import ChatMessage, MessageRevision, dm_channel, room_channel
from chatnet.ops.export import AmqpExport, message_json, revision_json


class Node:
    node_id = "n1"

    def __init__(self, clock=None):
        self.reactor = clock or task.Clock()


def message(i, room=""):
    return ChatMessage(f"{i:024x}", "ann", f"text {i}", 1000 + i, "text", "" if room else "bob", room, i)


def test_full_buffer_drops_the_oldest_and_counts():
    seen = []
    globalLogPublisher.addObserver(seen.append)
    try:
        export = AmqpExport(Node(), {"buffer": "3"})
        for i in range(5):
            export.message_accepted(message(i))
    finally:
        globalLogPublisher.removeObserver(seen.append)
    assert export.dropped == 2 and export.waiting == 3
    assert [json.loads(body)["seq"] for _, body in export.buffer] == [2, 3, 4]
    drops = [e for e in seen if "export buffer full" in e.get("log_format", "")]
    assert len(drops) == 1 and drops[0]["total"] == 1  # then one line per LOG_EVERY seconds


def test_routing_key_template_and_document():
    export = AmqpExport(Node(), {"routing-key": "chat.{kind}.{node}"})
    export.message_accepted(message(1, room="lobby"))
    export.message_accepted(message(2))
    assert [key for key, _ in export.buffer] == ["chat.room.n1", "chat.direct.n1"]
    doc = json.loads(message_json(message(1, room="lobby"), "n1"))
    assert doc == {"msgId": f"{1:024x}", "channel": "room:lobby", "roomName": "lobby", "from": "ann", "to": "",
                   "message": "text 1", "ts": 1001, "format": "text", "seq": 1, "nodeId": "n1"}


def edit(i, room=""):
    channel = room_channel(room) if room else dm_channel("ann", "bob")
    return MessageRevision(f"{i:024x}", channel, room, "ann", "" if room else "bob", i, "ann", 5000 + i, f"new {i}")


def deletion(i, room="", by="ann"):
    channel = room_channel(room) if room else dm_channel("ann", "bob")
    return MessageRevision(f"{i:024x}", channel, room, "ann", "" if room else "bob", i, by, 6000 + i)


def test_edits_and_deletions_have_their_own_documents_and_routing_keys():
    export = AmqpExport(Node(), {"routing-key": "chat.{kind}.{node}"})
    export.message_edited(edit(1, room="lobby"))
    export.message_deleted(deletion(2, room="lobby", by="mod"))
    export.message_edited(edit(3))
    export.message_deleted(deletion(4))
    assert [key for key, _ in export.buffer] == [
        "chat.room.edited.n1", "chat.room.deleted.n1", "chat.direct.edited.n1", "chat.direct.deleted.n1"]
    assert json.loads(revision_json(edit(1, room="lobby"), "n1")) == {
        "event": "edited", "msgId": f"{1:024x}", "channel": "room:lobby", "roomName": "lobby", "from": "ann",
        "to": "", "seq": 1, "by": "ann", "editedAt": 5001, "message": "new 1", "nodeId": "n1"}
    gone = json.loads(revision_json(deletion(2, room="lobby", by="mod"), "n1"))
    assert gone == {"event": "deleted", "msgId": f"{2:024x}", "channel": "room:lobby", "roomName": "lobby",
                    "from": "ann", "to": "", "seq": 2, "by": "mod", "deletedAt": 6002, "nodeId": "n1"}
    assert json.loads(revision_json(edit(3), "n1"))["to"] == "bob"


def test_edits_and_deletions_share_the_bound_and_the_drop_count():
    export = AmqpExport(Node(), {"buffer": "2"})
    export.message_accepted(message(1))
    export.message_edited(edit(1))
    export.message_deleted(deletion(1))
    export.message_accepted(message(2))
    assert export.dropped == 2 and export.waiting == 2
    assert [json.loads(body).get("event", "message") for _, body in export.buffer] == ["deleted", "message"]


def _read_queue(url, queue, count, timeout=30.0):
    """C{count} documents from C{queue}, in the order the broker has them."""
    got = []
    deadline = time.monotonic() + timeout
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = connection.channel()
        while len(got) < count and time.monotonic() < deadline:
            method, properties, body = channel.basic_get(queue, auto_ack=True)
            if method is None:
                time.sleep(0.05)
                continue
            got.append((method.routing_key, json.loads(body)))
    finally:
        connection.close()
    return got


@pytest.mark.process  # RabbitMQ takes some 20 s to start: the fast tier keeps to the stores that start at once
@pytest_twisted.ensureDeferred
async def test_edits_and_deletions_reach_the_broker_confirmed(rabbitmq_server):
    """A message, its edit and its deletion, published to a real RabbitMQ
    and confirmed by it: a queue bound to C{chat.#} gets the three
    documents in order, one bound to C{chat.room} the message only."""
    exchange = "chatnet.revisions"
    connection = pika.BlockingConnection(pika.URLParameters(rabbitmq_server.url))
    try:
        channel = connection.channel()
        channel.exchange_declare(exchange, exchange_type="topic", durable=True)
        for queue, key in (("revisions.all", "chat.#"), ("revisions.messages", "chat.room")):
            channel.queue_declare(queue)
            channel.queue_purge(queue)
            channel.queue_bind(queue, exchange, routing_key=key)
    finally:
        connection.close()
    export = AmqpExport(Node(reactor), {"url": rabbitmq_server.url, "exchange": exchange})
    export.startService()
    try:
        export.message_accepted(message(7, room="lobby"))
        export.message_edited(edit(7, room="lobby"))
        export.message_deleted(deletion(7, room="lobby", by="mod"))
        await export.drained()
        assert export.published == 3 and export.dropped == 0
    finally:
        await export.stopService()
    everything = _read_queue(rabbitmq_server.url, "revisions.all", 3)
    assert [(key, doc.get("event"), doc.get("message")) for key, doc in everything] == [
        ("chat.room", None, "text 7"), ("chat.room.edited", "edited", "new 7"), ("chat.room.deleted", "deleted", None)]
    assert {doc["msgId"] for _, doc in everything} == {f"{7:024x}"}
    assert [doc.get("event") for _, doc in _read_queue(rabbitmq_server.url, "revisions.messages", 1)] == [None]


@pytest.mark.parametrize("options", [
    {"url": "http://x"}, {"buffer": "0"}, {"buffer": "many"}, {"routing-key": "{nope}"},
    {"declare": "maybe"}, {"colour": "red"},
])
def test_bad_options_are_refused(options):
    with pytest.raises(ValueError):
        AmqpExport(Node(), options)
