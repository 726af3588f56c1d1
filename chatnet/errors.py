"""Errors a client can be told about (docs/protocol.md, "Errors"), and the
store error the protocol layer maps to one."""


class ProtocolError(Exception):
    """A request that is answered with an C{error} frame.

    @ivar code: the docs/protocol.md error code (400, 401, 403, 404, 409, 413,
        429, 503).
    @ivar ext: extra context for the client, the action concerned.
    """

    def __init__(self, code, message, ext="", re=None):
        super().__init__(code, message)
        self.code = code
        self.message = message
        self.ext = ext or ""
        self.re = re


class StoreUnavailable(Exception):
    """A backing store did not answer: the request was not carried out.

    A store error, not a client error: the client protocol tells the client
    a 503 (L{as_protocol_error}), the internal protocol sends
    C{StoreDown}.

    @ivar store: C{"redis"} or C{"mongodb"}.
    @ivar ext: what was being done (a MongoDB operation), or "".
    """

    def __init__(self, store, ext=""):
        super().__init__(store, ext)
        self.store = store
        self.ext = ext or ""
        self.message = f"{store} is unavailable right now, try again"


def as_protocol_error(error):
    """The L{ProtocolError} a client is told for C{error} (a
    L{ProtocolError} itself or a L{StoreUnavailable}), or None for an
    unexpected one."""
    if isinstance(error, ProtocolError):
        return error
    if isinstance(error, StoreUnavailable):
        return ProtocolError(503, error.message, error.ext)
    return None


def not_online(username, ext="chat"):
    return ProtocolError(404, f"user {username} is not on line", ext)


def unknown_room(room, ext="chat"):
    return ProtocolError(404, f"room {room} does not exist", ext)


def not_member(room, ext="chat"):
    return ProtocolError(403, f"you are not a member of room {room}; join it first", ext)


class PeerUnavailable(Exception):
    """Another node cannot be reached now (no link, or the link broke
    during a call); what was asked of it may be tried again."""
