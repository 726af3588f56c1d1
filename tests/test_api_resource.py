"""The gateway's server API resource in process (treq's StubTreq), with a
stand-in for the node links: what each failure a node or the cluster gives
becomes on HTTP, and what reaches the node for a request."""
import json

import pytest_twisted
from treq.testing import StubTreq

from chatnet.gateway.api import ApiResource
from chatnet.gateway.cluster import ClusterApi, ClusterUnavailable
from chatnet.gateway.resource import Root
from chatnet.protocols import amp_commands as cmd

KEY = b"unit-test-key-0123456789"


class Nodes:
    """The node links (L{chatnet.gateway.cluster.NodeLinks}) under the
    cluster facade: answers every command with C{answer}, or raises
    C{error}."""

    def __init__(self, answer=None, error=None):
        self.answer = answer or {}
        self.error = error
        self.calls = []

    async def call(self, command, **arguments):
        self.calls.append((command, arguments))
        if self.error is not None:
            raise self.error
        return self.answer


def client(nodes, keys=(KEY,)):
    root = Root(servers=None, policy=None, web=None, api=ApiResource(list(keys), ClusterApi(nodes)) if keys else None)
    return StubTreq(root)


async def ask(http, method, path, body=None, key=KEY):
    headers = {b"authorization": [b"Bearer " + key]} if key else {}
    data = json.dumps(body).encode() if body is not None else None
    response = await http.request(method, "http://gw/api/v1" + path, headers=headers, data=data)
    answer = json.loads(await response.content())
    return response.code, answer, response


@pytest_twisted.ensureDeferred
async def test_request_reaches_the_node_as_its_command():
    nodes = Nodes({"msgId": "m", "seq": 3, "ts": 5, "queued": False})
    code, answer, _ = await ask(client(nodes), "POST", "/messages", {"to": "bob", "message": "hi"})
    assert code == 200 and answer == {"msgId": "m", "seq": 3, "ts": 5, "queued": False}
    assert nodes.calls == [(cmd.ApiPost, {"to": "bob", "message": "hi", "sender": "system"})]
    nodes = Nodes({"changed": True})
    code, answer, _ = await ask(client(nodes), "PUT", "/rooms/alliance%3Ared/members/b%C3%B6b")
    assert code == 200 and answer["roomName"] == "alliance:red" and answer["username"] == "böb"
    assert nodes.calls == [(cmd.ApiRoomMember, {"roomName": "alliance:red", "username": "böb", "member": True})]


@pytest_twisted.ensureDeferred
async def test_node_and_cluster_failures_become_documented_errors():
    for error, code in [
        (cmd.NotFound("user bob does not exist"), 404),
        (cmd.Conflict("room r exists already"), 409),
        (cmd.BadRequest("too long"), 400),
        (cmd.StoreDown("mongodb is unavailable right now, try again"), 503),
        (cmd.NotAllowed("gateway may not send this command"), 503),
        (ClusterUnavailable("no chat node reachable"), 503),
    ]:
        got, answer, _ = await ask(client(Nodes(error=error)), "GET", "/presence/bob")
        assert got == code and answer["error"]["code"] == code and answer["error"]["message"], (error, answer)


@pytest_twisted.ensureDeferred
async def test_keys_and_methods():
    http = client(Nodes({"online": False, "nodes": []}), keys=(b"another-key-0123456789", KEY))
    code, answer, response = await ask(http, "GET", "/presence/bob", key=None)
    assert code == 401 and response.headers.getRawHeaders("www-authenticate") == ['Bearer realm="chatnet"']
    assert (await ask(http, "GET", "/presence/bob", key=KEY[:-1]))[0] == 401
    assert (await ask(http, "GET", "/presence/bob"))[0] == 200
    code, answer, response = await ask(http, "PATCH", "/rooms/r/members/u")
    assert code == 405 and response.headers.getRawHeaders("allow") == ["DELETE, PUT"]


@pytest_twisted.ensureDeferred
async def test_without_keys_everything_below_api_is_404():
    http = client(Nodes(), keys=())
    for path in ("/presence/bob", "/openapi.json", ""):
        code, answer, _ = await ask(http, "GET", path)
        assert code == 404 and answer["error"]["code"] == 404
