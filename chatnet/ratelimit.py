"""A token bucket per connection: ``rate`` frames a second, bursts of ``burst``."""


class TokenBucket:
    __slots__ = ("rate", "burst", "clock", "tokens", "stamp")

    def __init__(self, rate, burst, clock):
        self.rate = float(rate)
        self.burst = float(burst)
        self.clock = clock
        self.tokens = self.burst
        self.stamp = clock.seconds()

    def allow(self, cost=1.0):
        """Take C{cost} tokens if there are enough; C{False} means rate limited.

        A rate of 0 or less switches limiting off.
        """
        if self.rate <= 0:
            return True
        now = self.clock.seconds()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= cost:
            self.tokens -= cost
            return True
        return False
