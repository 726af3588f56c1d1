"""Names, roles and deletion on a real two-node cluster with the server API
and token login (issue 21, items 2 to 8), tried the way an attacker with
two devices and the application's API key would:

* a user name is data: a ``$gt`` or ``a.b`` user muted and banned does not
  break the moderation of the room; names that hide characters are refused;
* a kick or ban ends an admin's role and a private room's invitation;
* the API's messages carry ``system: true`` and belong to the conversation
  ``system``, a name nobody can have;
* deleting a user or a room is final: no rights, no tokens, no history come
  back with the name;
* the popular words count public rooms only;
* a chunked API body over 64 KiB is 413.
"""
import json
from concurrent.futures import ThreadPoolExecutor
import socket
import time
import urllib.error
import urllib.parse
import urllib.request

import pymongo
import pytest

from chatnet.protocols.constants import DISCONNECTED
from tests.harness import ChatCluster, wait_until

jwt = pytest.importorskip("jwt")

KEY = "n" * 8 + "-api-key-for-names"
SECRET = "s" * 40
FEATURES = ["ack", "offline", "resume", "multi"]
HIDDEN = ["a\u202eb", "\u200bzed", "tab\tname", "bell\x07", "line\u2028sep", "bom\ufeff", " lead", "trail "]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, redis_server, zookeeper_server, mongo_server):
    cluster = ChatCluster(tmp_path_factory.mktemp("names"), redis_server, zookeeper_server, mongo_server, nodes=2,
                          session_timeout=2.0, extra_args=["--rate-limit", "0", "--jwt-secret", SECRET],
                          api_key=KEY)
    cluster.start()
    yield cluster
    cluster.stop()


def api(cluster, method, path, body=None, raw=None):
    """(status, JSON answer) of one server API request."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(f"http://127.0.0.1:{cluster.gateway_port}/api/v1{path}", data=data,
                                     method=method, headers={"Authorization": f"Bearer {KEY}",
                                                             "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def q(name):
    return urllib.parse.quote(name, safe="")


def db(cluster):
    return pymongo.MongoClient(cluster.mongo_url, serverSelectionTimeoutMS=10000).get_default_database()


def mint(sub, exp=300, **claims):
    return jwt.encode({"sub": sub, "exp": int(time.time()) + exp, **claims}, SECRET, algorithm="HS256")


def is_error(frame, code):
    return frame["action"] == "error" and frame["data"]["code"] == code


def client(cluster, node, username, **login):
    c = cluster.client(node)
    c.login(username, features=FEATURES, **login)
    return c


def notice(c, action, username):
    return c.expect(lambda f: f["data"].get("action") == action and f["data"].get("username") == username,
                    action="roomNotice", timeout=15)["data"]


def post(c, room, text):
    return c.request("chat", {"roomName": room, "isGroup": True, "message": text})


# -- item 2: names are data ---------------------------------------------------------


def test_dollar_and_dot_names_muted_and_banned_leave_moderation_working(cluster):
    """A ``$gt`` user muted in a room used to make every later mute and ban
    there 503 (its name a MongoDB operator in the condition), and the ban
    was written but not enforced."""
    for name in ("$gt", "a.b", "$where.x"):
        assert api(cluster, "POST", "/users", {"username": name})[0] == 201
    owner = client(cluster, "node1", "user1")
    dollar = client(cluster, "node2", "$gt")
    dotted = client(cluster, "node2", "a.b")
    other = client(cluster, "node1", "$where.x")
    try:
        assert owner.request("createRoom", {"roomName": "dollars"})["action"] == "createRoom"
        for c in (dollar, dotted, other):
            assert c.request("joinRoom", {"roomName": "dollars"})["action"] == "joinRoom"
        assert owner.request("mute", {"roomName": "dollars", "username": "$gt", "seconds": 300})["action"] == "mute"
        assert is_error(post(dollar, "dollars", "hello"), 403)
        # later mutes and bans in that room work, and are enforced
        muted = owner.request("mute", {"roomName": "dollars", "username": "$where.x", "seconds": 300})
        assert muted["action"] == "mute", muted
        assert is_error(post(other, "dollars", "hello"), 403)
        banned = owner.request("ban", {"roomName": "dollars", "username": "a.b"})
        assert banned["action"] == "ban", banned
        assert notice(dotted, "ban", "a.b")["by"] == "user1"
        assert is_error(post(dotted, "dollars", "still here"), 403)
        assert is_error(dotted.request("joinRoom", {"roomName": "dollars"}), 403)
        # a mute of 1 s lifts one
        assert owner.request("mute", {"roomName": "dollars", "username": "$gt", "seconds": 1})["action"] == "mute"
        wait_until(lambda: post(dollar, "dollars", "free again")["action"] == "ack", 10, "the mute to end")
        doc = db(cluster).rooms.find_one({"roomName": "dollars"})
        assert isinstance(doc["muted"], list)
        assert {m["user"] for m in doc["muted"]} == {"$gt", "$where.x"}
    finally:
        for c in (owner, dollar, dotted, other):
            c.close()


def test_mutes_written_as_a_map_before_still_hold(cluster):
    """Rooms whose ``muted`` is the map of before (name -> until) are read
    as they are, and the next mute writes the list."""
    owner = client(cluster, "node1", "user2")
    member = client(cluster, "node2", "user3")
    try:
        assert owner.request("createRoom", {"roomName": "oldmutes"})["action"] == "createRoom"
        assert member.request("joinRoom", {"roomName": "oldmutes"})["action"] == "joinRoom"
        far = int(time.time() * 1000) + 3600_000
        db(cluster).rooms.update_one({"roomName": "oldmutes"}, {"$set": {"muted": {"user3": far}}})
        member2 = client(cluster, "node1", "user3")  # a new session reads the mutes from MongoDB
        try:
            assert is_error(post(member2, "oldmutes", "x"), 403)
        finally:
            member2.close()
        assert owner.request("mute", {"roomName": "oldmutes", "username": "user3", "seconds": 600})["action"] \
            == "mute"
        doc = db(cluster).rooms.find_one({"roomName": "oldmutes"})
        assert [m["user"] for m in doc["muted"]] == ["user3"]
    finally:
        owner.close()
        member.close()


def test_names_that_hide_characters_or_are_reserved_are_refused_everywhere(cluster):
    for name in HIDDEN + ["system"]:
        code, answer = api(cluster, "POST", "/users", {"username": name})
        assert code == 400, (name, answer)
        c = cluster.client("node1")
        try:
            assert is_error(c.request("login", {"username": name}), 400), name
            assert is_error(c.request("login", {"username": name, "token": mint(name)}), 400), name
        finally:
            c.close()
    users = db(cluster).users
    assert users.count_documents({"username": {"$in": HIDDEN + ["system"]}}) == 0
    # a room name with them is refused as well
    c = client(cluster, "node1", "user4")
    try:
        for name in HIDDEN:
            assert is_error(c.request("createRoom", {"roomName": name}), 400), name
        assert api(cluster, "POST", "/rooms", {"roomName": "a\u202eb"})[0] == 400
    finally:
        c.close()


# -- item 3: roles end with membership --------------------------------------------------


def test_a_kicked_admin_loses_the_role_and_the_invitation(cluster):
    owner = client(cluster, "node1", "user5")
    admin = client(cluster, "node2", "user6")
    member = client(cluster, "node1", "user7")
    try:
        assert owner.request("createRoom", {"roomName": "cabinet", "private": True})["action"] == "createRoom"
        for user, c in (("user6", admin), ("user7", member)):
            assert owner.request("invite", {"roomName": "cabinet", "username": user})["action"] == "invite"
            assert c.request("joinRoom", {"roomName": "cabinet"})["action"] == "joinRoom"
        assert owner.request("setRole", {"roomName": "cabinet", "username": "user6", "role": "admin"})["action"] \
            == "setRole"
        assert owner.request("kick", {"roomName": "cabinet", "username": "user6"})["action"] == "kick"
        # no rejoin without a new invitation
        assert is_error(admin.request("joinRoom", {"roomName": "cabinet"}), 403)
        assert owner.request("invite", {"roomName": "cabinet", "username": "user6"})["action"] == "invite"
        assert admin.request("joinRoom", {"roomName": "cabinet"})["action"] == "joinRoom"
        # back as a member, not as an admin
        assert is_error(admin.request("kick", {"roomName": "cabinet", "username": "user7"}), 403)
        assert "user6" not in db(cluster).rooms.find_one({"roomName": "cabinet"})["admins"]
        # the same for a ban
        assert owner.request("setRole", {"roomName": "cabinet", "username": "user6", "role": "admin"})["action"] \
            == "setRole"
        assert owner.request("ban", {"roomName": "cabinet", "username": "user6"})["action"] == "ban"
        doc = db(cluster).rooms.find_one({"roomName": "cabinet"})
        assert "user6" not in doc["admins"] and "user6" not in doc["invited"]
        # an admin left in "admins" by a version before, who is no member, is no admin
        db(cluster).rooms.update_one({"roomName": "cabinet"}, {"$addToSet": {"admins": "user8"}})
        outsider = client(cluster, "node2", "user8")
        try:
            assert is_error(outsider.request("joinRoom", {"roomName": "cabinet"}), 403)
            assert is_error(outsider.request("kick", {"roomName": "cabinet", "username": "user7"}), 403)
        finally:
            outsider.close()
    finally:
        for c in (owner, admin, member):
            c.close()


# -- item 4: the API sender is not a user --------------------------------------------------


def test_api_messages_are_marked_and_never_replayed_to_a_user_of_the_senders_name(cluster):
    assert api(cluster, "POST", "/users", {"username": "Support"})[0] == 201
    recipient = client(cluster, "node1", "user9")
    impostor = client(cluster, "node2", "Support")
    try:
        code, sent = api(cluster, "POST", "/messages", {"to": "user9", "message": "reset code 4711"})
        assert code == 200, sent
        frame = recipient.chats(count=1)[0]["data"]
        assert frame["from"] == "system" and frame["system"] is True and frame["message"] == "reset code 4711"
        code, sent = api(cluster, "POST", "/messages", {"to": "user9", "message": "code 1234", "from": "Support"})
        assert code == 200 and sent["seq"] == 2, sent  # the same conversation: "system"
        frame = recipient.chats(count=1)[0]["data"]
        assert frame["from"] == "Support" and frame["system"] is True
        # the user named Support replays nothing of it
        answer = impostor.request("resume", {"conversations": {"user9": 0}})
        assert answer["data"]["replayed"] == 0 and not impostor.chats(timeout=0.5), answer
        # the recipient does, under "system"
        answer = recipient.request("resume", {"conversations": {"system": 0}})
        assert answer["data"] == {"replayed": 2, "tooOld": []}, answer
        replayed = recipient.chats(count=2)
        assert [c["data"]["message"] for c in replayed] == ["reset code 4711", "code 1234"]
        assert all(c["data"]["system"] is True for c in replayed)
        # a room message of the API too; a client cannot set the field
        assert api(cluster, "POST", "/messages", {"roomName": "world", "message": "maintenance"})[0] == 200
        frame = wait_until(lambda: [c for c in impostor.chats(timeout=0.5) if c["data"]["message"] == "maintenance"],
                           10, "the API's room message")[0]["data"]
        assert frame["system"] is True
        impostor.send("chat", {"to": "user9", "message": "I am the system", "system": True, "from": "system"})
        frame = wait_until(lambda: [c for c in recipient.chats(timeout=0.5) if c["data"]["roomName"] == ""],
                           10, "the impostor's message")[0]["data"]
        assert frame["from"] == "Support" and frame["message"] == "I am the system" and "system" not in frame, frame
    finally:
        recipient.close()
        impostor.close()


# -- items 5 and 6: deletion is final -----------------------------------------------------


def test_a_deleted_user_leaves_nothing_to_a_new_user_of_the_name(cluster):
    token = mint("alice", iat=int(time.time()) - 5)
    alice = client(cluster, "node1", "alice", token=token)
    phone = client(cluster, "node2", "alice", token=token)
    bob = client(cluster, "node2", "user10")
    try:
        assert alice.request("createRoom", {"roomName": "vault", "private": True})["action"] == "createRoom"
        assert alice.request("invite", {"roomName": "vault", "username": "user10"})["action"] == "invite"
        assert bob.request("joinRoom", {"roomName": "vault"})["action"] == "joinRoom"
        assert alice.request("setRole", {"roomName": "vault", "username": "user10", "role": "admin"})["action"] \
            == "setRole"
        assert alice.request("chat", {"to": "user10", "message": "my secret"})["action"] == "ack"
        assert post(alice, "vault", "vault secret")["action"] == "ack"
        with ThreadPoolExecutor(max_workers=2) as pool:
            closed = [pool.submit(c.wait_closed, 15) for c in (alice, phone)]
            code, answer = api(cluster, "DELETE", "/users/alice")
            assert code == 200 and answer["sessionsClosed"] == 2, answer
            assert [f.result()[0] for f in closed] == [DISCONNECTED, DISCONNECTED]
        # the token of before does not bring the account back
        c = cluster.client("node1")
        try:
            assert is_error(c.request("login", {"username": "alice", "token": token}), 401)
        finally:
            c.close()
        assert db(cluster).users.find_one({"username": "alice"}) is None
        doc = db(cluster).rooms.find_one({"roomName": "vault"})
        assert "owner" not in doc and "alice" not in doc["members"] + doc["admins"] + doc["invited"]

        # a new alice, with a token issued after the deletion
        time.sleep(1.1)
        alice = client(cluster, "node1", "alice", token=mint("alice", iat=int(time.time())))
        rooms = [r["roomName"] for r in alice.request("listRooms")["data"]["rooms"]]
        assert "vault" not in rooms
        assert is_error(alice.request("joinRoom", {"roomName": "vault"}), 403)
        assert is_error(alice.request("kick", {"roomName": "vault", "username": "user10"}), 403)
        answer = alice.request("resume", {"conversations": {"user10": 0}})
        assert answer["data"]["replayed"] == 0 and answer["data"]["tooOld"] == [{"with": "user10"}], answer
        assert not alice.chats(timeout=0.5)
        # new messages of the conversation are resumed as usual
        assert bob.request("chat", {"to": "alice", "message": "welcome"})["action"] == "ack"
        seen = alice.chats(count=1)[0]["data"]
        answer = alice.request("resume", {"conversations": {"user10": seen["seq"] - 1}})
        assert answer["data"] == {"replayed": 1, "tooOld": []}, answer
    finally:
        for c in (alice, phone, bob):
            c.close()


def test_a_room_made_again_under_a_deleted_rooms_name_shows_none_of_its_history(cluster):
    assert api(cluster, "POST", "/rooms", {"roomName": "vault2", "private": True, "owner": "user11"})[0] == 201
    owner = client(cluster, "node1", "user11")
    other = client(cluster, "node2", "user12")
    try:
        for text in ("old 1", "old 2", "old 3"):
            assert post(owner, "vault2", text)["action"] == "ack"
        assert len(owner.chats(count=3)) == 3
        code, answer = api(cluster, "DELETE", "/rooms/vault2")
        assert code == 200, answer
        assert other.request("createRoom", {"roomName": "vault2"})["action"] == "createRoom"
        other.chats(timeout=0.3)
        assert owner.request("joinRoom", {"roomName": "vault2"})["action"] == "joinRoom"
        assert not owner.chats(timeout=0.5)  # the history of the old room is not the new one's
        answer = owner.request("resume", {"rooms": {"vault2": 0}})
        assert answer["data"] == {"replayed": 0, "tooOld": []}, answer
        ack = post(other, "vault2", "new 1")
        assert ack["data"]["seq"] == 4, ack  # seqs go on: no client's resume mark is confused
        assert [c["data"]["message"] for c in owner.chats(count=1)] == ["new 1"]
        answer = owner.request("resume", {"rooms": {"vault2": 0}})
        assert answer["data"] == {"replayed": 1, "tooOld": []}, answer
        assert [c["data"]["message"] for c in owner.chats(count=1)] == ["new 1"]
        joiner = client(cluster, "node1", "user13")
        try:
            assert joiner.request("joinRoom", {"roomName": "vault2"})["action"] == "joinRoom"
            assert [c["data"]["message"] for c in joiner.chats(timeout=0.5)] == ["new 1"]
        finally:
            joiner.close()
    finally:
        owner.close()
        other.close()


# -- item 7: popular words are scoped -------------------------------------------------------


def test_popular_words_count_public_rooms_only(cluster):
    speaker = client(cluster, "node1", "user14")
    friend = client(cluster, "node2", "user15")
    outsider = client(cluster, "node2", "user16")
    try:
        assert speaker.request("createRoom", {"roomName": "hideout", "private": True})["action"] == "createRoom"
        assert speaker.request("createRoom", {"roomName": "square"})["action"] == "createRoom"
        for word in ("quokkasecret", "quokkasecret"):
            assert post(speaker, "hideout", word)["action"] == "ack"
            assert speaker.request("chat", {"to": "user15", "message": "quokkadirect"})["action"] == "ack"
        assert api(cluster, "POST", "/messages", {"to": "user15", "message": "quokkaapi"})[0] == 200
        assert post(speaker, "square", "quokkapublic")["action"] == "ack"
        assert post(speaker, "world", "quokkaworld")["action"] == "ack"
        words = outsider.request("popular", {"n": 1000})["data"]["words"][::2]
        assert "quokkapublic" in words and "quokkaworld" in words, words
        assert not {"quokkasecret", "quokkadirect", "quokkaapi"} & set(words), words
    finally:
        for c in (speaker, friend, outsider):
            c.close()


# -- item 8: the body limit holds for chunked bodies ----------------------------------------


def test_a_chunked_api_body_over_64_kib_is_413(cluster):
    body = json.dumps({"username": "chunky", "x": "y" * 70000}).encode()
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 4096]), body[i:i + 4096]) for i in range(0, len(body), 4096))
    head = (f"POST /api/v1/users HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {KEY}\r\n"
            "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", cluster.gateway_port), timeout=10) as sock:
        try:
            sock.sendall(head + chunks + b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        answer = b""
        while True:
            try:
                data = sock.recv(65536)
            except ConnectionResetError:
                break
            if not data:
                break
            answer += data
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
    # a chunked body within the limit is read as before
    body = json.dumps({"username": "chunky"}).encode()
    with socket.create_connection(("127.0.0.1", cluster.gateway_port), timeout=10) as sock:
        sock.sendall(head + b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body))
        answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 201 "), answer[:200]
