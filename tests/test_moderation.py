"""Rooms users create and moderate: the rules (chatnet.domain.moderation) on their
own, then the actions in-process on the real stores (the node of
tests/test_handlers_inprocess.py)."""
import pytest
import pytest_twisted

from chatnet.domain import moderation
from chatnet.errors import ProtocolError
from tests.inprocess import error_code, request, run_until
from tests.test_handlers_inprocess import logged_in, mongo_url, node  # noqa: F401  (fixtures)

ROOM = {"roomName": "r", "owner": "olga", "admins": ["ada"], "members": ["olga", "ada", "mia", "max"],
        "private": True, "banned": ["bob"], "invited": ["ivy"], "muted": {"mia": 5000}}


def code(f, *args):
    try:
        f(*args)
    except ProtocolError as e:
        return e.code
    return None


# -- the rules -----------------------------------------------------------------


@pytest.mark.parametrize("name", ["room1", "Café", "a-b_c.d", "房间", "x" * 128])
def test_good_room_names(name):
    assert code(moderation.check_room_name, name) is None


@pytest.mark.parametrize("name", ["", "world", "alliance:red", "alliance:", "x" * 129, "has space", "-lead",
                                  ".hidden", "a/b", "a:b", "tab\there", "new\nline", "$x", "a\u200bb"])
def test_bad_room_names(name):
    assert code(moderation.check_room_name, name) == 400


def test_roles():
    assert [moderation.role(ROOM, u) for u in ("olga", "ada", "mia", "zed")] == ["owner", "admin", "member", None]


@pytest.mark.parametrize("actor, target, action, expected", [
    ("olga", "mia", "kick", None),
    ("olga", "ada", "ban", None),  # the owner acts on admins
    ("ada", "mia", "mute", None),
    ("ada", "zed", "ban", None),  # a ban needs no membership
    ("ada", "zed", "invite", None),
    ("ada", "olga", "kick", 403),  # nobody acts on the owner
    ("ada", "ada", "mute", 403),  # nor on themselves
    ("olga", "olga", "ban", 403),
    ("ada", "ada", "kick", 403),
    ("mia", "max", "kick", 403),  # members do not moderate
    ("zed", "max", "invite", 403),
    ("olga", "zed", "kick", 404),  # kick and mute: members only
    ("olga", "zed", "mute", 404),
    ("olga", "bob", "invite", 403),  # banned
])
def test_who_may_act_on_whom(actor, target, action, expected):
    assert code(moderation.check_act, ROOM, actor, target, action) == expected


def test_an_admin_does_not_act_on_another_admin():
    room = {**ROOM, "admins": ["ada", "abe"], "members": ROOM["members"] + ["abe"]}
    for action in ("kick", "ban", "mute"):
        assert code(moderation.check_act, room, "ada", "abe", action) == 403
        assert code(moderation.check_act, room, "olga", "abe", action) is None


def test_set_role():
    assert code(moderation.check_set_role, ROOM, "olga", "mia", "admin") is None
    assert code(moderation.check_set_role, ROOM, "olga", "ada", "member") is None
    assert code(moderation.check_set_role, ROOM, "ada", "mia", "admin") == 403
    assert code(moderation.check_set_role, ROOM, "olga", "olga", "member") == 403
    assert code(moderation.check_set_role, ROOM, "olga", "zed", "admin") == 404
    assert code(moderation.check_set_role, ROOM, "olga", "mia", "owner") == 400


def test_join_and_visibility():
    assert code(moderation.check_join, ROOM, "ivy") is None  # invited
    assert code(moderation.check_join, ROOM, "mia") is None  # a member already
    assert code(moderation.check_join, ROOM, "zed") == 403
    assert code(moderation.check_join, ROOM, "bob") == 403
    public = {**ROOM, "private": False}
    assert code(moderation.check_join, public, "zed") is None
    assert code(moderation.check_join, public, "bob") == 403
    seeded = {"roomName": "room1", "members": ["a"]}
    assert code(moderation.check_join, seeded, "zed") is None and moderation.visible(seeded, "zed")
    assert [moderation.visible(ROOM, u) for u in ("mia", "ivy", "zed")] == [True, True, False]


def test_an_admin_who_is_no_member_is_no_admin():
    room = {**ROOM, "admins": ["ada", "kim"]}  # kim was kicked by a version that left the role
    assert moderation.role(room, "kim") is None
    assert code(moderation.check_act, room, "kim", "mia", "kick") == 403
    assert code(moderation.check_join, room, "kim") == 403


def test_mutes_as_a_list_and_as_the_map_of_before():
    listed = {**ROOM, "muted": [{"user": "mia", "until": 5000}, {"user": "$gt", "until": 7000}, {"user": 3},
                                "junk", {"user": "max", "until": True}]}
    assert moderation.mute_map(listed["muted"]) == {"mia": 5000, "$gt": 7000}
    assert moderation.muted_until(listed, "$gt") == 7000 and moderation.muted_until(listed, "max") == 0
    assert moderation.mute_map(None) == {} and moderation.mute_map("x") == {}


def test_mutes():
    assert moderation.muted_until(ROOM, "mia") == 5000 and moderation.muted_until(ROOM, "max") == 0
    assert code(moderation.check_post, "r", 5000, 4000) == 403
    assert code(moderation.check_post, "r", 5000, 5000) is None
    assert code(moderation.check_post, "r", 0, 5000) is None


# -- in-process ----------------------------------------------------------------


@pytest.fixture
def rooms(node):  # noqa: F811
    return node


async def ask(node, client, action, **data):
    """The frames answering the request, the answer (or error) first; the
    room notices it caused to its sender stay with the client."""
    frames = await request(node.handlers, client, action, **data)
    kept = [f for f in frames if f["action"] == "roomNotice"]
    client.frames[:0] = kept
    return [f for f in frames if f["action"] != "roomNotice"]


def notices(client):
    return [f["data"] for f in client.take() if f["action"] == "roomNotice"]


@pytest_twisted.ensureDeferred
async def test_create_room_and_its_checks(rooms):
    owner = await logged_in(rooms, "user1")
    frames = await ask(rooms, owner, "createRoom", roomName="club", private=True)
    assert frames[0]["action"] == "createRoom" and frames[0]["data"] == {"roomName": "club", "private": True,
                                                                        "owner": "user1"}
    doc = await rooms.mongo.room("club")
    assert {k: doc[k] for k in ("owner", "private", "members", "admins", "banned", "muted", "invited")} == {
        "owner": "user1", "private": True, "members": ["user1"], "admins": [], "banned": [], "muted": [],
        "invited": []}
    assert error_code(await ask(rooms, owner, "createRoom", roomName="club")) == 409
    assert error_code(await ask(rooms, owner, "createRoom", roomName="room1")) == 409  # a seeded one
    for bad in ("world", "alliance:x", "", "a b"):
        assert error_code(await ask(rooms, owner, "createRoom", roomName=bad)) == 400
    assert error_code(await ask(rooms, owner, "createRoom", roomName="x", private="yes")) == 400
    # the owner posts at once
    assert error_code(await ask(rooms, owner, "chat", roomName="club", isGroup=True, message="hi")) is None


@pytest_twisted.ensureDeferred
async def test_private_rooms_invitations_and_the_room_list(rooms):
    owner, guest, other = [await logged_in(rooms, u) for u in ("user1", "user2", "user3")]
    await ask(rooms, owner, "createRoom", roomName="club", private=True)
    await ask(rooms, owner, "createRoom", roomName="open")

    names = [r["roomName"] for r in (await ask(rooms, other, "listRooms"))[0]["data"]["rooms"]]
    assert "open" in names and "club" not in names and "room1" in names and names[0] == "world"
    assert error_code(await ask(rooms, guest, "joinRoom", roomName="club")) == 403
    assert error_code(await ask(rooms, guest, "invite", roomName="club", username="user3")) == 403
    assert error_code(await ask(rooms, owner, "invite", roomName="club", username="nobody")) == 404
    assert error_code(await ask(rooms, owner, "invite", roomName="nothing", username="user2")) == 404
    assert (await ask(rooms, owner, "invite", roomName="club", username="user2"))[0]["action"] == "invite"
    entry = [r for r in (await ask(rooms, guest, "listRooms"))[0]["data"]["rooms"] if r["roomName"] == "club"]
    assert entry == [{"roomName": "club", "members": 1, "private": True}]
    frames = await ask(rooms, guest, "joinRoom", roomName="club")
    assert frames[-1]["action"] == "joinRoom" and frames[-1]["data"]["members"] == 2
    assert error_code(await ask(rooms, other, "joinRoom", roomName="club")) == 403


@pytest_twisted.ensureDeferred
async def test_kick_ban_mute_and_roles(rooms):
    owner, admin, member, other = [await logged_in(rooms, u, features=("multi",))
                                   for u in ("user1", "user2", "user3", "user4")]
    await ask(rooms, owner, "createRoom", roomName="club")
    for client in (admin, member, other):
        await ask(rooms, client, "joinRoom", roomName="club")
    # roles: the owner's only
    assert error_code(await ask(rooms, admin, "setRole", roomName="club", username="user3", role="admin")) == 403
    assert (await ask(rooms, owner, "setRole", roomName="club", username="user2", role="admin"))[0]["data"] == {
        "roomName": "club", "username": "user2", "role": "admin"}
    assert error_code(await ask(rooms, member, "kick", roomName="club", username="user4")) == 403
    assert error_code(await ask(rooms, admin, "kick", roomName="club", username="user1")) == 403
    for client in (owner, admin, member, other):
        client.take()

    # a mute: every member is told; the muted member's posts are 403 until it ends
    frames = await ask(rooms, admin, "mute", roomName="club", username="user3", seconds=60)
    until = frames[0]["data"]["until"]
    assert frames[0]["action"] == "mute" and until == (int(rooms.clock.seconds()) + 60) * 1000
    expected = {"roomName": "club", "action": "mute", "username": "user3", "by": "user2", "until": until}
    for client in (owner, member, other):
        assert notices(client) == [expected]
    assert error_code(await ask(rooms, member, "chat", roomName="club", isGroup=True, message="x")) == 403
    assert error_code(await ask(rooms, other, "chat", roomName="club", isGroup=True, message="y")) is None
    # (a new session of the muted user learns of it from MongoDB)
    again = await logged_in(rooms, "user3", features=("multi",))
    assert error_code(await ask(rooms, again, "chat", roomName="club", isGroup=True, message="x")) == 403
    rooms.clock.advance(61)
    assert error_code(await ask(rooms, member, "chat", roomName="club", isGroup=True, message="z")) is None
    for bad in (0, 7 * 86400 + 1, "60", None):
        assert error_code(await ask(rooms, admin, "mute", roomName="club", username="user3", seconds=bad)) == 400

    for client in (owner, admin, member, other):
        client.take()
    # a kick: told to every member and to them; they post no more and get nothing more
    frames = await ask(rooms, admin, "kick", roomName="club", username="user4")
    assert frames[0]["data"] == {"roomName": "club", "username": "user4"}
    kicked = {"roomName": "club", "action": "kick", "username": "user4", "by": "user2"}
    assert notices(owner) == [kicked] and notices(other) == [kicked]
    assert "user4" not in (await rooms.mongo.room("club"))["members"]
    assert error_code(await ask(rooms, other, "chat", roomName="club", isGroup=True, message="w")) == 403
    await ask(rooms, owner, "chat", roomName="club", isGroup=True, message="after the kick")
    await run_until(None, lambda: "after the kick" in [c["message"] for c in member.chats()], "the room message")
    assert [c["message"] for c in other.chats()] == []
    assert error_code(await ask(rooms, admin, "kick", roomName="club", username="user4")) == 404
    # a kicked user may join a public room again
    assert (await ask(rooms, other, "joinRoom", roomName="club"))[-1]["action"] == "joinRoom"

    # a ban: they are out and cannot come back; an admin cannot ban an admin, the owner can
    other.take()
    await ask(rooms, admin, "ban", roomName="club", username="user4")
    assert notices(owner)[-1]["action"] == "ban" and notices(other)[-1]["action"] == "ban"
    assert "club" not in other.session.known_rooms()
    await ask(rooms, owner, "chat", roomName="club", isGroup=True, message="after the ban")
    await run_until(None, lambda: "after the ban" in [c["message"] for c in member.chats()], "the room message")
    assert [c["message"] for c in other.chats()] == []
    assert error_code(await ask(rooms, other, "joinRoom", roomName="club")) == 403
    assert error_code(await ask(rooms, admin, "ban", roomName="club", username="nobody")) == 404
    await ask(rooms, owner, "setRole", roomName="club", username="user3", role="admin")
    assert error_code(await ask(rooms, admin, "ban", roomName="club", username="user3")) == 403
    assert (await ask(rooms, owner, "ban", roomName="club", username="user3"))[0]["action"] == "ban"
    doc = await rooms.mongo.room("club")
    assert doc["banned"] == ["user4", "user3"] and doc["admins"] == ["user2"] and doc["muted"] == []
    # automatic and unknown rooms have nobody to moderate them
    assert error_code(await ask(rooms, owner, "kick", roomName="world", username="user2")) == 404
    assert error_code(await ask(rooms, owner, "mute", roomName="nothing", username="user2", seconds=5)) == 404
    # seeded rooms have no owner: nobody moderates them
    await ask(rooms, admin, "joinRoom", roomName="room1")
    assert error_code(await ask(rooms, owner, "kick", roomName="room1", username="user2")) == 403


@pytest_twisted.ensureDeferred
async def test_a_user_name_with_a_dot_can_be_muted(rooms):
    await rooms.mongo.db.users.insert_one({"username": "a.b"})
    owner = await logged_in(rooms, "user1")
    await ask(rooms, owner, "createRoom", roomName="club")
    dotted = rooms.connect()
    rooms.config.open_login = True
    await ask(rooms, dotted, "login", username="a.b")
    await ask(rooms, dotted, "joinRoom", roomName="club")
    assert (await ask(rooms, owner, "mute", roomName="club", username="a.b", seconds=5))[0]["action"] == "mute"
    assert (await rooms.mongo.room("club"))["muted"] == [
        {"user": "a.b", "until": (int(rooms.clock.seconds()) + 5) * 1000}]
    assert error_code(await ask(rooms, dotted, "chat", roomName="club", isGroup=True, message="x")) == 403


@pytest_twisted.ensureDeferred
async def test_a_dollar_name_muted_leaves_later_mutes_and_bans_working(rooms):
    """A '$gt' muted in a room: its name is a value in the mute list, never
    a key of a MongoDB condition, so the next mute and ban there work."""
    rooms.config.open_login = True
    for name in ("$gt", "$ne", "x.y"):
        await rooms.mongo.db.users.insert_one({"username": name})
    owner = await logged_in(rooms, "user1")
    await ask(rooms, owner, "createRoom", roomName="club")
    members = {}
    for name in ("$gt", "$ne", "x.y"):
        members[name] = rooms.connect()
        await ask(rooms, members[name], "login", username=name)
        await ask(rooms, members[name], "joinRoom", roomName="club")
    assert (await ask(rooms, owner, "mute", roomName="club", username="$gt", seconds=60))[0]["action"] == "mute"
    assert (await ask(rooms, owner, "mute", roomName="club", username="$ne", seconds=60))[0]["action"] == "mute"
    assert (await ask(rooms, owner, "ban", roomName="club", username="x.y"))[0]["action"] == "ban"
    doc = await rooms.mongo.room("club")
    assert moderation.mute_map(doc["muted"]).keys() == {"$gt", "$ne"} and doc["banned"] == ["x.y"]
    for name in ("$gt", "$ne"):
        assert error_code(await ask(rooms, members[name], "chat", roomName="club", isGroup=True, message="x")) == 403
    assert error_code(await ask(rooms, members["x.y"], "joinRoom", roomName="club")) == 403


@pytest_twisted.ensureDeferred
async def test_a_mute_map_of_before_is_read_and_rewritten_as_a_list(rooms):
    owner = await logged_in(rooms, "user1")
    await ask(rooms, owner, "createRoom", roomName="club")
    member = await logged_in(rooms, "user2")
    await ask(rooms, member, "joinRoom", roomName="club")
    far = int(rooms.clock.seconds() * 1000) + 600_000
    # as the version before wrote it, a '$' name among the keys
    await rooms.mongo.db.rooms.update_one({"roomName": "club"},
                                          {"$set": {"muted": {"user2": far, "$gt": far, "gone": 1}}})
    assert await rooms.mongo.mutes("user2", ["club"]) == {"club": far}
    await rooms.mongo.mute("club", "user3", far, int(rooms.clock.seconds() * 1000))
    doc = await rooms.mongo.room("club")
    assert doc["muted"] == [{"user": "user2", "until": far}, {"user": "$gt", "until": far},
                            {"user": "user3", "until": far}] and doc["mutedRev"] == 1


@pytest_twisted.ensureDeferred
async def test_a_kick_or_ban_ends_the_admin_role(rooms):
    owner = await logged_in(rooms, "user1")
    admin = await logged_in(rooms, "user2")
    member = await logged_in(rooms, "user3")
    await ask(rooms, owner, "createRoom", roomName="club", private=True)
    for name, client in (("user2", admin), ("user3", member)):
        await ask(rooms, owner, "invite", roomName="club", username=name)
        await ask(rooms, client, "joinRoom", roomName="club")
    await ask(rooms, owner, "setRole", roomName="club", username="user2", role="admin")
    assert (await ask(rooms, owner, "kick", roomName="club", username="user2"))[0]["action"] == "kick"
    doc = await rooms.mongo.room("club")
    assert "user2" not in doc["admins"] and "user2" not in doc["invited"]
    assert error_code(await ask(rooms, admin, "joinRoom", roomName="club")) == 403
    assert error_code(await ask(rooms, admin, "kick", roomName="club", username="user3")) == 403


@pytest_twisted.ensureDeferred
async def test_leaving_ends_the_admin_role(rooms):
    owner = await logged_in(rooms, "user1")
    admin = await logged_in(rooms, "user2")
    member = await logged_in(rooms, "user3")
    await ask(rooms, owner, "createRoom", roomName="club")
    await ask(rooms, admin, "joinRoom", roomName="club")
    await ask(rooms, member, "joinRoom", roomName="club")
    await ask(rooms, owner, "setRole", roomName="club", username="user2", role="admin")
    await ask(rooms, admin, "leaveRoom", roomName="club")
    await ask(rooms, admin, "joinRoom", roomName="club")
    assert "user2" not in (await rooms.mongo.room("club"))["admins"]
    assert error_code(await ask(rooms, admin, "kick", roomName="club", username="user3")) == 403
