"""Errors a client can be told about (PROTOCOL.md section 5)."""


class ProtocolError(Exception):
    """A request that is answered with an C{error} frame.

    @ivar code: the PROTOCOL.md error code (400, 401, 403, 404, 409, 413,
        429, 503).
    @ivar ext: extra context for the client, the action concerned.
    """

    def __init__(self, code, message, ext="", re=None):
        super().__init__(code, message)
        self.code = code
        self.message = message
        self.ext = ext or ""
        self.re = re


class StoreUnavailable(ProtocolError):
    """A backing store did not answer: the request was not carried out."""

    def __init__(self, store, ext=""):
        super().__init__(503, f"{store} is unavailable right now, try again", ext)
        self.store = store


def not_online(username, ext="chat"):
    return ProtocolError(404, f"user {username} is not on line", ext)


def unknown_room(room, ext="chat"):
    return ProtocolError(404, f"room {room} does not exist", ext)


def not_member(room, ext="chat"):
    return ProtocolError(403, f"you are not a member of room {room}; join it first", ext)
