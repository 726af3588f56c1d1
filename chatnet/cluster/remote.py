"""The other chat nodes as this node's services ask things of them, with
plain values in and out: the AMP commands that carry the asks stay in
:mod:`chatnet.cluster` and :mod:`chatnet.protocols.internal`.

A node that cannot be reached fails the ask with
:class:`chatnet.errors.PeerUnavailable`; any other failure is the
node's answer (logged by the caller).
"""
from chatnet.protocols import amp_commands as cmd


class OtherNodes:
    """@param peers: the L{chatnet.cluster.peers.Peers}, the links to the
    other nodes."""

    def __init__(self, peers):
        self.peers = peers

    async def close_sessions(self, node, username):
        """Close every session of C{username} on C{node} (close code
        4010); how many there were."""
        return (await self.peers.call(node, cmd.Disconnect, username=username))["sessions"]

    async def user_notice(self, node, username, payload, feature, skip):
        """Send C{payload} (an encoded frame) to the sessions of C{username}
        on C{node} that asked for C{feature}, except session C{skip}."""
        await self.peers.call(node, cmd.UserNotice, username=username, data=payload, feature=feature, skip=skip)
