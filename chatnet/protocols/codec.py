"""The client frame codec: one JSON object per WebSocket text frame.

``decode`` turns a payload into a :class:`Request` or raises
:class:`ProtocolError` carrying the docs/protocol.md error code; ``encode``
builds a server frame, ``chat_frame`` a chat frame of already encoded data:
every client frame is built here. Field validation (types of ``data``
members) happens here too, so nothing but well-typed values ever reaches a
handler, a Redis key or a Mongo query.
"""
import itertools
import time

import orjson

from chatnet.errors import ProtocolError

# Every integer a client sends must fit a signed 64-bit integer: the widest
# that MongoDB (BSON int64), Redis and every other store take. (orjson reads
# a JSON integer beyond 64 bits as a float, which is no integer either.)
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
#: A client timestamp further than this from the server clock is replaced by
#: the server time (docs/protocol.md).
TS_TOLERANCE_MS = 24 * 3600 * 1000


class Request:
    __slots__ = ("id", "action", "data", "size")

    def __init__(self, id, action, data, size=0):
        self.id = id
        self.action = action
        self.data = data
        self.size = size  # bytes of the frame it came in (chatnet.limits.budget)

    def string(self, key, *, required=True, default=None, max_length=None):
        """The string field C{key} of C{data}, or raise a 400."""
        value = self.data.get(key, None)
        if value is None:
            if required:
                raise ProtocolError(400, f"missing field {key!r}", self.action)
            return default
        if not isinstance(value, str):
            raise ProtocolError(400, f"field {key!r} must be a string", self.action)
        if max_length is not None and len(value) > max_length:
            raise ProtocolError(
                413, f"field {key!r} is longer than {max_length} characters", self.action
            )
        return value

    def integer(self, key, *, default=None, minimum=None, maximum=None, digits=False):
        """The integer field C{key} of C{data} (C{default} if missing; with
        C{digits}, also a string of decimal digits), clipped to C{maximum};
        a 400 for a non-integer, one below C{minimum} and one outside the
        signed 64-bit range."""
        value = self.data.get(key, None)
        if value is None:
            return default
        if digits and isinstance(value, str) and value.isascii() and value.isdigit():
            # longer than any maximum we use, and safe from int()'s digit limit
            value = int(value) if len(value) <= 18 else 10**18
        if isinstance(value, bool) or not isinstance(value, int):
            raise ProtocolError(400, f"field {key!r} must be an integer", self.action)
        if not INT64_MIN <= value <= INT64_MAX:
            raise ProtocolError(400, f"field {key!r} must be an integer of at most 64 bits", self.action)
        if minimum is not None and value < minimum:
            raise ProtocolError(400, f"field {key!r} must be at least {minimum}", self.action)
        if maximum is not None and value > maximum:
            value = maximum
        return value

    def timestamp(self, key, now):
        """The ms timestamp C{key} of C{data}: C{now} (the server's) when it
        is missing or further than a day from C{now}; a 400 when it is not
        an integer of at most 64 bits."""
        value = self.integer(key)
        if value is None or abs(value - now) > TS_TOLERANCE_MS:
            return now
        return value

    def boolean(self, key, default=False):
        value = self.data.get(key, None)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise ProtocolError(400, f"field {key!r} must be true or false", self.action)
        return value

    def string_list(self, key):
        value = self.data.get(key, None)
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ProtocolError(400, f"field {key!r} must be a list of strings", self.action)
        return value


def decode(payload, isBinary=False):
    """Parse one client frame.

    @raise ProtocolError: 400 for anything that is not a JSON object with a
        string C{action} and an object C{data}.
    """
    if isBinary:
        raise ProtocolError(400, "binary frames are not supported; send JSON text")
    try:
        frame = orjson.loads(payload)
    except orjson.JSONDecodeError:
        raise ProtocolError(400, "frame is not valid JSON")
    if not isinstance(frame, dict):
        raise ProtocolError(400, "frame is not a JSON object")
    request_id = frame.get("id")
    if isinstance(request_id, bool) or not isinstance(request_id, (int, str, type(None))):
        request_id = None  # not echoed: only a number or a string is an id
    elif isinstance(request_id, int) and not INT64_MIN <= request_id < 2**64:
        request_id = None  # (orjson never reads one: it could not write it back)
    action = frame.get("action")
    if action is None:
        raise ProtocolError(400, "missing 'action'", re=request_id)
    if not isinstance(action, str):
        raise ProtocolError(400, "'action' must be a string", re=request_id)
    data = frame.get("data", {})
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ProtocolError(400, "'data' must be an object", action, re=request_id)
    return Request(request_id, action, data, len(payload))


_counter = itertools.count()


def frame_id():
    """A server frame id in the old client's shape: ms timestamp * 1000 + n."""
    return int(time.time() * 1000) * 1000 + next(_counter) % 1000


def chat_frame(data):
    """The C{chat} frame of C{data}, the frame's data already as JSON bytes
    (L{chatnet.service.accept}, the history and the message log keep it so): the
    node encodes it once for every recipient (see
    L{chatnet.service.delivery})."""
    return b'{"id":%d,"action":"chat","data":%s}' % (frame_id(), data)


def chat_data_head(data):
    """The JSON of chat frame C{data} (a dict without C{seq}) up to its
    seq value: the accept script (L{chatnet.service.accept}) gets it, and
    L{chat_data} puts the seq the script gave in."""
    return orjson.dumps(data)[:-1] + b',"seq":'


def chat_data(head, seq):
    """The chat frame data (JSON bytes) of C{head} (L{chat_data_head}) and
    its C{seq}; what the accept script appends to the history."""
    return head + b"%d}" % seq


def chat_data_of(data):
    """The chat frame data (JSON bytes) of C{data}, a dict with its seq (a
    message read back from the history or MongoDB)."""
    return orjson.dumps(data)


def chat_data_to(data, to):
    """Chat frame C{data} (JSON bytes) with C{to} added: a direct message
    as the sender's other sessions get it (docs/protocol.md, C{multi})."""
    return orjson.dumps({**orjson.loads(data), "to": to})


def encode(action, data, re=None):
    frame = {"id": frame_id(), "action": action, "data": data}
    if re is not None:
        frame["re"] = re
    return orjson.dumps(frame)


def decode_notice(frame):
    """C{(action, data)} of a room notice frame made by L{encode} (as one
    node sends it to the others, L{chatnet.cluster.router.RoomRouter.notice});
    data is a dict."""
    decoded = orjson.loads(frame)
    return decoded.get("action"), decoded.get("data") or {}


def encode_error(error, re=None):
    if re is None:
        re = error.re
    return encode(
        "error", {"code": error.code, "message": error.message, "ext": error.ext}, re
    )
