"""The server API (docs/api.md) end to end: a real three-node cluster whose
gateway serves ``/api/v1`` with a key, asked with treq.

The WebSocket clients of the harness are blocking: whatever a test waits
for on them while an API request is in flight runs in a thread.
"""
import json

import pymongo
import pytest
import pytest_twisted
import treq
from twisted.internet import threads

from chatnet.protocols.constants import DISCONNECTED
from tests.harness import ChatCluster, wait_until

KEY = "k" * 8 + "-api-key-for-tests"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, redis_server, zookeeper_server, mongo_server):
    cluster = ChatCluster(tmp_path_factory.mktemp("api"), redis_server, zookeeper_server, mongo_server, nodes=3,
                          session_timeout=2.0, extra_args=["--rate-limit", "0"], api_key=KEY)
    cluster.start()
    yield cluster
    cluster.stop()


def url(cluster, path):
    return f"http://127.0.0.1:{cluster.gateway_port}/api/v1{path}"


async def call(cluster, method, path, body=None, key=KEY, raw=None):
    """(status, JSON answer) of one API request."""
    headers = {"Authorization": [f"Bearer {key}"]} if key else {}
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    response = await treq.request(method, url(cluster, path), headers=headers, data=data, timeout=30)
    content = await response.content()
    assert response.headers.getRawHeaders("content-type") == ["application/json"], content
    answer = json.loads(content)
    if response.code >= 400:
        assert set(answer) == {"error"} and answer["error"]["code"] == response.code, answer
        assert isinstance(answer["error"]["message"], str) and answer["error"]["message"]
    return response.code, answer


def db(cluster):
    return pymongo.MongoClient(cluster.mongo_url, serverSelectionTimeoutMS=10000).get_default_database()


# -- keys ---------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_missing_or_wrong_key_is_401(cluster):
    for key in (None, "wrong-key-of-some-length", KEY + "x"):
        code, answer = await call(cluster, "GET", "/presence/user1", key=key)
        assert code == 401, answer
    code, answer = await call(cluster, "POST", "/messages", {"roomName": "world", "message": "x"}, key=None)
    assert code == 401


@pytest_twisted.ensureDeferred
async def test_unknown_paths_and_methods(cluster):
    assert (await call(cluster, "GET", "/nothing"))[0] == 404
    assert (await call(cluster, "GET", "/users/x/y/z"))[0] == 404
    response = await treq.request("GET", f"http://127.0.0.1:{cluster.gateway_port}/api/v2/x",
                                  headers={"Authorization": [f"Bearer {KEY}"]})
    assert response.code == 404
    code, answer = await call(cluster, "GET", "/messages")
    assert code == 405 and "POST" in answer["error"]["message"]
    code, spec = await call(cluster, "GET", "/openapi.json")
    assert code == 200 and spec["openapi"].startswith("3.") and "/messages" in spec["paths"]


@pytest_twisted.ensureDeferred
async def test_bad_json_and_fields_are_400(cluster):
    for raw in (b"", b"{", b"[1]", b"\xff\xfe", b'"x"'):
        code, answer = await call(cluster, "POST", "/messages", raw=raw)
        assert code == 400 and "JSON object" in answer["error"]["message"], (raw, answer)
    for body, why in [
        ({"message": "hi"}, "roomName"),
        ({"roomName": "world", "to": "user1", "message": "hi"}, "roomName"),
        ({"roomName": "world"}, "message"),
        ({"roomName": 5, "message": "hi"}, "string"),
        ({"roomName": "world", "message": "hi", "colour": "red"}, "unknown field"),
        ({"roomName": " world", "message": "hi"}, "white space"),
        ({"roomName": "world", "message": "hi", "from": "x" * 129}, "longer"),
    ]:
        code, answer = await call(cluster, "POST", "/messages", body)
        assert code == 400 and why in answer["error"]["message"], (body, answer)
    code, answer = await call(cluster, "POST", "/rooms", {"roomName": "r", "private": "yes"})
    assert code == 400 and "true or false" in answer["error"]["message"]
    code, answer = await call(cluster, "POST", "/rooms", {"roomName": "alliance:red"})
    assert code == 400 and "automatic" in answer["error"]["message"]


# -- messages -------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_room_message_reaches_members_on_two_nodes_and_is_stored(cluster):
    a = cluster.client("node2", "user3")
    b = cluster.client("node3", "user4")
    try:
        for client in (a, b):
            assert client.request("joinRoom", {"roomName": "room2"})["action"] == "joinRoom"
        code, answer = await call(cluster, "POST", "/messages",
                                  {"roomName": "room2", "message": "maintenance at noon, shit happens"})
        assert code == 200, answer
        assert set(answer) == {"msgId", "seq", "ts", "queued"} and answer["seq"] >= 1 and not answer["queued"]
        for client in (a, b):
            chats = await threads.deferToThread(client.chats, count=1)
            assert [c["data"]["msgId"] for c in chats] == [answer["msgId"]], chats
            data = chats[0]["data"]
            assert data["from"] == "system" and data["roomName"] == "room2" and data["seq"] == answer["seq"]
            assert "shit" not in data["message"]  # profanity filtered as for a client
        # in MongoDB (the write-behind log) and in the room's history
        doc = await threads.deferToThread(wait_until, lambda: db(cluster).messages.find_one(
            {"channel": "room:room2", "seq": answer["seq"]}), 15, "the message in mongodb")
        assert doc["from"] == "system"
        c = cluster.client("node1", "user5")
        try:
            c.request("joinRoom", {"roomName": "room2"})
            history = c.chats(count=1)
            assert answer["msgId"] in [h["data"]["msgId"] for h in history]
            # and counted in the popular words, as a client's message is
            words = c.request("popular", {"n": 50})["data"]["words"]
            assert "maintenance" in json.dumps(words), words
        finally:
            c.close()
    finally:
        a.close()
        b.close()


@pytest_twisted.ensureDeferred
async def test_direct_message_online_and_queued_offline(cluster):
    a = cluster.client("node3", "user6")
    try:
        code, answer = await call(cluster, "POST", "/messages", {"to": "user6", "message": "hello", "from": "admin"})
        assert code == 200 and not answer["queued"], answer
        chats = await threads.deferToThread(a.chats, count=1)
        assert chats[0]["data"]["from"] == "admin" and chats[0]["data"]["msgId"] == answer["msgId"]
        assert chats[0]["data"]["seq"] == answer["seq"]
    finally:
        a.close()
    # user7 is offline: kept for their next login, like the offline extension does
    code, answer = await call(cluster, "POST", "/messages", {"to": "user7", "message": "while you were away"})
    assert code == 200 and answer["queued"], answer
    b = cluster.client("node1", "user7")
    try:
        chats = await threads.deferToThread(b.chats, count=1)
        assert [c["data"]["msgId"] for c in chats] == [answer["msgId"]]
    finally:
        b.close()
    code, answer = await call(cluster, "POST", "/messages", {"to": "nobody-here", "message": "x"})
    assert code == 404 and "nobody-here" in answer["error"]["message"]
    code, answer = await call(cluster, "POST", "/messages", {"roomName": "no-such-room", "message": "x"})
    assert code == 404 and "no-such-room" in answer["error"]["message"]


# -- presence and disconnect -------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_presence_and_disconnect_with_the_new_close_code(cluster):
    a = cluster.client("node1", "user8", offer_deflate=False)
    b = cluster.client("node2", offer_deflate=False)
    b.login("user8", features=["multi"])
    a.close()
    a = cluster.client("node1", offer_deflate=False)
    a.login("user8", features=["multi"])
    try:
        code, answer = await call(cluster, "GET", "/presence/user8")
        assert code == 200 and answer["online"] and answer["nodes"] == ["node1", "node2"], answer
        assert answer["onlineFor"].endswith("s") and answer["onlineFor"].startswith("00d")
        code, answer = await call(cluster, "GET", "/rooms/world/presence")
        assert code == 200 and "user8" in answer["online"]
        closed = [threads.deferToThread(c.wait_closed, 15) for c in (a, b)]
        code, answer = await call(cluster, "POST", "/users/user8/disconnect")
        assert code == 200 and answer["sessionsClosed"] == 2, answer
        for d in closed:
            assert (await d)[0] == DISCONNECTED
        code, answer = await call(cluster, "GET", "/presence/user8")
        assert code == 200 and answer == {"username": "user8", "online": False, "nodes": [], "onlineFor": None}
    finally:
        a.close()
        b.close()
    assert (await call(cluster, "GET", "/presence/nobody-here"))[0] == 404
    assert (await call(cluster, "GET", "/rooms/no-such-room/presence"))[0] == 404


# -- accounts and rooms ------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_users_and_rooms(cluster):
    code, answer = await call(cluster, "POST", "/users", {"username": "carol", "password": "pw-carol-1",
                                                          "alliance": "blue"})
    assert code == 201, answer
    assert (await call(cluster, "POST", "/users", {"username": "carol"}))[0] == 409
    user = await threads.deferToThread(lambda: db(cluster).users.find_one({"username": "carol"}))
    assert user["passwordHash"].startswith("$argon2") and user["alliance"] == "blue"
    c = cluster.client("node2")
    try:
        assert c.request("login", {"username": "carol", "password": "wrong"})["action"] == "error"
    finally:
        c.close()
    c = cluster.client("node2")
    c.login("carol", password="pw-carol-1")

    code, answer = await call(cluster, "POST", "/rooms", {"roomName": "ops", "private": True, "owner": "carol"})
    assert code == 201, answer
    assert (await call(cluster, "POST", "/rooms", {"roomName": "ops"}))[0] == 409
    assert (await call(cluster, "POST", "/rooms", {"roomName": "x2", "owner": "nobody-here"}))[0] == 404
    room = await threads.deferToThread(lambda: db(cluster).rooms.find_one({"roomName": "ops"}))
    assert room["private"] is True and room["owner"] == "carol" and room["members"] == ["carol"]

    # a member added through the API gets the room's messages at once, on its node
    d = cluster.client("node3", "user9")
    code, answer = await call(cluster, "PUT", "/rooms/ops/members/user9")
    assert code == 200 and answer["changed"] and answer["member"]
    code, posted = await call(cluster, "POST", "/messages", {"roomName": "ops", "message": "welcome"})
    assert code == 200, posted
    chats = await threads.deferToThread(d.chats, count=1)
    assert [c["data"]["msgId"] for c in chats] == [posted["msgId"]], chats
    d.send("chat", {"roomName": "ops", "message": "thanks"})  # a member may post (and gets it back)
    assert [c["data"]["message"] for c in d.chats(count=1)] == ["thanks"]
    code, answer = await call(cluster, "PUT", "/rooms/ops/members/user9")
    assert code == 200 and not answer["changed"]
    assert (await call(cluster, "PUT", "/rooms/ops/members/nobody-here"))[0] == 404
    assert (await call(cluster, "PUT", "/rooms/no-such-room/members/user9"))[0] == 404
    room = await threads.deferToThread(lambda: db(cluster).rooms.find_one({"roomName": "ops"}))
    assert sorted(room["members"]) == ["carol", "user9"]
    code, answer = await call(cluster, "GET", "/rooms/ops/presence")
    assert code == 200 and answer["online"] == ["carol", "user9"]
    code, answer = await call(cluster, "DELETE", "/rooms/ops/members/user9")
    assert code == 200 and answer["changed"] and not answer["member"]
    # and one removed no longer gets them, nor may post
    code, posted = await call(cluster, "POST", "/messages", {"roomName": "ops", "message": "bye"})
    assert code == 200
    assert await threads.deferToThread(d.chats, 1.0) == []
    assert d.request("chat", {"roomName": "ops", "message": "still here?"})["data"]["code"] == 403
    d.close()

    # deleting the account closes its sessions and its memberships
    closed = threads.deferToThread(c.wait_closed, 15)
    code, answer = await call(cluster, "DELETE", "/users/carol")
    assert code == 200 and answer["sessionsClosed"] == 1, answer
    assert (await closed)[0] == DISCONNECTED
    assert (await call(cluster, "DELETE", "/users/carol"))[0] == 404
    room = await threads.deferToThread(lambda: db(cluster).rooms.find_one({"roomName": "ops"}))
    assert room["members"] == []

    assert (await call(cluster, "DELETE", "/rooms/ops"))[0] == 200
    assert (await call(cluster, "DELETE", "/rooms/ops"))[0] == 404
    assert (await call(cluster, "DELETE", "/rooms/world"))[0] == 400


# -- without a key -----------------------------------------------------------------------


def test_no_key_configured_is_404(three_nodes):
    for path in ("/api/v1/presence/user1", "/api/v1/openapi.json", "/api/v1", "/api"):
        status, body = three_nodes.gateway_get(path)
        assert status == 404, (path, body)
        assert json.loads(body)["error"]["code"] == 404


@pytest_twisted.ensureDeferred
async def test_disconnect_of_an_unknown_user_is_404(cluster):
    code, answer = await call(cluster, "POST", "/users/nobody-here/disconnect")
    assert code == 404 and "nobody-here" in answer["error"]["message"]


def test_without_a_reachable_cluster_the_api_is_503_and_server_still_answers(tmp_path, redis_server):
    from devtools.localservices import free_port
    from tests.rawhttp import send, start_gateway

    gateway = start_gateway(tmp_path, redis_server, "--api-key", KEY, "--zookeeper", f"127.0.0.1:{free_port()}",
                            "--cluster-secret", "s3cret")
    try:
        answer = send(gateway.http_port, f"GET /api/v1/presence/user1 HTTP/1.1\r\nHost: x\r\n"
                                         f"Authorization: Bearer {KEY}\r\n\r\n".encode(), timeout=30)
        assert answer.status == 503, answer
        assert json.loads(answer.body)["error"]["code"] == 503
        answer = send(gateway.http_port, b"GET /server HTTP/1.1\r\nHost: x\r\n\r\n")
        assert answer.status == 200, answer
    finally:
        gateway.stop()
