"""What this node does when another node calls it over the internal port
(L{chatnet.protocols.internal.InternalProtocol} unpacks the AMP boxes and
calls these methods with their arguments)."""
from chatnet.protocols import codec
from chatnet.service.api import close_sessions
from chatnet.service.notices import send_local
from chatnet.service.online import SessionRecord


class Responder:
    """The node's side of the internal commands.

    @param directory: the L{chatnet.service.online.SessionDirectory}.
    @param sessions: the L{chatnet.service.online.LocalSessions}.
    @param local: the L{chatnet.service.delivery.LocalDelivery}.
    @param feed: the L{chatnet.service.roomfeed.RoomFeed} (room messages).
    @param members: C{members(room, username, joined)}: a user of this
        node joined or left a room elsewhere
        (L{chatnet.cluster.router.RoomRouter.local_member_changed}).
    @param metrics: the node's L{chatnet.ops.metrics.NodeMetrics} (the peer
        links time their calls with it), or None.
    @param clock: an C{IReactorTime} (how long a disconnect waits).
    """

    def __init__(self, directory, sessions, local, feed, members, metrics=None, clock=None):
        self.clock = clock
        self.directory = directory
        self.sessions = sessions
        self.local = local
        self.feed = feed
        self.members = members
        self.metrics = metrics

    def session_changed(self, username, nodeId, sessionId, loginTime, alliance, version, online, multi=False):
        if online:
            record = SessionRecord(username, nodeId, sessionId, loginTime, alliance, version, multi)
            if not self.directory.apply(record):
                return  # an older login announced late
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

    def room_deliver(self, roomName, seq, msgId, data):
        self.feed.deliver(roomName, seq, msgId, data)

    async def room_member(self, roomName, username, joined):
        await self.members(roomName, username, joined)

    def room_notice(self, roomName, data, feature=None, skip_user=None, skip_session=None):
        action, data = codec.decode_notice(data)
        self.feed.notice(roomName, action, data, feature, skip_user, skip_session)

    def user_notice(self, username, data, feature, skip):
        send_local(self.sessions, username, data, feature, skip)
