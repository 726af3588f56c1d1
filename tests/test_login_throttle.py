"""Back-off of failed logins on a real Redis, time driven by a fake Clock."""
import pytest
import pytest_twisted
from twisted.internet.task import Clock

from chatnet.errors import ProtocolError
from chatnet.limits.login_throttle import LoginThrottle, address_key, user_key


def make(redis, **kwargs):
    clock = Clock()
    clock.advance(1_000_000)
    return LoginThrottle(redis, clock, **kwargs), clock


async def refused(throttle, username, address):
    """The seconds a 429 tells to wait, or None when the login may go on."""
    try:
        await throttle.check(username, address)
    except ProtocolError as e:
        assert e.code == 429 and e.ext == "login", e
        return int(e.message.split("try again in ")[1].split()[0])
    return None


@pytest_twisted.ensureDeferred
async def test_back_off_doubles_after_five_failures_up_to_the_cap(redis):
    throttle, clock = make(redis, cap=10.0)
    for _ in range(4):
        assert await throttle.failed("ann", "10.0.0.1") == 0
        assert await refused(throttle, "ann", "10.0.0.1") is None
    waits = []
    for _ in range(6):
        waits.append(await throttle.failed("ann", "10.0.0.1"))
        assert await refused(throttle, "ann", "10.0.0.1") == waits[-1]
        clock.advance(waits[-1])
        assert await refused(throttle, "ann", "10.0.0.1") is None
    assert waits == [1, 2, 4, 8, 10, 10]


@pytest_twisted.ensureDeferred
async def test_lock_out_tells_when_to_retry(redis):
    throttle, clock = make(redis, user_after=1, base=4.0)
    await throttle.failed("ann", "10.0.0.1")
    clock.advance(1.5)
    assert await refused(throttle, "ann", "10.0.0.1") == 3  # 2.5 s, rounded up


@pytest_twisted.ensureDeferred
async def test_success_resets_the_user_only(redis):
    throttle, clock = make(redis, user_after=2, address_after=3)
    await throttle.failed("ann", "10.0.0.1")
    await throttle.succeeded("ann")
    assert await throttle.failed("ann", "10.0.0.1") == 0  # 1 failure of ann, 2 of the address
    assert await throttle.failed("bob", "10.0.0.1") == 1  # the address's third
    assert await refused(throttle, "carl", "10.0.0.1") == 1
    assert await refused(throttle, "carl", "10.0.0.2") is None
    clock.advance(1)
    assert await refused(throttle, "carl", "10.0.0.1") is None


@pytest_twisted.ensureDeferred
async def test_one_user_from_many_addresses_and_many_users_from_one(redis):
    throttle, _ = make(redis, user_after=3, address_after=5)
    for i in range(3):
        await throttle.failed("ann", f"10.0.0.{i}")
    assert await refused(throttle, "ann", "10.0.9.9") == 1
    assert await refused(throttle, "bob", "10.0.0.1") is None
    for i in range(5):
        await throttle.failed(f"user{i}", "10.0.1.1")
    assert await refused(throttle, "zed", "10.0.1.1") == 1


@pytest_twisted.ensureDeferred
async def test_state_is_shared_and_expires(redis):
    one, clock = make(redis, user_after=1)
    two = LoginThrottle(redis, clock, user_after=1)  # another node, same Redis
    await one.failed("ann", "10.0.0.1")
    assert await refused(two, "ann", "10.0.0.2") == 1
    for key in (user_key("ann"), address_key("10.0.0.1")):
        ttl = int(await redis.call("ttl", key))
        assert 0 < ttl <= 901


@pytest.mark.parametrize("name", ["", "a:b", "x" * 128, "ü\n*"])
@pytest_twisted.ensureDeferred
async def test_odd_names_are_plain_keys(redis, name):
    throttle, _ = make(redis, user_after=1)
    await throttle.failed(name, "")
    assert await refused(throttle, name, "::1") == 1
