"""PROTOCOL.md played against a real one-node cluster (real twistd, Redis,
ZooKeeper, SecantusDB), with a plain WebSocket client as old clients speak it:
one test per action, per error code and per bad-input case."""
import json
import socket
import time

import pytest

from tests.harness import ChatCluster, WsClient


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, redis_server, zookeeper_server, mongo_server):
    c = ChatCluster(
        tmp_path_factory.mktemp("cluster"), redis_server, zookeeper_server, mongo_server,
        nodes=1, extra_args=["--max-message-chars", "200", "--popular-window", "60"],
    )
    c.start()
    yield c
    c.stop()


@pytest.fixture
def client(cluster):
    clients = []

    def make(username=None):
        c = cluster.client(username=username)
        clients.append(c)
        return c

    yield make
    for c in clients:
        c.close()


# -- gateway (section 1) -------------------------------------------------------


def test_gateway_names_a_live_node(cluster):
    status, body = cluster.gateway_get("/server")
    assert status == 200
    node = json.loads(body)
    assert node["host"] == "127.0.0.1"
    assert node["port"] == cluster.port("node1")
    assert isinstance(node["port"], int)
    assert node["nodeId"] == "node1"
    assert node["url"] == f"ws://127.0.0.1:{node['port']}/"


def test_gateway_lists_all_nodes(cluster):
    for flag in ("1", "true", "yes"):
        status, body = cluster.gateway_get(f"/server?all={flag}")
        assert status == 200
        [node] = json.loads(body)
        assert {"host", "port", "nodeId", "isLeader", "connections"} <= set(node)
        assert node["isLeader"] is True


def test_gateway_unknown_path_is_404(cluster):
    status, body = cluster.gateway_get("/nothing")
    assert status == 404
    assert not body.startswith(b"{")


# -- login -----------------------------------------------------------------------


def test_login_without_password(client):
    c = client()
    data = c.login("user1")
    assert data["username"] == "user1"
    assert isinstance(data["sessionId"], str) and data["sessionId"]


def test_login_unknown_user_is_401(client):
    c = client()
    c.send("login", {"username": "nobody-here"})
    assert c.error(401)["message"]


def test_login_with_password(client):
    c = client()
    c.send("login", {"username": "secret1", "password": "wrong"})
    c.error(401)
    c.send("login", {"username": "secret1"})
    c.error(401)
    assert c.login("secret1", password="pw-secret1")["username"] == "secret1"


def test_login_operator_injection_is_400(client):
    c = client()
    c.send("login", {"username": {"$gt": ""}})
    assert c.error(400)["message"]
    c.send("chat", {"to": "user2", "message": "hi"})
    c.error(401)


def test_second_login_replaces_first_with_409(client):
    first = client("user3")
    second = client("user3")
    assert first.error(409)["ext"] == "login"
    assert first.wait_closed(5)
    # the new session is the one that counts
    other = client("user4")
    other.send("chat", {"to": "user3", "message": "to the new one"})
    [chat] = second.chats(count=1)
    assert chat["data"]["message"] == "to the new one"


def test_action_before_login_is_401(client):
    c = client()
    for action, data in [("chat", {"to": "user2", "message": "x"}), ("joinRoom", {"roomName": "room1"}),
                         ("userInfo", {"username": "user1"}), ("popular", {"n": 1})]:
        c.send(action, data)
        c.error(401)


# -- direct chat ------------------------------------------------------------------


def test_direct_chat(client):
    a, b = client("user5"), client("user6")
    ts = int(time.time() * 1000) - 5000  # the client's clock, near the server's: kept
    a.send("chat", {"to": "user6", "message": "hello there", "from": "spoofed", "ts": ts})
    [chat] = b.chats(count=1)
    data = chat["data"]
    assert data["from"] == "user5"
    assert data["roomName"] == ""
    assert data["message"] == "hello there"
    assert data["ts"] == ts
    assert data["format"] == "text"
    assert isinstance(chat["id"], int)
    assert a.quiet(0.3) == []


def test_direct_chat_to_offline_user_is_404(client):
    a = client("user7")
    a.send("chat", {"to": "user8", "message": "anyone?"})
    err = a.error(404)
    assert err["message"] == "user user8 is not on line"


def test_profanity_is_masked(client):
    a, b = client("user9"), client("user10")
    a.send("chat", {"to": "user10", "message": "you FUCK, hello class"})
    [chat] = b.chats(count=1)
    assert chat["data"]["message"] == "you ****, hello class"


def test_message_over_limit_is_413(client):
    a, _ = client("user11"), client("user12")
    a.send("chat", {"to": "user12", "message": "x" * 201})
    a.error(413)


# -- rooms -------------------------------------------------------------------------


def test_join_room_gets_history_then_answer(client):
    a = client("user13")
    join = a.request("joinRoom", {"roomName": "room1", "username": "ignored"})
    assert join["action"] == "joinRoom"
    for i in range(3):
        a.send("chat", {"roomName": "room1", "isGroup": True, "message": f"history {i}"})
    echoes = a.chats(count=3)
    assert len(echoes) == 3, echoes
    b = client("user14")
    b.send("joinRoom", {"roomName": "room1"})
    history = []
    answer = b.expect(lambda f: f["action"] in ("chat", "joinRoom") and (history.append(f) or f["action"] == "joinRoom"))
    history = [f for f in history if f["action"] == "chat"]
    assert [f["data"]["message"] for f in history][-3:] == ["history 0", "history 1", "history 2"]
    assert all(f["data"]["roomName"] == "room1" for f in history)
    assert answer["data"]["roomName"] == "room1"
    assert answer["data"]["members"] >= 2


def test_room_chat_reaches_members(client):
    a, b = client("user15"), client("user16")
    a.request("joinRoom", {"roomName": "room2"})
    b.request("joinRoom", {"roomName": "room2"})
    a.chats(0.2), b.chats(0.2)
    a.send("chat", {"roomName": "room2", "isGroup": True, "message": "to the room"})
    got = b.expect(lambda f: f.get("action") == "chat" and f["data"]["message"] == "to the room")
    assert got["data"]["from"] == "user15"
    assert got["data"]["roomName"] == "room2"


def test_room_unknown_is_404(client):
    a = client("user17")
    a.send("chat", {"roomName": "no-such-room", "isGroup": True, "message": "x"})
    a.error(404)
    a.send("joinRoom", {"roomName": "no-such-room"})
    a.error(404)


def test_world_room_has_everyone(client):
    a, b = client("user18"), client("user19")
    a.send("chat", {"roomName": "world", "isGroup": True, "message": "hello world"})
    assert any(c["data"]["message"] == "hello world" for c in b.chats(2))


def test_leave_room_and_list_rooms(client):
    a = client("user20")
    a.request("joinRoom", {"roomName": "room3"})
    rooms = a.request("listRooms")
    names = {r["roomName"]: r["members"] for r in rooms["data"]["rooms"]}
    assert names["room3"] >= 1 and "room1" in names
    left = a.request("leaveRoom", {"roomName": "room3"})
    assert left["action"] == "leaveRoom" and left["data"] == {"roomName": "room3"}


# -- information ---------------------------------------------------------------------


def test_user_info(client):
    a = client("user1")
    before = int(time.time() * 1000)
    b = client("user2")
    info = a.request("userInfo", {"username": "user2"})
    assert info["action"] == "userInfo"
    data = info["data"]
    assert data["username"] == "user2"
    assert data["isOnline"] is True
    assert data["nodeId"] == "node1"
    assert abs(data["loginTime"] - before) < 10_000
    assert data["onlineFor"].startswith("00d 00h 00m ")
    b.close()


def test_user_info_offline_is_404(client):
    a = client("user1")
    a.send("userInfo", {"username": "user99"})
    a.error(404)


def test_popular_words(client):
    a, b = client("user2"), client("user4")
    for text in ("zebra zebra yak yak", "zebra, yak! yak", "zebra zebra yak"):
        a.send("chat", {"roomName": "world", "isGroup": True, "message": text})
    assert len(b.chats(count=3)) == 3
    # a direct message is never counted (nor a private room's)
    a.send("chat", {"to": "user4", "message": "okapi okapi okapi okapi okapi okapi"})
    assert len(b.chats(count=1)) == 1
    words = a.request("popular", {"n": 2})["data"]["words"]
    assert words[:4] == ["zebra", "5", "yak", "5"]
    assert all(isinstance(w, str) for w in words)
    one = a.request("popular", {})["data"]["words"]
    assert len(one) == 2


# -- bad input (section 5) ----------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [b"not json", b"[1, 2]", b'"text"', b"{}", b'{"action": 5}', b'{"action": "dance", "data": {}}',
     b'{"action": "login", "data": []}', b'{"action": "login", "data": {"username": 5}}',
     b'{"action": "chat", "data": {"to": ["a"], "message": "x"}}'],
)
def test_bad_frames_are_400(client, payload):
    a = client("user5" if b'"chat"' in payload else None)
    a.send_raw(payload.decode())
    a.error(400)
    # still served: a logged-in client gets its answer, the others the 401
    answer = a.request("popular", {"n": 1})
    if getattr(a, "username", None):
        assert answer["action"] == "popular", answer
    else:
        assert answer["action"] == "error" and answer["data"]["code"] == 401, answer


def test_binary_frame_is_400(client):
    a = client()
    a.send_raw(b'{"action": "login"}', binary=True)
    a.error(400)


@pytest.mark.parametrize("action", ["leaderConnect", "syncServers"])
def test_internal_actions_are_403(client, action):
    a = client("user6")
    a.send(action, {"servers": []})
    a.error(403)


def test_frame_over_one_mib_closes(client, cluster):
    a = client()
    a.send_raw("x" * (1024 * 1024 + 10))
    assert a.wait_closed(10)
    b = client("user7")
    assert b.request("popular", {"n": 1})["action"] == "popular"


def test_burst_of_10000_frames_is_rate_limited(client):
    a, b = client("user8"), client("user9")
    frame = json.dumps({"id": 1, "action": "chat", "data": {"to": "user9", "message": "burst"}})
    for _ in range(10000):
        a.send_raw(frame)
    codes = []
    deadline = time.time() + 60
    while len(codes) < 9000 and time.time() < deadline:
        f = a.expect(lambda f: f["action"] == "error", timeout=30)
        codes.append(f["data"]["code"])
    assert set(codes) == {429}
    received = b.chats(2)
    assert 30 <= len(received) <= 200
    c = client("user10")
    assert c.request("popular", {"n": 1})["action"] == "popular"


def test_silent_and_vanishing_clients_do_not_hurt(client, cluster):
    silent = socket.create_connection(("127.0.0.1", cluster.port("node1")))
    half = socket.create_connection(("127.0.0.1", cluster.port("node1")))
    half.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n")  # never finished
    ws = WsClient(cluster.port("node1"))
    ws.ws.sock.sendall(b"\x81\xfe\x10\x00")  # a frame header, then gone
    ws.ws.sock.close()
    half.close()
    a = client("user11")
    assert a.request("popular", {"n": 1})["action"] == "popular"
    silent.close()
