"""What the server and its clients agree on, beyond the shape of the frames.

This module imports nothing but the standard library, so that a client can use
it without Twisted, the stores or anything else of a node (docs/protocol.md is
the reference for every name here).
"""

#: protocol extensions a client may ask for with login's ``features``
FEATURES = ("ack", "offline", "resume", "multi", "live")

#: the room every online user is in without joining it
WORLD = "world"
#: ``alliance:<name>``: the room of every online user whose record names that alliance
ALLIANCE_PREFIX = "alliance:"

# WebSocket close codes of the chat protocol (RFC 6455 leaves 4000-4999 to applications)
#: the node is stopping: reconnect through the gateway
GOING_AWAY = 4001
#: no login within the node's login timeout
LOGIN_TIMEOUT = 4008
#: the client read slower than the node wrote to it (its backlog passed the
#: node's bound): reconnect and resume; the same code as LOGIN_TIMEOUT, both
#: mean that the node stopped waiting for this client
TOO_SLOW = 4008
#: a newer login of the same user took this session over (after the 409 error frame)
REPLACED = 4009
#: the server's operator disconnected this user (the server API): do not reconnect automatically
DISCONNECTED = 4010


def is_automatic(room: str) -> bool:
    """Whether ``room`` is an automatic room: ``world``, or ``alliance:`` and a non-empty name."""
    return room == WORLD or (room.startswith(ALLIANCE_PREFIX) and len(room) > len(ALLIANCE_PREFIX))


def automatic_rooms(alliance: str) -> list[str]:
    """The automatic rooms of a user with ``alliance`` (``""`` for none)."""
    return [WORLD, ALLIANCE_PREFIX + alliance] if alliance else [WORLD]


def format_duration(seconds: float) -> str:
    """A duration in the format of ``userInfo``'s ``onlineFor``: ``00d 01h 02m 03s``."""
    s = max(0, int(seconds))
    d, s = divmod(s, 86400)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    return f"{d:02d}d {h:02d}h {m:02d}m {s:02d}s"


def online_for(login_ms: int, now_ms: int) -> str:
    """``onlineFor`` of a user logged in at ``login_ms``, at ``now_ms`` (both epoch milliseconds)."""
    return format_duration((now_ms - login_ms) // 1000)
