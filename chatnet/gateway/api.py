"""The server API below ``/api/v1`` (docs/api.md): what the application a
chat cluster serves asks of it, in JSON over HTTP, with a bearer key.

Routing is a small table of path patterns on one leaf resource (the
gateway's other answers are plain C{twisted.web} resources too; a routing
library would add a dependency for ten routes). Every request must carry
``Authorization: Bearer KEY`` with one of the configured keys (compared in
constant time); every failure is answered with the same JSON shape,
``{"error": {"code", "message"}}``. The work is done by a chat node, over
the internal port, through L{chatnet.gateway.cluster.ClusterApi}.
"""
import hmac
from urllib.parse import unquote

import orjson
from twisted.internet import defer
from twisted.logger import Logger
from twisted.web import resource, server

from chatnet.domain.names import SYSTEM, name_problem, user_name_problem
from chatnet.gateway.cluster import ClusterUnavailable, NodeRefused
from chatnet.gateway.openapi import OPENAPI

log = Logger()

#: the longest user or room name, as on the chat nodes
MAX_NAME = 128
MAX_PASSWORD = 1024
MAX_MESSAGE = 16384  # the node checks its own (shorter) limit
DEFAULT_SENDER = SYSTEM

class ApiError(Exception):
    def __init__(self, code, message, headers=None):
        super().__init__(code, message)
        self.code = code
        self.message = message
        self.headers = headers or {}


def _answer(request, code, body, headers=None):
    request.setResponseCode(code)
    request.setHeader(b"content-type", b"application/json")
    request.setHeader(b"cache-control", b"no-store")
    for name, value in (headers or {}).items():
        request.setHeader(name, value)
    return orjson.dumps(body)


def error_body(code, message):
    return {"error": {"code": code, "message": message}}


class ApiDisabled(resource.Resource):
    """``/api/...`` of a gateway without an API key: 404, whatever is asked."""

    isLeaf = True

    def render(self, request):
        return _answer(request, 404, error_body(404, "the server API is not enabled on this gateway"))


# -- reading requests ------------------------------------------------------------


def _body(request):
    raw = request.content.read() if request.content is not None else b""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise ApiError(400, "the body must be a JSON object")
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object")
    return body


def _fields(body, allowed):
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise ApiError(400, f"unknown field {unknown[0][:64]!r}; allowed: {', '.join(allowed)}")


def _string(body, key, required=True, max_length=MAX_NAME, name=True):
    value = body.get(key)
    if value is None:
        if required:
            raise ApiError(400, f"missing field {key!r}")
        return None
    if not isinstance(value, str):
        raise ApiError(400, f"field {key!r} must be a string")
    if name:
        check_name(value, f"field {key!r}")
    elif not value:
        raise ApiError(400, f"field {key!r} must not be empty")
    if len(value) > max_length:
        raise ApiError(400, f"field {key!r} is longer than {max_length} characters")
    return value


def _boolean(body, key, default=False):
    value = body.get(key, default)
    if not isinstance(value, bool):
        raise ApiError(400, f"field {key!r} must be true or false")
    return value


def check_name(value, what):
    """A user or room name: 1 to 128 characters, no control or format
    characters (L{chatnet.domain.names}), no white space at either end."""
    if len(value) > MAX_NAME:
        raise ApiError(400, f"{what} is longer than {MAX_NAME} characters")
    problem = name_problem(value)
    if problem is not None:
        raise ApiError(400, f"{what} {problem}")
    return value


def _segment(raw):
    try:
        return unquote(raw.decode("utf-8"), errors="strict")
    except UnicodeDecodeError:
        raise ApiError(404, "no such path")


def _path_name(value, what):
    try:
        return check_name(value, what)
    except ApiError as e:
        raise ApiError(404, f"no such {what.split()[0]}: {e.message}")


# -- the resource ------------------------------------------------------------------


class ApiResource(resource.Resource):
    """Everything below ``/api``.

    @param keys: the API keys (bytes), at least one.
    @param cluster: the chat cluster (L{chatnet.gateway.cluster.ClusterApi}).
    """

    isLeaf = True

    def __init__(self, keys, cluster):
        super().__init__()
        self.keys = [bytes(k) for k in keys]
        self.cluster = cluster
        # (pattern, {method: handler}); None in a pattern matches any name
        self.routes = [
            (("messages",), {"POST": self.post_message}),
            (("presence", None), {"GET": self.presence}),
            (("rooms", None, "presence"), {"GET": self.room_presence}),
            (("users",), {"POST": self.create_user}),
            (("users", None), {"DELETE": self.delete_user}),
            (("users", None, "disconnect"), {"POST": self.disconnect}),
            (("rooms",), {"POST": self.create_room}),
            (("rooms", None), {"DELETE": self.delete_room}),
            (("rooms", None, "members", None), {"PUT": self.add_member, "DELETE": self.remove_member}),
            (("openapi.json",), {"GET": self.openapi}),
        ]

    def render(self, request):
        if not self._authorized(request.getHeader(b"authorization")):
            return _answer(request, 401, error_body(401, "missing or wrong API key (Authorization: Bearer KEY)"),
                           {b"www-authenticate": b'Bearer realm="chatnet"'})
        # A client that leaves does not cancel the call: the node carries it
        # out anyway (cancelling would only drop the gateway's link to it).
        gone = []
        request.notifyFinish().addErrback(gone.append)
        d = defer.ensureDeferred(self._handle(request))

        def send(body):
            if not gone:
                request.setHeader(b"content-length", b"%d" % len(body))
                request.write(body)
                request.finish()

        def done(answer):
            code, body, headers = answer
            send(_answer(request, code, body, headers))

        def failed(failure):
            log.failure("server API request {method} {path} failed", failure, method=request.method,
                        path=request.path)
            send(_answer(request, 500, error_body(500, "internal error")))

        d.addCallbacks(done, failed)
        return server.NOT_DONE_YET

    def _authorized(self, header):
        if not header or not header.startswith(b"Bearer "):
            return False
        given = header[len(b"Bearer "):].strip()
        ok = False
        for key in self.keys:  # every key, whichever matches
            ok |= hmac.compare_digest(given, key)
        return ok

    async def _handle(self, request):
        try:
            handler, args = self._route(request)
            return await handler(request, *args)
        except ApiError as e:
            return e.code, error_body(e.code, e.message), e.headers
        except ClusterUnavailable as e:
            return 503, error_body(503, f"the chat cluster is unavailable: {e}"), None
        except NodeRefused as e:
            return e.code, error_body(e.code, e.message), None

    def _route(self, request):
        segments = request.postpath
        if not segments or segments[0] != b"v1":
            raise ApiError(404, "no such path: the server API is below /api/v1")
        path = [_segment(s) for s in segments[1:]]
        for pattern, methods in self.routes:
            if len(pattern) != len(path) or any(p is not None and p != s for p, s in zip(pattern, path)):
                continue
            method = request.method.decode("ascii", "replace")
            if method == "HEAD" and "GET" in methods:
                method = "GET"
            if method not in methods:
                allowed = sorted(methods) + (["HEAD"] if "GET" in methods else [])
                raise ApiError(405, f"method {method[:16]} not allowed here; allowed: {', '.join(allowed)}",
                               {b"allow": ", ".join(allowed).encode("ascii")})
            names = [s for p, s in zip(pattern, path) if p is None]
            return methods[method], names
        raise ApiError(404, "no such path")

    # -- the endpoints ---------------------------------------------------------------

    async def post_message(self, request):
        body = _body(request)
        _fields(body, ("roomName", "to", "message", "from"))
        room = _string(body, "roomName", required=False)
        to = _string(body, "to", required=False)
        if bool(room) == bool(to):
            raise ApiError(400, "give either 'roomName' or 'to'")
        text = _string(body, "message", max_length=MAX_MESSAGE, name=False)
        sender = _string(body, "from", required=False) or DEFAULT_SENDER
        return 200, await self.cluster.post(sender, text, room=room, to=to), None

    async def presence(self, request, username):
        username = _path_name(username, "user name")
        online, nodes, online_for = await self.cluster.presence(username)
        return 200, {"username": username, "online": online, "nodes": nodes, "onlineFor": online_for}, None

    async def room_presence(self, request, room):
        room = _path_name(room, "room name")
        online, truncated = await self.cluster.room_presence(room)
        return 200, {"roomName": room, "online": online, "truncated": truncated}, None

    async def create_user(self, request):
        body = _body(request)
        _fields(body, ("username", "password", "alliance"))
        username = _string(body, "username")
        problem = user_name_problem(username)
        if problem is not None:
            raise ApiError(400, f"field 'username' {problem}")
        password = _string(body, "password", required=False, max_length=MAX_PASSWORD, name=False)
        alliance = _string(body, "alliance", required=False)
        await self.cluster.create_user(username, password, alliance)
        return 201, {"username": username, "alliance": alliance or "", "password": password is not None}, None

    async def delete_user(self, request, username):
        username = _path_name(username, "user name")
        closed = await self.cluster.delete_user(username)
        return 200, {"username": username, "deleted": True, "sessionsClosed": closed}, None

    async def disconnect(self, request, username):
        username = _path_name(username, "user name")
        return 200, {"username": username, "sessionsClosed": await self.cluster.disconnect(username)}, None

    async def create_room(self, request):
        body = _body(request)
        _fields(body, ("roomName", "private", "owner"))
        room = _string(body, "roomName")
        private = _boolean(body, "private")
        owner = _string(body, "owner", required=False)
        await self.cluster.create_room(room, private, owner)
        return 201, {"roomName": room, "private": private, "owner": owner}, None

    async def delete_room(self, request, room):
        room = _path_name(room, "room name")
        await self.cluster.delete_room(room)
        return 200, {"roomName": room, "deleted": True}, None

    async def add_member(self, request, room, username):
        return await self._member(room, username, True)

    async def remove_member(self, request, room, username):
        return await self._member(room, username, False)

    async def _member(self, room, username, member):
        room = _path_name(room, "room name")
        username = _path_name(username, "user name")
        changed = await self.cluster.room_member(room, username, member)
        return 200, {"roomName": room, "username": username, "member": member, "changed": changed}, None

    async def openapi(self, request):
        return 200, OPENAPI, None

