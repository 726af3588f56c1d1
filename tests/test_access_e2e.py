"""Who may post to and replay a room, and the back-off of failed logins,
against a real one-node cluster (real twistd, Redis, ZooKeeper, SecantusDB)."""
import pytest

from tests.harness import ChatCluster

# chatnet.ops.seed: user<i> has no alliance when i % 4 == 0
NO_ALLIANCE = ("user4", "user8", "user12")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, redis_server, zookeeper_server, mongo_server):
    c = ChatCluster(tmp_path_factory.mktemp("access"), redis_server, zookeeper_server, mongo_server, nodes=1)
    c.start(users=30, rooms=9)
    yield c
    c.stop()


@pytest.fixture
def client(cluster):
    clients = []

    def make(username=None, **login):
        c = cluster.client()
        clients.append(c)
        if username:
            c.login(username, **login)
        return c

    yield make
    for c in clients:
        c.close()


def post(c, room, text):
    return c.send("chat", {"roomName": room, "isGroup": True, "message": text})


def texts(frames):
    return [f["data"]["message"] for f in frames if f.get("action") == "chat"]


def test_post_without_join_is_403_and_reaches_nobody(client):
    member, stranger = client("user21"), client("user22")
    assert member.request("joinRoom", {"roomName": "room5"})["action"] == "joinRoom"
    member.chats(0.2)
    post(stranger, "room5", "gate crashing")
    error = stranger.error(403)
    assert error["ext"] == "chat" and "room5" in error["message"]
    assert "gate crashing" not in texts(member.quiet(0.5))


def test_members_post_until_they_leave(client):
    a, b = client("user23"), client("user24")
    for c in (a, b):
        assert c.request("joinRoom", {"roomName": "room6"})["action"] == "joinRoom"
        c.chats(0.2)
    post(b, "room6", "hello members")
    assert "hello members" in texts(a.chats(2))
    assert b.request("leaveRoom", {"roomName": "room6"})["action"] == "leaveRoom"
    post(b, "room6", "after leaving")
    b.error(403)
    assert "after leaving" not in texts(a.quiet(0.5))


def test_membership_survives_logout(client, cluster):
    a = client("user25")
    assert a.request("joinRoom", {"roomName": "room7"})["action"] == "joinRoom"
    a.close()
    again, other = client("user25"), client("user26")
    other.request("joinRoom", {"roomName": "room7"})
    other.chats(0.2)
    # the new connection knows nothing yet: MongoDB says it is a member
    post(again, "room7", "still a member")
    assert "still a member" in texts(other.chats(2))


def test_resume_without_membership_is_403_and_replays_nothing(client):
    poster = client("user27")
    poster.request("joinRoom", {"roomName": "room8"})
    post(poster, "room8", "private history")
    assert "private history" in texts(poster.chats(2))
    reader = client("user28", features=["resume"])
    answer = reader.request("resume", {"rooms": {"room8": 0}})
    assert answer["action"] == "error" and answer["data"]["code"] == 403, answer
    assert answer["data"]["ext"] == "resume"
    assert texts(reader.quiet(0.5)) == []
    # once joined, the same resume replays
    reader.request("joinRoom", {"roomName": "room8"})
    reader.chats(0.3)
    answer = reader.request("resume", {"rooms": {"room8": 0}})
    assert answer["action"] == "resume" and answer["data"]["replayed"] >= 1, answer


def test_resume_of_unknown_room_is_404(client):
    c = client("user29", features=["resume"])
    answer = c.request("resume", {"rooms": {"no-such-room": 0}})
    assert answer["data"]["code"] == 404, answer


def test_empty_alliance_does_not_exist(client):
    sender, bystander = client(NO_ALLIANCE[0], features=["resume"]), client(NO_ALLIANCE[1])
    post(sender, "alliance:", "to everyone without an alliance")
    assert sender.error(404)["ext"] == "chat"
    assert texts(bystander.quiet(0.5)) == []
    assert sender.request("joinRoom", {"roomName": "alliance:"})["data"]["code"] == 404
    assert sender.request("resume", {"rooms": {"alliance:": 0}})["data"]["code"] == 404


def test_own_alliance_and_world_need_no_join(client):
    a, b = client("user1"), client("user13")  # both "blue" (chatnet.ops.seed)
    post(a, "alliance:blue", "for blue")
    assert "for blue" in texts(b.chats(2))
    post(a, "alliance:red", "for red")
    a.error(404)
    post(a, "world", "for all")
    assert "for all" in texts(b.chats(2))


def test_password_guessing_gets_429_while_others_log_in(client):
    guesser = client()
    codes = []
    for i in range(8):
        answer = guesser.request("login", {"username": "secret1", "password": f"guess{i}"})
        codes.append(answer["data"]["code"])
        if codes[-1] == 429:
            assert "try again in" in answer["data"]["message"] and answer["data"]["ext"] == "login"
            break
    assert codes[:5] == [401] * 5 and codes[-1] == 429, codes
    # the right password is refused too while locked out
    answer = guesser.request("login", {"username": "secret1", "password": "pw-secret1"})
    assert answer["data"]["code"] == 429
    # another user from the same address is not affected
    assert client().login("user30")["username"] == "user30"
