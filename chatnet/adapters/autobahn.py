"""autobahn's WebSocket server, with short ways for the usual frames.

The short ways, and the parts of autobahn they use (besides its documented
protocol options and callbacks):

- Reading: a whole masked text frame (the usual client frame) is unmasked
  and handed to C{onMessage} by L{FastServerProtocol.processData} without
  autobahn's frame machinery (its C{data} buffer, C{current_frame},
  C{inside_message}, C{state}); any other frame goes autobahn's way. Client
  frames are unmasked here (L{Unmasker}, the factory sets C{applyMask}
  off): autobahn makes a native masker object for every frame, which costs
  more than unmasking a chat frame (C{onFrameBegin}, C{onFrameData},
  C{current_frame.mask}).
- The end of a message skips autobahn's "message" observer signal, a
  Deferred and callbacks per frame that nobody here listens to
  (C{onMessageEnd}, C{message_data}, C{message_is_binary}, C{failedByMe},
  C{_onMessage}).
- Keep-alive: a data frame read either way counts as a pong
  (C{autoPingTimeoutCall}, C{_cancelAutoPingTimeoutCall}), as autobahn's
  C{autoPingRestartOnAnyTraffic} does for the frames it reads itself.
- Writing: a text frame of an uncompressed connection with nothing queued
  is framed by L{text_frame} and written at once, and a prepared frame
  (encoded once for many connections) is written as its bytes
  (C{_perMessageCompress}, C{send_queue}, C{PreparedMessage.payloadHybi}).
- Failing a connection (a bad frame: 1002, 1007, 1009) sends the close
  frame before the TCP connection ends (C{_closeConnection}: autobahn
  aborts at once, dropping the close frame it just wrote).
- Options: the factory hands out a protocol class that carries its options
  as class attributes (C{CONFIG_ATTRS}), so that a connection copies none
  of them (about 1 ms of CPU and a few KB a connection).

The library is pinned to L{PIN} (setup.cfg); ``tests/test_adapters_autobahn.py``
runs the same frames through autobahn's own protocol and through these
short ways and requires the same messages, bytes written, close codes and
keep-alive timers.
"""
from autobahn.twisted.websocket import WebSocketClientProtocol, WebSocketServerFactory, WebSocketServerProtocol
from autobahn.websocket.protocol import WebSocketProtocol

#: the releases the tests of this module cover
PIN = "autobahn~=26.11.1"

OPEN = WebSocketProtocol.STATE_OPEN


class Unmasker:
    """Unmasks the payload of one client frame (RFC 6455, 5.3), in as many
    pieces as it arrives, with Python's integers: for frames of chat size
    about a quarter of the cost of autobahn's native masker, which is made
    anew (a C object, its buffers) for every frame."""

    __slots__ = ("mask", "offset")

    def __init__(self, mask):
        self.mask = mask
        self.offset = 0

    def unmask(self, data):
        n = len(data)
        if not n:
            return data
        k = self.offset & 3
        self.offset += n
        mask = self.mask[k:] + self.mask[:k]
        key = (mask * ((n + 3) >> 2))[:n]
        return (int.from_bytes(data, "little") ^ int.from_bytes(key, "little")).to_bytes(n, "little")


def text_frame(payload):
    """C{payload} (UTF-8 bytes) as one unmasked, unfragmented WebSocket text
    frame (RFC 6455, 5.2), as a server sends it; the bytes autobahn makes
    for an uncompressed connection."""
    n = len(payload)
    if n < 126:
        return b"\x81" + bytes((n,)) + payload
    if n < 65536:
        return b"\x81\x7e" + n.to_bytes(2, "big") + payload
    return b"\x81\x7f" + n.to_bytes(8, "big") + payload


def compressing(protocol):
    """Whether the open connection of C{protocol} (server or client)
    compresses its messages (permessage-deflate was agreed)."""
    return protocol._perMessageCompress is not None


class _QuietMessageEnd:
    """The end of a message as autobahn's, without firing its "message"
    observer signal (nobody listens here), which costs a Deferred and
    callbacks per frame."""

    def onMessageEnd(self):
        if not self.failedByMe:
            self._onMessage(b"".join(self.message_data), self.message_is_binary)
        self.message_data = None


class FastClientProtocol(_QuietMessageEnd, WebSocketClientProtocol):
    """autobahn's client protocol, the end of each message made cheaper
    (the benchmark's clients)."""


class FastServerProtocol(_QuietMessageEnd, WebSocketServerProtocol):
    """autobahn's server protocol with the short ways of the module
    docstring. Its factory must have a C{clock} (an C{IReactorTime}) and be
    a L{FastServerFactory}."""

    # Client frames are unmasked here (the factory sets autobahn's
    # applyMask off).
    _unmasker = None
    _drop_timer = None  # aborts a failed connection whose close frame is not read

    @property
    def compressing(self):
        """Whether this connection compresses its messages."""
        return self._perMessageCompress is not None

    # -- reading -------------------------------------------------------------

    def processData(self):
        """autobahn's, with a short way for the usual client frame: a whole
        masked text frame (FIN, no extension bits, its length in the
        shortest form) outside a fragmented message, on an uncompressed
        open connection, within the size limits and of valid UTF-8, is
        unmasked and handed to C{onMessage} at once. Any other frame, and
        such a frame that is not valid UTF-8, goes autobahn's way, with its
        checks and close codes (1009, 1007, ...)."""
        data = self.data
        if (len(data) > 6 and data[0] == 0x81 and data[1] & 0x80 and self.current_frame is None
                and self.state == OPEN and not self.inside_message and self._perMessageCompress is None):
            n = data[1] & 0x7F
            start = 2
            if n == 126:
                n = (data[2] << 8) | data[3]
                start = 4
                if n < 126:
                    n = 0  # not the shortest form: autobahn's way
            elif n == 127:
                n = 0
            end = start + 4 + n
            if 0 < n and len(data) >= end and not (0 < self.maxFramePayloadSize < n) and not (
                    0 < self.maxMessagePayloadSize < n):
                payload = Unmasker(data[start:start + 4]).unmask(data[start + 4:end])
                try:
                    payload.decode("utf-8")
                except UnicodeDecodeError:
                    return super().processData()
                self.data = data[end:]
                self._alive()
                self.onMessage(payload, False)
                return len(self.data) > 0
        return super().processData()

    def onFrameBegin(self):
        mask = self.current_frame.mask
        self._unmasker = Unmasker(mask) if mask else None
        return super().onFrameBegin()

    def onFrameData(self, payload):
        if self._unmasker is not None:
            payload = self._unmasker.unmask(payload)
        return super().onFrameData(payload)

    def onFrameEnd(self):
        if self.current_frame.opcode < 8:  # a data frame, whole or a fragment
            self._alive()
        return super().onFrameEnd()

    def _alive(self):
        """A data frame arrived: the one place both ways of reading frames
        tell the keep-alive. As autobahn does with
        C{autoPingRestartOnAnyTraffic} (which the factory turns off, so
        that this is the only place): a data frame while a ping waits for
        its pong ends the wait and schedules the next ping."""
        if self.autoPingTimeoutCall is not None:
            self._cancelAutoPingTimeoutCall()

    # -- writing -------------------------------------------------------------

    def sendMessage(self, payload, isBinary=False, *args, **kwargs):
        """autobahn's, except that a frame for a connection that is not open
        (closing, or closed) is dropped instead of raising.

        A text frame of an uncompressed connection with nothing queued is
        framed here (L{text_frame}) and written at once: the same bytes as
        autobahn's, without its per-frame bookkeeping and debug formatting,
        which cost more than the frame itself."""
        if self.state != OPEN:
            return
        if (not isBinary and not args and not kwargs and self._perMessageCompress is None
                and not self.send_queue and not 0 < self.maxMessagePayloadSize < len(payload)):
            self.transport.write(text_frame(payload))
        else:
            super().sendMessage(payload, isBinary, *args, **kwargs)

    def send_prepared(self, prepared):
        """Send C{prepared} (the factory's C{prepareMessage}: one frame
        encoded once for many connections), unless the connection is not
        open: its bytes as they are when nothing else is queued on an
        uncompressed connection, else autobahn's way."""
        if self.state != OPEN:
            return
        if self._perMessageCompress is None and not self.send_queue:
            self.transport.write(prepared.payloadHybi)
        else:
            self.sendPreparedMessage(prepared)

    # -- the end ---------------------------------------------------------------

    def _closeConnection(self, abort=False):
        """autobahn's, except after the protocol failed the connection (a bad
        close frame: 1002, 1007; a frame too big: 1009): autobahn aborts
        the TCP connection at once, which would drop the close frame it
        just wrote. The connection is closed after its writes are sent
        instead, or aborted if the client does not take them within the
        closing handshake timeout."""
        if abort and self.failedByMe and self._drop_timer is None and self.closeHandshakeTimeout > 0:
            self._drop_timer = self.factory.clock.callLater(self.closeHandshakeTimeout, self._drop)
            self.transport.loseConnection()
        else:
            super()._closeConnection(abort)

    def _drop(self):
        self._drop_timer = None
        self.transport.abortConnection()

    def connectionLost(self, reason):
        if self._drop_timer is not None:
            self._drop_timer.cancel()
            self._drop_timer = None
        super().connectionLost(reason)


class FastServerFactory(WebSocketServerFactory):
    """autobahn's server factory, handing out a protocol class that carries
    the protocol options as class attributes (rebuilt whenever they change):
    a connection copies none of them and has nothing to print. An option
    that is a function (such as C{perMessageCompressionAccept}) goes there
    as a static method: a plain function as a class attribute would become a
    method of each connection, called with the connection as an extra first
    argument."""

    def setProtocolOptions(self, *args, **kwargs):
        super().setProtocolOptions(*args, **kwargs)
        self._options_on_protocol()

    def resetProtocolOptions(self):
        super().resetProtocolOptions()
        self._options_on_protocol()

    def _options_on_protocol(self):
        base = type(self).protocol
        options = {name: _as_class_attribute(getattr(self, name)) for name in base.CONFIG_ATTRS}
        self.protocol = type(base.__name__, (base,), {**options, "CONFIG_ATTRS": ()})


def _as_class_attribute(value):
    """C{value} such that reading it from an instance gives C{value} itself."""
    return staticmethod(value) if callable(value) else value
