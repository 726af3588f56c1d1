"""The gateway's HTTP answers (docs/protocol.md, "Finding a node"), and the web client."""
import orjson
from twisted.internet import defer
from twisted.logger import Logger
from twisted.web import resource, server

from chatnet.errors import StoreUnavailable
from chatnet.gateway.api import ApiDisabled
from chatnet.gateway.web import WebClient
from chatnet.protocols.http import NotFound, PlainResource

log = Logger()

TRUE = {"1", "true", "yes", "on", "y", "t"}
NO_NODE = {"error": "no chat node available"}


def _json(request, code, body):
    request.setResponseCode(code)
    request.setHeader(b"content-type", b"application/json")
    request.setHeader(b"cache-control", b"no-store")
    return orjson.dumps(body)


class ServerResource(PlainResource):
    isLeaf = True

    def __init__(self, servers, policy):
        super().__init__()
        self.servers = servers
        self.policy = policy

    def render_GET(self, request):
        d = defer.ensureDeferred(self._answer(request))

        def done(body):
            request.write(body)
            request.finish()

        def failed(failure):
            if not failure.check(StoreUnavailable):
                log.failure("GET /server failed", failure)
            request.write(_json(request, 503, NO_NODE))
            request.finish()

        d.addCallbacks(done, failed)
        request.notifyFinish().addErrback(lambda _: d.cancel())
        return server.NOT_DONE_YET

    async def _answer(self, request):
        nodes = await self.servers.live()
        all_ = request.args.get(b"all", [b""])[0].decode("utf-8", "replace").lower()
        if all_ in TRUE:
            return _json(
                request,
                200,
                [
                    {k: n[k] for k in ("host", "port", "nodeId", "isLeader", "connections")} | {"url": n.get("url", "")}
                    for n in nodes
                ],
            )
        if not nodes:
            return _json(request, 503, NO_NODE)
        node = self.policy.choose(nodes)
        return _json(
            request, 200, {"host": node["host"], "port": node["port"], "nodeId": node["nodeId"], "url": node.get("url", "")}
        )


class Root(resource.Resource):
    """@param api: the resource of the server API below C{/api}
        (L{chatnet.gateway.api.ApiResource}; by default a 404 for all of it)."""

    def __init__(self, servers, policy, web=None, api=None):
        super().__init__()
        self.server = ServerResource(servers, policy)
        self.web = web if web is not None else WebClient()
        self.api = api if api is not None else ApiDisabled()
        self.not_found = NotFound()

    def getChildWithDefault(self, path, request):
        # only the exact paths: /, /static/<file>, /server, /health, /api/...; /server/x is not found
        if path == b"api":
            return self.api
        if path == b"static" and len(request.postpath) == 1:
            found = self.web.static(request.postpath.pop())
            return found if found is not None else self.not_found
        if request.postpath:
            return self.not_found
        if path == b"":
            return self.web.page
        if path == b"server":
            return self.server
        return self.children.get(path, self.not_found)

    def render(self, request):
        return self.not_found.render(request)
