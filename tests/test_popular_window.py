"""The popular-words sliding window on a real Redis, time driven by a fake Clock."""
import pytest_twisted
from twisted.internet.task import Clock

from chatnet.service.popular import PopularWords


@pytest_twisted.ensureDeferred
async def test_sliding_window(redis):
    await redis.call("flushdb")
    clock = Clock()
    clock.advance(1_000_000)
    popular = PopularWords(redis, clock, window=60)
    await popular.count(["apple", "apple", "pear"])
    clock.advance(30)
    await popular.count(["pear", "pear", "plum"])
    assert await popular.top(3) == ["pear", "3", "apple", "2", "plum", "1"]
    clock.advance(31)  # the first message left the window, the second not
    assert await popular.top(3) == ["pear", "2", "plum", "1"]
    clock.advance(30)
    assert await popular.top(3) == []
    assert await redis.call("keys", "chatnet:popular:b:*") == []


@pytest_twisted.ensureDeferred
async def test_sweep_and_shared_between_instances(redis):
    await redis.call("flushdb")
    clock = Clock()
    clock.advance(2_000_000)
    one, two = PopularWords(redis, clock, window=10), PopularWords(redis, clock, window=10)
    await one.count(["x"])
    await two.count(["x", "y"])
    assert await one.top(5) == ["x", "2", "y", "1"]
    clock.advance(11)
    await two.sweep()
    assert await redis.call("zcard", "chatnet:popular:ranking") == 0
