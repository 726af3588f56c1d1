"""chatnet.adapters.txredisapi against txredisapi's own protocol: the same
commands give the same request bytes (or the same error), the same replies
in the same pieces give the same values and errors in the same order, an
unanswered command fails with the same error at the same time and aborts
the connection, a lost connection fails the waiting commands the same way,
and scripts go out as the same EVAL and EVALSHA requests. The replies of a
real Redis too. (Its pin: tests/test_library_internals.py.)"""

import pytest
import pytest_twisted
import txredisapi
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure

from chatnet.adapters import txredisapi as adapter
from chatnet.stores.redis import RedisStore
from tests.wire import pieces

TIMEOUT = 5


def connected(kind, clock, convert_numbers=False):
    """A protocol of C{kind} ("fast": the adapter's; "own": txredisapi's
    hiredis protocol) connected to a StringTransport, with chatnet's options
    and its reply timers on C{clock}."""
    if kind == "fast":
        protocol = adapter.FastRedisProtocol(replyTimeout=TIMEOUT, convertNumbers=convert_numbers)
        # (the factory's buildProtocol would hand the connection to its pool
        # through the reactor: here it only gives the clock)
        protocol.factory = adapter.FastRedisFactory(
            "test", None, 1, isLazy=True, replyTimeout=TIMEOUT, convertNumbers=convert_numbers, clock=clock)
    else:
        protocol = txredisapi.HiredisProtocol(replyTimeout=TIMEOUT, convertNumbers=convert_numbers)
        protocol.callLater = clock.callLater
    transport = StringTransport()
    protocol.makeConnection(transport)
    return protocol, transport


def plain(value):
    """C{value} with its errors as (type, args), to compare."""
    if isinstance(value, BaseException):
        return type(value), value.args
    if isinstance(value, list):
        return [plain(item) for item in value]
    if isinstance(value, float):
        return float, repr(value)
    return value


def record(d, into, *tags):
    """Appends to C{into} what C{d} fires with: ("value", ...) or
    ("error", ...), after C{tags}."""
    d.addCallbacks(lambda value: into.append((*tags, "value", plain(value))),
                   lambda failure: into.append((*tags, "error", plain(failure.value))))


# -- requests -----------------------------------------------------------------------

class Text(str):
    pass


class Number(int):
    pass


class Shown:
    """An object that is neither bytes, str nor a number: sent as its str()."""

    def __init__(self, text):
        self.text = text

    def __str__(self):
        return self.text


# (charset, errors) of a protocol
ENCODINGS = [("utf-8", "strict"), ("utf-8", "replace"), ("utf-8", "surrogatepass"),
             ("latin-1", "strict"), ("ascii", "ignore"), (None, "strict")]

any_text = st.text(st.characters(exclude_categories=()), max_size=20)  # lone surrogates too

arguments = st.one_of(
    st.binary(max_size=30),
    any_text,
    # again and again: through the kept encodings
    st.sampled_from(["GET", "k", "chatnet:sessions", "é€", "\ud800", "{0}", "x" * 101, ""]),
    st.integers(),
    st.sampled_from([2**63, -(2**70), 10**5000]),  # the last is over Python's digits limit
    st.floats(),
    st.booleans(),
    st.none(),
    st.binary(max_size=10).map(bytearray),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),  # "{...}".format() fails
    any_text.map(Text),
    st.integers().map(Number),
    any_text.map(Shown),
)


def built(build, args):
    try:
        return build(*args)
    except Exception as e:
        return type(e)


@pytest.mark.unit
@settings(max_examples=500)
@given(st.sampled_from(ENCODINGS), st.lists(arguments, max_size=8))
def test_requests_are_txredisapis(encoding, args):
    charset, errors = encoding
    ours = adapter.FastRedisProtocol(charset=charset, errors=errors)
    theirs = txredisapi.RedisProtocol(charset=charset, errors=errors)
    assert built(ours.build_command, args) == built(theirs._build_command, args)


@pytest.mark.unit
@pytest.mark.parametrize("args", [
    ("GET", "k"),
    ("EVALSHA", "a" * 40, 3, "k1", b"v\r\n", -5, 0, "", "é€", 1.5, True, bytearray(b"x"), 2**70),
    ("SET", "k", b""),
])
def test_the_usual_requests_are_txredisapis(args):
    ours, theirs = adapter.FastRedisProtocol(), txredisapi.RedisProtocol()
    assert ours.build_command(*args) == ours._build_command(*args) == theirs._build_command(*args)


@pytest.mark.unit
def test_a_string_that_cannot_be_encoded_is_txredisapis_error():
    ours = adapter.FastRedisProtocol()
    with pytest.raises(txredisapi.InvalidData):
        ours.build_command("SET", "k", "\ud800")  # a lone surrogate is no UTF-8


@pytest.mark.unit
def test_the_kept_encodings_are_strict_utf_8s():
    """A string encoded with lenient errors is not kept for the strict
    protocols, which refuse it."""
    lenient = adapter.FastRedisProtocol(errors="surrogateescape")
    assert lenient.build_command("\udcff") == txredisapi.RedisProtocol(errors="surrogateescape")._build_command(
        "\udcff")
    with pytest.raises(txredisapi.InvalidData):
        adapter.FastRedisProtocol().build_command("\udcff")


# -- replies ------------------------------------------------------------------------

def line(text):
    return text.replace(b"\r", b"").replace(b"\n", b"")


statuses = st.one_of(st.sampled_from([b"OK", b"PONG", b"QUEUED"]), st.binary(max_size=20).map(line))
errors = st.one_of(
    st.sampled_from([b"ERR unknown command 'X'", b"NOSCRIPT No matching script. Please use EVAL.",
                     b"READONLY You can't write against a read only replica.", b"WRONGTYPE x", b"ERR"]),
    st.binary(max_size=20).map(line),
)
bulks = st.one_of(
    st.binary(max_size=40),
    st.text(max_size=20).map(lambda t: t.encode("utf-8")),
    st.sampled_from([b"12", b"-3", b"+7", b"1.5", b"-.5", b"1e3", b"1.2.3", b"-", b".", b"0x10", b"\xff1"]),
)
leaves = st.one_of(
    statuses.map(lambda s: b"+" + s + b"\r\n"),
    st.integers(-(2**63), 2**63 - 1).map(lambda n: b":%d\r\n" % n),
    bulks.map(lambda b: b"$%d\r\n%s\r\n" % (len(b), b)),
    st.just(b"$-1\r\n"),
    st.just(b"*-1\r\n"),
)
error_replies = errors.map(lambda e: b"-" + e + b"\r\n")


def arrays(children):
    return st.lists(children, max_size=4).map(lambda items: b"*%d\r\n" % len(items) + b"".join(items))


# errors in arrays too (txredisapi's number conversion fails on them: only
# without it, as chatnet's pool runs)
replies_with_numbers = st.one_of(error_replies, st.recursive(leaves, arrays, max_leaves=10))
replies_as_is = st.recursive(st.one_of(leaves, error_replies), arrays, max_leaves=10)


def answered(kind, replies, cuts, convert_numbers):
    """What a protocol of C{kind} hands up for C{replies} to as many
    commands, arriving in pieces cut at C{cuts}."""
    clock = Clock()
    protocol, transport = connected(kind, clock, convert_numbers)
    got = []
    for i in range(len(replies)):
        record(protocol.execute_command("GET", f"k{i}"), got)
    for piece in pieces(b"".join(replies), cuts):
        protocol.dataReceived(piece)
    clock.advance(TIMEOUT)  # every command was answered: none times out
    outcome = {"handed up": got, "written": transport.value(), "ended": transport.disconnecting}
    protocol.connectionLost(Failure(ConnectionDone()))
    return outcome


@pytest.mark.unit
@settings(max_examples=300)
@given(st.data(), st.booleans(), st.lists(st.integers(1, 40), max_size=12))
def test_the_same_replies_give_the_same_values_and_errors(data, convert_numbers, cuts):
    replies = data.draw(st.lists(replies_with_numbers if convert_numbers else replies_as_is, min_size=1, max_size=6))
    ours = answered("fast", replies, cuts, convert_numbers)
    theirs = answered("own", replies, cuts, convert_numbers)
    assert ours == theirs
    assert len(ours["handed up"]) == len(replies)


@pytest.mark.unit
def test_a_reply_to_no_command_drops_the_connection():
    """(Where txredisapi would keep it for the next command.)"""
    protocol, transport = connected("fast", Clock())
    protocol.dataReceived(b"+OK\r\n")
    assert transport.disconnected


# -- timeouts and lost connections --------------------------------------------------

# (what happens, after how many half seconds)
steps = st.lists(st.tuples(st.sampled_from(["send", "send", "answer", "wait"]), st.integers(0, 6)), max_size=12)


def ran(kind, schedule, lose):
    """What a protocol of C{kind} hands up, and when, for the commands and
    answers of C{schedule}; then the clock runs until every command could
    have timed out, and the connection is lost if it was not aborted
    (with C{lose}, before that)."""
    clock = Clock()
    protocol, transport = connected(kind, clock)
    got = []
    sent = answered = 0

    def wait(half_seconds):
        for _ in range(half_seconds):
            if transport.disconnected:
                return
            clock.advance(0.5)

    def stamped(d, n):
        d.addBoth(lambda result: (got.append(clock.seconds()), result)[1])
        record(d, got, n)

    for step, half_seconds in schedule:
        wait(half_seconds)
        if transport.disconnected:
            break
        if step == "send":
            stamped(protocol.execute_command("GET", f"k{sent}"), sent)
            sent += 1
        elif step == "answer" and answered < sent:
            protocol.dataReceived(b"$1\r\n%d\r\n" % answered)
            answered += 1
    if lose and not transport.disconnected:
        protocol.connectionLost(Failure(ConnectionLost()))
    else:
        wait(4 * TIMEOUT)
        protocol.connectionLost(Failure(ConnectionDone()))
    return {
        "handed up": got,
        "written": transport.value(),
        "aborted at": clock.seconds() if transport.disconnected else None,
        "timers left": len([call for call in clock.getDelayedCalls() if call.active()]),
    }


@pytest.mark.unit
@settings(max_examples=300)
@given(steps, st.booleans())
def test_unanswered_commands_fail_as_txredisapis_do(schedule, lose):
    ours, theirs = ran("fast", schedule, lose), ran("own", schedule, lose)
    assert ours == theirs


@pytest.mark.unit
def test_a_command_unanswered_for_the_reply_timeout_fails_and_aborts_the_connection():
    for kind in ("fast", "own"):
        clock = Clock()
        protocol, transport = connected(kind, clock)
        got = []
        record(protocol.execute_command("GET", "a"), got)
        clock.advance(2)
        record(protocol.execute_command("GET", "b"), got)
        clock.advance(TIMEOUT - 2 - 0.5)
        assert got == [] and not transport.disconnected, kind
        clock.advance(0.5)
        timeout = (txredisapi.TimeoutError, (f"Not received Redis response in {TIMEOUT} seconds",))
        assert got == [("error", timeout), ("error", timeout)], kind
        assert transport.disconnected, kind
        protocol.connectionLost(Failure(ConnectionDone()))


# -- scripts ------------------------------------------------------------------------

SCRIPT = "return {KEYS[1], ARGV[1], 'é'}"


def scripted(kind):
    """The requests a protocol of C{kind} writes to run SCRIPT again and
    again, and what each run gave: unknown to the connection, known, forgotten
    by the server (NOSCRIPT), forgotten and then failing, failing while
    unknown, and failing while known."""
    protocol, transport = connected(kind, Clock())
    got, written = [], []
    nosuch = b"-NOSCRIPT No matching script. Please use EVAL.\r\n"
    answers = [
        [b"*1\r\n$1\r\nx\r\n"],
        [b":1\r\n"],
        [nosuch, b":2\r\n"],
        [nosuch, b"-OOM command not allowed when used memory > 'maxmemory'.\r\n"],
        [b"-ERR Error running script\r\n"],
        [b":3\r\n"],
        [b"-ERR Error running script\r\n"],
        [b":4\r\n"],
    ]
    for run, replies in enumerate(answers):
        record(protocol.eval(SCRIPT, ["k"], [run, "é"]), got, run)
        for reply in replies:
            written.append(transport.value())
            transport.clear()
            protocol.dataReceived(reply)
    protocol.connectionLost(Failure(ConnectionDone()))
    return got, written


@pytest.mark.unit
def test_scripts_are_sent_as_txredisapi_sends_them():
    ours, theirs = scripted("fast"), scripted("own")
    assert ours == theirs
    got, written = ours
    assert [w.split(b"\r\n")[2] for w in written] == [
        b"EVAL", b"EVALSHA", b"EVALSHA", b"EVAL", b"EVALSHA", b"EVAL", b"EVAL", b"EVAL", b"EVALSHA", b"EVALSHA"]
    assert [entry[1] for entry in got] == ["value", "value", "value", "error", "error", "value", "error", "value"]


# -- a real Redis -------------------------------------------------------------------

@pytest_twisted.ensureDeferred
async def test_replies_are_txredisapis(redis_server):
    """The hiredis-parsed replies of the lighter command path (as chatnet's
    store runs it) are what txredisapi's own line parser gives, for every
    kind of reply a real Redis sends."""
    from twisted.internet import protocol, reactor

    store = RedisStore(redis_server.url).connect()
    theirs = await protocol.ClientCreator(
        reactor, txredisapi.BaseRedisProtocol, convertNumbers=False).connectTCP("127.0.0.1", redis_server.port)
    calls = [
        ("set", "rk:text", "é€ text"),
        ("get", "rk:text"),
        ("set", "rk:raw", b"\xff\xfe not utf-8"),
        ("get", "rk:raw"),
        ("get", "rk:missing"),
        ("incr", "rk:n"),
        ("delete", "rk:h"),
        ("hset", "rk:h", "a", "1"),
        ("hgetall", "rk:h"),
        ("sadd", "rk:s", "x"),
        ("smembers", "rk:s"),
        ("rpush", "rk:l", ["1", b"\x80"]),
        ("lrange", "rk:l", 0, -1),
        ("eval", "return {1, 'two', {3, false}, redis.status_reply('OK')}", [], []),
        ("mget", ["rk:text", "rk:missing", "rk:raw"]),
    ]
    try:
        for method, *args in calls:
            ours = await store.call(method, *args)
            if method in ("get", "hgetall", "smembers", "lrange", "eval", "mget"):
                assert ours == await getattr(theirs, method)(*args), method
        with pytest.raises(txredisapi.ResponseError):
            await store.call("execute_command", "NOSUCHCOMMAND")
        assert await store.call("ping") == "PONG"  # the connection goes on after an error
    finally:
        theirs.transport.loseConnection()
        await store.call("execute_command", "DEL", "rk:text", "rk:raw", "rk:n", "rk:h", "rk:s", "rk:l")
        await store.disconnect()
