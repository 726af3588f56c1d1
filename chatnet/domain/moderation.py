"""Rooms that users create and moderate: who may do what (docs/protocol.md,
"Rooms users create").

Pure rules over a room document as MongoDB keeps it::

    {"roomName", "members": [...], "owner": username, "private": bool,
     "admins": [...], "banned": [...], "invited": [...],
     "muted": [{"user": username, "until": until_ms}, ...], "mutedRev": n,
     "floor": seq}

(a user name is a value in it, never a field name: see L{mute_map}; rooms
written before have C{"muted": {username: until_ms}}, read as well)

(rooms made by chatnet-seed, before these fields, have no owner: public,
moderated by nobody). Each check raises the L{ProtocolError} the client is
told, or returns; nothing here reads or writes a store.

The rules:

* a room name is 1 to 128 characters, letters and digits (any script) and
  ``-``, ``_``, ``.``, starting with a letter or a digit; ``world`` is taken
  (400 otherwise);
* the owner is one user for ever (until that user is deleted); admins are
  named by the owner (C{setRole}) among the members, and a role ends with
  the membership (a kick or a ban removes it; an admin who is no member is
  no admin); members are those who joined;
* the owner and admins may invite, kick, ban and mute; nobody acts on the
  owner, an admin does not act on another admin (only the owner does), and
  nobody acts on themselves;
* C{setRole} is the owner's only;
* a banned user cannot join; a private room lets in its members and the
  users invited (invited by the owner or an admin), nobody else;
* a muted user's posts are refused (403) until the mute ends.
"""
from chatnet.errors import ProtocolError
from chatnet.protocols.constants import ALLIANCE_PREFIX, WORLD

MAX_NAME = 128
#: a mute lasts 1 s to 7 days
MUTE_MIN_SECONDS = 1
MUTE_MAX_SECONDS = 7 * 24 * 3600
#: what the owner or an admin may do to another user
ACTIONS = ("invite", "kick", "ban", "mute")
ROLES = ("admin", "member")
_NAME_PUNCTUATION = frozenset("-_.")


def check_room_name(name, action="createRoom"):
    """Refuse (400) a name that a user may not give a room."""
    if not name:
        raise ProtocolError(400, "a room name cannot be empty", action)
    if len(name) > MAX_NAME:
        raise ProtocolError(400, f"a room name has at most {MAX_NAME} characters", action)
    if name == WORLD or name.startswith(ALLIANCE_PREFIX):
        raise ProtocolError(400, f"{name} is the name of an automatic room", action)
    if not name[0].isalnum() or not all(c.isalnum() or c in _NAME_PUNCTUATION for c in name):
        raise ProtocolError(
            400, "a room name is letters, digits, '-', '_' and '.', starting with a letter or a digit", action)


def role(room, username):
    """C{"owner"}, C{"admin"}, C{"member"} or None (not a member)."""
    if room.get("owner") == username:
        return "owner"
    if username not in (room.get("members") or ()):
        return None
    if username in (room.get("admins") or ()):
        return "admin"
    return "member"


def check_act(room, actor, target, action):
    """Refuse (403) C{action} (one of L{ACTIONS}) by C{actor} on C{target}
    in C{room}, unless the rules allow it; 404 when C{target} must be a
    member (kick, mute) and is not."""
    name = room["roomName"]
    mine = role(room, actor)
    if mine not in ("owner", "admin"):
        raise ProtocolError(403, f"only the owner and the admins of room {name} may {action}", action)
    if target == actor:
        raise ProtocolError(403, f"you cannot {action} yourself", action)
    theirs = role(room, target)
    if theirs == "owner":
        raise ProtocolError(403, f"nobody may {action} the owner of room {name}", action)
    if theirs == "admin" and mine != "owner":
        raise ProtocolError(403, f"only the owner of room {name} may {action} an admin", action)
    if action in ("kick", "mute") and theirs is None:
        raise ProtocolError(404, f"{target} is not a member of room {name}", action)
    if action == "invite" and target in (room.get("banned") or ()):
        raise ProtocolError(403, f"{target} is banned from room {name}", action)


def check_set_role(room, actor, target, new_role):
    """Refuse C{setRole}: 403 unless C{actor} owns C{room} and C{target}
    is another member; 400 for an unknown role."""
    name = room["roomName"]
    if new_role not in ROLES:
        raise ProtocolError(400, "field 'role' must be \"admin\" or \"member\"", "setRole")
    if role(room, actor) != "owner":
        raise ProtocolError(403, f"only the owner of room {name} may set roles", "setRole")
    theirs = role(room, target)
    if theirs == "owner":
        raise ProtocolError(403, "the owner's role cannot change", "setRole")
    if theirs is None:
        raise ProtocolError(404, f"{target} is not a member of room {name}", "setRole")


def check_join(room, username):
    """Refuse (403) a join of C{room} by C{username}: banned, or a private
    room they are neither a member of nor invited to."""
    name = room["roomName"]
    if username in (room.get("banned") or ()):
        raise ProtocolError(403, f"you are banned from room {name}", "joinRoom")
    if room.get("private") and role(room, username) is None and username not in (room.get("invited") or ()):
        raise ProtocolError(403, f"room {name} is private: you need an invitation", "joinRoom")


def visible(room, username):
    """Whether C{listRooms} shows C{room} to C{username}: public rooms, and
    the private ones they belong to or are invited to."""
    return (not room.get("private") or role(room, username) is not None
            or username in (room.get("invited") or ()))


def muted_until(room, username):
    """The end (ms) of C{username}'s mute in C{room}, 0 if none."""
    return mute_map(room.get("muted")).get(username, 0)


def check_post(room_name, until_ms, now_ms, action="chat"):
    """Refuse (403) a post by a user muted until C{until_ms}."""
    if until_ms > now_ms:
        raise ProtocolError(403, f"you are muted in room {room_name} for {-(-(until_ms - now_ms) // 1000)} s",
                            action)


def notice(room_name, action, username, by, until=None):
    """The data of the C{roomNotice} frame that tells a room's members."""
    data = {"roomName": room_name, "action": action, "username": username, "by": by}
    if until is not None:
        data["until"] = until
    return data


def mute_map(muted):
    """The mutes of a room document's C{muted}: user name -> end (ms).
    Written as a list C{[{"user", "until"}]}; rooms written before that
    have a map C{{user: until}}, read as well (and rewritten as a list by
    the next mute)."""
    if isinstance(muted, dict):
        pairs = muted.items()
    elif isinstance(muted, list):
        pairs = [(m.get("user"), m.get("until")) for m in muted if isinstance(m, dict)]
    else:
        return {}
    return {u: t for u, t in pairs
            if isinstance(u, str) and isinstance(t, int) and not isinstance(t, bool) and t > 0}
