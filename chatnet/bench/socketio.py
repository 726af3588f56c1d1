"""The Socket.IO 4 wire format over a plain WebSocket (Engine.IO protocol 4,
Socket.IO protocol 5), as far as the load generator needs it to drive the
Socket.IO peer (bench/peers/socketio/): pure functions, no I/O.

Over the WebSocket transport every WebSocket text message is one Engine.IO
packet: a type digit and its data. ``0{...}`` opens the session (the JSON
has ``sid``, ``pingInterval``, ``pingTimeout``), ``2`` is the server's ping
and ``3`` the client's pong, ``1`` closes, and ``4`` carries a Socket.IO
packet: again a type digit (``0`` connect, ``1`` disconnect, ``2`` event,
``3`` ack, ``4`` connect error; ``5``/``6`` binary, not used here), then an
optional namespace (``/name,``; the main namespace ``/`` is left out), an
optional ack id (decimal digits) and JSON: ``42["chat",{...}]``,
``421["login",{...}]`` asks for an answer, ``431[{...}]`` is that answer.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional

import orjson

#: Engine.IO packet types
EIO_OPEN, EIO_CLOSE, EIO_PING, EIO_PONG, EIO_MESSAGE, EIO_UPGRADE, EIO_NOOP = range(7)
#: Socket.IO packet types (inside an Engine.IO message)
SIO_CONNECT, SIO_DISCONNECT, SIO_EVENT, SIO_ACK, SIO_CONNECT_ERROR, SIO_BINARY_EVENT, SIO_BINARY_ACK = range(7)

#: the resource of a Socket.IO server's WebSocket transport (Engine.IO 4)
PATH = "/socket.io/?EIO=4&transport=websocket"

#: the client's first frame: connect to the main namespace
CONNECT = b"40"
#: the answer to the server's ping
PONG = b"3"

_EVENT_PREFIX = b"42"


class ProtocolError(ValueError):
    """A frame that is not an Engine.IO / Socket.IO packet of protocol 4 / 5."""


class Packet(NamedTuple):
    """One decoded frame.

    @ivar eio: the Engine.IO type (``EIO_*``).
    @ivar sio: the Socket.IO type (``SIO_*``) of a message, else ``None``.
    @ivar namespace: ``"/"`` unless the packet names another.
    @ivar ack_id: the ack id of an event that asks for an answer, or of an
        ack; ``None`` if it has none.
    @ivar data: the JSON (an event's ``[name, *args]``, an ack's args, a
        connect's object), or the raw text of an Engine.IO packet other than
        a message (the open packet's JSON decoded); ``None`` if there is none.
    """

    eio: int
    sio: Optional[int] = None
    namespace: str = "/"
    ack_id: Optional[int] = None
    data: Any = None

    @property
    def event(self) -> Optional[str]:
        """The name of an event packet, else ``None``."""
        if self.sio == SIO_EVENT and isinstance(self.data, list) and self.data \
                and isinstance(self.data[0], str):
            return self.data[0]
        return None

    @property
    def args(self) -> list:
        """An event's arguments after its name, an ack's arguments."""
        if not isinstance(self.data, list):
            return []
        return self.data[1:] if self.sio == SIO_EVENT else self.data


def encode_event(name: str, *args: Any, ack_id: Optional[int] = None) -> bytes:
    """``42[name, *args]`` (``42<ack_id>[...]`` to ask for an answer)."""
    body = orjson.dumps([name, *args])
    if ack_id is None:
        return _EVENT_PREFIX + body
    if not isinstance(ack_id, int) or isinstance(ack_id, bool) or ack_id < 0:
        raise ValueError(f"an ack id is an integer >= 0, not {ack_id!r}")
    return b"%s%d%s" % (_EVENT_PREFIX, ack_id, body)


def encode_ack(ack_id: int, *args: Any) -> bytes:
    """``43<ack_id>[*args]``: the answer to an event that asked for one."""
    if not isinstance(ack_id, int) or isinstance(ack_id, bool) or ack_id < 0:
        raise ValueError(f"an ack id is an integer >= 0, not {ack_id!r}")
    return b"43%d%s" % (ack_id, orjson.dumps(list(args)))


def _json(text: bytes) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as e:
        raise ProtocolError(f"bad JSON in a packet: {e}") from None


def decode(frame: bytes) -> Packet:
    """One WebSocket text message as a `Packet`; `ProtocolError` if it is none."""
    if isinstance(frame, str):
        frame = frame.encode("utf-8")
    if not frame:
        raise ProtocolError("an empty frame")
    eio = frame[0] - 48
    if not 0 <= eio <= EIO_NOOP:
        raise ProtocolError(f"unknown Engine.IO packet type {frame[:1]!r}")
    if eio == EIO_OPEN:
        return Packet(EIO_OPEN, data=_json(frame[1:]) if len(frame) > 1 else None)
    if eio != EIO_MESSAGE:
        return Packet(eio, data=frame[1:].decode("utf-8", "replace") or None)
    if len(frame) < 2:
        raise ProtocolError("a message packet without a Socket.IO packet")
    sio = frame[1] - 48
    if not 0 <= sio <= SIO_BINARY_ACK:
        raise ProtocolError(f"unknown Socket.IO packet type {frame[1:2]!r}")
    if sio in (SIO_BINARY_EVENT, SIO_BINARY_ACK):
        raise ProtocolError("binary packets are not used by the bench")
    i, n = 2, len(frame)
    namespace = "/"
    if i < n and frame[i] == 0x2F:  # "/"
        comma = frame.find(b",", i)
        if comma < 0:
            raise ProtocolError("a namespace without its comma")
        namespace = frame[i:comma].decode("utf-8", "replace")
        i = comma + 1
    start = i
    while i < n and 0x30 <= frame[i] <= 0x39:
        i += 1
    ack_id = int(frame[start:i]) if i > start else None
    data = _json(frame[i:]) if i < n else None
    if sio == SIO_EVENT and not (isinstance(data, list) and data and isinstance(data[0], str)):
        raise ProtocolError("an event is a JSON array starting with its name")
    if sio == SIO_ACK and (ack_id is None or not isinstance(data, list)):
        raise ProtocolError("an ack is an id and a JSON array")
    return Packet(EIO_MESSAGE, sio, namespace, ack_id, data)


def event_of(frame: bytes):
    """``(name, first argument)`` of a plain event frame of the main
    namespace without ack id (``42["chat",{...}]``), else ``None``: the
    cheap path for the frames that carry the load."""
    if frame[:3] != b'42[':
        return None
    try:
        data = orjson.loads(frame[2:])
    except orjson.JSONDecodeError:
        return None
    if not isinstance(data, list) or not data or not isinstance(data[0], str):
        return None
    return data[0], (data[1] if len(data) > 1 else None)


def websocket_url(url: str) -> str:
    """A Socket.IO server's WebSocket URL from ``ws://host:port/`` (or an
    ``http``/``https`` URL): the Engine.IO path added when none is given."""
    from urllib.parse import urlsplit, urlunsplit

    if "://" not in url:
        url = "ws://" + url
    parts = urlsplit(url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme.lower(), parts.scheme.lower())
    if parts.path in ("", "/") and not parts.query:
        path, query = PATH.split("?", 1)
        return urlunsplit((scheme, parts.netloc, path, query, ""))
    return urlunsplit((scheme, parts.netloc, parts.path, parts.query, ""))
