"""Stand-ins for in-process tests of the server core (tests/test_*_inprocess.py).

The stores are real (the ``redis`` and ``mongo_server`` fixtures); time is a
fake L{twisted.internet.task.Clock}. What stands in here is what is not a
store: a client connection that records its frames, the peer links (the
other nodes, which these tests do not run) and presence announcements.
"""
import time

import orjson
from argon2 import PasswordHasher
from twisted.internet import reactor, task

from chatnet.errors import PeerUnavailable
from chatnet.errors import as_protocol_error
from chatnet.limits.budget import ByteBudget
from chatnet.limits.login_throttle import LoginThrottle
from chatnet.protocols import codec
from chatnet.service.posting import Posting
from chatnet.service.public_rooms import PublicRooms

#: the users' password in the in-process tests, and its argon2 hash, made
#: with the lowest costs: the node checks a password with the costs its
#: stored hash names, so a login here costs a millisecond of CPU instead of
#: the quarter of a second of the default costs
PASSWORD = "correct horse"
HASH = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1).hash(PASSWORD)


class FakeConnection:
    """What the client actions (L{chatnet.actions}) use of a client connection
    (L{chatnet.protocols.websocket.ChatServerProtocol}), with its real
    L{chatnet.service.session.Session} (made by C{service}, a
    L{chatnet.service.session.SessionService}): every frame it would send
    is kept, decoded, in C{frames}."""

    transport = None

    def __init__(self, service):
        self.closed = False
        self.frames = []
        self.replaced_by_newer = False
        self.too_slow_closed = False
        self.session = service.open(self)

    @property
    def record(self):
        return self.session.record

    @property
    def features(self):
        return self.session.features

    # -- what the actions and the session call ----------------------------------

    def answer(self, action, data, request):
        self.sendMessage(codec.encode(action, data, request.id))

    def sendMessage(self, payload):
        if not self.closed:
            self.frames.append(orjson.loads(payload))

    def send_error(self, error, re=None):
        self.sendMessage(codec.encode_error(error, re))

    def push(self, payload, msg_id=None, prepared=None):
        if not self.session.keeps(msg_id, payload):
            self.sendMessage(payload)

    def too_slow(self):
        """Closed as too slow (4008): the client leaves."""
        self.too_slow_closed = True
        self.close()

    def replaced(self):
        self.replaced_by_newer = True
        self.session.replaced()

    def close(self):
        """The client leaves (no request in hand)."""
        self.closed = True
        self.session.closed(busy=False)

    # -- for the tests ---------------------------------------------------------

    def actions(self):
        return [f["action"] for f in self.frames]

    def chats(self):
        return [f["data"] for f in self.frames if f["action"] == "chat"]

    def take(self):
        frames, self.frames = self.frames, []
        return frames


def action_parts(*, config, clock, redis, mongo, offline, history, popular, profanity, acceptor, message_log, view,
                 directory, sessions, presence, router, rooms, feed, delivery, room_state=None,
                 emit=lambda event, *args: None):
    """What L{chatnet.actions.build} takes, of the parts of an in-process
    node: with the L{Posting}, the L{LoginThrottle} and the L{ByteBudget}
    made as L{chatnet.node.ChatNode._wire} makes them."""
    posting = Posting(config=config, profanity=profanity, acceptor=acceptor, message_log=message_log,
                      offline=offline, directory=directory, router=router, rooms=rooms, emit=emit,
                      public_rooms=PublicRooms(mongo, clock))
    return dict(config=config, clock=clock, view=view, mongo=mongo, offline=offline, history=history,
                popular=popular, directory=directory, sessions=sessions, presence=presence, rooms=rooms, feed=feed,
                delivery=delivery, posting=posting, login_throttle=LoginThrottle(redis, clock),
                budget=ByteBudget.from_config(config, clock), room_state=room_state, emit=emit)


_ids = iter(range(1, 1 << 62))


async def request(handlers, connection, action, **data):
    """Handle one request as the protocol does (a refusal becomes an error
    frame); returns the frames it sent, which are taken from C{connection}."""
    frame = codec.decode(orjson.dumps({"id": next(_ids), "action": action, "data": data}))
    try:
        await handlers.handle(connection, frame)
    except Exception as e:
        error = as_protocol_error(e)
        if error is None:
            raise
        connection.send_error(error, frame.id)
    return connection.take()


def error_code(frames):
    """The code of the error frame among C{frames} (None if there is none)."""
    errors = [f["data"]["code"] for f in frames if f["action"] == "error"]
    assert len(errors) <= 1, frames
    return errors[0] if errors else None


class FakePeers:
    """The peer links (L{chatnet.cluster.peers.Peers}) to nodes these tests
    do not run: C{call} answers what C{answers[command name]} gives (a
    function of node and arguments), raises L{PeerUnavailable} for a node in
    C{down}; every call is kept in C{calls} as (node, command name, arguments)."""

    def __init__(self, answers=None):
        self.answers = dict(answers or {})
        self.down = set()
        self.calls = []
        self.sent = []

    async def call(self, node, command, **arguments):
        self.calls.append((node, command.__name__, arguments))
        if node in self.down:
            raise PeerUnavailable(node)
        answer = self.answers[command.__name__]
        if isinstance(answer, Exception):
            raise answer
        return answer(node, **arguments)

    def send(self, node, command, **arguments):
        self.sent.append((node, command.__name__, arguments))


class Announcements:
    """Presence (L{chatnet.cluster.presence.Presence}): keeps what would be
    announced to the peers."""

    def __init__(self):
        self.announced = []

    def announce(self, record, online, nodes=None):
        self.announced.append((record.username, online))


async def run_until(clock, condition, what, timeout=10.0):
    """Run until C{condition()} is true: the real reactor for the stores'
    I/O, and fake C{clock} (unless None) to its next timed call whenever
    nothing else is going on. Fails after C{timeout} real seconds."""
    give_up = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > give_up:
            raise AssertionError(f"{what}: not within {timeout} s")
        # a few turns of the real reactor: the stores' answers
        await task.deferLater(reactor, 0.002, lambda: None)
        if condition():
            return
        calls = clock.getDelayedCalls() if clock is not None else ()
        if calls:
            clock.advance(max(0.0, min(c.getTime() for c in calls) - clock.seconds()))

