"""What a resume replays (chatnet.service.history.History.after) on a real Redis and
SecantusDB: every missed message, gap-free up to the channel's current seq,
or "too old"; never a partial list. Messages still in this node's
write-behind log (not yet in MongoDB) are history too."""
import uuid

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.task import Clock

from chatnet.domain.messages import ChatMessage, new_message_id
from chatnet.service.accept import Acceptor
from chatnet.service.history import DM_HISTORY_TTL, RESUME_LIMIT, History
from chatnet.service.popular import PopularWords
from chatnet.service.sequences import Sequences
from chatnet.stores.message_log import MessageLog
from chatnet.stores.mongo import MongoStore
from chatnet.stores.redis import history_key, seq_key


class Chat:
    """One node's accepting side: real stores, a message log that writes
    only when told (its clock never moves by itself)."""

    def __init__(self, redis, mongo):
        self.redis = redis
        self.mongo = mongo
        self.log = MessageLog(mongo, Clock())
        self.history = History(redis, mongo, waiting=self.log.waiting)
        clock = Clock()
        clock.advance(1_000_000)
        self.acceptor = Acceptor(redis, Sequences(redis, mongo, self._pending), self.history,
                                 PopularWords(redis, clock, window=60), "n1", reactor)

    def _pending(self, channel):
        return max((d["seq"] for d in self.log.waiting(channel)), default=0)

    async def send(self, count, room="r1", to=""):
        docs = []
        for i in range(count):
            m = ChatMessage(new_message_id(), "ann", f"m{i}", 1_700_000_000_000 + i, "text", to, room)
            m = m.with_seq((await self.acceptor.accept(m, [])).seq)
            self.log.append(m.document())
            docs.append(m.document())
        return docs

    async def store(self, docs):
        """Write C{docs} to MongoDB now and drop them from the log."""
        assert await self.mongo.insert_messages(docs) == {}
        ids = {d["_id"] for d in docs}
        for d in [d for d in self.log.queue if d["_id"] in ids]:
            self.log.queue.remove(d)


@pytest.fixture
def chat(redis, mongo_server):
    mongo = MongoStore(f"mongodb://127.0.0.1:{mongo_server.port}/t{uuid.uuid4().hex[:8]}").connect()
    yield Chat(redis, mongo)
    pytest_twisted.blockon(mongo.db.command("dropDatabase"))
    pytest_twisted.blockon(mongo.disconnect())


def seqs(found):
    return [d["seq"] for d in found]


@pytest_twisted.ensureDeferred
async def test_a_burst_still_in_the_write_behind_log_is_replayed_whole(chat):
    await chat.send(120)
    assert await chat.mongo.db.messages.count_documents({}) == 0
    assert seqs(await chat.history.after("room:r1", 0)) == list(range(1, 121))
    assert seqs(await chat.history.after("room:r1", 70)) == list(range(71, 121))
    assert await chat.history.after("room:r1", 120) == []
    assert await chat.history.after("room:r1", 2**63 - 1) == []
    # joinRoom still shows only the last 50
    assert seqs(await chat.history.recent("room:r1")) == list(range(71, 121))


@pytest_twisted.ensureDeferred
async def test_more_than_the_limit_missed_is_too_old(chat):
    await chat.send(RESUME_LIMIT + 100)
    assert await chat.history.after("room:r1", 0) is None
    assert await chat.history.after("room:r1", 99) is None
    assert seqs(await chat.history.after("room:r1", 100)) == list(range(101, RESUME_LIMIT + 101))
    assert await chat.redis.call("llen", history_key("room:r1")) == RESUME_LIMIT + 1


@pytest_twisted.ensureDeferred
async def test_without_the_redis_list_mongodb_and_the_log_are_merged(chat):
    docs = await chat.send(80)
    await chat.store(docs[:30])  # 1..30 in MongoDB, 31..80 still waiting here
    await chat.redis.call("delete", history_key("room:r1"))
    assert seqs(await chat.history.after("room:r1", 10)) == list(range(11, 81))
    # a message that is nowhere any more: a gap, so too old
    await chat.mongo.db.messages.delete_one({"seq": 20})
    assert await chat.history.after("room:r1", 10) is None
    assert seqs(await chat.history.after("room:r1", 20)) == list(range(21, 81))


@pytest_twisted.ensureDeferred
async def test_messages_only_on_another_node_are_not_skipped(chat):
    """The Redis list lost its head and the rest is in another node's log:
    not found here, so too old rather than a replay with a hole."""
    docs = await chat.send(40)
    await chat.store(docs[:10])
    chat.log.queue.clear()  # 11..40 wait on another node
    await chat.redis.call("ltrim", history_key("room:r1"), -20, -1)  # 21..40 in Redis
    assert await chat.history.after("room:r1", 5) is None
    assert seqs(await chat.history.after("room:r1", 20)) == list(range(21, 41))


@pytest_twisted.ensureDeferred
async def test_redis_lost_everything(chat):
    docs = await chat.send(25)
    await chat.store(docs)
    await chat.redis.call("flushdb")
    assert seqs(await chat.history.after("room:r1", 3)) == list(range(4, 26))
    assert await chat.history.after("room:nothing-here", 0) == []
    assert await chat.redis.call("exists", seq_key("room:nothing-here")) == 0


@pytest_twisted.ensureDeferred
async def test_conversation_lists_expire_room_lists_do_not(chat):
    await chat.send(2, room="", to="bob")
    await chat.send(2, room="r2")
    ttl = await chat.redis.call("ttl", history_key(ChatMessage("x", "ann", "", 0, to="bob").channel))
    assert 0 < ttl <= DM_HISTORY_TTL
    assert await chat.redis.call("ttl", history_key("room:r2")) == -1


@pytest_twisted.ensureDeferred
async def test_a_floor_hides_the_seqs_of_a_room_deleted_before(chat):
    """A room made again under a deleted one's name has the channel's last
    seq as its floor: neither its recent history nor a resume (from 0, or
    from a mark of the old room) shows what came before."""
    await chat.store(await chat.send(3))
    floor = await chat.history.current_seq("room:r1")
    assert floor == 3
    await chat.send(2)
    assert [d["seq"] for d in await chat.history.recent("room:r1", floor=floor)] == [4, 5]
    for mark in (0, 1, 3):
        assert [d["seq"] for d in await chat.history.after("room:r1", mark, floor=floor)] == [4, 5]
    assert [d["seq"] for d in await chat.history.after("room:r1", 4, floor=floor)] == [5]


@pytest_twisted.ensureDeferred
async def test_a_sealed_conversation_replays_nothing_of_before(chat):
    """A conversation whose user was deleted at C{sealed_until} (ms): a
    replay that would need a message of that second or before is too old;
    one that starts after them is whole."""
    docs = await chat.send(2, room="", to="bob")
    channel = docs[0]["channel"]
    made = docs[-1]["_id"].generation_time.timestamp() * 1000
    # (the two may be made in two seconds: sealed before the first's)
    first = docs[0]["_id"].generation_time.timestamp() * 1000
    assert await chat.history.after(channel, 0, sealed_until=int(made)) is None
    assert [d["seq"] for d in await chat.history.after(channel, 0, sealed_until=int(first) - 1000)] == [1, 2]
    assert await chat.history.after(channel, 2, sealed_until=int(made)) == []
