"""Balancing policies: which live node the next client gets."""
import itertools
import random


class LeastConnections:
    """The node with the fewest connections: the count it last reported plus
    the clients handed to it since that report."""

    name = "least-connections"

    def __init__(self):
        self.handed = {}

    def choose(self, nodes):
        def load(node):
            handed = self.handed.get(node["nodeId"])
            extra = handed[1] if handed and handed[0] == node["reportTs"] else 0
            return node["connections"] + extra

        best = min(load(n) for n in nodes)
        node = random.choice([n for n in nodes if load(n) == best])
        ts, count = self.handed.get(node["nodeId"], (None, 0))
        self.handed[node["nodeId"]] = (node["reportTs"], count + 1 if ts == node["reportTs"] else 1)
        return node


class RoundRobin:
    name = "round-robin"

    def __init__(self):
        self.counter = itertools.count()

    def choose(self, nodes):
        ordered = sorted(nodes, key=lambda n: n["nodeId"])
        return ordered[next(self.counter) % len(ordered)]


class Random:
    name = "random"

    def choose(self, nodes):
        return random.choice(nodes)


POLICIES = {p.name: p for p in (LeastConnections, RoundRobin, Random)}
