"""The session of one client connection: its state, its login, its end, and
the live messages it keeps back while a resume replays history.

A session goes CONNECTED (no login yet, or no longer: replaced by a newer
login of its user) → LOGGED_IN → CLOSED (the connection is gone; final).
The client protocol (L{chatnet.protocols.websocket}) carries frames and
tells the session when the connection closes; what being logged in means
for the node (local sessions, the session directory, presence, events) is
here.
"""
import orjson
from twisted.internet import defer
from twisted.logger import Logger

log = Logger()

CONNECTED = "connected"
LOGGED_IN = "logged in"
CLOSED = "closed"

#: how long a closed connection's second logout waits for the request in hand
LOGOUT_WAIT = 10.0


class SessionService:
    """What the sessions of this node share.

    @param sessions: the L{chatnet.service.online.LocalSessions} of this node.
    @param directory: the L{chatnet.service.online.SessionDirectory}.
    @param presence: the L{chatnet.cluster.presence.Presence} (announces).
    @param view: the L{chatnet.cluster.view.ClusterView} (this node's id).
    @param emit: C{emit(event, *args)} (L{chatnet.ops.events.EventBus.emit}).
    @param clock: an C{IReactorTime}.
    @param feed: the L{chatnet.service.roomfeed.RoomFeed} (the rooms a
        session gets).
    @param max_held: bytes of live frames a session may keep back during a
        resume (C{--max-client-backlog}; 0: no bound); past it the
        connection is closed as too slow (4008), as a client that does not
        read is, and resumes again.
    """

    def __init__(self, sessions, directory, presence, view, emit, clock, feed, max_held=1024 * 1024):
        self.feed = feed
        self.max_held = max_held
        self.sessions = sessions
        self.directory = directory
        self.presence = presence
        self.view = view
        self.emit = emit
        self.clock = clock

    def open(self, connection):
        """The L{Session} of a new C{connection}."""
        return Session(self, connection)


class HeldDeliveries:
    """Live chat frames kept back while a resume replays history, so that
    they follow the replay in seq order. A frame the replay already sent is
    dropped, while holding and after (a delivery retried to this node), and
    so is a held room message at or below the seq the resume named for its
    room (the client has it)."""

    __slots__ = ("frames", "replayed", "timer", "has", "bytes", "limit", "over")

    def __init__(self, limit=0, over=None):
        self.frames = []  # (msg_id, payload) while holding, else None
        self.replayed = set()
        self.timer = None
        self.has = None  # room -> the last seq the client has, named while holding
        self.bytes = 0  # of the frames kept back
        self.limit = limit  # bytes kept back at most (0: no bound); past it, over() once
        self.over = over

    @property
    def holding(self):
        return self.frames is not None

    def take(self, msg_id, payload):
        """True if the frame is not to be sent now: kept back, or replayed
        already."""
        if self.frames is not None:
            if self.limit:
                self.bytes += len(payload)
                if self.bytes > self.limit:
                    # the connection is closed (too slow): nothing more is kept
                    if self.over is not None:
                        over, self.over = self.over, None
                        over()
                    return True
            self.frames.append((msg_id, payload))
            return True
        return msg_id is not None and msg_id in self.replayed

    def release(self):
        """Stop holding; the payloads kept back that the replay did not have."""
        if self.timer is not None and self.timer.active():
            self.timer.cancel()
        self.timer = None
        frames, self.frames = self.frames or (), None
        has, self.has = self.has, None
        self.bytes = 0
        return [payload for msg_id, payload in frames
                if (msg_id is None or msg_id not in self.replayed) and not (has and _had(has, payload))]


def _had(has, payload):
    """Whether chat frame C{payload} is a room message at or below the seq
    C{has} names for its room (decoded only for a resume that named rooms,
    and only the frames that arrived while it was read)."""
    data = orjson.loads(payload).get("data") or {}
    seq = data.get("seq")
    return isinstance(seq, int) and seq <= has.get(data.get("roomName"), -1)


class Session:
    """The session of one connection (the client protocol's C{session}).

    The connection gives: C{sendMessage(payload)}, C{closed} (no frame can
    be sent any more).

    @ivar state: L{CONNECTED}, L{LOGGED_IN} or L{CLOSED}.
    @ivar record: the L{chatnet.service.online.SessionRecord} while logged in.
    @ivar features: the protocol extensions the client asked for at login.
    @ivar held: the L{HeldDeliveries} once a resume held frames back.
    @ivar rooms: the ordinary rooms known to include the user (made on first
        use by L{known_rooms}).
    @ivar marks: room -> the seq of the last message of the room sent to
        this session (L{chatnet.service.roomfeed.RoomFeed}), or that the
        client has otherwise (L{seen}), while logged in; the rooms it is
        delivered.
    @ivar floors: room -> the last seq the client has of a room it is not
        delivered (L{seen}, or the mark it had when the room was taken
        from it); a mark made later starts there at the least.
    @ivar mutes: room -> the end (ms) of the user's mute there (0: none), for
        the rooms whose mute was read (None: none yet).
    @ivar room_version: the version of the user's room state that L{rooms}
        and L{mutes} are at least as new as (L{chatnet.service.roomstate});
        None until the login read it.
    """

    __slots__ = ("service", "connection", "state", "record", "features", "held", "rooms", "marks", "floors",
                 "mutes", "room_version", "_request_done", "_gone")

    def __init__(self, service, connection):
        self.service = service
        self.connection = connection
        self.state = CONNECTED
        self.record = None
        self.features = frozenset()
        self.held = None
        self.rooms = None
        self.marks = None
        self.floors = None
        self.mutes = None
        self.room_version = None
        self._request_done = None  # after the close: fires when the request in hand is done
        self._gone = None

    def known_rooms(self):
        """L{rooms}: filled at login (L{chatnet.service.roomfeed.RoomFeed.session_started}),
        by joinRoom and by the membership look-ups of
        L{chatnet.actions.access.RoomAccess}, emptied by leaveRoom."""
        if self.rooms is None:
            self.rooms = set()
        return self.rooms

    def seen(self, room, seq):
        """The client has room C{room}'s messages up to C{seq} (it said so
        in a resume, or a replay sent them): none of them is delivered to
        this session live (again), however late this node gets it, nor
        released from what the resume held back."""
        if self.holding:
            if self.held.has is None:
                self.held.has = {}
            self.held.has[room] = max(seq, self.held.has.get(room, -1))
        self.raise_mark(room, seq)

    def raise_mark(self, room, seq):
        """The session's mark of C{room} (or, for a room it is not
        delivered, its floor) is at least C{seq}."""
        marks = self.marks
        if marks is not None and room in marks:
            if marks[room] < seq:
                marks[room] = seq
            return
        if self.floors is None:
            self.floors = {}
        if self.floors.get(room, -1) < seq:
            self.floors[room] = seq

    def mute_known(self, room):
        """Whether L{mutes} knows the user's mute in C{room} (or that there is none)."""
        return self.mutes is not None and room in self.mutes

    def muted_until(self, room):
        """The end (ms) of the user's mute in C{room}, as last known (0: none)."""
        return self.mutes.get(room, 0) if self.mutes else 0

    def set_muted(self, room, until_ms):
        """The user is muted in C{room} until C{until_ms} (0: not muted)."""
        if self.mutes is None:
            self.mutes = {}
        self.mutes[room] = until_ms

    def forget_mute(self, room):
        """The user's mute in C{room} is no longer known (read it again)."""
        if self.mutes:
            self.mutes.pop(room, None)

    def room_notice(self, data):
        """A C{roomNotice} about this session's user (L{chatnet.domain.moderation}):
        a mute is kept; after a kick or a ban the room is no longer known to
        include them (their next post to it is checked again)."""
        room, action = data.get("roomName"), data.get("action")
        if action == "mute":
            self.set_muted(room, data.get("until") or 0)
        elif action in ("kick", "ban"):
            if self.rooms is not None:
                self.rooms.discard(room)
            self.forget_mute(room)

    # -- login and logout ----------------------------------------------------

    def logged_in(self, record, features):
        """C{record} is this connection's login (registered among the local
        sessions by the caller, not yet published)."""
        self.record = record
        self.features = features
        if self.state is CONNECTED:
            self.state = LOGGED_IN

    def login_undone(self):
        """The login could not be published: not logged in after all."""
        self.record = None
        if self.state is LOGGED_IN:
            self.state = CONNECTED

    def replaced(self):
        """A newer login of the same user took over this session."""
        record, self.record = self.record, None
        if self.state is LOGGED_IN:
            self.state = CONNECTED
        if record is not None:
            self.service.sessions.remove(record.username, self.connection)
        self.service.feed.session_ended(self.connection)

    async def logout(self):
        """End the login, if this connection still holds it: announced,
        unpublished, and told to the event listeners."""
        record, self.record = self.record, None
        if self.state is LOGGED_IN:
            self.state = CONNECTED
        service = self.service
        service.feed.session_ended(self.connection)
        if record is None or not service.sessions.remove(record.username, self.connection):
            return
        service.presence.announce(record, False)
        await service.directory.unpublish(record)
        service.emit("user_offline", record.username, service.view.node_id)

    # -- the end -------------------------------------------------------------

    @property
    def gone(self):
        """A Deferred that fires once the connection is closed and its
        session removed (made on first use: most connections never need it)."""
        if self._gone is None:
            self._gone = defer.Deferred()
        return self._gone

    @property
    def finished(self):
        """True once the connection is gone (L{CLOSED}: final)."""
        return self.state is CLOSED

    def closed(self, busy):
        """The connection is gone; C{busy}: a request was in hand (it calls
        L{request_finished} when it is done)."""
        self.state = CLOSED
        d = defer.ensureDeferred(self._end(busy))
        d.addErrback(lambda f: log.failure("logout failed", f))
        d.addBoth(self._ended)

    def request_finished(self):
        """The request in hand is done; False once the connection is gone
        (then nothing more is handled)."""
        if self._request_done is not None:
            done, self._request_done = self._request_done, None
            if not done.called:
                done.callback(None)
        return not self.finished

    async def _end(self, busy):
        """Log out at once; if a request was in hand, once more when it is
        done: a login that was publishing the session when the client left
        puts it back after the first logout."""
        record = self.record
        if busy:
            done = self._request_done = defer.Deferred()
        await self.logout()
        if not busy:
            return
        if not done.called:
            timer = self.service.clock.callLater(LOGOUT_WAIT, done.callback, None)
            await done
            if timer.active():
                timer.cancel()
        record, self.record = self.record or record, None
        if record is not None:
            self.service.presence.announce(record, False)
            await self.service.directory.unpublish(record)

    def _ended(self, _):
        if self._gone is None:
            self._gone = defer.succeed(None)
        elif not self._gone.called:
            self._gone.callback(None)

    # -- holding live frames back during a resume ----------------------------

    @property
    def holding(self):
        return self.held is not None and self.held.holding

    def hold(self, at_most=None):
        """Keep live chat frames back (until L{release}, or for C{at_most}
        seconds)."""
        held = self.held
        if held is None:
            held = self.held = HeldDeliveries(self.service.max_held, self.connection.too_slow)
        elif not held.holding:
            held.frames, held.replayed = [], set()
        if held.timer is not None and held.timer.active():
            held.timer.cancel()
        held.timer = None
        if at_most is not None:
            held.timer = self.service.clock.callLater(at_most, self.release)

    def keeps(self, msg_id, payload):
        """True if a live chat frame is not to be sent now (see
        L{HeldDeliveries.take})."""
        return self.held is not None and self.held.take(msg_id, payload)

    def replay(self, msg_id, payload, room=None, seq=None):
        """Send a replayed chat frame; a live copy of it is dropped (of a
        room's message, C{room} and C{seq}: any live one of the room up to
        it, L{seen})."""
        self.held.replayed.add(msg_id)
        if room is not None and isinstance(seq, int):
            self.seen(room, seq)
        self.connection.sendMessage(payload)

    def release(self):
        """The replay is done: send what arrived meanwhile, minus what the
        replay already had."""
        if self.held is None:
            return
        payloads = self.held.release()
        if self.connection.closed:
            return
        for payload in payloads:
            self.connection.sendMessage(payload)
