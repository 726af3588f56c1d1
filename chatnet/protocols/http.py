"""The HTTP server of the gateway and of the metrics listeners, made to stand
bad clients: every answer is plain text (never an HTML page or traceback),
a request must arrive in time and within size limits.

* a request's head (and body, if any) must have arrived ``request_timeout``
  seconds after its first byte: else ``408`` and the connection is closed;
* a connection that sends nothing for ``idle_timeout`` seconds is closed;
* a request head over ``MAX_HEAD`` bytes (or one line over it), or with more
  than 500 fields: ``431``, closed; a body over ``MAX_BODY`` bytes (by its
  ``Content-Length``, or as a chunked body is decoded): ``413``, closed;
* a malformed request: ``400``, closed;
* a method a resource does not serve: ``405`` with ``Allow``
  (L{PlainResource}); a failure while answering: ``500``.
"""
from twisted.logger import Logger
from twisted.python.compat import nativeString
from twisted.web import resource, server

from chatnet.adapters.twisted.web import HTTPChannel

log = Logger()

MAX_HEAD = 16384
MAX_BODY = 65536
REQUEST_TIMEOUT = 10.0
IDLE_TIMEOUT = 30.0


def plain(request, code, text, **headers):
    """Answer C{request} with C{code} and the plain text C{text} (bytes)."""
    request.setResponseCode(code)
    request.setHeader(b"content-type", b"text/plain; charset=utf-8")
    request.setHeader(b"cache-control", b"no-store")
    for name, value in headers.items():
        request.setHeader(name.encode("ascii"), value)
    return text


class PlainResource(resource.Resource):
    """A resource that answers the methods it has a C{render_<METHOD>} for
    (C{HEAD} as C{GET}, without body) and every other method with a plain
    405 naming the allowed ones in C{Allow}."""

    def render(self, request):
        method = b"GET" if request.method == b"HEAD" else request.method
        handler = getattr(self, "render_" + nativeString(method), None)
        if handler is None:
            allowed = {m[len("render_"):] for m in dir(self) if m.startswith("render_") and m[7:].isupper()}
            if "GET" in allowed:
                allowed.add("HEAD")
            return plain(request, 405, b"method not allowed\n", Allow=", ".join(sorted(allowed)).encode("ascii"))
        return handler(request)


class PlainRequest(server.Request):
    """A request whose failures are answered in plain text, and whose body
    (however it is framed: C{Content-Length} is checked before, a chunked
    body here, as it is decoded) is at most C{MAX_BODY} bytes."""

    _body_received = 0

    def handleContentChunk(self, data):
        self._body_received += len(data)
        if self._body_received > MAX_BODY:
            self.channel.refuse_body()
            return
        super().handleContentChunk(data)

    def processingFailed(self, reason):
        log.failure("request failed", failure=reason)
        if self.startedWriting:
            self.channel.loseConnection()
            return reason
        body = plain(self, 500, b"internal error\n")
        self.setHeader(b"content-length", b"%d" % len(body))
        self.write(body)
        self.finish()
        return reason


class GuardedChannel(HTTPChannel):
    """An HTTP/1.1 channel with a timeout on receiving each request and
    limits on its size (see the module)."""

    request_timeout = REQUEST_TIMEOUT
    totalHeadersSize = MAX_HEAD
    MAX_LENGTH = MAX_HEAD
    _request_timer = None
    _body_bytes = 0
    _refused = False

    def dataReceived(self, data):
        if self._refused:
            return
        if self._request_timer is None and not self.answering and data:
            # the first byte of a request: all of it must come in time
            self._request_timer = self.callLater(self.request_timeout, self._timed_out)
        super().dataReceived(data)

    def lineReceived(self, line):
        if self._refused:
            return
        if self.head_bytes + len(line) > self.totalHeadersSize:
            self._refuse(431, b"Request Header Fields Too Large", b"request head too large\n")
            return
        super().lineReceived(line)

    def lineLengthExceeded(self, line):
        self._refuse(431, b"Request Header Fields Too Large", b"request head too large\n")

    def headerReceived(self, line):
        if self.head_fields >= self.maxHeaders:
            self._refuse(431, b"Request Header Fields Too Large", b"too many header fields\n")
            return False
        return super().headerReceived(line)

    def allHeadersReceived(self):
        if self.length is not None and self.length > MAX_BODY:
            self._refuse(413, b"Content Too Large", b"request body too large\n")
            return
        super().allHeadersReceived()

    def rawDataReceived(self, data):
        if self._refused:
            return
        if not self.answering:
            self._body_bytes += len(data)
            if self._body_bytes > MAX_BODY + MAX_HEAD:  # chunked framing included
                self._refuse(413, b"Content Too Large", b"request body too large\n")
                return
        super().rawDataReceived(data)

    def refuse_body(self):
        """The body of the request being received is over C{MAX_BODY}."""
        self._refuse(413, b"Content Too Large", b"request body too large\n")

    def allContentReceived(self):
        if self._refused:
            return
        self._cancel_request_timer()
        self._body_bytes = 0
        super().allContentReceived()

    def _timed_out(self):
        self._request_timer = None
        self._refuse(408, b"Request Timeout", b"request not received in time\n")

    def bad_request(self):
        self._refuse(400, b"Bad Request", b"bad request\n")

    def _refuse(self, code, reason, text):
        """Answer C{code} in plain text, then close; ignore what follows."""
        if self._refused:
            return
        self._refused = True
        self._cancel_request_timer()
        self.setTimeout(None)
        self.transport.write(
            b"HTTP/1.1 %d %s\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: %d\r\n"
            b"connection: close\r\n\r\n%s" % (code, reason, len(text), text)
        )
        self.loseConnection()
        # a client that does not read its answer is not waited for
        self._abortingCall = self.callLater(self.abortTimeout, self.forceAbortClient)

    def _cancel_request_timer(self):
        timer, self._request_timer = self._request_timer, None
        if timer is not None and timer.active():
            timer.cancel()

    def connectionLost(self, reason):
        self._cancel_request_timer()
        super().connectionLost(reason)


class GuardedSite(server.Site):
    """A Site of L{GuardedChannel}s and L{PlainRequest}s."""

    protocol = GuardedChannel
    requestFactory = PlainRequest
    displayTracebacks = False

    def __init__(self, root, request_timeout=REQUEST_TIMEOUT, idle_timeout=IDLE_TIMEOUT, **kwargs):
        kwargs.setdefault("parsePOSTFormSubmission", False)
        super().__init__(root, timeout=idle_timeout, **kwargs)
        self.request_timeout = request_timeout

    def buildProtocol(self, addr):
        channel = super().buildProtocol(addr)
        channel.request_timeout = self.request_timeout
        return channel


class NotFound(resource.Resource):
    """A plain-text 404 for every path below, whatever the method."""

    isLeaf = True

    def __init__(self, text=b"not found\n"):
        super().__init__()
        self.text = text

    def render(self, request):
        return plain(request, 404, self.text)
