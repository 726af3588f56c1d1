"""The export plugin's buffer, without a broker: bounded, oldest dropped first,
drops counted and logged; and its options."""
import json

import pytest
from twisted.internet import task
from twisted.logger import globalLogPublisher

from chatnet.export import AmqpExport, message_json
from chatnet.messages import ChatMessage


class Node:
    node_id = "n1"

    def __init__(self):
        self.reactor = task.Clock()


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


@pytest.mark.parametrize("options", [
    {"url": "http://x"}, {"buffer": "0"}, {"buffer": "many"}, {"routing-key": "{nope}"},
    {"declare": "maybe"}, {"colour": "red"},
])
def test_bad_options_are_refused(options):
    with pytest.raises(ValueError):
        AmqpExport(Node(), options)
