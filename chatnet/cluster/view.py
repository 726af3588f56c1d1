"""What this node knows of the cluster: its own id, the live members and the
leader, as ZooKeeper last told (L{chatnet.cluster.membership})."""
from twisted.internet import defer


class ClusterView:
    """The node's view of the cluster, shared by everything that asks "who
    is there, who leads, who am I".

    @ivar node_id: this node's id; "" until the node knows it (it may be
        made of the client port, bound in L{chatnet.node.ChatNode._start}
        before anything asks).
    @ivar members: node id -> member info of every live node.
    @ivar leader: the leader's node id, or None.
    """

    def __init__(self, node_id, clock):
        self.node_id = node_id
        self.clock = clock
        self.members = {}
        self.leader = None
        self._listeners = []
        self._leader_waiters = []

    def live_nodes(self):
        return self.members

    def subscribe(self, listener):
        """Call C{listener(departed, joined, previous_leader)} after every
        change (in the order of subscription), once the view is updated."""
        self._listeners.append(listener)

    def changed(self, members, leader):
        """The membership listener: ZooKeeper says C{members} are live and
        C{leader} leads."""
        departed = [n for n in self.members if n not in members]
        joined = [n for n in members if n not in self.members and n != self.node_id]
        previous = self.leader
        self.members = members
        self.leader = leader
        for listener in self._listeners:
            listener(departed, joined, previous)
        waiters, self._leader_waiters = self._leader_waiters, []
        for waiter in waiters:
            if not waiter.called:
                waiter.callback(None)

    def wait_for_leader(self, at_most):
        """A Deferred that fires at the next membership change, or after
        C{at_most} seconds."""
        d = defer.Deferred()
        self._leader_waiters.append(d)
        call = self.clock.callLater(at_most, lambda: d.called or d.callback(None))
        d.addBoth(lambda r: (call.active() and call.cancel(), r)[1])
        return d
