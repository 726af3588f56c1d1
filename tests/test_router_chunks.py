"""A room delivery to a node with many members is split into calls whose
list of names fits one AMP value."""
from twisted.internet.task import Clock
from twisted.protocols import amp

from chatnet.cluster.router import BATCH_WINDOW, NAMES_PER_CALL, Router


class Peers:
    def __init__(self):
        self.calls = []

    async def call(self, node, command, **arguments):
        # the names must serialise as one AMP value
        amp.ListOf(amp.Unicode()).toStringProto(arguments["usernames"], None)
        self.calls.append(arguments["usernames"])
        return {"delivered": len(arguments["usernames"]) - 1, "missing": arguments["usernames"][:1]}


class Node:
    """The cluster view of node n1 (and its peer links)."""

    node_id = "n1"

    def __init__(self):
        self.peers = Peers()


def test_many_names_are_split():
    node = Node()
    names = ["\U0001d11e" * 125 + f"{i:03d}" for i in range(NAMES_PER_CALL * 2 + 5)]  # 128 characters, 503 bytes
    result = []
    Router(node, node.peers, None, None, Clock()).deliver_to("n2", "m1", b"{}", names).addCallback(result.append)
    delivered, missing = result[0]
    assert [len(c) for c in node.peers.calls] == [NAMES_PER_CALL, NAMES_PER_CALL, 5]
    assert delivered == len(names) - 3 and len(missing) == 3


def test_few_names_one_call():
    node = Node()
    result = []
    Router(node, node.peers, None, None, Clock()).deliver_to("n2", "m1", b"{}", ["a", "b"]).addCallback(result.append)
    assert node.peers.calls == [["a", "b"]] and result == [(1, ["a"])]


class BatchPeers:
    def __init__(self):
        self.calls = []

    async def call(self, node, command, **arguments):
        self.calls.append((node, command.commandName, arguments))
        return {"missing": [m for m, u in zip(arguments["msgIds"], arguments["usernames"]) if u == "gone"]}


def test_direct_deliveries_of_a_short_window_share_a_call():
    node = Node()
    node.peers = BatchPeers()
    clock = Clock()
    router = Router(node, node.peers, None, None, clock)
    results = []
    for i, user in enumerate(["a", "b", "gone"]):
        router.deliver_one("n2", f"m{i}", b"{}", user).addCallback(results.append)
    router.deliver_one("n3", "m9", b"{}", "c").addCallback(results.append)
    assert node.peers.calls == []
    clock.advance(BATCH_WINDOW)
    assert [(n, c, a["msgIds"]) for n, c, a in node.peers.calls] == [
        ("n2", b"DeliverMany", ["m0", "m1", "m2"]), ("n3", b"DeliverMany", ["m9"])]
    assert results == [True, True, False, True]


def test_a_batch_is_cut_to_fit_amp_values():
    node = Node()
    node.peers = BatchPeers()
    clock = Clock()
    router = Router(node, node.peers, None, None, clock)
    for i in range(10):
        router.deliver_one("n2", f"m{i}", b"x" * 20000, "a")
    clock.advance(BATCH_WINDOW)
    sizes = [len(a["msgIds"]) for _, _, a in node.peers.calls]
    assert sum(sizes) == 10 and max(sizes) <= 2
    for _, _, a in node.peers.calls:
        amp.ListOf(amp.String()).toStringProto(a["datas"], None)


class SlowNode:
    """Calls to one node that are answered when the test says so."""

    def __init__(self):
        self.calls = []  # (items, Deferred of the answer)

    def send(self, node_id, items):
        from twisted.internet import defer

        d = defer.Deferred()
        self.calls.append((list(items), d))
        return d


def make_batches(clock, peer, max_in_flight=2, max_waiting=10_000):
    from chatnet.cluster.router import Batches

    return Batches(clock, BATCH_WINDOW, peer.send, lambda item: item, lambda items, answer: [answer] * len(items),
                   max_in_flight=max_in_flight, max_waiting=max_waiting)


def test_calls_in_flight_are_bounded_and_what_piled_up_goes_as_one_call():
    clock, peer = Clock(), SlowNode()
    batches = make_batches(clock, peer)
    results = []
    for i in range(2):  # two windows, two calls, both unanswered
        batches.add("n2", b"m%d" % i).addCallback(results.append)
        clock.advance(BATCH_WINDOW)
    assert [items for items, _ in peer.calls] == [[b"m0"], [b"m1"]]
    for i in range(2, 7):  # the bound reached: these pile up, whatever the time
        batches.add("n2", b"m%d" % i).addCallback(results.append)
        clock.advance(BATCH_WINDOW)
    assert len(peer.calls) == 2 and batches.in_flight == {"n2": 2}
    peer.calls[0][1].callback("ok")  # one answer: the pile goes at once, as one call
    assert [items for items, _ in peer.calls[2:]] == [[b"m2", b"m3", b"m4", b"m5", b"m6"]]
    for _, d in peer.calls[1:]:
        d.callback("ok")
    assert results == ["ok"] * 7 and batches.in_flight == {}


def test_a_failed_call_frees_its_place_too():
    clock, peer = Clock(), SlowNode()
    batches = make_batches(clock, peer, max_in_flight=1)
    first = batches.add("n2", b"a")
    clock.advance(BATCH_WINDOW)
    second = batches.add("n2", b"b")
    clock.advance(BATCH_WINDOW)
    assert len(peer.calls) == 1
    peer.calls[0][1].errback(RuntimeError("link aborted"))
    first.addErrback(lambda f: f.trap(RuntimeError))
    assert [items for items, _ in peer.calls[1:]] == [[b"b"]]
    peer.calls[1][1].callback("ok")
    assert second.result == "ok"


def test_past_the_waiting_bound_a_message_fails_at_once():
    from chatnet.errors import PeerUnavailable

    clock, peer = Clock(), SlowNode()
    batches = make_batches(clock, peer, max_in_flight=1, max_waiting=3 * 700)
    batches.add("n2", b"x" * 100)
    clock.advance(BATCH_WINDOW)  # in flight, unanswered
    waiting = [batches.add("n2", b"x" * 100) for _ in range(3)]  # 700 each counted
    refused = batches.add("n2", b"x" * 100)
    failures = []
    refused.addErrback(failures.append)
    assert failures and failures[0].check(PeerUnavailable)
    assert all(not d.called for d in waiting)  # the ones piled up wait their turn
    peer.calls[0][1].callback("ok")
    assert [len(items) for items, _ in peer.calls] == [1, 3]
