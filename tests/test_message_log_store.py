"""The write-behind message log against a real SecantusDB: a document MongoDB
refuses is set aside in ``dead_letters`` and never holds up the ones behind
it; an unavailable MongoDB is waited for, and nothing is set aside."""
import uuid

import orjson
import pytest_twisted
from twisted.internet import reactor, task

from chatnet.domain.messages import ChatMessage, new_message_id
from chatnet.stores.message_log import MessageLog
from chatnet.stores.mongo import MongoStore

NOW = 1_700_000_000_000


def document(i, channel="room:r", **changes):
    m = ChatMessage(new_message_id(), "ann", f"m{i}", NOW + i, "text", "", "r", seq=i)
    doc = m.document()
    doc.update(changes)
    return doc


def store(mongo_port, timeout=3.0):
    return MongoStore(f"mongodb://127.0.0.1:{mongo_port}/t{uuid.uuid4().hex[:8]}", timeout=timeout).connect()


async def flushed(log, seconds=20):
    await log.flush().addTimeout(seconds, reactor)


@pytest_twisted.ensureDeferred
async def test_refused_documents_are_set_aside_and_the_rest_stored(mongo_server):
    mongo = store(mongo_server.port)
    log = MessageLog(mongo, reactor, batch=50)
    try:
        too_big = document(2, ts=2**63)  # the driver cannot encode it (past chat validation)
        huge = document(7, message="x" * (17 * 1024 * 1024))  # MongoDB refuses it: too large
        docs = [document(1), too_big] + [document(i) for i in range(3, 7)] + [huge] + [document(i) for i in range(8, 60)]
        for doc in docs:
            log.append(doc)
        await flushed(log)
        good = [d["_id"] for d in docs if d is not too_big and d is not huge]
        assert await mongo.db.messages.count_documents({"_id": {"$in": good}}) == len(good)
        assert await mongo.db.messages.count_documents({}) == len(good)
        dead = {d["_id"]: d for d in await mongo.db.dead_letters.find({})}
        assert set(dead) == {too_big["_id"], huge["_id"]}
        entry = dead[too_big["_id"]]
        assert entry["msgId"] == str(too_big["_id"]) and "OverflowError" in entry["reason"]
        assert orjson.loads(entry["document"])["ts"] == str(2**63)
        assert entry["at"] is not None
        assert "10334" in dead[huge["_id"]]["reason"] and dead[huge["_id"]]["truncated"] > 17 * 1024 * 1024
        assert log.dead_lettered == 2 and log.pending == 0 and log.stored == len(good)

        # and the log goes on as usual
        later = [document(i) for i in range(60, 65)]
        for doc in later:
            log.append(doc)
        await flushed(log)
        assert await mongo.db.messages.count_documents({"_id": {"$in": [d["_id"] for d in later]}}) == 5
    finally:
        await mongo.db.command("dropDatabase")
        await mongo.disconnect()


@pytest_twisted.ensureDeferred
async def test_a_lone_bad_document_first_in_the_queue(mongo_server):
    mongo = store(mongo_server.port)
    log = MessageLog(mongo, reactor)
    try:
        bad = document(1, ts=-(2**63) - 1)
        log.append(bad)
        log.append(document(2))
        await flushed(log)
        assert [d["seq"] for d in await mongo.db.messages.find({})] == [2]
        assert [d["_id"] for d in await mongo.db.dead_letters.find({})] == [bad["_id"]]
    finally:
        await mongo.db.command("dropDatabase")
        await mongo.disconnect()


@pytest_twisted.ensureDeferred
async def test_unavailable_mongodb_is_waited_for_not_dead_lettered(services):
    server = services.mongo()
    mongo = store(server.port, timeout=1.0)
    log = MessageLog(mongo, reactor, max_backoff=0.5)
    try:
        log.append(document(1))
        await flushed(log)
        server.stop()
        docs = [document(i) for i in range(2, 12)]
        for doc in docs:
            log.append(doc)
        deadline = reactor.seconds() + 30
        while log.failures < 2:  # it tried, and failed, at least twice
            assert reactor.seconds() < deadline, "the message log never failed to write"
            await task.deferLater(reactor, 0.2, lambda: None)
        assert log.pending == 10 and log.dead_lettered == 0
        server.start()
        await flushed(log, 60)
        assert await mongo.db.messages.count_documents({}) == 11
        assert await mongo.db.dead_letters.count_documents({}) == 0
        assert log.dead_lettered == 0
    finally:
        await mongo.disconnect()


@pytest_twisted.ensureDeferred
async def test_what_the_log_stored_survives_a_killed_mongodb(services):
    """A message leaves the log only once it is in MongoDB's journal: a
    MongoDB killed right after the write keeps it (acknowledged writes
    without the journal are lost with the process)."""
    server = services.mongo()
    mongo = store(server.port)
    log = MessageLog(mongo, reactor, batch=50)
    stored = []
    try:
        for round_ in range(20):
            docs = [document(round_ * 50 + i) for i in range(50)]
            for doc in docs:
                log.append(doc)
            await flushed(log)
            stored += [d["_id"] for d in docs]
        server.kill()
    finally:
        await mongo.disconnect()
    server.start()
    client = server.client()
    try:
        kept = client.get_database(mongo.dbname).messages.count_documents({"_id": {"$in": stored}})
    finally:
        client.close()
    assert kept == len(stored)


@pytest_twisted.ensureDeferred
async def test_the_log_is_full_at_its_bound_and_frees_what_mongodb_took(mongo_server):
    """Each queued document counts 1 KiB plus 4 bytes a character (an upper
    bound of its memory); at C{max_bytes} the log is full, and it is not
    once MongoDB stored them (dead letters included)."""
    from chatnet.stores.message_log import document_bytes

    mongo = store(mongo_server.port)
    size = document_bytes(document(0))
    log = MessageLog(mongo, reactor, max_bytes=10 * size)
    try:
        for i in range(9):
            log.append(document(i))
        assert not log.full and log.bytes == 9 * size
        log.append(document(9))
        assert log.full
        log.append(document(10, ts=2**63))  # appended all the same: the caller checked before accepting
        await flushed(log)
        assert log.bytes == 0 and not log.full and log.pending == 0
        assert log.stored == 10 and log.dead_lettered == 1
    finally:
        await mongo.db.command("dropDatabase")
        await mongo.disconnect()
