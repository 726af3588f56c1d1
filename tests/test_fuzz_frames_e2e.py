"""Fuzzing the client protocol against a real node process (Hypothesis).

One logged-in client (user1, features ack and resume) sends random frames
over one real connection: non-JSON text and binary frames, JSON of every
type, size and nesting, unicode with NUL and odd code points, numbers at and
past the 64-bit limits, huge ids, and every action's frame with one field
made wrong (missing, of another type, too long, out of range) or naming a
user or room in each of the states docs/protocol.md tells apart. Each frame
class comes with the answer docs/protocol.md promises for it, and the node
must give exactly that: the one error code ("Errors" and each action's row),
or the action's answer. Properties:

* every frame gets the answer its class predicts, and the connection stays
  open;
* a second client on the node (user2) still gets answers after every example;
* every acked chat is stored in MongoDB (checked by msgId after the run).

The world the predictions assume: user1 (alliance ``blue``) and user2 are
online, user3 exists but is offline, ``nobody`` does not exist; the seeded
rooms ``room1``..``room5`` have no owner and user1 never joins ``room1``;
user1 owns ``fzclub`` (made by the fixture), of which user2 and user3 are no
members and nobody is banned; user1 joins only ``room2`` (and the automatic
rooms) and leaves only ``room3``.

Derandomized (the same examples every run) and bounded: a few seconds.
"""
import itertools
import json
import time

import orjson
import pymongo
import pytest
from bson import ObjectId
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chatnet.domain.names import user_name_problem
from tests.harness import ChatCluster

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
INTERNAL = ["leaderConnect", "syncServers", "serverList", "registerServer", "heartbeat", "deliver", "relay"]
MODERATION = ["invite", "kick", "ban", "mute", "setRole"]
KNOWN = {"login", "chat", "joinRoom", "leaveRoom", "listRooms", "userInfo", "popular", "resume", "createRoom",
         *MODERATION}
ANSWERS = KNOWN | {"ack", "queued", "roomNotice"}
CLUB = "fzclub"
LONG_NAME = "n" * 129  # one over a name's 128 characters: 413
MAX_MESSAGE_CHARS = 10000  # the node's default --max-message-chars

LIMITS = [0, 1, -1, 2**31, 2**53 + 1, 2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 2**64 - 1, 2**64, 10**30, -(10**30)]
ODD_TEXT = ["\ud800", "\udfff", "a\x00b", "\x00", "NaN", "Infinity", "-0", "1e400", "\u202e", "\U0001f600", "$gt",
            "room1", "world", "alliance:red", "user1", "user2", "user3", " "]

numbers = st.sampled_from(LIMITS) | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
texts = st.sampled_from(ODD_TEXT) | st.text(st.characters(codec=None, exclude_categories=()), max_size=40)
scalars = st.none() | st.booleans() | numbers | texts
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4), max_leaves=12
)
ids = st.sampled_from(LIMITS) | st.integers() | numbers | texts | json_values


def is_int64(value):
    return isinstance(value, int) and not isinstance(value, bool) and INT64_MIN <= value <= INT64_MAX


#: names that are data ('$', '.') or hide characters (control, bidi, zero-width)
TRICKY = ["$gt", "$where", "a.b", "$", ".", "x.$y", "$ne.x", "\u202eevil", "a\x00b", "tab\t", "\u200b", "\u2066x"]
tricky_names = st.sampled_from(TRICKY) | st.lists(
    st.sampled_from(["$", ".", "\x00", "\x07", "\x7f", "\u202e", "\u2066", "\u200b", "\ufeff", "a", "b", "é", " "]),
    min_size=1, max_size=8).map("".join)
# values of the wrong type for a field (never None: a missing optional field is no error)
not_string = json_values.filter(lambda v: v is not None and not isinstance(v, str))
not_bool = json_values.filter(lambda v: v is not None and not isinstance(v, bool))
not_int64 = (st.sampled_from([2**63, 2**64 - 1, -(2**63) - 1, 10**30, 1.0, 0.5, True, "1", [1], {"n": 1}])
             | json_values.filter(lambda v: v is not None and not is_int64(v)))
# what `popular` refuses as n: not an integer (but for a string of ASCII digits), or below 0
not_count = (not_int64.filter(lambda v: not (isinstance(v, str) and v.isascii() and v.isdigit()))
             | st.integers(max_value=-1).filter(lambda v: v >= INT64_MIN))
valid_ts = st.integers(INT64_MIN, INT64_MAX) | st.integers(-(10**8), 10**8).map(lambda d: int(time.time() * 1000) + d)
messages = st.text(max_size=30) | st.integers(0, 2000).map(lambda n: "m" * n)


def has_lone_surrogate(value):
    """Whether a string in C{value} (keys included) holds a lone surrogate
    (U+D800 to U+DFFF): escaped in JSON (``"\\ud800"``), it is still no
    Unicode text, and such a frame is not JSON (400) whatever else it holds."""
    if isinstance(value, str):
        return any("\ud800" <= c <= "\udfff" for c in value)
    if isinstance(value, dict):
        return any(has_lone_surrogate(k) or has_lone_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(has_lone_surrogate(v) for v in value)
    return False


@st.composite
def request(draw, action, data, expected):
    """The text frame of C{action} with C{data} (an id, maybe other keys), and what it must get."""
    frame = {"action": action, "data": data}
    if draw(st.booleans()):
        frame["id"] = draw(ids)
    if draw(st.booleans()):
        frame = {**draw(st.dictionaries(texts, json_values, max_size=3)), **frame}
    return "text", json.dumps(frame), 400 if has_lone_surrogate(frame) else expected


def json_text(value, expected):
    """A text frame of C{value} as JSON and what it must get."""
    return "text", json.dumps(value), 400 if has_lone_surrogate(value) else expected


def one_of_cases(*cases):
    """C{cases}: (action, data strategy, expected) -> a strategy of requests."""
    return st.one_of(*[st.builds(lambda d, a=action, e=expected: (a, d, e), data)
                       for action, data, expected in cases]).flatmap(lambda c: request(*c))


def fields(**values):
    """A data object of fixed values and strategies."""
    return st.fixed_dictionaries({k: v if isinstance(v, st.SearchStrategy) else st.just(v)
                                  for k, v in values.items()})


def with_one_wrong(base, wrong):
    """C{base} (a dict of valid values) with one field of C{wrong} (field -> strategy) put in."""
    return st.sampled_from(sorted(wrong)).flatmap(
        lambda key: wrong[key].map(lambda value: {**base, key: value}))


# -- not a request at all: 400 ---------------------------------------------------


def _not_json(text):
    try:
        orjson.loads(text)
    except orjson.JSONDecodeError:
        return True
    return False


raw_frames = st.one_of(
    st.text(max_size=60).filter(_not_json).map(lambda t: ("text", t, 400)),
    json_values.filter(lambda v: not isinstance(v, dict)).map(lambda v: json_text(v, 400)),
    st.binary(max_size=100).map(lambda b: ("binary", b, 400)),
    json_values.map(lambda v: ("binary", json.dumps({"action": "chat", "data": v}).encode(), 400)),
)

# -- the envelope ------------------------------------------------------------------

envelopes = st.one_of(
    # no action, or not a string: 400
    st.dictionaries(texts.filter(lambda k: k != "action"), json_values, max_size=4).map(lambda f: json_text(f, 400)),
    st.tuples(not_string, json_values).map(lambda a: json_text({"action": a[0], "data": a[1]}, 400)),
    # an action nobody knows: 400; a cluster-internal one: 403, nothing happens
    st.sampled_from(["", "CHAT", "x" * 300, "Chat", "login "]).flatmap(lambda a: request(a, {}, 400)),
    texts.filter(lambda a: a not in KNOWN and a not in INTERNAL).flatmap(lambda a: request(a, {}, 400)),
    st.tuples(st.sampled_from(INTERNAL), st.dictionaries(texts, json_values, max_size=3))
    .flatmap(lambda c: request(c[0], c[1], 403)),
    # data that is no object: 400
    st.tuples(st.sampled_from(sorted(KNOWN)), json_values.filter(lambda v: v is not None and not isinstance(v, dict)))
    .flatmap(lambda c: request(c[0], c[1], 400)),
    st.just(("text", json.dumps({"action": "listRooms"}), "listRooms")),
)

# -- chat ------------------------------------------------------------------------------

DIRECT = {"to": "user2", "message": "hi"}
ROOM = {"roomName": "world", "isGroup": True, "message": "hi"}
chat_frames = one_of_cases(
    # accepted: acked (the sender asked for ack)
    ("chat", fields(to="user2", message=messages), "ack"),
    ("chat", fields(to="user2", message=messages, ts=valid_ts, format=st.sampled_from(["text", "json"])), "ack"),
    ("chat", fields(roomName=st.sampled_from(["world", "alliance:blue"]), isGroup=True, message=messages,
                    ts=valid_ts), "ack"),
    ("chat", fields(roomName="world", message=messages), "ack"),  # a roomName alone is a room chat
    # the recipient is not online (user3 is offline: no `offline` feature here) or does not exist: 404
    ("chat", fields(to=st.sampled_from(["user3", "nobody", ""]), message=messages), 404),
    # a room the user has not joined: 403; one that does not exist for them: 404
    ("chat", fields(roomName="room1", isGroup=True, message=messages), 403),
    ("chat", fields(roomName=st.sampled_from(["no-such-room", "alliance:red", "alliance:"]), isGroup=True,
                    message=messages), 404),
    # one field missing or of the wrong type: 400
    ("chat", with_one_wrong(DIRECT, {"to": not_string, "message": not_string, "ts": not_int64,
                                     "format": not_string, "isGroup": not_bool, "roomName": not_string}), 400),
    ("chat", with_one_wrong(ROOM, {"roomName": not_string, "message": not_string, "ts": not_int64,
                                   "isGroup": not_bool}), 400),
    ("chat", st.sampled_from([{"message": "hi"}, {"to": "user2"}, {"roomName": "world", "isGroup": True},
                              {"isGroup": True, "message": "hi"}, {"roomName": "", "isGroup": True, "message": "x"}]),
     400),
    # too long: 413
    ("chat", fields(to="user2", message="m" * (MAX_MESSAGE_CHARS + 1)), 413),
    ("chat", fields(to=LONG_NAME, message="hi"), 413),
)

# -- login (already logged in as user1) ---------------------------------------------

login_frames = one_of_cases(
    ("login", fields(username="user1"), "login"),  # the same user: its login again
    ("login", fields(username=st.sampled_from(["user2", "user3", "nobody", ""])), 400),  # another user
    ("login", with_one_wrong({"username": "user1"}, {"username": not_string, "password": not_string,
                                                    "token": not_string, "features": not_string.filter(
                                                        lambda v: not isinstance(v, list)
                                                        or not all(isinstance(x, str) for x in v))}), 400),
    ("login", st.just({"password": "pw"}), 400),
    ("login", fields(username=LONG_NAME), 413),
    ("login", fields(username="user1", token="t" * 8193), 413),
)

# -- rooms ---------------------------------------------------------------------------------

room_frames = one_of_cases(
    ("joinRoom", fields(roomName=st.sampled_from(["room2", "world", "alliance:blue"])), "joinRoom"),
    ("joinRoom", fields(roomName=st.sampled_from(["no-such-room", "alliance:red", "alliance:"])), 404),
    ("joinRoom", st.one_of(st.just({}), fields(roomName=not_string)), 400),
    ("joinRoom", fields(roomName=LONG_NAME), 413),
    ("leaveRoom", fields(roomName="room3"), "leaveRoom"),
    ("leaveRoom", fields(roomName=st.sampled_from(["world", "alliance:blue"])), 400),  # cannot be left
    ("leaveRoom", fields(roomName="no-such-room"), 404),
    ("leaveRoom", st.one_of(st.just({}), fields(roomName=not_string)), 400),
    ("createRoom", fields(roomName="room1"), 409),  # taken
    ("createRoom", fields(roomName=st.sampled_from(["world", "alliance:blue", "alliance:x", "", " a", "a b", "-a",
                                                    "a/b", "a:b", "$gt"])), 400),  # a name not allowed
    ("createRoom", st.one_of(st.just({}), fields(roomName=not_string),
                             fields(roomName="fz-typed", private=not_bool)), 400),
    ("createRoom", fields(roomName=LONG_NAME), 413),
)


@st.composite
def new_rooms(draw):
    """A createRoom of a name of its own: made, or 409 if an example made it before."""
    name = draw(st.from_regex(r"\Afz[a-z0-9_.-]{1,12}\Z").filter(lambda n: n not in ("fzclub", "fz-typed")))
    data = {"roomName": name}
    if draw(st.booleans()):
        data["private"] = draw(st.booleans())
    return draw(request("createRoom", data, ("createRoom", name)))


# -- moderation (user1 owns fzclub) -------------------------------------------------------

SECONDS = st.integers(1, 604800)
moderation_frames = one_of_cases(
    ("invite", fields(roomName=CLUB, username="user2"), "invite"),
    ("invite", fields(roomName=CLUB, username="nobody"), 404),  # no such user
    ("ban", fields(roomName=CLUB, username="nobody"), 404),
    *[(action, fields(roomName=CLUB, username="user1", seconds=SECONDS), 403)  # oneself
      for action in ("invite", "kick", "ban", "mute")],
    ("setRole", fields(roomName=CLUB, username="user1", role="admin"), 403),  # the owner's role
    # not members: 404
    ("kick", fields(roomName=CLUB, username=st.sampled_from(["user2", "user3"])), 404),
    ("mute", fields(roomName=CLUB, username=st.sampled_from(["user2", "user3"]), seconds=SECONDS), 404),
    ("setRole", fields(roomName=CLUB, username="user3", role=st.sampled_from(["admin", "member"])), 404),
    # a seeded room has no owner: nobody may moderate it
    *[(action, fields(roomName="room1", username="user2", seconds=SECONDS, role="admin"), 403)
      for action in MODERATION],
    # no such room (the automatic rooms have no moderation): 404
    *[(action, fields(roomName=st.sampled_from(["no-such-room", "world", "alliance:blue", ""]), username="user2",
                      seconds=SECONDS, role="member"), 404) for action in MODERATION],
    # a field missing, of the wrong type or out of range: 400
    *[(action, with_one_wrong({"roomName": CLUB, "username": "user3", "seconds": 60, "role": "admin"},
                              {"roomName": not_string, "username": not_string}), 400) for action in MODERATION],
    ("mute", fields(roomName=CLUB, username="user3",
                    seconds=not_int64 | st.sampled_from([0, -1, 604801, 2**40])), 400),
    ("mute", fields(roomName=CLUB, username="user3"), 400),
    ("setRole", fields(roomName=CLUB, username="user3", role=not_string), 400),
    ("setRole", fields(roomName=CLUB, username="user3", role=st.sampled_from(["owner", "boss", "", "Admin"])), 400),
    ("kick", fields(roomName=CLUB, username=LONG_NAME), 413),
)

# -- information and resume ---------------------------------------------------------------

seqs = st.integers(0, INT64_MAX)
bad_seqs = not_int64 | st.integers(max_value=-1).filter(lambda v: v >= INT64_MIN)
query_frames = one_of_cases(
    ("userInfo", fields(username=st.sampled_from(["user1", "user2"])), "userInfo"),
    ("userInfo", fields(username=st.sampled_from(["user3", "nobody", ""])), 404),
    ("userInfo", st.one_of(st.just({}), fields(username=not_string)), 400),
    ("userInfo", fields(username=LONG_NAME), 413),
    ("popular", st.one_of(st.just({}), fields(n=st.integers(0, INT64_MAX)),
                          fields(n=st.from_regex(r"\A[0-9]{1,25}\Z"))), "popular"),
    ("popular", fields(n=not_count), 400),
    ("resume", st.one_of(st.just({}), fields(conversations=st.dictionaries(
        st.sampled_from(["user2", "user3", "nobody"]), seqs, max_size=3)),
        fields(rooms=st.dictionaries(st.sampled_from(["world", "alliance:blue"]), seqs, max_size=2))), "resume"),
    ("resume", fields(rooms=st.fixed_dictionaries({"room1": seqs})), 403),  # not a member
    ("resume", fields(rooms=st.sampled_from(["no-such-room", "alliance:red"]).flatmap(
        lambda r: st.fixed_dictionaries({r: seqs}))), 404),
    ("resume", st.one_of(
        st.sampled_from(["rooms", "conversations"]).flatmap(
            lambda k: st.one_of(bad_seqs.map(lambda s: {k: {"user2" if k == "conversations" else "world": s}}),
                                json_values.filter(lambda v: v and not isinstance(v, dict)).map(lambda v: {k: v}))),
        st.just({"conversations": {LONG_NAME: 0}}),
        st.just({"conversations": {f"u{i}": 0 for i in range(101)}}),
        st.just({"rooms": {f"r{i}": 0 for i in range(51)}, "conversations": {f"u{i}": 0 for i in range(50)}}),
    ), 400),
)

frames = st.one_of(chat_frames, chat_frames, chat_frames, raw_frames, envelopes, login_frames, room_frames,
                   new_rooms(), moderation_frames, query_frames)


class Fuzzer:
    def __init__(self, cluster):
        self.sender = cluster.client("node1")
        answer = self.sender.request("login", {"username": "user1", "features": ["ack", "resume"]})
        assert answer["action"] == "login", answer
        answer = self.sender.request("createRoom", {"roomName": CLUB})
        assert answer["action"] == "createRoom", answer
        self.watcher = cluster.client("node1", "user2")
        self.acked = []
        self.created = {CLUB}
        self._sentinels = itertools.count()

    def exchange(self, kind, payload, expected):
        """Send one frame, then a sentinel request; every frame before the
        sentinel's answer is this frame's doing, and it must be C{expected}:
        an error code, or the action of the answer."""
        if isinstance(expected, tuple):  # a room of a new name: made once
            name = expected[1]
            expected = 409 if name in self.created else "createRoom"
            self.created.add(name)
        self.sender.send_raw(payload.encode() if kind == "binary" and isinstance(payload, str) else payload,
                             binary=kind == "binary")
        sentinel = f"sentinel-{next(self._sentinels)}"
        self.sender.ws.send(json.dumps({"id": sentinel, "action": "userInfo", "data": {"username": "user1"}}))
        self.sender.expect(lambda f: f.get("re") == sentinel and f.get("action") == "userInfo", timeout=15)
        got, self.sender.frames = self.sender.frames, []
        assert not self.sender.closed, (payload[:200], self.sender.closed)
        codes = [frame["data"]["code"] for frame in got if frame.get("action") == "error"]
        actions = [frame.get("action") for frame in got if frame.get("action") != "error"]
        what = (kind, payload[:300], expected, got[:5])
        if isinstance(expected, int):
            assert codes == [expected], what
        else:
            assert not codes and expected in actions, what
        assert set(actions) <= ANSWERS, what
        self.acked += [frame["data"]["msgId"] for frame in got if frame.get("action") == "ack"]
        info = self.watcher.request("userInfo", {"username": "user2"}, timeout=15)
        assert info["action"] == "userInfo", info
        self.watcher.frames.clear()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, redis_server, zookeeper_server, mongo_server):
    c = ChatCluster(tmp_path_factory.mktemp("fuzz"), redis_server, zookeeper_server, mongo_server, nodes=1,
                    extra_args=["--rate-limit", "0"])
    c.start()
    yield c
    c.stop()


@pytest.fixture(scope="module")
def fuzzer(cluster):
    f = Fuzzer(cluster)
    yield f
    f.sender.close()
    f.watcher.close()


@settings(max_examples=400, deadline=None, derandomize=True, database=None, print_blob=True,
          suppress_health_check=list(HealthCheck))
@given(frame=frames)
def exchange_fuzzed_frames(fuzzer, frame):
    fuzzer.exchange(*frame)


def test_every_frame_gets_the_documented_answer_of_its_class_and_every_acked_chat_is_stored(cluster, fuzzer):
    # one test: the check of the store reads what this fuzzer's run acked
    exchange_fuzzed_frames(fuzzer)
    assert len(fuzzer.acked) >= 20, f"the fuzzer had only {len(fuzzer.acked)} chats accepted"
    client = pymongo.MongoClient(cluster.mongo_url, serverSelectionTimeoutMS=5000)
    try:
        wanted = [ObjectId(i) for i in fuzzer.acked]
        deadline = time.monotonic() + 20
        while client.get_default_database().messages.count_documents({"_id": {"$in": wanted}}) < len(wanted):
            assert time.monotonic() < deadline, "acked chats missing from MongoDB"
            time.sleep(0.2)
    finally:
        client.close()


# -- names with '$', '.' and hidden characters, as moderation targets and logins ----------

#: users that exist with names a store could mistake for operators or paths
DATA_NAMES = ["$gt", "$where", "a.b", "x.$y", "$ne.x"]


@pytest.fixture(scope="module")
def moderator(cluster):
    client = pymongo.MongoClient(cluster.mongo_url, serverSelectionTimeoutMS=5000)
    try:
        for name in DATA_NAMES:
            client.get_default_database().users.update_one({"username": name}, {"$set": {"username": name}},
                                                           upsert=True)
    finally:
        client.close()
    owner = cluster.client("node1", "user3")
    assert owner.request("createRoom", {"roomName": "fuzzmod"})["action"] == "createRoom"
    members = [cluster.client("node1", name) for name in DATA_NAMES + ["user4"]]
    for member in members:
        assert member.request("joinRoom", {"roomName": "fuzzmod"})["action"] == "joinRoom"
    yield owner
    for c in [owner, *members]:
        c.close()


@settings(max_examples=60, deadline=None, derandomize=True, database=None, print_blob=True,
          suppress_health_check=list(HealthCheck))
@given(action=st.sampled_from(["mute", "mute", "ban", "kick", "invite"]), name=tricky_names,
       seconds=st.integers(1, 600))
def test_names_with_dollars_dots_and_hidden_characters(cluster, moderator, action, name, seconds):
    """Whatever the target's name, a moderation is carried out or refused
    as documented (never 500 or 503), and the room's moderation still works
    after it; a login with the name is 400 exactly when the name hides
    characters (docs/protocol.md, "User names")."""
    answer = moderator.request(action, {"roomName": "fuzzmod", "username": name, "seconds": seconds})
    assert answer["action"] == action or answer["data"]["code"] in (403, 404), (name, answer)
    again = moderator.request("mute", {"roomName": "fuzzmod", "username": "user4", "seconds": 60})
    assert again["action"] == "mute", (name, again)
    moderator.frames.clear()
    c = cluster.client("node1")
    try:
        login = c.request("login", {"username": name})
    finally:
        c.close()
    if user_name_problem(name) is not None:
        assert login["action"] == "error" and login["data"]["code"] == 400, (name, login)
    else:
        assert login["action"] == "login" or login["data"]["code"] in (401, 429), (name, login)
