"""Accepting a message in one Redis call (chatnet.service.accept) on a real Redis:
seq, history entry and word counts, and the lost-counter path."""
import orjson
import pytest_twisted
from twisted.internet import defer, reactor
from twisted.internet.task import Clock

from chatnet.domain.messages import ChatMessage, new_message_id
from chatnet.errors import StoreUnavailable
from chatnet.protocols.codec import chat_data
from chatnet.service.accept import Acceptor, frame_data_head
from chatnet.service.history import History
from chatnet.service.popular import PopularWords
from chatnet.service.sequences import Sequences
from chatnet.stores.redis import RedisStore, history_key, seq_key


class NoMongo:
    """Nothing stored in MongoDB yet."""

    async def max_seq(self, channel):
        return 0


def message(text, sender="ann", to="bob", room=""):
    return ChatMessage(new_message_id(), sender, text, 1_700_000_000_000, "text", to, room)


def test_head_plus_seq_is_the_frame_data():
    m = message('a "quoted" text \u00e9')
    assert chat_data(frame_data_head(m), 42) == orjson.dumps(m.with_seq(42).frame_data())


@pytest_twisted.ensureDeferred
async def test_accept_counts_stores_history_and_words(redis):
    await redis.call("flushdb")
    clock = Clock()
    clock.advance(1_000_000)
    mongo = NoMongo()
    history = History(redis, mongo, size=3, keep=3)
    popular = PopularWords(redis, clock, window=60)
    acceptor = Acceptor(redis, Sequences(redis, mongo), history, popular, "n1", reactor)

    sent = []
    for i in range(5):
        m = message(f"hello world {i}")
        stamp = await acceptor.accept(m, ["hello", "world"])
        assert stamp.seq == i + 1  # a new channel starts at 1
        assert m.seq == 0  # the message given is left as it was
        assert stamp.data == orjson.dumps(m.with_seq(stamp.seq).frame_data())
        sent.append(m)
    stored = await redis.call("lrange", history_key(sent[0].channel), 0, -1)
    assert [orjson.loads(s)["seq"] for s in stored] == [3, 4, 5]  # the last `size`
    assert sorted(await popular.top(2)) == ["5", "5", "hello", "world"]

    # words of any script, as tokenize makes them, are counted whole
    from chatnet.text.words import tokenize

    words = tokenize("Café naïve 你好世界 don't Ünïcödé café")
    await acceptor.accept(message("x", to="cy"), words)
    top = await popular.top(20)
    counts = dict(zip(top[::2], top[1::2]))
    assert counts["café"] == "2" and all(counts[w] == "1" for w in set(words) - {"café"})

    # Redis lost the counter (restarted empty): restored from the history
    await redis.call("delete", seq_key(sent[0].channel))
    assert (await acceptor.accept(message("again"), [])).seq == 6


class Counted:
    """The Redis store, counting the accept calls that go through it."""

    def __init__(self, redis):
        self.redis = redis
        self.evals = 0

    def eval(self, script, keys=(), args=()):
        self.evals += 1
        return self.redis.eval(script, keys, args)

    def call(self, *args, **kwargs):
        return self.redis.call(*args, **kwargs)


def make_acceptor(redis, **kwargs):
    clock = Clock()
    clock.advance(1_000_000)
    mongo = NoMongo()
    counted = Counted(redis)
    history = History(counted, mongo, size=50, keep=50)
    acceptor = Acceptor(counted, Sequences(redis, mongo), history, PopularWords(redis, clock, window=60), "n1",
                        reactor, **kwargs)
    return acceptor, counted


async def history_seqs(redis, channel):
    return [orjson.loads(s)["seq"] for s in await redis.call("lrange", history_key(channel), 0, -1)]


@pytest_twisted.ensureDeferred
async def test_the_messages_of_a_turn_go_in_one_call_in_their_order(redis):
    await redis.call("flushdb")
    acceptor, counted = make_acceptor(redis)
    await redis.call("sadd", "chatnet:room-nodes:lobby", ["A", "B"])
    firsts = [message("first", to="bob"), message("first", to="cy"), message("first", room="lobby")]
    for m in firsts:  # (each channel's counter is restored on its first message)
        await acceptor.accept(m, [])
    counted.evals = 0

    sent = [message(f"m{i}", to=["bob", "cy"][i % 2]) for i in range(8)] + [message("r", room="lobby")]
    stamps = await defer.gatherResults([acceptor.accept(m, ["w"]) for m in sent])
    assert counted.evals == 1
    assert [s.seq for s in stamps[:8]] == [2, 2, 3, 3, 4, 4, 5, 5]
    assert [s.data for s in stamps] == [orjson.dumps(m.with_seq(s.seq).frame_data()) for m, s in zip(sent, stamps)]
    assert stamps[8].seq == 2 and sorted(stamps[8].nodes) == ["A", "B"]
    assert stamps[0].nodes == ()
    assert await history_seqs(redis, firsts[0].channel) == [1, 2, 3, 4, 5]
    assert await history_seqs(redis, firsts[2].channel) == [1, 2]


@pytest_twisted.ensureDeferred
async def test_a_lost_counter_holds_back_only_its_own_channel(redis):
    await redis.call("flushdb")
    acceptor, counted = make_acceptor(redis)
    await acceptor.accept(message("a", to="bob"), [])
    await acceptor.accept(message("a", to="cy"), [])
    await redis.call("delete", seq_key(message("", to="bob").channel))  # Redis lost it
    counted.evals = 0

    to_bob = [message(f"b{i}", to="bob") for i in range(3)]
    to_cy = [message(f"c{i}", to="cy") for i in range(3)]
    stamps = await defer.gatherResults([acceptor.accept(m, []) for pair in zip(to_bob, to_cy) for m in pair])
    assert [s.seq for s in stamps[1::2]] == [2, 3, 4]
    assert [s.seq for s in stamps[0::2]] == [2, 3, 4]  # restored from the history, in their order
    assert counted.evals == 2
    assert await history_seqs(redis, to_bob[0].channel) == [1, 2, 3, 4]


@pytest_twisted.ensureDeferred
async def test_a_big_turn_takes_several_calls(redis):
    await redis.call("flushdb")
    acceptor, counted = make_acceptor(redis, most=3)
    await acceptor.accept(message("a"), [])
    counted.evals = 0
    sent = [message(f"m{i}") for i in range(7)]
    stamps = await defer.gatherResults([acceptor.accept(m, []) for m in sent])
    assert counted.evals == 3
    assert [s.seq for s in stamps] == list(range(2, 9))


@pytest_twisted.ensureDeferred
async def test_redis_down_fails_every_message_of_the_call(free_port):
    store = RedisStore(f"redis://127.0.0.1:{free_port}/0", timeout=0.3).connect()
    try:
        acceptor, counted = make_acceptor(store)
        results = await defer.DeferredList([acceptor.accept(message(f"m{i}"), []) for i in range(4)],
                                           consumeErrors=True)
        assert [ok for ok, _ in results] == [False] * 4
        assert all(f.check(StoreUnavailable) for _, f in results)
        assert counted.evals == 1
    finally:
        await store.disconnect()
