"""Catching a node's users up after an outage (chatnet/catchup.py), against a
real Redis and SecantusDB: the users connected here get the recent messages
of their rooms they did not have, once, oldest first; nothing older than the
outage, nothing of other rooms."""
import os
import struct
import time
import uuid

import orjson
import pytest
import pytest_twisted
from bson import ObjectId
from twisted.internet.task import Clock

from chatnet.accept import Acceptor
from chatnet.catchup import CatchUp
from chatnet.service.delivery import RecentDeliveries
from chatnet.history import History
from chatnet.messages import ChatMessage
from chatnet.popular import PopularWords
from chatnet.sequences import Sequences
from chatnet.sessions import LocalSessions, SessionRecord
from chatnet.stores.mongo import MongoStore


class Connection:
    def __init__(self, username, alliance=""):
        self.record = SessionRecord.new(username, "n1", 1000, alliance)
        self.got = []


def message_id(at):
    return str(ObjectId(struct.pack(">I", int(at)) + os.urandom(8)))


@pytest.fixture
def mongo(mongo_server):
    store = MongoStore(f"mongodb://127.0.0.1:{mongo_server.port}/t{uuid.uuid4().hex[:8]}").connect()
    yield store
    pytest_twisted.blockon(store.db.command("dropDatabase"))
    pytest_twisted.blockon(store.disconnect())


@pytest_twisted.ensureDeferred
async def test_connected_users_get_what_they_missed_once(redis, mongo):
    await mongo.db.rooms.insert_many([
        {"roomName": "room1", "members": ["alice", "carol"]},
        {"roomName": "room2", "members": ["bob"]},
    ])
    history = History(redis, mongo)
    clock = Clock()
    clock.advance(1_000_000)
    acceptor = Acceptor(redis, Sequences(redis, mongo, lambda channel: 0), history,
                        PopularWords(redis, clock, window=60), "n2")
    now = time.time()
    outage = now - 30

    async def post(room, text, at):
        m = ChatMessage(message_id(at), "dave", text, int(at * 1000), "text", "", room)
        await acceptor.accept(m, [])

    await post("room1", "before the outage", outage - 60)
    await post("room1", "during 1", outage + 5)
    await post("room1", "during 2", outage + 10)
    await post("room2", "not alice's room", outage + 5)
    await post("world", "to everyone", outage + 6)
    await post("alliance:red", "to the reds", outage + 7)
    await post("alliance:blue", "to the blues", outage + 8)

    sessions = LocalSessions()
    alice, carol = Connection("alice", "red"), Connection("carol")
    sessions.add("alice", alice)
    sessions.add("carol", carol)
    recent = RecentDeliveries()

    def deliver(msg_id, data, usernames, everyone):
        connections = recent.new_for(msg_id, [sessions.get(u) for u in usernames], everyone)
        for connection in connections:
            connection.got.append(data)
        return len(connections), []

    # carol did get "during 1" live
    during_1 = [d for d in await history.recent("room:room1", 10) if d["message"] == "during 1"][0]
    deliver(during_1["msgId"], orjson.dumps(during_1), ["carol"], False)
    carol.got.clear()

    catchup = CatchUp(sessions, mongo, history, deliver)
    assert await catchup.since(outage) == 6
    texts = lambda c: [orjson.loads(d)["message"] for d in c.got]  # noqa: E731
    assert sorted(texts(alice)) == sorted(["during 1", "during 2", "to everyone", "to the reds"])
    assert texts(alice).index("during 1") < texts(alice).index("during 2")
    assert sorted(texts(carol)) == ["during 2", "to everyone"]
    # a second run (posts that were still in flight) sends nothing twice
    assert await catchup.since(outage) == 0
