"""A token bucket per connection: ``rate`` frames a second, bursts of ``burst``."""


class TokenBucket:
    __slots__ = ("rate", "burst", "clock", "tokens", "stamp")

    def __init__(self, rate, burst, clock):
        self.rate = float(rate)
        self.burst = float(burst)
        self.clock = clock
        self.tokens = self.burst
        self.stamp = clock.seconds()

    def refill(self):
        """The tokens saved by now (at most C{burst})."""
        now = self.clock.seconds()
        tokens = self.tokens + (now - self.stamp) * self.rate
        self.tokens = tokens if tokens < self.burst else self.burst
        self.stamp = now
        return self.tokens

    def allow(self, cost=1.0):
        """Take C{cost} tokens if there are enough; C{False} means rate limited.

        A rate of 0 or less switches limiting off.
        """
        if self.rate <= 0:
            return True
        if self.refill() >= cost:
            self.tokens -= cost
            return True
        return False
