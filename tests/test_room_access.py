"""The room membership check of the client actions (L{chatnet.actions.access})
on a real MongoDB (SecantusDB): which rooms a user may post to, and that a known room costs no store call."""
import uuid
from types import SimpleNamespace

import pymongo
import pytest
import pytest_twisted

from chatnet.actions.access import RoomAccess
from chatnet.errors import ProtocolError
from chatnet.ops.seed import seed
from chatnet.service.online import SessionRecord
from chatnet.service.session import Session
from chatnet.stores.mongo import MongoStore


class CountingMongo(MongoStore):
    """The real store, counting membership look-ups."""

    lookups = 0

    async def membership(self, username, rooms):
        self.lookups += 1
        return await super().membership(username, rooms)

    async def mutes(self, username, rooms):
        self.lookups += 1
        return await super().mutes(username, rooms)


@pytest.fixture
def mongo(mongo_server):
    url = f"mongodb://127.0.0.1:{mongo_server.port}/access{uuid.uuid4().hex[:8]}"
    seed(url, users=4, rooms=3)
    client = pymongo.MongoClient(url)
    client.get_default_database().rooms.update_one({"roomName": "room1"}, {"$set": {"members": ["user1"]}})
    client.close()
    store = CountingMongo(url).connect()
    yield store
    pytest_twisted.blockon(store.disconnect())
    client = pymongo.MongoClient(url)
    client.drop_database(client.get_default_database().name)
    client.close()


def connection(username, alliance=""):
    record = SessionRecord.new(username, "node1", 0, alliance)
    session = Session(None, None)
    session.logged_in(record, frozenset())
    return SimpleNamespace(record=record, session=session)


async def code(access, conn, rooms):
    try:
        await access.check_member(conn, rooms, "chat")
    except ProtocolError as e:
        return e.code
    return None


@pytest_twisted.ensureDeferred
async def test_members_only_and_known_rooms_cost_nothing(mongo):
    from twisted.internet import reactor

    access = RoomAccess(mongo, reactor)
    member, stranger = connection("user1"), connection("user2")
    assert await code(access, member, ["room1"]) is None
    assert mongo.lookups == 2  # the membership, and the mute of the member
    for _ in range(5):
        assert await code(access, member, ["room1"]) is None
    assert mongo.lookups == 2, "a known room costs no MongoDB call"
    assert await code(access, stranger, ["room1"]) == 403
    assert await code(access, stranger, ["no-such-room"]) == 404
    assert await code(access, stranger, ["room2", "no-such-room"]) == 404
    # leaving empties the set: the next post asks MongoDB again
    member.session.known_rooms().discard("room1")
    lookups = mongo.lookups
    assert await code(access, member, ["room1"]) is None
    assert mongo.lookups == lookups + 1  # (its mute is still known)


@pytest_twisted.ensureDeferred
async def test_automatic_rooms(mongo):
    from twisted.internet import reactor

    access = RoomAccess(mongo, reactor)
    red, loner = connection("user1", "red"), connection("user4", "")
    assert await code(access, red, ["world", "alliance:red"]) is None
    assert await code(access, red, ["alliance:blue"]) == 404
    assert await code(access, loner, ["world"]) is None
    assert await code(access, loner, ["alliance:"]) == 404
    assert mongo.lookups == 0
