"""The gateway's balancing policies."""
from collections import Counter

from chatnet.gateway.balance import LeastConnections, Random, RoundRobin


def nodes(*counts, ts=1):
    return [{"nodeId": f"n{i}", "connections": c, "reportTs": ts} for i, c in enumerate(counts)]


def test_least_connections_counts_what_it_handed_out_since_the_report():
    policy = LeastConnections()
    listed = nodes(10, 0, 3)
    picks = Counter(policy.choose(listed)["nodeId"] for _ in range(13))
    # n1 gets clients until it has as many as n2 (3), then they share
    assert picks["n0"] <= 1 and picks["n1"] >= 6 and picks["n2"] >= 3
    # a new report replaces what was counted
    listed = nodes(0, 50, 50, ts=2)
    assert policy.choose(listed)["nodeId"] == "n0"


def test_round_robin_and_random_cover_every_node():
    listed = nodes(0, 0, 0)
    robin = RoundRobin()
    assert [robin.choose(listed)["nodeId"] for _ in range(6)] == ["n0", "n1", "n2"] * 2
    assert {Random().choose(listed)["nodeId"] for _ in range(200)} == {"n0", "n1", "n2"}
