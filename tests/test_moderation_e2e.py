"""Rooms users create and moderate, on a real three-node cluster: the
owner on node1, an admin on node2, the member they moderate on node3;
every notice reaches every node, a muted member's posts are refused, a
kicked or banned member gets the room no more."""
from tests.harness import wait_until


def is_error(frame, code):
    return frame["action"] == "error" and frame["data"]["code"] == code


def notice(client, action, username):
    frame = client.expect(lambda f: f["data"].get("action") == action and f["data"].get("username") == username,
                          action="roomNotice", timeout=15)
    return frame["data"]


def room_chats(client, room, count=None, timeout=0.5):
    return [c["data"]["message"] for c in client.chats(count=count, timeout=timeout)
            if c["data"]["roomName"] == room]


def test_two_moderators_on_two_nodes_moderate_a_member_on_a_third(three_nodes):
    room = "modclub"
    owner = three_nodes.client("node1", "user1")
    admin = three_nodes.client("node2", "user2")
    member = three_nodes.client("node3", "user3")
    try:
        created = owner.request("createRoom", {"roomName": room, "private": True})
        assert created["action"] == "createRoom" and created["data"]["owner"] == "user1", created
        assert is_error(owner.request("createRoom", {"roomName": room}), 409)
        assert is_error(owner.request("createRoom", {"roomName": "world"}), 400)
        # private: only those invited join, invited by the owner or an admin
        assert is_error(admin.request("joinRoom", {"roomName": room}), 403)
        assert is_error(member.request("invite", {"roomName": room, "username": "user2"}), 403)
        for user in ("user2", "user3"):
            assert owner.request("invite", {"roomName": room, "username": user})["action"] == "invite"
        assert admin.request("joinRoom", {"roomName": room})["action"] == "joinRoom"
        assert member.request("joinRoom", {"roomName": room})["action"] == "joinRoom"
        assert is_error(admin.request("setRole", {"roomName": room, "username": "user3", "role": "admin"}), 403)
        assert owner.request("setRole", {"roomName": room, "username": "user2", "role": "admin"})["action"] \
            == "setRole"

        # the admin on node2 mutes the member on node3: every node hears of it
        muted = admin.request("mute", {"roomName": room, "username": "user3", "seconds": 120})
        assert muted["action"] == "mute", muted
        # (the admin's session has its answer: one confirmation, no notice)
        for client in (owner, member):
            data = notice(client, "mute", "user3")
            assert data == {"roomName": room, "action": "mute", "username": "user3", "by": "user2",
                            "until": muted["data"]["until"]}
        refused = member.request("chat", {"roomName": room, "isGroup": True, "message": "let me speak"})
        assert is_error(refused, 403) and "muted" in refused["data"]["message"], refused
        owner.send("chat", {"roomName": room, "isGroup": True, "message": "while muted"})
        assert room_chats(member, room, count=1) == ["while muted"]  # they still get the room
        assert room_chats(admin, room, count=1) == ["while muted"]

        # nobody acts on the owner; an admin acts on members
        assert is_error(admin.request("kick", {"roomName": room, "username": "user1"}), 403)
        assert is_error(admin.request("mute", {"roomName": room, "username": "user3", "seconds": 0}), 400)
        assert is_error(admin.request("kick", {"roomName": room, "username": "user9"}), 404)
        assert is_error(admin.request("kick", {"roomName": "no-such-room", "username": "user3"}), 404)
        assert admin.request("kick", {"roomName": room, "username": "user3"})["action"] == "kick"
        for client in (owner, member):
            assert notice(client, "kick", "user3")["by"] == "user2"
        owner.send("chat", {"roomName": room, "isGroup": True, "message": "after the kick"})
        assert room_chats(admin, room, count=1) == ["after the kick"]
        assert room_chats(member, room, timeout=1.0) == []
        refused = member.request("chat", {"roomName": room, "isGroup": True, "message": "still here?"})
        assert is_error(refused, 403), refused
        # a kick from a private room takes the invitation too
        assert is_error(member.request("joinRoom", {"roomName": room}), 403)

        # invited again, joins, banned: out for good, and the room is no longer listed for them
        assert owner.request("invite", {"roomName": room, "username": "user3"})["action"] == "invite"
        assert member.request("joinRoom", {"roomName": room})["action"] == "joinRoom"
        assert admin.request("ban", {"roomName": room, "username": "user3"})["action"] == "ban"
        for client in (owner, member):
            assert notice(client, "ban", "user3")["by"] == "user2"
        assert [f for f in admin.quiet(0.3) if f["action"] == "roomNotice"] == []
        assert is_error(member.request("joinRoom", {"roomName": room}), 403)
        assert is_error(owner.request("invite", {"roomName": room, "username": "user3"}), 403)
        listed = wait_until(lambda: member.request("listRooms")["data"]["rooms"], 5, "the room list")
        assert room not in [r["roomName"] for r in listed]
        owner_rooms = {r["roomName"]: r for r in owner.request("listRooms")["data"]["rooms"]}
        assert owner_rooms[room] == {"roomName": room, "members": 2, "private": True}
    finally:
        for client in (owner, admin, member):
            client.close()
