"""Room messages on the node that has the members: each room's messages reach
this node's members once each and in seq order, whichever node accepted them.

Any node accepts a room message (its seq from the accept script) and sends
it to every node that has members of the room online (the room's node set,
which the same script reads). Messages of one room accepted on several nodes
arrive here in any order, so this node delivers each room in seq order: a
message that arrives ahead of its predecessor is held; if the predecessor has
not come within ``GAP_WAIT`` (its node died after accepting it, a call
failed, Redis lost the room's node set), the missing messages are read from
the room's history in Redis, which the accept script wrote in the same step
as the seq, and delivered in order.

The room's node set (``chatnet:room-nodes:<room>``) is kept by the nodes
themselves: a node adds itself before its first member of a room is told
it is in (the same script reads the room's current seq, from which this node
then counts), and removes itself ``UNTRACK_AFTER`` seconds after its last
member left. After Redis lost the sets (restarted empty, the leader's sweep
of a node it took for dead) the node adds itself again to every room it
tracks and catches up from the history; the same catch-up follows every
departure of a node (it may have died with messages accepted and not sent),
and a periodic check catches up a room whose counter stayed ahead of what
arrived here.

Each session keeps the last seq of each room it was sent (its C{marks}), so
a message reaches a session at most once, never after a later one, and a
member who joined after a message does not get it live (the join showed the
history up to its seq). A mark also covers what the client has by other
ways: the seq a C{resume} names and what a replay (resume, join) sent
(L{chatnet.service.session.Session.seen}). A node that is behind in a room
(waiting for a gap, or for the messages of a node that died) may have
counted from a lower seq than the client already has from another node;
no mark is ever made below what the client has.
"""
from twisted.internet import defer, task
from twisted.logger import Logger

from chatnet.domain.messages import room_channel
from chatnet.errors import StoreUnavailable
from chatnet.protocols import codec
from chatnet.protocols.constants import automatic_rooms
from chatnet.service.delivery import push_chat
from chatnet.service.history import RESUME_LIMIT
from chatnet.stores.redis import SEQ_TRUSTED, node_rooms_key, room_nodes_key, seq_key

log = Logger()

#: seconds a message ahead of its predecessor waits for it before the gap
#: is read from the history
GAP_WAIT = 0.5
#: held messages of one room beyond which the gap is read at once
HELD_LIMIT = 1000
#: seconds between checks for rooms whose counter stayed ahead
CHECK_EVERY = 5.0
#: seconds a room without members here stays in its node set
UNTRACK_AFTER = 30.0

# KEYS: trusted counters; ARGV: node id, its rooms key, then room, node set
# key, seq key, channel for each room. Adds the node to each room's node set
# and answers each room's current seq (-1: no trusted counter).
TRACK = """
local out = {}
for i = 3, #ARGV, 4 do
  redis.call('SADD', ARGV[i + 1], ARGV[1])
  redis.call('SADD', ARGV[2], ARGV[i])
  local cur = -1
  if redis.call('SISMEMBER', KEYS[1], ARGV[i + 3]) == 1 then
    cur = tonumber(redis.call('GET', ARGV[i + 2]) or -1)
  end
  table.insert(out, cur)
end
return out
"""

# ARGV: node id, its rooms key, room, node set key
UNTRACK = """
redis.call('SREM', ARGV[4], ARGV[1])
redis.call('SREM', ARGV[2], ARGV[3])
return 1
"""


class _Room:
    __slots__ = ("name", "channel", "members", "next", "held", "timer", "filling", "seen", "lock", "idle",
                 "adding", "untracked")

    def __init__(self, name):
        self.name = name
        self.channel = room_channel(name)
        self.members = set()  # connections
        self.next = None  # the next seq to deliver (None: not tracked yet)
        self.held = {}  # seq -> (msg id, data) that came ahead of their turn
        self.timer = None
        self.filling = False
        self.seen = None  # (next, counter) at the last check
        self.lock = defer.DeferredLock()  # adding and removing this node in Redis, in order
        self.idle = None  # the call that removes the node from the room's set
        self.adding = 0  # members being added
        self.untracked = False  # removed from the room's set: a new member adds the node again


class RoomFeed:
    """The rooms of this node's members.

    @param node_id: this node's id.
    @param redis: the L{chatnet.stores.redis.RedisStore}.
    @param mongo: the L{chatnet.stores.mongo.MongoStore} (the rooms of a
        user logging in).
    @param history: the L{chatnet.service.history.History} (the gaps).
    @param sequences: the L{chatnet.service.sequences.Sequences} (a counter Redis
        lost, restored before counting from it).
    @param prepare: encodes a frame once for many connections.
    @param emit: C{emit(event, *args)}.
    @param clock: an C{IReactorTime}.
    """

    def __init__(self, node_id, redis, mongo, history, sequences, prepare, emit, clock):
        self.node_id = node_id
        self.redis = redis
        self.mongo = mongo
        self.history = history
        self.sequences = sequences
        self.prepare = prepare
        self.emit = emit
        self.clock = clock
        self.rooms = {}  # name -> _Room
        self._loop = None

    # -- members -------------------------------------------------------------

    async def session_started(self, connection):
        """C{connection} logged in: it gets its rooms' messages from now on
        (its automatic rooms and the rooms MongoDB has it in; the rooms are
        also the session's L{known_rooms<chatnet.service.session.Session.known_rooms>}).

        @raise StoreUnavailable: MongoDB or Redis did not answer (the login
            is undone: a session that does not get its rooms would miss
            messages without knowing it)."""
        record = connection.record
        rooms = set(automatic_rooms(record.alliance))
        ordinary = set(await self.mongo.rooms_of([record.username]))
        connection.session.known_rooms().update(ordinary)
        await self.add(rooms | ordinary, [connection])

    def session_ended(self, connection):
        """C{connection} logged out or was replaced."""
        for name in list(connection.session.marks or ()):
            self._remove(name, connection)
        connection.session.marks = None

    async def add(self, names, connections, marks=None):
        """C{connections} get the messages of rooms C{names} from now on:
        each room's messages after the seq in C{marks} (room -> seq), else
        after the room's current seq."""
        names = sorted(names)
        rooms = [self.rooms.setdefault(name, _Room(name)) for name in names]
        for room in rooms:
            room.adding += 1
            if room.idle is not None and room.idle.active():
                room.idle.cancel()
            room.idle = None
        try:
            await self._track(rooms)
        finally:
            for room in rooms:
                room.adding -= 1
        for name, room in zip(names, rooms):
            start = room.next - 1 if marks is None or name not in marks else marks[name]
            for connection in connections:
                if connection.record is None:
                    continue
                session = connection.session
                if session.marks is None:
                    session.marks = {}
                if name not in session.marks:
                    # (not below what the client has: a resume or a replay
                    # may have sent more than this node delivered yet)
                    floor = session.floors.pop(name, start) if session.floors else start
                    session.marks[name] = max(start, floor)
                room.members.add(connection)

    def remove(self, name, connections):
        """C{connections} left room C{name}."""
        for connection in connections:
            self._remove(name, connection)
            session = connection.session
            if session.marks is not None and name in session.marks:
                # (kept as a floor: a mark made again starts there at the least)
                session.raise_mark(name, session.marks.pop(name))

    def _remove(self, name, connection):
        room = self.rooms.get(name)
        if room is None:
            return
        room.members.discard(connection)
        if not room.members and room.idle is None:
            room.idle = self.clock.callLater(UNTRACK_AFTER, self._untrack_later, room)

    def _untrack_later(self, room):
        room.idle = None
        defer.ensureDeferred(self._untrack(room)).addErrback(
            lambda f: log.warn("room {room} not left in redis: {why}", room=room.name, why=f.getErrorMessage()))

    async def _untrack(self, room):
        await room.lock.acquire()
        try:
            if room.members or room.adding or self.rooms.get(room.name) is not room:
                return
            room.untracked = True
            await self.redis.eval(UNTRACK, [], [self.node_id, node_rooms_key(self.node_id), room.name,
                                                room_nodes_key(room.name)])
            if not room.members and not room.adding and self.rooms.get(room.name) is room:
                del self.rooms[room.name]
                if room.timer is not None and room.timer.active():
                    room.timer.cancel()
        finally:
            room.lock.release()

    async def _track(self, rooms, again=False):
        """Make sure this node is in the node set of each of C{rooms}
        (C{again}: also of those it is in already); a room tracked for the
        first time (or again after this node left its set) counts from its
        current seq."""
        todo = [r for r in rooms if again or r.next is None or r.untracked]
        if not todo:
            return
        locked = todo
        for room in locked:
            await room.lock.acquire()
        try:
            # (another call may have tracked some meanwhile)
            todo = [r for r in locked if again or r.next is None or r.untracked]
            if not todo:
                return
            current = dict(zip(todo, await self._track_script(todo)))
            lost = [r for r in todo if current[r] < 0]
            for room in lost:
                await self.sequences.restore(room.channel)
            if lost:
                current.update(zip(lost, await self._track_script(lost)))
            for room, cur in current.items():
                cur = max(cur, 0)
                if room.next is None or room.untracked:
                    room.next, room.untracked = cur + 1, False
                    room.held.clear()
                elif cur >= room.next:
                    self._gap(room, at_once=True)
        finally:
            for room in locked:
                room.lock.release()

    async def _track_script(self, rooms):
        args = [self.node_id, node_rooms_key(self.node_id)]
        for room in rooms:
            args += [room.name, room_nodes_key(room.name), seq_key(room.channel), room.channel]
        return [int(c) for c in await self.redis.eval(TRACK, [SEQ_TRUSTED], args)]

    # -- messages ------------------------------------------------------------

    def deliver(self, name, seq, msg_id, data):
        """Room message C{seq} of room C{name} arrived (C{data}: the chat
        frame data as JSON bytes)."""
        room = self.rooms.get(name)
        if room is None or room.next is None:
            return  # no member here (any more), or not yet counting
        if seq < room.next:
            return  # had it
        if seq > room.next:
            room.held[seq] = (msg_id, data)
            self._gap(room, at_once=len(room.held) > HELD_LIMIT)
            return
        self._send(room, seq, msg_id, data)
        room.next = seq + 1
        self._drain(room)

    def notice(self, name, action, data, feature=None, skip_user=None, skip_session=None):
        """Send the frame C{action} with C{data} (a dict), encoded once, to
        this node's members of C{name} (those that asked for C{feature}, if
        given; not the sessions of C{skip_user} nor session
        C{skip_session}). A C{roomNotice} also reaches the sessions of the
        user it is about (L{chatnet.service.session.Session.room_notice}: a
        mute is kept)."""
        room = self.rooms.get(name)
        members = [c for c in (room.members if room is not None else ()) if c.record is not None]
        if feature or skip_user or skip_session:
            members = [c for c in members if (not feature or feature in c.features)
                       and c.record.username != skip_user and c.record.sessionId != skip_session]
        if not members:
            return
        if action == "roomNotice":
            for connection in members:
                if connection.record.username == data.get("username"):
                    connection.session.room_notice(data)
        payload = codec.encode(action, data)
        for connection in members:
            connection.sendMessage(payload)

    def _send(self, room, seq, msg_id, data):
        targets = []
        for connection in room.members:
            marks = connection.session.marks
            if marks is not None and marks.get(room.name, seq) < seq:
                marks[room.name] = seq
                targets.append(connection)
        push_chat(targets, msg_id, data, self.prepare, self.emit)

    def _drain(self, room):
        held = room.held
        while held:
            item = held.pop(room.next, None)
            if item is None:
                break
            self._send(room, room.next, *item)
            room.next += 1
        for seq in [s for s in held if s < room.next]:
            del held[seq]
        if not held and room.timer is not None:
            if room.timer.active():
                room.timer.cancel()
            room.timer = None

    def _gap(self, room, at_once=False):
        """Messages before the held ones (or up to the room's counter) did
        not come: read them from the history, now or after L{GAP_WAIT}."""
        if at_once:
            if room.timer is not None and room.timer.active():
                room.timer.cancel()
            room.timer = None
            defer.ensureDeferred(self._fill(room))
        elif room.timer is None:
            room.timer = self.clock.callLater(GAP_WAIT, self._timed_fill, room)

    def _timed_fill(self, room):
        room.timer = None
        defer.ensureDeferred(self._fill(room))

    async def _fill(self, room):
        if room.filling or room.next is None:
            return
        room.filling = True
        try:
            missed = await self.history.after(room.channel, room.next - 1, RESUME_LIMIT)
        except StoreUnavailable:
            room.filling = False
            if room.held:
                self._gap(room)
            return
        except Exception:
            room.filling = False
            log.failure("room {room}: reading a gap failed", room=room.name)
            return
        room.filling = False
        if missed is None:
            # beyond what the history keeps: go on from the first held one
            first = min(room.held, default=None)
            log.warn("room {room}: messages from seq {seq} cannot be found; going on", room=room.name, seq=room.next)
            if first is not None:
                room.next = first
        else:
            for data in missed:
                seq = data.get("seq") or 0
                if seq >= room.next:
                    held = room.held.pop(seq, None)
                    self._send(room, seq, data["msgId"], held[1] if held else codec.chat_data_of(data))
                    room.next = seq + 1
        self._drain(room)
        if room.held:
            self._gap(room)

    # -- catching up ---------------------------------------------------------

    def start(self):
        """Check the rooms now and then (L{check})."""
        self._loop = task.LoopingCall(lambda: defer.ensureDeferred(self.check()).addErrback(
            lambda f: log.warn("checking the rooms' seqs failed: {why}", why=f.getErrorMessage())))
        self._loop.clock = self.clock
        self._loop.start(CHECK_EVERY, now=False)

    def stop(self):
        if self._loop is not None and self._loop.running:
            self._loop.stop()

    async def check(self, at_once=False):
        """Catch up every room whose counter is ahead of what arrived here:
        at once (C{at_once}), or if it was ahead at the previous check too."""
        rooms = [r for r in self.rooms.values() if r.next is not None]
        if not rooms:
            return
        counters = await self.redis.call("mget", [seq_key(r.channel) for r in rooms])
        for room, counter in zip(rooms, counters):
            if counter is None:
                continue
            counter = int(counter)
            before, room.seen = room.seen, (room.next, counter)
            if counter < room.next:
                continue
            if at_once or (before is not None and before[0] == room.next and before[1] >= room.next):
                self._gap(room, at_once=True)

    async def track_again(self):
        """Redis may have lost this node from the rooms' node sets: add it
        again to every room it tracks, and catch up what was missed."""
        rooms = [room for _, room in sorted(self.rooms.items()) if room.next is not None and not room.untracked]
        for start in range(0, len(rooms), 100):
            await self._track(rooms[start:start + 100], again=True)

    def members_of(self, name):
        """This node's connections in room C{name}."""
        room = self.rooms.get(name)
        return list(room.members) if room is not None else []

