"""Messages a node acked but had not stored in MongoDB yet when it died.

A node acks a message once it is numbered and in the Redis history of its
channel (one Redis call), and writes it to MongoDB a few milliseconds later
(:mod:`chatnet.stores.message_log`); a node killed in between takes those
messages with it. The leader, when a node leaves the cluster, writes to
MongoDB again every message of the Redis histories younger than ``window``
seconds (by its message id's time): the message id is the document ``_id``,
so what is already stored is skipped.
"""
import orjson
from bson import ObjectId
from twisted.logger import Logger

from chatnet.messages import ChatMessage
from chatnet.stores.redis import history_key

log = Logger()

HISTORY_PREFIX = history_key("")


def document(channel, data):
    """The MongoDB document of history entry C{data} of C{channel}."""
    to = ""
    if channel.startswith("dm:"):
        a, _, b = channel[3:].partition("\n")
        to = b if data.get("from") == a else a
    message = ChatMessage(
        data["msgId"], data.get("from", ""), data.get("message", ""), data.get("ts", 0),
        data.get("format", "text"), to, data.get("roomName", ""), data.get("seq", 0),
    )
    doc = message.document()
    doc["channel"] = channel
    return doc


async def rescue_recent(redis, mongo, now, window=60.0, batch=500):
    """Store every history entry younger than C{window} seconds; returns
    how many were looked at."""
    cutoff = now - window
    cursor, seen, docs = "0", 0, []
    while True:
        cursor, keys = await redis.call("scan", cursor, HISTORY_PREFIX + "*", 500)
        for key in keys:
            if isinstance(key, bytes):
                key = key.decode()
            channel = key[len(HISTORY_PREFIX):]
            for raw in await redis.call("lrange", key, -50, -1) or ():
                try:
                    data = orjson.loads(raw)
                    if ObjectId(data["msgId"]).generation_time.timestamp() < cutoff:
                        continue
                    docs.append(document(channel, data))
                except (ValueError, KeyError, TypeError):
                    continue
        if len(docs) >= batch or (str(cursor) == "0" and docs):
            seen += len(docs)
            await mongo.insert_messages(docs)
            docs = []
        if str(cursor) == "0":
            return seen
