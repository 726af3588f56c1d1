"""The requests of the ``live`` extension (L{chatnet.actions.live}) in
process, on the real Redis and MongoDB (SecantusDB) and a fake clock:
every field checked before a store is asked, every request answered as
docs/protocol.md documents it, and the cost of a request bounded whatever
the input (counted, not timed)."""
from types import SimpleNamespace

import pytest
import pytest_twisted
from bson import ObjectId
from hypothesis import HealthCheck, given, settings, strategies as st
from twisted.internet.task import Clock

from chatnet.actions import LiveParts, build
from chatnet.actions.typinggate import TypingGate
from chatnet.cluster.remote import OtherNodes
from chatnet.cluster.view import ClusterView
from chatnet.domain.messages import dm_channel, room_channel
from chatnet.ops.events import EventBus
from chatnet.protocols.codec import INT64_MAX
from chatnet.service.notices import UserNotices
from chatnet.service.revisions import Revisions
from chatnet.service.scrollback import MAX_PAGE, Scrollback
from chatnet.stores.livestate import LiveState
from chatnet.stores.mongo import MongoStore
from chatnet.stores.redis import RedisStore
from chatnet.text import stopwords, words
from tests.inprocess import FakePeers, error_code, request
from tests.test_handlers_inprocess import NODE, PASSWORD, logged_in, mongo_url, node  # noqa: F401 (fixtures)

LIVE = ("ack", "live", "multi")
HYPOTHESIS = dict(deadline=None, derandomize=True, database=None, max_examples=150,
                  suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


class CountingLiveState(LiveState):
    """The real store, counting the stored messages it hands over."""

    read = 0

    async def messages_before(self, channel, before, limit):
        docs = await super().messages_before(channel, before, limit)
        self.read += len(docs)
        return docs


class CountingRedis:
    """The real Redis store, counting the list entries its scripts hand over."""

    def __init__(self, redis):
        self.redis = redis
        self.read = 0

    async def eval(self, script, keys=(), args=()):
        answer = await self.redis.eval(script, keys, args)
        if isinstance(answer, list) and len(answer) == 2 and isinstance(answer[1], list):
            self.read += len(answer[1])
        return answer

    def call(self, *args, **kwargs):
        return self.redis.call(*args, **kwargs)


def with_live(node, redis, mongo, emit=lambda event, *args: None):
    """The node's actions made again with the C{live} extension, whose
    stores are C{redis} and C{mongo}; its parts."""
    state = CountingLiveState(mongo)
    view = ClusterView(NODE, node.clock)
    view.changed({NODE: {}}, NODE)
    live = LiveParts(
        redis=redis, mongo=mongo, state=state, scrollback=Scrollback(redis, state, node.message_log.waiting),
        revisions=Revisions(redis, state, node.message_log.waiting),
        notices=UserNotices(view, OtherNodes(FakePeers()), node.directory, node.sessions), profanity=node.profanity)
    node.handlers = build(**{**node.parts, "emit": emit}, live=live)
    return live


@pytest.fixture
def live(node):
    counting = CountingRedis(node.redis)
    parts = with_live(node, counting, node.mongo)
    return SimpleNamespace(node=node, parts=parts, redis=counting, state=parts.state)


@pytest.fixture
def cut_off(node, free_port):
    """The node's actions, the C{live} extension's Redis and MongoDB never
    answering: a request that reaches a store is a 503."""
    redis = RedisStore(f"redis://127.0.0.1:{free_port}/0", timeout=0.3).connect()
    mongo = MongoStore(f"mongodb://127.0.0.1:{free_port}/none", timeout=0.3).connect()
    with_live(node, redis, mongo)
    yield node
    pytest_twisted.blockon(mongo.disconnect())
    pytest_twisted.blockon(redis.disconnect())


async def client_of(ns, node):
    """One logged-in client per test (Hypothesis runs many examples)."""
    if getattr(ns, "client", None) is None:
        ns.client = await logged_in(node, "user1", LIVE)
    return ns.client


# -- every field is checked before a store is asked --------------------------------

INT64 = st.integers(min_value=-2**63, max_value=2**63 - 1)  # what JSON carries as an integer here
NAMES = st.one_of(st.sampled_from(["world", "room1", "user2", "", "user1"]), st.text(max_size=140),
                  INT64, st.none(), st.lists(st.text(max_size=3), max_size=2), st.booleans())
SEQS = st.one_of(st.integers(min_value=-2**63, max_value=2**63 - 1), st.booleans(), st.floats(allow_nan=False),
                 st.text(max_size=5), st.none())
IDS = st.one_of(st.just(str(ObjectId())), st.text(max_size=30), INT64, st.none())
TEXTS = st.one_of(st.text(max_size=50), st.just("x" * 5000), INT64, st.none())
REQUESTS = st.tuples(
    st.sampled_from(["history", "edit", "delete", "typing", "read"]),
    st.fixed_dictionaries({}, optional={"roomName": NAMES, "conversation": NAMES, "to": NAMES, "msgId": IDS,
                                        "message": TEXTS, "before": SEQS, "limit": SEQS, "seq": SEQS}),
)

#: what each action may answer besides an error (typing: nothing)
ANSWERS = {"history": "history", "edit": "edit", "delete": "delete", "typing": None, "read": "read"}


@settings(**HYPOTHESIS)
@given(asked=REQUESTS)
@pytest_twisted.ensureDeferred
async def test_every_request_is_answered_as_documented(live, asked):
    """Whatever the fields, an answer of its action or a documented error;
    never a crash, never a 500."""
    action, data = asked
    client = await client_of(live, live.node)
    live.node.clock.advance(5)  # a client within its byte budget (the examples come on one connection)
    frames = await request(live.node.handlers, client, action, **data)
    code = error_code(frames)
    if code is None:
        answers = [f["action"] for f in frames if f["action"] not in ("typing", "chat")]
        assert answers == ([ANSWERS[action]] if ANSWERS[action] else []), frames
    else:
        assert code in (400, 403, 404, 413), frames


def _bad_field(action):
    """A request of C{action} with one field of a wrong type or out of range."""
    base = {"history": {"roomName": "world", "limit": 10, "before": 5},
            "edit": {"roomName": "world", "msgId": str(ObjectId()), "message": "x"},
            "delete": {"roomName": "world", "msgId": str(ObjectId())},
            "typing": {"roomName": "world"},
            "read": {"roomName": "world", "seq": 3}}[action]
    ints = st.integers(min_value=-2**63, max_value=2**63 - 1)
    bad = {"roomName": st.one_of(ints, st.just(""), st.lists(ints, max_size=1)),
           "limit": st.one_of(st.integers(min_value=-2**63, max_value=0), st.integers(min_value=MAX_PAGE + 1, max_value=2**63 - 1),
                              st.text(max_size=3), st.booleans(), st.floats()),
           "before": st.one_of(st.integers(min_value=-2**63, max_value=0), st.text(max_size=3), st.booleans(), st.floats()),
           "msgId": st.one_of(st.text(max_size=30).filter(lambda s: len(s) != 24), ints),
           "message": st.one_of(ints, st.just("x" * 5000)),
           "seq": st.one_of(st.integers(min_value=-2**63, max_value=-1), st.text(max_size=3), st.booleans(), st.floats())}
    return st.sampled_from(sorted(base)).flatmap(
        lambda key: bad[key].map(lambda value: (action, {**base, key: value})))


@settings(**HYPOTHESIS)
@given(asked=st.sampled_from(sorted(ANSWERS)).flatmap(_bad_field))
@pytest_twisted.ensureDeferred
async def test_a_bad_field_is_refused_before_any_store_is_asked(cut_off, asked):
    """With stores that never answer, a bad field is still its 400 (or
    413): the check comes before any store call (which would be a 503)."""
    action, data = asked
    client = await client_of(cut_off, cut_off)
    frames = await request(cut_off.handlers, client, action, **data)
    assert error_code(frames) in (400, 413), (data, frames)


# -- bounded cost -------------------------------------------------------------------


def _fill(node, room, count):
    """C{count} messages of C{room} stored in MongoDB only (as after Redis lost them)."""
    import pymongo

    client = pymongo.MongoClient(node.mongo.url)
    docs = [{"_id": ObjectId(), "channel": room_channel(room), "roomName": room, "from": "user2", "to": "",
             "message": f"m{seq}", "ts": seq, "format": "text", "seq": seq} for seq in range(1, count + 1)]
    client.get_default_database().messages.insert_many(docs)
    client.close()


@pytest.fixture
def filled(live):
    for room, count in (("small", 300), ("large", 600)):
        _fill(live.node, room, count)
    return live


# (three plain parameters: 60 examples cover them; each reads two pages from MongoDB)
@settings(**{**HYPOTHESIS, "max_examples": 60})
@given(position=st.floats(min_value=0, max_value=1), limit=st.integers(min_value=1, max_value=MAX_PAGE),
       newest=st.booleans())
@pytest_twisted.ensureDeferred
async def test_a_page_costs_at_most_its_limit_whatever_the_channel_size(filled, position, limit, newest):
    """cost(2n) == cost(n): a page of a room of 600 messages reads no more
    than the same page of a room of 300, and at most C{limit} messages."""
    costs = []
    for room, count in (("small", 300), ("large", 600)):
        before = None if newest else 1 + round(position * count)
        filled.state.read = filled.redis.read = 0
        messages, more = await filled.parts.scrollback.page(room_channel(room), before, limit)
        top = count + 1 if before is None else before
        assert [m["seq"] for m in messages] == list(range(max(1, top - limit), top))
        assert more == (bool(messages) and messages[0]["seq"] > 1)
        costs.append(filled.state.read + filled.redis.read)
    assert costs[0] <= limit and costs[1] <= limit, costs


@settings(**HYPOTHESIS)
@given(events=st.lists(st.tuples(st.sampled_from("abc"), st.sampled_from("xyz"),
                                 st.floats(min_value=0, max_value=2)), max_size=200),
       remembered=st.integers(min_value=1, max_value=12))
def test_typing_is_relayed_once_a_second_at_most_with_bounded_memory(events, remembered):
    """Whatever the clients send, the gate remembers at most C{remembered}
    pairs; while it can remember every pair (9 here), none is relayed twice
    within a second."""
    clock = Clock()
    gate = TypingGate(clock, every=1.0, remembered=remembered)
    relayed = {}
    for user, target, dt in events:
        clock.advance(dt)
        if gate.allow(user, target):
            last = relayed.get((user, target))
            if remembered >= 9 and last is not None:
                assert clock.seconds() - last >= 1.0
            relayed[(user, target)] = clock.seconds()
        assert len(gate.last) <= remembered


def test_typing_gate_drops_a_second_typing_within_the_second():
    clock = Clock()
    gate = TypingGate(clock)
    assert gate.allow("a", "#r") and not gate.allow("a", "#r") and gate.allow("b", "#r")
    clock.advance(0.99)
    assert not gate.allow("a", "#r")
    clock.advance(0.01)
    assert gate.allow("a", "#r")


# -- the live frames of one node ------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_edit_history_and_read_on_one_node(live):
    node = live.node
    alice = await logged_in(node, "user1", LIVE)
    phone = await logged_in(node, "user1", LIVE)
    bob = await logged_in(node, "user2", LIVE)
    sent = await request(node.handlers, alice, "chat", roomName="world", isGroup=True, message="you are a shit")
    ack = [f for f in sent if f["action"] == "ack"][0]["data"]
    assert ack["message"] == "you are a ****"  # the sender sees what the others see
    plain = await request(node.handlers, alice, "chat", roomName="world", isGroup=True, message="fine")
    assert "message" not in [f for f in plain if f["action"] == "ack"][0]["data"]
    for client in (phone, bob):
        client.take()
    edited = await request(node.handlers, alice, "edit", roomName="world", msgId=ack["msgId"], message="shit, sorry")
    assert [f["action"] for f in edited] == ["edit"] and edited[0]["data"]["message"] == "****, sorry"
    for client in (phone, bob):
        assert [(f["action"], f["data"]["message"]) for f in client.take()] == [("messageEdited", "****, sorry")]
    page = await request(node.handlers, bob, "history", roomName="world")
    assert [m["message"] for m in page[0]["data"]["messages"]] == ["****, sorry", "fine"]
    read = await request(node.handlers, bob, "read", roomName="world", seq=ack["seq"])
    assert read[0]["data"] == {"roomName": "world", "seq": ack["seq"]}
    listed = await request(node.handlers, bob, "listRooms")
    assert listed[0]["data"]["rooms"][0] == {"roomName": "world", "members": 2, "member": True, "unread": 1}
    assert await live.state.mark_read("user2", room_channel("world"), 0) == ack["seq"]


class Revised:
    """An event listener keeping the edits and deletions it is told of."""

    def __init__(self):
        self.seen = []

    def message_edited(self, revision):
        self.seen.append(("edited", revision))

    def message_deleted(self, revision):
        self.seen.append(("deleted", revision))


@pytest_twisted.ensureDeferred
async def test_edits_and_deletions_are_emitted_once_stored(node):
    """The event bus hears of an edit (with the masked text) and of a
    deletion (an author's, a room admin's), once each: not of a refused
    edit, nor of a second deletion of the same message."""
    bus, listener = EventBus(node.clock), Revised()
    bus.add(listener)
    with_live(node, node.redis, node.mongo, emit=bus.emit)
    alice = await logged_in(node, "user1", LIVE)
    bob = await logged_in(node, "user2", LIVE)
    await request(node.handlers, alice, "createRoom", roomName="hall")
    await request(node.handlers, bob, "joinRoom", roomName="hall")
    first, second = [
        [f["data"] for f in await request(node.handlers, sender, "chat", **where) if f["action"] == "ack"][0]
        for sender, where in ((bob, dict(roomName="hall", isGroup=True, message="one")),
                              (alice, dict(to="user2", message="two")))]
    assert error_code(await request(node.handlers, alice, "edit", roomName="hall", msgId=first["msgId"],
                                    message="not mine")) == 403
    await request(node.handlers, bob, "edit", roomName="hall", msgId=first["msgId"], message="shit")
    await request(node.handlers, alice, "delete", roomName="hall", msgId=first["msgId"])  # the owner
    await request(node.handlers, alice, "delete", roomName="hall", msgId=first["msgId"])  # already gone
    await request(node.handlers, alice, "edit", to="user2", msgId=second["msgId"], message="2")
    await request(node.handlers, alice, "delete", to="user2", msgId=second["msgId"])
    told = [(event, r.msgId, r.channel, r.roomName, r.sender, r.to, r.by, r.message) for event, r in listener.seen]
    assert told == [
        ("edited", first["msgId"], "room:hall", "hall", "user2", "", "user2", "****"),
        ("deleted", first["msgId"], "room:hall", "hall", "user2", "", "user1", None),
        ("edited", second["msgId"], dm_channel("user1", "user2"), "", "user1", "user2", "user1", "2"),
        ("deleted", second["msgId"], dm_channel("user1", "user2"), "", "user1", "user2", "user1", None),
    ]
    assert [r.seq for _, r in listener.seen] == [first["seq"]] * 2 + [second["seq"]] * 2
    assert all(r.at == int(node.clock.seconds() * 1000) for _, r in listener.seen)


@pytest_twisted.ensureDeferred
async def test_join_and_list_rooms_give_the_users_role(live):
    """With C{live}, the C{joinRoom} answer of an ordinary room and the
    C{listRooms} entries of the rooms one is in carry one's role there;
    without it, the answers are as before."""
    node = live.node
    owner = await logged_in(node, "user1", LIVE)
    admin = await logged_in(node, "user2", LIVE)
    plain = await logged_in(node, "user3")
    await request(node.handlers, owner, "createRoom", roomName="club")
    joined = await request(node.handlers, admin, "joinRoom", roomName="club")
    assert [f["data"] for f in joined if f["action"] == "joinRoom"] == [
        {"roomName": "club", "members": 2, "role": "member"}]
    await request(node.handlers, owner, "setRole", roomName="club", username="user2", role="admin")
    again = await request(node.handlers, admin, "joinRoom", roomName="club")
    assert [f["data"]["role"] for f in again if f["action"] == "joinRoom"] == ["admin"]
    mine = await request(node.handlers, owner, "joinRoom", roomName="club")
    assert [f["data"]["role"] for f in mine if f["action"] == "joinRoom"] == ["owner"]
    world = await request(node.handlers, admin, "joinRoom", roomName="world")
    assert "role" not in [f for f in world if f["action"] == "joinRoom"][0]["data"]
    old = await request(node.handlers, plain, "joinRoom", roomName="club")
    assert [f["data"] for f in old if f["action"] == "joinRoom"] == [{"roomName": "club", "members": 3}]
    roles = {}
    for client in (owner, admin):
        listed = [f for f in await request(node.handlers, client, "listRooms")
                  if f["action"] == "listRooms"][0]["data"]["rooms"]
        assert all(("role" in e) == (e.get("member") is True and e["roomName"] == "club") for e in listed)
        roles[client] = [e["role"] for e in listed if "role" in e]
    assert roles == {owner: ["owner"], admin: ["admin"]}
    old = [f for f in await request(node.handlers, plain, "listRooms") if f["action"] == "listRooms"]
    assert old[0]["data"]["rooms"] and all("role" not in e for e in old[0]["data"]["rooms"])


# -- stop words ----------------------------------------------------------------------


def test_the_shipped_stop_words_drop_english_and_chinese_filler():
    stop = stopwords.load()
    text = "The cat is on the mat, and it's a good cat. 我的猫是在垫子上"
    assert stopwords.without(words.tokenize(text), stop) == ["cat", "mat", "good", "cat", "猫", "垫子"]
    assert stopwords.load(stopwords.NONE) == frozenset()


def test_a_stop_word_file_replaces_the_list(tmp_path):
    path = tmp_path / "stop.txt"
    path.write_text("# mine\nCAT  # upper case is lowered\nｍａｔ\n", encoding="utf-8")
    stop = stopwords.load(str(path))
    assert stop == {"cat", "mat"}
    assert stopwords.without(words.tokenize("the cat on the mat"), stop) == ["the", "on", "the"]


@pytest_twisted.ensureDeferred
async def test_popular_words_leave_the_stop_words_out(node):
    alice = await logged_in(node, "user1")
    for text in ("the zebra is a zebra", "a yak is the yak", "the the the zebra"):
        await request(node.handlers, alice, "chat", roomName="world", isGroup=True, message=text)
    top = await request(node.handlers, alice, "popular", n=5)
    assert top[0]["data"]["words"] == ["zebra", "3", "yak", "2"]


@pytest_twisted.ensureDeferred
async def test_read_markers_stay_within_the_channel(live):
    """A marker is never stored beyond a channel's last seq, nor for a
    conversation that has no message: the markers a user can make are
    bounded by the channels that exist."""
    node = live.node
    alice = await logged_in(node, "user1", LIVE)
    assert error_code(await request(node.handlers, alice, "read", conversation="user2", seq=5)) == 404
    assert error_code(await request(node.handlers, alice, "read", conversation="nobody", seq=5)) == 404
    await request(node.handlers, alice, "chat", roomName="world", isGroup=True, message="one")
    answer = await request(node.handlers, alice, "read", roomName="world", seq=INT64_MAX)
    assert answer[0]["data"] == {"roomName": "world", "seq": 1}


@pytest_twisted.ensureDeferred
async def test_a_queued_direct_message_is_delivered_as_edited_or_deleted(live):
    node = live.node
    alice = await logged_in(node, "user1", ("ack", "offline", "live"))
    sent = []
    for text in ("typo", "oops"):
        frames = await request(node.handlers, alice, "chat", to="user2", message=text)
        sent.append(frames[0]["data"])
    assert [f["action"] for f in (await request(node.handlers, alice, "edit", to="user2", msgId=sent[0]["msgId"],
                                                message="fixed"))] == ["edit"]
    assert [f["action"] for f in (await request(node.handlers, alice, "delete", to="user2",
                                                msgId=sent[1]["msgId"]))] == ["delete"]
    bob = node.connect()
    frames = await request(node.handlers, bob, "login", username="user2", password=PASSWORD,
                           features=["ack", "offline", "live"])
    chats = [f["data"] for f in frames if f["action"] == "chat"]
    assert [(c["message"], c.get("deleted", False)) for c in chats] == [("fixed", False), ("", True)]


@pytest_twisted.ensureDeferred
async def test_a_message_is_deleted_once_however_many_ask(node):
    # two deletions at the same time: one is the deletion (True), the
    # other finds it done (False), so the deletion is told once
    state = LiveState(node.mongo)
    msg_id = "65f000000000000000000001"
    assert await state.revise(msg_id, "room:r", 1, "alice", 1000) is True
    assert await state.revise(msg_id, "room:r", 1, "bob", 1001) is False
    assert await state.revise(msg_id, "room:r", 1, "alice", 1002, message="again") is False
