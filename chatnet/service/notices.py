"""Frames for the sessions of one user on every node: the pushed frames of
the ``live`` extension that concern a user rather than a room (the
invitation notice, a read marker for the user's other sessions, edits and
typing in a direct conversation).

Sent once to each node the user has a session on (the session directory's
copy; Redis only when it has none of the user's sessions), through one
L{OtherNodes.user_notice<chatnet.cluster.remote.OtherNodes.user_notice>}
call; a node that fails the call leaves its sessions without the frame
(nothing is retried: these frames are hints that ``history``, ``resume``
and ``listRooms`` make good on reconnecting).
"""
from twisted.internet import defer
from twisted.logger import Logger

from chatnet.errors import StoreUnavailable

log = Logger()

#: the login feature of the frames these are
LIVE = "live"


def send_local(sessions, username, payload, feature=LIVE, skip=""):
    """Send C{payload} (an encoded frame) to this node's sessions of
    C{username} that asked for C{feature}, except session C{skip}; how many."""
    sent = 0
    for connection in sessions.all(username):
        record = connection.record
        if record is None or record.sessionId == skip or (feature and feature not in connection.features):
            continue
        connection.sendMessage(payload)
        sent += 1
    return sent


class UserNotices:
    """@param view: the L{chatnet.cluster.view.ClusterView}.
    @param nodes: the L{chatnet.cluster.remote.OtherNodes}.
    @param directory: the L{chatnet.service.online.SessionDirectory}.
    @param sessions: the L{chatnet.service.online.LocalSessions}.
    """

    def __init__(self, view, nodes, directory, sessions):
        self.view = view
        self.nodes = nodes
        self.directory = directory
        self.sessions = sessions

    async def send(self, username, payload, feature=LIVE, skip=""):
        """Send C{payload} to every session of C{username} (with
        C{feature}, except session C{skip}) on every node."""
        send_local(self.sessions, username, payload, feature, skip)
        try:
            records = await self.directory.lookup_all(username)
        except StoreUnavailable:
            records = self.directory.cached_all(username)
        nodes = {r.nodeId for r in records} & set(self.view.live_nodes())
        nodes.discard(self.view.node_id)
        nodes = sorted(nodes)
        calls = [defer.ensureDeferred(self.nodes.user_notice(n, username, payload, feature, skip)) for n in nodes]
        for node, (ok, result) in zip(nodes, await defer.DeferredList(calls, consumeErrors=True)):
            if not ok:
                log.warn("notice for {user} not told to {node}: {why}", user=username, node=node,
                         why=result.getErrorMessage())
