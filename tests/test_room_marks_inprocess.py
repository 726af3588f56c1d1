"""A member who moves to a node that is behind in a room gets none of the
room's messages twice (chatnet/service/roomfeed.py, the sessions' marks):
nodes "A" and "B" in-process as in tests/test_room_state_inprocess.py (real
Redis and MongoDB, fake clock). A accepts messages of a room and delivers
them to its member, then its calls to B are lost (A died between sending
to its own members and to B's); the member logs in on B and resumes from
the last seq it got; B then catches up from the history, as it does when
a node leaves. What the client said it has, and what a replay sent it,
are never delivered to it live again, whichever way B's delivery comes."""
import pytest_twisted
from twisted.internet import reactor, task

from chatnet.actions.limits import RESUME_WAIT
from tests.inprocess import request, run_until
from tests.test_room_state_inprocess import PASSWORD, logged_in, mongo_url, nodes, post  # noqa: F401 (fixtures)

ROOM = "room1"
RESUMING = ["ack", "resume"]


def lose_calls_to(node):
    """Room messages from C{node}'s peer links are lost from now on."""
    node.peers.answers["RoomDeliver"] = lambda target, **_: {}


async def settle(nodes):
    for _ in range(3):
        nodes.clock.advance(0.01)  # the batch window of the calls to the other node
        await task.deferLater(reactor, 0.01, lambda: None)


async def moved_to_b(nodes, sent, seen, catch_up_first=False):
    """user1 on A, user2 on B (so that B counts the room), user3 posting
    on A; C{sent} messages accepted on A reach only A's members. user1's
    client got the first C{seen} of them before A went; it logs in on B
    and resumes from there (C{catch_up_first}: B catches up between the
    login and the resume). Its connection to B, user2's, the seqs and the
    resume's frames."""
    a, b = nodes.a, nodes.b
    laptop = await logged_in(a, "user1", RESUMING)
    witness = await logged_in(b, "user2", RESUMING)
    poster = await logged_in(a, "user3", ["ack"])
    for node, client in ((a, laptop), (b, witness), (a, poster)):
        assert (await request(node.handlers, client, "joinRoom", roomName=ROOM))[-1]["action"] == "joinRoom"
    lose_calls_to(a)
    seqs = []
    for i in range(sent):
        frames = await post(a, poster, ROOM, f"m{i}")
        seqs += [f["data"]["seq"] for f in frames if f["action"] == "ack"]
    await settle(nodes)
    assert [c["seq"] for c in laptop.chats()] == seqs  # A delivered to its own member
    assert witness.chats() == []  # B is behind
    laptop.close()  # A is gone

    phone = await logged_in(b, "user1", RESUMING)
    if catch_up_first:
        await caught_up(nodes, witness, seqs)
    frames = await request(b.handlers, phone, "resume", rooms={ROOM: seqs[seen - 1]})
    assert frames[-1]["action"] == "resume", frames
    return phone, witness, seqs, frames


async def caught_up(nodes, witness, seqs):
    """B catches up what A never sent (as when a node leaves)."""
    await nodes.b.feed.check(at_once=True)
    await run_until(None, lambda: len(witness.chats()) == len(seqs), "B caught up")


@pytest_twisted.ensureDeferred
async def test_what_the_client_resumed_from_is_not_delivered_again(nodes):
    phone, witness, seqs, frames = await moved_to_b(nodes, sent=3, seen=3)
    assert frames[-1]["data"]["replayed"] == 0
    await caught_up(nodes, witness, seqs)
    assert [c["seq"] for c in witness.chats()] == seqs
    assert [f for f in phone.frames if f["action"] == "chat"] == []


@pytest_twisted.ensureDeferred
async def test_what_a_replay_sent_is_not_delivered_again_after_another_request(nodes):
    phone, witness, seqs, frames = await moved_to_b(nodes, sent=3, seen=1)
    assert [f["data"]["seq"] for f in frames if f["action"] == "chat"] == seqs[1:]
    # another request that holds live messages back meanwhile (its own replay)
    assert (await request(nodes.b.handlers, phone, "joinRoom", roomName="room2"))[-1]["action"] == "joinRoom"
    await caught_up(nodes, witness, seqs)
    assert [c["seq"] for c in phone.chats() if c["roomName"] == ROOM] == []
    # and what comes after is delivered
    await post(nodes.b, witness, ROOM, "after")
    await settle(nodes)
    assert [c["message"] for c in phone.chats() if c["roomName"] == ROOM] == ["after"]


@pytest_twisted.ensureDeferred
async def test_what_arrived_between_the_login_and_the_resume_is_not_delivered_again(nodes):
    phone, witness, seqs, frames = await moved_to_b(nodes, sent=3, seen=2, catch_up_first=True)
    # held back after the login; the resume replays the one the client lacks
    assert [f["data"]["seq"] for f in frames if f["action"] == "chat"] == seqs[2:]
    await caught_up(nodes, witness, seqs)
    assert [c["seq"] for c in phone.chats()] == []


@pytest_twisted.ensureDeferred
async def test_a_message_while_the_login_answer_is_made_is_held_for_the_resume(nodes):
    """What is delivered while the login's extras are read (the C{live}
    extension's rooms) waits for the resume like what comes after the
    answer: the replay has it, so it is sent once, after the answer."""
    b = nodes.b
    poster = await logged_in(b, "user2", RESUMING)
    laptop = await logged_in(b, "user1", RESUMING)
    for client in (poster, laptop):
        await request(b.handlers, client, "joinRoom", roomName=ROOM)
    last = max([0] + [c["seq"] for c in laptop.chats()])
    laptop.close()
    login = b.handlers.families["login"]
    extras = login.extras
    login.extras = PostingExtras(extras, lambda: post(b, poster, ROOM, "during the login"))
    phone = b.connect()
    frames = await request(b.handlers, phone, "login", username="user1", password=PASSWORD, features=RESUMING)
    login.extras = extras
    assert [f["action"] for f in frames] == ["login"]
    frames = await request(b.handlers, phone, "resume", rooms={ROOM: last})
    assert [f["data"]["message"] for f in frames if f["action"] == "chat"] == ["during the login"]
    await settle(nodes)
    assert phone.chats() == []


class PostingExtras:
    """The login's extras (L{chatnet.actions.extras}) C{extras}, whose
    C{login_answer} first has C{post()} run, as a message arriving while
    the login answer is made."""

    def __init__(self, extras, post):
        self.extras = extras
        self.post = post

    async def login_answer(self, connection):
        await self.post()
        return await self.extras.login_answer(connection)


class PostingMongo:
    """The real MongoStore; C{room_floors} (a read of the resume) first
    has C{post()} run, as a message arriving while the resume reads."""

    def __init__(self, store, post):
        self.store = store
        self.post = post

    async def room_floors(self, rooms):
        await self.post()
        return await self.store.room_floors(rooms)

    def __getattr__(self, name):
        return getattr(self.store, name)


@pytest_twisted.ensureDeferred
async def test_a_message_while_the_resume_reads_is_sent_once_after_the_login_hold_ran_out(nodes):
    b = nodes.b
    poster = await logged_in(b, "user2", RESUMING)
    laptop = await logged_in(b, "user1", RESUMING)
    for client in (poster, laptop):
        await request(b.handlers, client, "joinRoom", roomName=ROOM)
    last = max([0] + [c["seq"] for c in laptop.chats()])
    laptop.close()
    phone = await logged_in(b, "user1", RESUMING)
    nodes.clock.advance(RESUME_WAIT)  # the resume comes late: the login's hold ran out
    assert not phone.session.holding
    resume = b.handlers.families["resume"]
    mongo = resume.mongo
    resume.mongo = PostingMongo(mongo, lambda: post(b, poster, ROOM, "during the resume"))
    try:
        frames = await request(b.handlers, phone, "resume", rooms={ROOM: last})
    finally:
        resume.mongo = mongo
    assert [f["action"] for f in frames] == ["chat", "resume"]
    await settle(nodes)
    assert phone.chats() == []


@pytest_twisted.ensureDeferred
async def test_a_room_taken_from_the_session_and_given_back_keeps_its_mark(nodes):
    """Whatever adds the room to the session again (a join, the room state
    check after a refresh), its mark starts no lower than it was."""
    phone, witness, seqs, _ = await moved_to_b(nodes, sent=3, seen=3)
    feed = nodes.b.feed
    feed.remove(ROOM, [phone])
    await feed.add([ROOM], [phone])
    assert phone.session.marks[ROOM] == seqs[-1]
    await caught_up(nodes, witness, seqs)
    assert phone.chats() == []
