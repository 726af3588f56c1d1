"""Delivery of chat frames to the connections of this node, each message at
most once per session (a delivery retried after a failover reaches no
session twice; every session of a user gets its copy)."""
from collections import OrderedDict

from chatnet.protocols import codec


def push_chat(connections, msg_id, data, prepare, emit):
    """Send chat C{data} (JSON of the frame's data) to C{connections},
    encoded once (and prepared once for several)."""
    if connections:
        payload = codec.chat_frame(data)
        prepared = prepare(payload) if len(connections) > 1 else None
        for connection in connections:
            connection.push(payload, msg_id, prepared)
        emit("message_delivered", msg_id, len(connections))


class RecentDeliveries:
    """Which sessions got which of the last C{size} messages delivered on
    this node: message id -> the session id (the usual case: one), a set
    of them, or L{EVERYONE}. (A string is no container the garbage
    collector has to visit, as a set per message would be.)"""

    EVERYONE = object()

    def __init__(self, size=50_000):
        self.size = size
        self.ids = OrderedDict()

    def new_for(self, msg_id, connections, everyone):
        """The connections among C{connections} that have not had
        C{msg_id} yet; they are remembered as having it now."""
        seen = self.ids.get(msg_id)
        if seen is self.EVERYONE:
            return []
        if type(seen) is str:
            seen = {seen}
        if everyone:
            fresh = [c for c in connections if seen is None or c.record.sessionId not in seen]
            self._remember(msg_id, self.EVERYONE)
            return fresh
        if seen is None:
            if len(connections) == 1:
                self._remember(msg_id, connections[0].record.sessionId)
                return [connections[0]]
            seen = set()
        fresh = [c for c in connections if c.record.sessionId not in seen]
        if fresh:
            seen.update(c.record.sessionId for c in fresh)
            self._remember(msg_id, seen)
        return fresh

    def _remember(self, msg_id, value):
        self.ids[msg_id] = value
        if len(self.ids) > self.size:
            self.ids.popitem(last=False)


class LocalDelivery:
    """Sends chat frames to the logged-in connections of this node.

    @param sessions: the L{chatnet.service.online.LocalSessions} of this node.
    @param recent: the L{RecentDeliveries} of this node.
    @param prepare: encodes a frame once for many connections (the client
        factory's C{prepareMessage}).
    @param emit: C{emit(event, *args)} (L{chatnet.ops.events.EventBus.emit}).
    """

    def __init__(self, sessions, recent, prepare, emit):
        self.sessions = sessions
        self.recent = recent
        self.prepare = prepare
        self.emit = emit

    def deliver(self, msg_id, data, usernames, everyone):
        """Send chat C{data} (JSON of the frame's data) to local users who
        have not had it yet; returns C{(delivered, missing)}: how many got
        it now, and which of C{usernames} are not connected here."""
        if everyone:
            targets, missing = list(self.sessions), []
        else:
            targets, missing = [], []
            for username in usernames:
                connections = [c for c in self.sessions.all(username) if c.record is not None]
                if connections:
                    targets.extend(connections)
                else:
                    missing.append(username)
        targets = self.recent.new_for(msg_id, [c for c in targets if c.record is not None], everyone)
        push_chat(targets, msg_id, data, self.prepare, self.emit)
        return len(targets), missing

    def deliver_queued(self, connection, msg_id, data):
        """Send a message queued while its recipient was offline (C{data}:
        JSON bytes of the frame's data) to C{connection}, unless it had it."""
        if self.recent.new_for(msg_id, [connection], False):
            connection.push(codec.chat_frame(data), msg_id)

    def sent_from(self, connection, msg_id):
        """C{connection} sent C{msg_id}: a delivery of it to its user's
        sessions skips this one."""
        self.recent.new_for(msg_id, [connection], False)
