"""De-duplication of retried deliveries on a node: by message and session."""
from chatnet.service.delivery import RecentDeliveries


class Connection:
    def __init__(self, username):
        self.record = type("Record", (), {"username": username, "sessionId": f"s-{username}"})()


def test_retry_reaches_nobody_twice_but_reaches_newcomers():
    recent = RecentDeliveries()
    a, b, c = Connection("a"), Connection("b"), Connection("c")
    assert recent.new_for("m1", [a, b], False) == [a, b]
    assert recent.new_for("m1", [a, b], False) == []
    # a member who moved here meanwhile still gets it
    assert recent.new_for("m1", [a, b, c], False) == [c]


def test_everyone_delivery_once():
    recent = RecentDeliveries()
    a, b = Connection("a"), Connection("b")
    assert recent.new_for("w", [a], False) == [a]
    assert recent.new_for("w", [a, b], True) == [b]
    assert recent.new_for("w", [a, b], True) == []


def test_bounded():
    recent = RecentDeliveries(size=3)
    a = Connection("a")
    for i in range(10):
        recent.new_for(f"m{i}", [a], False)
    assert len(recent.ids) == 3
