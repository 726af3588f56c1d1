"""Accepting a message in one Redis call (chatnet.accept) on a real Redis:
seq, history entry and word counts, and the lost-counter path."""
import orjson
import pytest_twisted
from twisted.internet.task import Clock

from chatnet.accept import Acceptor, frame_data_head
from chatnet.history import History
from chatnet.messages import ChatMessage, new_message_id
from chatnet.popular import PopularWords
from chatnet.sequences import Sequences
from chatnet.stores.redis import history_key, seq_key


class NoMongo:
    """Nothing stored in MongoDB yet."""

    async def max_seq(self, channel):
        return 0


def message(text, sender="ann", to="bob", room=""):
    return ChatMessage(new_message_id(), sender, text, 1_700_000_000_000, "text", to, room)


def test_head_plus_seq_is_the_frame_data():
    m = message('a "quoted" text \u00e9')
    m.seq = 42
    assert frame_data_head(m) + b"42}" == orjson.dumps(m.frame_data())


@pytest_twisted.ensureDeferred
async def test_accept_counts_stores_history_and_words(redis):
    await redis.call("flushdb")
    clock = Clock()
    clock.advance(1_000_000)
    mongo = NoMongo()
    history = History(redis, mongo, size=3, keep=3)
    popular = PopularWords(redis, clock, window=60)
    acceptor = Acceptor(redis, Sequences(redis, mongo), history, popular, "n1")

    sent = []
    for i in range(5):
        m = message(f"hello world {i}")
        data = await acceptor.accept(m, ["hello", "world"])
        assert m.seq == i + 1  # a new channel starts at 1
        assert data == orjson.dumps(m.frame_data())
        sent.append(m)
    stored = await redis.call("lrange", history_key(sent[0].channel), 0, -1)
    assert [orjson.loads(s)["seq"] for s in stored] == [3, 4, 5]  # the last `size`
    assert sorted(await popular.top(2)) == ["5", "5", "hello", "world"]

    # words of any script, as tokenize makes them, are counted whole
    from chatnet.words import tokenize

    words = tokenize("Café naïve 你好世界 don't Ünïcödé café")
    await acceptor.accept(message("x", to="cy"), words)
    top = await popular.top(20)
    counts = dict(zip(top[::2], top[1::2]))
    assert counts["café"] == "2" and all(counts[w] == "1" for w in set(words) - {"café"})

    # Redis lost the counter (restarted empty): restored from the history
    await redis.call("delete", seq_key(sent[0].channel))
    m = message("again")
    await acceptor.accept(m, [])
    assert m.seq == 6
