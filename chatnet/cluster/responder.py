"""What this node does when another node calls it over the internal port
(L{chatnet.protocols.internal.InternalProtocol} unpacks the AMP boxes and
calls these methods with their arguments)."""
from chatnet.protocols.amp_commands import NotLeader
from chatnet.service.api import close_sessions
from chatnet.sessions import SessionRecord


class Responder:
    """The node's side of the internal commands.

    @param directory: the L{chatnet.sessions.SessionDirectory}.
    @param sessions: the L{chatnet.sessions.LocalSessions}.
    @param leadership: the L{chatnet.cluster.leadership.Leadership}: room
        commands go to its room host, or raise L{NotLeader}.
    @param local: the L{chatnet.service.delivery.LocalDelivery}.
    @param metrics: the node's L{chatnet.metrics.NodeMetrics} (the peer
        links time their calls with it), or None.
    @param clock: an C{IReactorTime} (how long a disconnect waits).
    """

    def __init__(self, directory, sessions, leadership, local, metrics=None, clock=None):
        self.clock = clock
        self.directory = directory
        self.sessions = sessions
        self.leadership = leadership
        self.local = local
        self.metrics = metrics

    def session_changed(self, username, nodeId, sessionId, loginTime, alliance, version, online, multi=False):
        if online:
            record = SessionRecord(username, nodeId, sessionId, loginTime, alliance, version, multi)
            if not self.directory.apply(record):
                return  # an older login announced late
            host = self.leadership.room_host
            if host is not None:
                host.session_known(record)
            for local in self.sessions.all(username):
                # (version 0: that login is still being published; it checks itself)
                mine = local.record
                if mine is not None and 0 < mine.version < version and not mine.coexists(record):
                    local.replaced()
        else:
            self.directory.forget(username, sessionId)

    async def disconnect(self, username):
        """Close the sessions of C{username} on this node (close 4010)."""
        return await close_sessions(self.sessions, username, self.clock)

    def deliver(self, msgId, data, usernames, everyone):
        return self.local.deliver(msgId, data, usernames, everyone)

    def _host(self):
        host = self.leadership.room_host
        if host is None:
            raise NotLeader()
        return host

    async def room_post(self, roomName, msgId, seq, data):
        return await self._host().post(roomName, msgId, seq, data)

    async def room_join(self, roomName, username):
        return await self._host().join(roomName, username)

    async def room_leave(self, roomName, username):
        return await self._host().leave(roomName, username)

    async def room_list(self):
        return await self._host().list()
