"""The commands nodes send each other on the internal AMP port.

Nothing but :class:`Challenge` and :class:`Authenticate` is answered before
the peer has proved that it knows the cluster secret and that it is the
cluster member whose node id it claims (see ``chatnet/protocols/internal.py``
for the limits on what a peer may send).
"""
from twisted.protocols import amp

#: the most bytes AMP carries in one value
VALUE_BYTES = 0xFFFF


class Split(amp.Argument):
    """An argument whose encoding may be longer than one AMP value: it is
    cut into values of at most L{VALUE_BYTES}, sent under C{name},
    C{name.2}, C{name.3}, ... and joined again by the receiver (how many
    there may be is bounded by the box limits of
    L{chatnet.protocols.internal}). A value that fits one AMP value is
    sent exactly as C{argument} alone would send it.

    @param argument: the L{amp.Argument} of the whole value.
    """

    def __init__(self, argument, optional=False):
        super().__init__(optional)
        self.argument = argument

    def toBox(self, name, strings, objects, proto):
        value = self.retrieve(objects, _python_name(name), proto)
        if value is None:
            return  # (optional)
        encoded = self.argument.toString(value)
        strings[name] = encoded[:VALUE_BYTES]
        for n, start in enumerate(range(VALUE_BYTES, len(encoded), VALUE_BYTES), 2):
            strings[b"%s.%d" % (name, n)] = encoded[start:start + VALUE_BYTES]

    def fromBox(self, name, strings, objects, proto):
        first = self.retrieve(strings, name, proto)
        if first is None:
            objects[_python_name(name)] = None  # (optional)
            return
        pieces = [first]
        n = 2
        while (b"%s.%d" % (name, n)) in strings:
            pieces.append(strings.pop(b"%s.%d" % (name, n)))
            n += 1
        objects[_python_name(name)] = self.argument.fromString(b"".join(pieces))


def _python_name(name):
    """The keyword of AMP argument C{name} (as AMP makes it)."""
    return name.replace(b"-", b"_").decode("ascii")


class NotAuthenticated(Exception):
    pass


class NoSuchRoom(Exception):
    pass


class StoreDown(Exception):
    pass


class UnknownNode(Exception):
    """The node id given in L{Authenticate} is not (yet) a member in
    ZooKeeper: the connecting node retries shortly."""


class WrongNode(Exception):
    """A command speaks for a node id other than the sending peer's own."""


class NotAllowed(Exception):
    """The peer's identity may not send this command: a gateway may send
    only the server API's commands (C{Api*}), a node only the others."""


COMMON_ERRORS = {
    NotAuthenticated: b"NOT_AUTHENTICATED",
    NoSuchRoom: b"NO_SUCH_ROOM",
    StoreDown: b"STORE_DOWN",
    WrongNode: b"WRONG_NODE",
    NotAllowed: b"NOT_ALLOWED",
}


class Challenge(amp.Command):
    """Ask the server for a fresh nonce to answer in :class:`Authenticate`."""

    arguments = []
    response = [(b"nonce", amp.String())]


class Authenticate(amp.Command):
    """Prove knowledge of the cluster secret, as node C{nodeId} (or as
    gateway C{<id>} with C{nodeId} = C{"gateway:<id>"}: a gateway registered
    in ZooKeeper under C{/chatnet/gateways/<id>}, which may then send the
    server API's commands only).

    C{mac} = HMAC-SHA256(secret, b"client|" + server nonce + b"|" + nodeId);
    the answer proves the server knows it too: HMAC-SHA256(secret,
    b"server|" + C{nonce}). C{nodeId} must be a current member whose
    C{internalHost} in ZooKeeper is the connection's source address
    (C{AUTH_FAILED} otherwise); a node id the server does not know even
    after waiting briefly for its membership view is C{UNKNOWN_NODE}. Both
    close the connection.
    """

    arguments = [(b"nodeId", amp.Unicode()), (b"nonce", amp.String()), (b"mac", amp.String())]
    response = [(b"mac", amp.String())]
    errors = COMMON_ERRORS
    fatalErrors = {NotAuthenticated: b"AUTH_FAILED", UnknownNode: b"UNKNOWN_NODE"}


class SessionChanged(amp.Command):
    """A user logged in (C{online}) or out on the sending node.

    C{nodeId} must be the sending peer's own node id (C{WRONG_NODE}
    otherwise): a node speaks for its own sessions only."""

    arguments = [
        (b"username", amp.Unicode()),
        (b"nodeId", amp.Unicode()),
        (b"sessionId", amp.Unicode()),
        (b"loginTime", amp.Integer()),
        (b"alliance", amp.Unicode()),
        (b"version", amp.Integer()),
        (b"online", amp.Boolean()),
        # the login coexists with the user's other multi sessions
        (b"multi", amp.Boolean(optional=True)),
    ]
    response = []
    errors = COMMON_ERRORS
    requiresAnswer = False


class Deliver(amp.Command):
    """Deliver one chat message to users connected to the receiving node.

    C{data} is the JSON of the chat frame's C{data}; C{usernames} the
    recipients on this node, or C{everyone} for all its users. De-duplicated
    by C{msgId} and user: a retried delivery reaches nobody twice. Answers
    how many users got it, and which of the named users are not connected
    here (any more).
    """

    arguments = [
        (b"msgId", amp.Unicode()),
        (b"data", amp.String()),
        (b"usernames", amp.ListOf(amp.Unicode())),
        (b"everyone", amp.Boolean()),
    ]
    response = [(b"delivered", amp.Integer()), (b"missing", amp.ListOf(amp.Unicode()))]
    errors = COMMON_ERRORS


class DeliverMany(amp.Command):
    """Several direct messages for users of the receiving node, sent in one
    call (those accepted within a few milliseconds). C{msgIds}, C{datas} and
    C{usernames} are parallel lists. Answers the ids of the messages whose
    recipient is not connected there."""

    arguments = [
        (b"msgIds", amp.ListOf(amp.Unicode())),
        (b"datas", amp.ListOf(amp.String())),
        (b"usernames", amp.ListOf(amp.Unicode())),
    ]
    response = [(b"missing", amp.ListOf(amp.Unicode()))]
    errors = COMMON_ERRORS


class RoomDeliver(amp.Command):
    """Room messages for the members on the receiving node, sent in one call
    (those accepted within a few milliseconds). C{roomNames},
    C{seqs}, C{msgIds} and C{datas} are parallel lists. The receiver
    delivers each room in seq order (L{chatnet.service.roomfeed})."""

    arguments = [
        (b"roomNames", amp.ListOf(amp.Unicode())),
        (b"seqs", amp.ListOf(amp.Integer())),
        (b"msgIds", amp.ListOf(amp.Unicode())),
        (b"datas", amp.ListOf(amp.String())),
    ]
    response = []
    errors = COMMON_ERRORS


class RoomMember(amp.Command):
    """C{username} joined (C{joined}) or left C{roomName}: the receiver's
    sessions of that user start or stop getting the room."""

    arguments = [(b"roomName", amp.Unicode()), (b"username", amp.Unicode()), (b"joined", amp.Boolean())]
    response = []
    errors = COMMON_ERRORS


class RoomNotice(amp.Command):
    """A frame (C{data}, encoded) for the receiver's members of C{roomName}:
    those whose login asked for C{feature} (if given), except the sessions
    of user C{skipUser} and session C{skipSession}."""

    arguments = [(b"roomName", amp.Unicode()), (b"data", amp.String()),
                 (b"feature", amp.Unicode(optional=True)), (b"skipUser", amp.Unicode(optional=True)),
                 (b"skipSession", amp.Unicode(optional=True))]
    response = []
    errors = COMMON_ERRORS


class UserNotice(amp.Command):
    """A frame (C{data}, encoded) for the receiver's sessions of
    C{username} whose login asked for C{feature} (if not empty), except
    session C{skip} (L{chatnet.service.notices})."""

    arguments = [(b"username", amp.Unicode()), (b"data", amp.String()), (b"feature", amp.Unicode()),
                 (b"skip", amp.Unicode())]
    response = []
    errors = COMMON_ERRORS


class Disconnect(amp.Command):
    """Node to node: close every session of C{username} on the receiving
    node (close code 4010, L{chatnet.protocols.constants.DISCONNECTED});
    answers how many it closed."""

    arguments = [(b"username", amp.Unicode())]
    response = [(b"sessions", amp.Integer())]
    errors = COMMON_ERRORS


# -- the server API: sent by a gateway (docs/api.md), answered by any node --


class BadRequest(Exception):
    """The request names something it may not (HTTP 400)."""


class NotFound(Exception):
    """No such user or room (HTTP 404)."""


class Conflict(Exception):
    """The user or room exists already (HTTP 409)."""


API_ERRORS = {**COMMON_ERRORS, BadRequest: b"BAD_REQUEST", NotFound: b"NOT_FOUND", Conflict: b"CONFLICT"}


class ApiPost(amp.Command):
    """Post C{message} from C{sender} to room C{roomName} or to user C{to}
    (one of them), accepted and delivered as a client's chat."""

    arguments = [
        (b"roomName", amp.Unicode(optional=True)),
        (b"to", amp.Unicode(optional=True)),
        (b"message", amp.Unicode()),
        (b"sender", amp.Unicode()),
    ]
    response = [(b"msgId", amp.Unicode()), (b"seq", amp.Integer()), (b"ts", amp.Integer()),
                (b"queued", amp.Boolean())]
    errors = API_ERRORS


class ApiPresence(amp.Command):
    """Whether C{username} is online, on which nodes, for how long."""

    arguments = [(b"username", amp.Unicode())]
    response = [(b"online", amp.Boolean()), (b"nodes", amp.ListOf(amp.Unicode())),
                (b"onlineFor", amp.Unicode(optional=True))]
    errors = API_ERRORS


class ApiRoomPresence(amp.Command):
    """The online members of C{roomName} (as many as the node answers,
    L{chatnet.config.NodeConfig.max_presence_bytes}: C{truncated} if not
    all), in as many AMP values as they need."""

    arguments = [(b"roomName", amp.Unicode())]
    response = [(b"usernames", Split(amp.ListOf(amp.Unicode()))), (b"truncated", amp.Boolean())]
    errors = API_ERRORS


class ApiDisconnect(amp.Command):
    """Close every session of C{username} on every node (close 4010)."""

    arguments = [(b"username", amp.Unicode())]
    response = [(b"sessions", amp.Integer())]
    errors = API_ERRORS


class ApiCreateUser(amp.Command):
    arguments = [(b"username", amp.Unicode()), (b"password", amp.Unicode(optional=True)),
                 (b"alliance", amp.Unicode(optional=True))]
    response = []
    errors = API_ERRORS


class ApiDeleteUser(amp.Command):
    """Delete the account C{username} and close its sessions."""

    arguments = [(b"username", amp.Unicode())]
    response = [(b"sessions", amp.Integer())]
    errors = API_ERRORS


class ApiCreateRoom(amp.Command):
    arguments = [(b"roomName", amp.Unicode()), (b"private", amp.Boolean()),
                 (b"owner", amp.Unicode(optional=True))]
    response = []
    errors = API_ERRORS


class ApiDeleteRoom(amp.Command):
    arguments = [(b"roomName", amp.Unicode())]
    response = []
    errors = API_ERRORS


class ApiRoomMember(amp.Command):
    """Make C{username} a member of C{roomName} (C{member}) or not;
    C{changed} if it was not so already."""

    arguments = [(b"roomName", amp.Unicode()), (b"username", amp.Unicode()), (b"member", amp.Boolean())]
    response = [(b"changed", amp.Boolean())]
    errors = API_ERRORS


#: the commands of the server API: a gateway may send these and nothing else
API_COMMANDS = frozenset(c.commandName for c in (
    ApiPost, ApiPresence, ApiRoomPresence, ApiDisconnect, ApiCreateUser, ApiDeleteUser, ApiCreateRoom,
    ApiDeleteRoom, ApiRoomMember,
))
