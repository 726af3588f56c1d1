"""The byte budget of connections and users (chatnet.limits.budget), in process
with a fake clock."""
import pytest
import pytest_twisted
from twisted.internet.task import Clock
from twisted.python import usage

from chatnet.actions import ClientActions
from chatnet.config import NodeConfig
from chatnet.errors import ProtocolError
from chatnet.limits.budget import MIN_SWEEP, ByteBucket, ByteBudget
from chatnet.protocols import codec
from chatnet.tap_node import Options


class Connection:
    record = None


def budget(clock, rate=1000, burst=2000, user_rate=1500, user_burst=3000):
    return ByteBudget(clock, rate, burst, user_rate, user_burst)


def refused(b, connection, user, size):
    with pytest.raises(ProtocolError) as caught:
        b.charge(connection, user, size)
    assert caught.value.code == 429
    return str(caught.value)


def test_bucket_rate_and_burst():
    clock = Clock()
    bucket = ByteBucket(100, 300, clock)
    assert bucket.can_take(300)
    bucket.take(300)
    assert not bucket.can_take(1)
    clock.advance(0.5)
    assert bucket.can_take(50) and not bucket.can_take(51)
    clock.advance(100)
    assert bucket.refill() == 300  # never more than the burst


def test_a_request_larger_than_the_burst_passes_on_a_full_bucket_and_is_paid_back():
    clock = Clock()
    bucket = ByteBucket(100, 300, clock)
    assert bucket.can_take(1000)
    bucket.take(1000)
    clock.advance(6.9)
    assert not bucket.can_take(1)  # 700 bytes of debt, paid back at 100 a second
    clock.advance(0.2)
    assert bucket.can_take(10) and not bucket.can_take(11)


def test_connection_budget():
    clock = Clock()
    b = budget(clock, user_rate=0)
    a, other = Connection(), Connection()
    b.charge(a, None, 1500)
    assert "connection" in refused(b, a, None, 600)
    b.charge(a, None, 500)  # the refused request was charged nothing
    b.charge(other, None, 2000)  # another connection has its own
    clock.advance(1.0)
    b.charge(a, None, 1000)
    assert "connection" in refused(b, a, None, 1)


def test_user_budget_across_connections():
    clock = Clock()
    b = budget(clock, rate=10_000, burst=10_000, user_rate=1000, user_burst=3000)
    a, a2, other = Connection(), Connection(), Connection()
    b.charge(a, "alice", 2000)
    b.charge(a2, "alice", 1000)
    assert "user" in refused(b, a2, "alice", 10)
    assert "user" in refused(b, a, "alice", 10)
    b.charge(other, "bob", 3000)
    clock.advance(0.5)
    b.charge(a2, "alice", 500)


def test_a_request_refused_by_the_user_budget_costs_the_connection_nothing():
    clock = Clock()
    b = budget(clock, rate=1000, burst=2000, user_rate=1000, user_burst=1000)
    a, a2 = Connection(), Connection()
    b.charge(a2, "alice", 1000)
    refused(b, a, "alice", 1000)
    clock.advance(1.0)
    b.charge(a, "alice", 1000)
    b.charge(a, None, 1000)  # the connection's 2000 were all left


def test_users_buckets_are_dropped_once_refilled():
    clock = Clock()
    b = budget(clock, rate=0, user_rate=1000, user_burst=1000)
    for i in range(MIN_SWEEP):
        b.charge(Connection(), f"user{i}", 10)
    assert b.users() == MIN_SWEEP
    clock.advance(0.001)  # 1 byte refilled: all still below full
    b.charge(Connection(), "late", 10)
    assert b.users() == MIN_SWEEP + 1  # swept, nothing dropped
    clock.advance(1.0)  # all refilled
    for i in range(MIN_SWEEP):
        b.charge(Connection(), f"again{i}", 10)
    # the sweep at twice the size dropped every bucket that had refilled
    assert b.users() < MIN_SWEEP + 10


def test_no_limit():
    clock = Clock()
    b = budget(clock, rate=0, user_rate=0)
    for _ in range(100):
        b.charge(Connection(), "alice", 10**6)
    off = ByteBudget.from_config(NodeConfig(rate_limit=0), clock)
    assert not off.enabled
    on = ByteBudget.from_config(NodeConfig(), clock)
    assert on.rate == 16384 and on.user_rate == 32768


@pytest_twisted.ensureDeferred
async def test_the_actions_charge_every_request_before_its_action():
    clock = Clock()
    config = NodeConfig(rate_bytes=100, rate_bytes_burst=200, user_rate_bytes=0)
    handlers = ClientActions({}, ByteBudget.from_config(config, clock))
    connection = Connection()
    frame = b'{"id": 7, "action": "nonsense", "data": {"pad": "' + b"x" * 140 + b'"}}'
    request = codec.decode(frame)
    assert request.size == len(frame)
    with pytest.raises(ProtocolError) as caught:  # the unknown action, after its bytes were charged
        await handlers.handle(connection, request)
    assert caught.value.code == 400
    with pytest.raises(ProtocolError) as caught:
        await handlers.handle(connection, codec.decode(frame))
    assert caught.value.code == 429
    clock.advance(2.0)
    with pytest.raises(ProtocolError) as caught:
        await handlers.handle(connection, codec.decode(frame))
    assert caught.value.code == 400


def test_options():
    options = Options()
    options.parseOptions(["--cluster-secret", "s"])
    config = options.config()
    assert (config.rate_bytes, config.rate_bytes_burst) == (16384, 65536)
    assert (config.user_rate_bytes, config.user_rate_bytes_burst) == (32768, 131072)
    options = Options()
    options.parseOptions(["--cluster-secret", "s", "--rate-bytes", "0", "--user-rate-bytes", "1000",
                          "--user-rate-bytes-burst", "5000"])
    assert options.config().rate_bytes == 0 and options.config().user_rate_bytes_burst == 5000
    for bad in (["--rate-bytes", "-1"], ["--user-rate-bytes-burst", "0"]):
        with pytest.raises(usage.UsageError):
            Options().parseOptions(["--cluster-secret", "s", *bad])
