"""Which rooms' words the public ranking counts (chatnet.service.public_rooms),
on a real SecantusDB with a fake clock: automatic and public rooms yes,
private rooms, unknown rooms and direct messages no; an answer is kept for
its time only, and for a bounded number of rooms."""
import pytest_twisted

from chatnet.service.public_rooms import TTL, PublicRooms
from tests.test_handlers_inprocess import mongo_url, node  # noqa: F401  (fixtures)


@pytest_twisted.ensureDeferred
async def test_public_rooms_only(node):  # noqa: F811
    public = PublicRooms(node.mongo, node.clock)
    assert await node.mongo.create_room("open", "user1", False)
    assert await node.mongo.create_room("closed", "user1", True)
    assert [await public.counted(r) for r in ("world", "alliance:red", "room1", "open", "closed", "gone", "")] \
        == [True, True, True, True, False, False, False]


@pytest_twisted.ensureDeferred
async def test_an_answer_is_kept_for_its_time_only(node):  # noqa: F811
    public = PublicRooms(node.mongo, node.clock)
    assert await node.mongo.create_room("vault", "user1", False)
    assert await public.counted("vault")
    # deleted, and made again private under its name
    await node.mongo.delete_room("vault")
    assert await node.mongo.create_room("vault", "user2", True)
    node.clock.advance(TTL / 2)
    assert await public.counted("vault")  # known for TTL seconds
    node.clock.advance(TTL / 2 + 0.001)
    assert not await public.counted("vault")


@pytest_twisted.ensureDeferred
async def test_at_most_so_many_rooms_are_kept(node):  # noqa: F811
    public = PublicRooms(node.mongo, node.clock, most=3)
    for i in range(10):
        await public.counted(f"room{i}")
        assert len(public) <= 3
    assert len(public) == 3
