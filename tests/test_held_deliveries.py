"""The live frames a session keeps back during a resume are bounded in
bytes: past the bound the connection is closed as too slow (4008, once) and
nothing more is kept (the client resumes again after reconnecting)."""
from hypothesis import given, strategies as st
from twisted.internet import task

from chatnet.service.session import HeldDeliveries, SessionService


def test_past_the_bound_the_connection_is_too_slow_once_and_nothing_more_is_kept():
    closed = []
    held = HeldDeliveries(limit=100, over=lambda: closed.append(1))
    assert held.take("m1", b"x" * 60)
    assert not closed
    assert held.take("m2", b"y" * 60)  # 120 > 100
    assert held.take("m3", b"z" * 10)
    assert closed == [1]
    assert held.release() == [b"x" * 60]


def test_no_bound_keeps_everything():
    held = HeldDeliveries()
    for i in range(100):
        held.take(f"m{i}", b"x" * 100000)
    assert len(held.release()) == 100


@given(st.lists(st.integers(1, 5000), max_size=200), st.integers(1, 100000))
def test_what_is_kept_never_exceeds_the_bound(sizes, limit):
    closed = []
    held = HeldDeliveries(limit=limit, over=lambda: closed.append(1))
    for i, size in enumerate(sizes):
        held.take(f"m{i}", b"x" * size)
    kept = held.release()
    assert sum(map(len, kept)) <= limit
    assert closed == ([1] if sum(sizes) > limit else [])


def test_a_session_holding_for_a_resume_closes_its_connection_past_the_client_backlog():
    class Connection:
        slow = 0

        def too_slow(self):
            self.slow += 1

    connection = Connection()
    session = SessionService(None, None, None, None, None, task.Clock(), None, max_held=1000).open(connection)
    session.hold()
    assert session.keeps("m1", b"x" * 600)
    assert session.keeps("m2", b"x" * 600)
    assert connection.slow == 1
