"""The commands nodes send each other on the internal AMP port.

Nothing but :class:`Challenge` and :class:`Authenticate` is answered before
the peer has proved that it knows the cluster secret and that it is the
cluster member whose node id it claims (see ``chatnet/protocols/internal.py``
for the limits on what a peer may send).
"""
from twisted.protocols import amp


class NotAuthenticated(Exception):
    pass


class NoSuchRoom(Exception):
    pass


class StoreDown(Exception):
    pass


class NotLeader(Exception):
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
    NotLeader: b"NOT_LEADER",
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
    """The online members of C{roomName} (as many as fit in one AMP value:
    C{truncated} if not all)."""

    arguments = [(b"roomName", amp.Unicode())]
    response = [(b"usernames", amp.ListOf(amp.Unicode())), (b"truncated", amp.Boolean())]
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
