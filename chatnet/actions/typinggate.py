"""How often a user's C{typing} is relayed (docs/protocol.md, ``typing``):
at most once a second per room or conversation, in bounded memory."""
from collections import OrderedDict

#: seconds between two relayed C{typing} of one user in one room or conversation
TYPING_EVERY = 1.0
#: (user, room) pairs whose last typing a node remembers
TYPING_REMEMBERED = 100_000


class TypingGate:
    """At most one C{typing} a C{every} seconds per user and room (or
    conversation): the others are dropped. Remembers the last
    C{remembered} pairs (the oldest forgotten first), so its memory is
    bounded whatever the clients send."""

    def __init__(self, clock, every=TYPING_EVERY, remembered=TYPING_REMEMBERED):
        self.clock = clock
        self.every = every
        self.remembered = remembered
        self.last = OrderedDict()

    def allow(self, username, target):
        now = self.clock.seconds()
        key = (username, target)
        last = self.last.get(key)
        if last is not None and now - last < self.every:
            return False
        self.last[key] = now
        self.last.move_to_end(key)
        while len(self.last) > self.remembered:
            self.last.popitem(last=False)
        return True
