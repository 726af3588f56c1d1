from twisted.internet.task import Clock

from chatnet.limits.ratelimit import TokenBucket


def test_burst_then_rate():
    clock = Clock()
    bucket = TokenBucket(20, 40, clock)
    assert sum(bucket.allow() for _ in range(100)) == 40
    clock.advance(0.5)
    assert sum(bucket.allow() for _ in range(100)) == 10
    clock.advance(10)
    assert sum(bucket.allow() for _ in range(100)) == 40


def test_zero_rate_disables():
    bucket = TokenBucket(0, 0, Clock())
    assert all(bucket.allow() for _ in range(1000))
