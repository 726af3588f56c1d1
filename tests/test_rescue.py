"""What a departed node acked but had not stored (chatnet.service.rescue), against a
real Redis and SecantusDB: the accept script notes the node's channels, the
rescue stores every message of the node's last window from them, and only
from them."""
import os
import struct
import time
import uuid

import pytest_twisted
from bson import ObjectId
from twisted.internet import reactor
from twisted.internet.task import Clock

from chatnet.domain.messages import ChatMessage
from chatnet.service.accept import Acceptor
from chatnet.service.history import History
from chatnet.service.popular import PopularWords
from chatnet.service.rescue import ACCEPTING, WINDOW, Rescuer, accepted_key
from chatnet.service.sequences import Sequences
from chatnet.stores.mongo import MongoStore


def message_id(second):
    """A unique message id made at C{second}."""
    return str(ObjectId(struct.pack(">I", int(second)) + os.urandom(8)))


class Node:
    """The accepting side of one node: its own clock (as a node's reactor)."""

    def __init__(self, node_id, redis, mongo, clock):
        self.clock = clock
        history = History(redis, mongo)
        self.acceptor = Acceptor(redis, Sequences(redis, mongo), history,
                                 PopularWords(redis, clock, window=60), node_id, reactor)

    async def send(self, count, sender, to="", room="", step=0.0):
        sent = []
        for i in range(count):
            m = ChatMessage(message_id(self.clock.seconds()), sender, f"m{i}",
                            int(self.clock.seconds() * 1000), "text", to, room)
            await self.acceptor.accept(m, [])
            sent.append(m)
            self.clock.advance(step)
        return sent


async def stored(mongo, messages):
    return await mongo.db.messages.count_documents({"_id": {"$in": [ObjectId(m.msgId) for m in messages]}})


@pytest_twisted.ensureDeferred
async def test_rescue_stores_the_whole_window_of_the_departed_node_only(redis, mongo_server):
    mongo = MongoStore(f"mongodb://127.0.0.1:{mongo_server.port}/t{uuid.uuid4().hex[:8]}").connect()
    try:
        start = time.time() - 1000
        clock_a, clock_b = Clock(), Clock()
        clock_a.advance(start)
        clock_b.advance(start + 100)
        a = Node("A", redis, mongo, clock_a)
        b = Node("B", redis, mongo, clock_b)

        # long before A died: stored long ago, outside the window
        old_room = await a.send(3, "ann", room="r1")
        old_dm = await a.send(2, "ann", to="bob")
        assert await redis.call("zscore", accepted_key("A"), "dm:ann\nbob") is not None
        clock_a.advance(100)
        # A's last window: 120 messages over 12 s into one room, none stored
        recent = await a.send(120, "ann", room="r1", step=0.1)
        # B, at the same time, in its own conversation
        theirs = await b.send(5, "carl", to="dan")

        # the older channel left A's set when its second changed
        assert await redis.call("zscore", accepted_key("A"), "dm:ann\nbob") is None
        assert await redis.call("zrange", accepted_key("A"), 0, -1) == ["room:r1"]
        assert 0 < await redis.call("ttl", accepted_key("A")) <= 2 * WINDOW + 2
        assert await stored(mongo, recent + old_room + old_dm + theirs) == 0

        rescuer = Rescuer(redis, mongo)
        assert await rescuer.departed({"B": {}}) == ["A"]
        assert await rescuer.node("A") == 120

        assert await stored(mongo, recent) == 120
        docs = await mongo.db.messages.find({"channel": "room:r1"})
        assert sorted(d["seq"] for d in docs) == list(range(4, 124))
        assert await stored(mongo, old_room + old_dm) == 0  # outside the window
        assert await stored(mongo, theirs) == 0  # B's channel is not touched
        assert await redis.call("exists", accepted_key("A")) == 0
        assert sorted(await redis.call("smembers", ACCEPTING)) == ["B"]
        assert await redis.call("zrange", accepted_key("B"), 0, -1) == ["dm:carl\ndan"]
        assert await rescuer.departed({"B": {}}) == []

        # a second rescue (a new leader redoing it) finds nothing left to do
        assert await rescuer.node("A") == 0
        assert await mongo.db.messages.count_documents({}) == 120
    finally:
        await mongo.disconnect()

