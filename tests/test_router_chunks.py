"""A room delivery to a node with many members is split into calls whose
list of names fits one AMP value."""
from twisted.internet.task import Clock
from twisted.protocols import amp

from chatnet.cluster.router import NAMES_PER_CALL, Router


class Peers:
    def __init__(self):
        self.calls = []

    async def call(self, node, command, **arguments):
        # the names must serialise as one AMP value
        amp.ListOf(amp.Unicode()).toStringProto(arguments["usernames"], None)
        self.calls.append(arguments["usernames"])
        return {"delivered": len(arguments["usernames"]) - 1, "missing": arguments["usernames"][:1]}


class Node:
    node_id = "n1"

    def __init__(self):
        self.peers = Peers()


def test_many_names_are_split():
    node = Node()
    names = ["\U0001d11e" * 125 + f"{i:03d}" for i in range(NAMES_PER_CALL * 2 + 5)]  # 128 characters, 503 bytes
    result = []
    Router(node, Clock()).deliver_to("n2", "m1", b"{}", names).addCallback(result.append)
    delivered, missing = result[0]
    assert [len(c) for c in node.peers.calls] == [NAMES_PER_CALL, NAMES_PER_CALL, 5]
    assert delivered == len(names) - 3 and len(missing) == 3


def test_few_names_one_call():
    node = Node()
    result = []
    Router(node, Clock()).deliver_to("n2", "m1", b"{}", ["a", "b"]).addCallback(result.append)
    assert node.peers.calls == [["a", "b"]] and result == [(1, ["a"])]
