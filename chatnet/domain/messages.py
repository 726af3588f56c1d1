"""Chat messages: ids, channels, the frame a recipient gets, the stored document.

A channel is what a seq number counts in: ``room:<roomName>`` for a room,
``dm:<a>\\n<b>`` (the two usernames sorted) for a direct conversation. A
newline cannot be part of a username, so a channel names one pair only.

A message of the server API (C{system}) carries C{"system": true}, which no
client can set; its direct messages belong to the conversation of the
recipient with L{chatnet.domain.names.SYSTEM}, a name no user can have, whatever
sender name the application gave them.
"""
import itertools
import os
import time

from bson import ObjectId

from chatnet.domain.names import SYSTEM


def room_channel(room):
    return "room:" + room


def dm_channel(a, b):
    if b < a:
        a, b = b, a
    return f"dm:{a}\n{b}"


def new_message_id():
    return str(new_object_id())


def new_object_id():
    """A new ObjectId, laid out as MongoDB's (seconds, 5 random bytes of
    this process, a counter), made without bson's lock and per-call
    process check: a third of the cost of C{ObjectId()}."""
    raw = int(time.time()).to_bytes(4, "big") + _process[0] + (next(_process[1]) & 0xFFFFFF).to_bytes(3, "big")
    return ObjectId(raw)


def _new_process():
    """The random part and the counter of this process (again after a
    fork, so that a child never repeats its parent's ids)."""
    _process[:] = [os.urandom(5), itertools.count(int.from_bytes(os.urandom(3), "big"))]


_process = []
_new_process()
os.register_at_fork(after_in_child=_new_process)


def now_ms(clock=None):
    return int((clock.seconds() if clock is not None else time.time()) * 1000)


class ChatMessage:
    """One accepted message, as routed between nodes and stored."""

    __slots__ = ("msgId", "sender", "to", "roomName", "message", "ts", "format", "seq", "channel", "_id",
                 "system")

    def __init__(self, msgId, sender, message, ts, format="text", to="", roomName="", seq=0, system=False):
        self.msgId = msgId
        self.sender = sender
        self.to = to
        self.roomName = roomName
        self.message = message
        self.ts = ts
        self.format = format
        self.seq = seq
        self.system = system
        self.channel = room_channel(roomName) if roomName else dm_channel(SYSTEM if system else sender, to)
        self._id = None  # the ObjectId of msgId, once made

    @classmethod
    def new(cls, sender, message, ts, format="text", to="", roomName="", system=False):
        """A message with a new id."""
        oid = new_object_id()
        made = cls(str(oid), sender, message, ts, format, to, roomName, system=system)
        made._id = oid
        return made

    def with_seq(self, seq):
        """This message as accepted with C{seq}: a new message (this one is
        left as it was)."""
        made = ChatMessage(self.msgId, self.sender, self.message, self.ts, self.format, self.to, self.roomName, seq,
                           self.system)
        made._id = self._id
        return made

    @property
    def is_room(self):
        return bool(self.roomName)

    def frame_data(self):
        """The C{data} of the C{chat} frame recipients get."""
        data = {
            "from": self.sender,
            "roomName": self.roomName,
            "message": self.message,
            "ts": self.ts,
            "format": self.format,
            "msgId": self.msgId,
            "seq": self.seq,
        }
        if self.system:
            data["system"] = True
        return data

    def document(self):
        """The MongoDB document (its C{_id} is the message id)."""
        doc = {
            "_id": self._id or ObjectId(self.msgId),
            "channel": self.channel,
            "roomName": self.roomName,
            "from": self.sender,
            "to": self.to,
            "message": self.message,
            "ts": self.ts,
            "format": self.format,
            "seq": self.seq,
        }
        if self.system:
            doc["system"] = True
        return doc

    @classmethod
    def from_document(cls, doc):
        return cls(
            str(doc["_id"]), doc.get("from", ""), doc.get("message", ""), doc.get("ts", 0),
            doc.get("format", "text"), doc.get("to", ""), doc.get("roomName", ""), doc.get("seq", 0),
            system=doc.get("system") is True,
        )


class MessageRevision:
    """An edit or a deletion of a stored message, as told to event
    listeners (C{message_edited}, C{message_deleted}).

    @ivar channel: the message's channel; C{roomName} its room (C{""} in a
        conversation), C{to} the other user of a conversation (C{""} in a
        room), C{sender} its author.
    @ivar by: who edited or deleted it; C{at}: when (ms since the epoch).
    @ivar message: the new (masked) text of an edit; None for a deletion.
    """

    __slots__ = ("msgId", "channel", "roomName", "sender", "to", "seq", "by", "at", "message")

    def __init__(self, msgId, channel, roomName, sender, to, seq, by, at, message=None):
        self.msgId = msgId
        self.channel = channel
        self.roomName = roomName
        self.sender = sender
        self.to = to
        self.seq = seq
        self.by = by
        self.at = at
        self.message = message

    @property
    def deleted(self):
        return self.message is None
