"""Fuzzing the client protocol against a real node process (Hypothesis).

One logged-in client (features ack and resume) sends random frames over one
real connection: random JSON of every type, size and nesting, unicode with
surrogates and NUL, numbers at and past the 64-bit limits, huge ids,
chat/login/joinRoom/resume/popular/userInfo frames with mutated fields,
non-JSON text and binary frames. Properties:

* every frame is answered with a documented error code or accepted, and the
  connection stays open;
* a second client on the node still gets answers after every example;
* every acked chat is stored in MongoDB (checked by msgId after the run).

Derandomized (the same examples every run) and bounded: a few seconds.
"""
import itertools
import json
import time

import pymongo
import pytest
from bson import ObjectId
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chatnet.names import user_name_problem
from tests.harness import ChatCluster

ERRORS = {400, 401, 403, 404, 409, 413, 429}
MODERATION = ["createRoom", "invite", "kick", "ban", "mute", "setRole"]
ANSWERS = {"ack", "login", "joinRoom", "leaveRoom", "listRooms", "userInfo", "popular", "resume", "queued", "chat",
           "roomNotice", *MODERATION}
ACTIONS = ["chat", "login", "joinRoom", "leaveRoom", "listRooms", "userInfo", "popular", "resume", "relay", "deliver",
           "leaderConnect", "", "CHAT", "x" * 300, *MODERATION]

LIMITS = [0, 1, -1, 2**31, 2**53 + 1, 2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 2**64 - 1, 2**64, 10**30, -(10**30)]
ODD_TEXT = ["\ud800", "\udfff", "a\x00b", "\x00", "NaN", "Infinity", "-0", "1e400", "\u202e", "\U0001f600", "$gt",
            "room1", "world", "alliance:red", "user1", "user2", "user3", " "]

numbers = st.sampled_from(LIMITS) | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
texts = st.sampled_from(ODD_TEXT) | st.text(st.characters(codec=None, exclude_categories=()), max_size=40)
scalars = st.none() | st.booleans() | numbers | texts
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4), max_leaves=12
)
big_text = st.integers(0, 5000).map(lambda n: "m" * n)


def mutated(value):
    """C{value}, or anything else."""
    return st.just(value) | json_values


#: names that are data ('$', '.') or hide characters (control, bidi, zero-width)
TRICKY = ["$gt", "$where", "a.b", "$", ".", "x.$y", "$ne.x", "\u202eevil", "a\x00b", "tab\t", "\u200b", "\u2066x"]
tricky_names = st.sampled_from(TRICKY) | st.lists(
    st.sampled_from(["$", ".", "\x00", "\x07", "\x7f", "\u202e", "\u2066", "\u200b", "\ufeff", "a", "b", "é", " "]),
    min_size=1, max_size=8).map("".join)
usernames = st.sampled_from(["user1", "user2", "user3", "nobody"]) | tricky_names | json_values
rooms = st.sampled_from(["room1", "room2", "world", "alliance:red", "no-such-room", ""]) | json_values
seq_maps = st.dictionaries(st.sampled_from(["room1", "world", "user2", "nobody"]) | texts,
                           st.sampled_from(LIMITS) | json_values, max_size=5) | json_values

data_by_action = {
    "chat": st.fixed_dictionaries({"message": st.text(max_size=30) | big_text | json_values}, optional={
        "to": usernames, "roomName": rooms, "isGroup": mutated(True), "ts": numbers | json_values,
        "format": mutated("text"), "from": usernames}),
    "login": st.fixed_dictionaries({"username": mutated("user1")}, optional={
        "password": json_values, "token": json_values, "features": mutated(["ack", "resume"])}),
    "joinRoom": st.fixed_dictionaries({"roomName": rooms}),
    "leaveRoom": st.fixed_dictionaries({"roomName": rooms}),
    "userInfo": st.fixed_dictionaries({"username": usernames}),
    "popular": st.fixed_dictionaries({}, optional={"n": numbers | json_values}),
    "resume": st.fixed_dictionaries({}, optional={"rooms": seq_maps, "conversations": seq_maps}),
    "createRoom": st.fixed_dictionaries({"roomName": rooms | texts}, optional={"private": mutated(True)}),
    "setRole": st.fixed_dictionaries({"roomName": rooms, "username": usernames, "role": mutated("admin")}),
    "mute": st.fixed_dictionaries({"roomName": rooms, "username": usernames, "seconds": numbers | json_values}),
    **{action: st.fixed_dictionaries({"roomName": rooms, "username": usernames})
       for action in ("invite", "kick", "ban")},
}
ids = st.sampled_from(LIMITS) | st.integers() | numbers | texts | json_values | big_text


@st.composite
def request_frames(draw):
    action = draw(st.sampled_from(sorted(data_by_action)) | st.sampled_from(ACTIONS) | json_values)
    data = draw(data_by_action[action]) if isinstance(action, str) and action in data_by_action else draw(json_values)
    frame = {"action": action, "data": data}
    if draw(st.booleans()):
        frame["id"] = draw(ids)
    if draw(st.booleans()):
        frame = {**draw(st.dictionaries(texts, json_values, max_size=3)), **frame}
    return "text", json.dumps(frame)


@st.composite
def chats(draw):
    """A chat that is valid but for (maybe) one field."""
    if draw(st.booleans()):
        data = {"to": draw(st.sampled_from(["user1", "user2"])), "message": draw(st.text(max_size=30))}
    else:
        data = {"roomName": draw(st.sampled_from(["room1", "world"])), "isGroup": True,
                "message": draw(st.text(max_size=30))}
    field = draw(st.sampled_from(["ts", "ts", "ts", "format", "message", "to", "roomName", "isGroup", "none", "none"]))
    if field == "ts":
        if draw(st.booleans()):
            data["ts"] = draw(numbers)
        else:  # near the server clock: kept as it is
            data["ts"] = int(time.time() * 1000) + draw(st.integers(-(10**8), 10**8))
    elif field != "none":
        data[field] = draw(json_values)
    return "text", json.dumps({"id": draw(ids), "action": "chat", "data": data})


frames = (
    chats()
    | chats()
    | chats()
    | request_frames()
    | json_values.map(lambda v: ("text", json.dumps(v)))
    | st.text(max_size=60).map(lambda t: ("text", t))
    | st.binary(max_size=100).map(lambda b: ("binary", b))
    | request_frames().map(lambda f: ("binary", f[1].encode()))
)


class Fuzzer:
    def __init__(self, cluster):
        self.sender = cluster.client("node1")
        answer = self.sender.request("login", {"username": "user1", "features": ["ack", "resume"]})
        assert answer["action"] == "login", answer
        self.watcher = cluster.client("node1", "user2")
        self.acked = []
        self._sentinels = itertools.count()

    def exchange(self, kind, payload):
        """Send one frame, then a sentinel request; every frame before the
        sentinel's answer is this frame's doing."""
        self.sender.send_raw(payload.encode() if kind == "binary" and isinstance(payload, str) else payload,
                             binary=kind == "binary")
        sentinel = f"sentinel-{next(self._sentinels)}"
        self.sender.ws.send(json.dumps({"id": sentinel, "action": "userInfo", "data": {"username": "user1"}}))
        self.sender.expect(lambda f: f.get("re") == sentinel and f.get("action") == "userInfo", timeout=15)
        got, self.sender.frames = self.sender.frames, []
        assert not self.sender.closed, (payload[:200], self.sender.closed)
        for frame in got:
            action = frame.get("action")
            if action == "error":
                assert frame["data"]["code"] in ERRORS, (payload[:300], frame)
            else:
                assert action in ANSWERS, (payload[:300], frame)
            if action == "ack":
                self.acked.append(frame["data"]["msgId"])
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


@settings(max_examples=250, deadline=None, derandomize=True, database=None, print_blob=True,
          suppress_health_check=list(HealthCheck))
@given(frame=frames)
def test_every_frame_is_answered_as_documented(fuzzer, frame):
    fuzzer.exchange(*frame)


def test_every_acked_chat_is_stored(cluster, fuzzer):
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
