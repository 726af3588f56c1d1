"""Counting the work of text processing, so that tests can bound it.

Every step a chat message goes through on a node (profanity masking, word
cutting) must cost time linear in the message's length. The modules that do
such work report it here as *steps*: one step is a Python-level operation of
bounded cost (a look-up, a slice or a scan of at most
`chatnet.text.profanity.MAX_WORD` characters, one character of a C-level pass over
the whole text). Nothing is counted unless a `counting` block is active, and
the counting modules report once per call, not per step, so that the node
pays nothing for it.

The property tests (tests/test_text_cost.py) assert ``steps <= C * len(text)``
and ``steps(2n) <= 2.5 * steps(n)`` on the worst shapes they search for.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Optional

__all__ = ["WorkCounter", "active", "charge", "counting", "note"]


class WorkCounter:
    """The steps counted while active, in total and by kind."""

    def __init__(self) -> None:
        self.steps = 0
        self.kinds: dict[str, int] = {}
        self.counts: dict[str, int] = {}

    def add(self, kind: str, steps: int) -> None:
        self.steps += steps
        self.kinds[kind] = self.kinds.get(kind, 0) + steps

    def note(self, kind: str, count: int) -> None:
        self.counts[kind] = self.counts.get(kind, 0) + count

    def __repr__(self) -> str:
        return f"<WorkCounter {self.steps} steps {self.kinds} {self.counts}>"


#: The counter of the active `counting` block, else None.
active: Optional[WorkCounter] = None


def charge(kind: str, steps: int) -> None:
    """Count `steps` of work of `kind`, if counting."""
    counter = active
    if counter is not None:
        counter.add(kind, steps)


def note(kind: str, count: int) -> None:
    """Count `count` events of `kind` that are not steps (the judgements of
    a message), if counting."""
    counter = active
    if counter is not None:
        counter.note(kind, count)


@contextmanager
def counting() -> Iterator[WorkCounter]:
    """Count the work done in the block (not thread-safe: tests only)."""
    global active
    previous, active = active, WorkCounter()
    try:
        yield active
    finally:
        active = previous
