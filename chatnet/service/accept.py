"""Accepting chat messages: their seqs, their history entries and their word
counts in one Redis round trip for all the messages of a reactor turn.

The three used to be three scripts (``NEXT_SEQ``, ``PUSH_HISTORY``, the
popular words' ``ADD``), then one script per message; each Redis call costs
the node a command, a reply, its Deferreds and an I/O event, which made them
the largest part of a message's CPU cost. ``ACCEPT`` does all three for
every message given to L{Acceptor.accept} during a turn (sent at the end of
the turn, L{chatnet.protocols.turnwrites.at_turn_end}), atomically and in
the order they came, so the history list is also always in seq order. The
history entry needs the seq inside its JSON: the codec builds the frame
data up to the seq (:func:`chatnet.protocols.codec.chat_data_head`), the
script appends the number and the closing brace, as
:func:`chatnet.protocols.codec.chat_data` does with the seq it answers.
The message given is not changed: its seq, node set and frame data come
back as a :class:`Stamp`.

For a room message the script also answers the room's node set
(:mod:`chatnet.service.roomfeed`): the nodes to send it to, read in the same
step as the seq, so a node that added itself before gets every later seq.

The script also notes, per accepting node, which channels it accepted into
and when (``chatnet:accepted:<nodeId>``, :mod:`chatnet.service.rescue`), so that the
leader can store again what a node acked and may not have written to
MongoDB when it died. The entries older than the rescue window are trimmed
at most once a second (when the node's second changes), which is also when
the key's expiry is renewed and the node is added to the set of accepting
nodes; the other calls only add one ZADD per message.

A room post can carry the version of its sender's room state that its
checks were made against (:mod:`chatnet.service.roomstate`): the script
compares it with ``chatnet:room-state:<username>`` and, if the state
changed since, leaves the message alone and answers -2
(:class:`StaleRoomState`); one GET in the script, no round trip more.

If Redis lost a channel's counter (restarted empty), or the counter is not
trusted (not in ``chatnet:seq-trusted``: the data set changed under it, a
Sentinel failover, see :mod:`chatnet.service.sequences`), the script leaves that
message alone and answers -1 for it; the counter is restored as before
(:meth:`chatnet.service.sequences.Sequences.restore`) and the message is given to
the script again.
"""
from typing import NamedTuple

from twisted.internet import defer
from twisted.python.failure import Failure

from chatnet.errors import StoreUnavailable
from chatnet.protocols.codec import chat_data, chat_data_head
from chatnet.protocols.turnwrites import at_turn_end
from chatnet.service.popular import BUCKET_PREFIX, BUCKETS, RANKING, count_words_lua, joined
from chatnet.service.rescue import ACCEPTING, WINDOW, accepted_key
from chatnet.stores.redis import SEQ_TRUSTED, history_key, room_nodes_key, room_state_key, seq_key

# KEYS: ranking, buckets, bucket of this second, accepted channels of this
#       node, accepting nodes, trusted counters; then for each message: its
#       seq, its history, for a room message the room's node set, and for a
#       message whose sender's room state is checked that state's version
# ARGV: history length, this second, trim: drop the accepted channels this
#       many seconds old or older (0: not now), accepted expiry (s), node id;
#       then for each message: its frame data up to the seq, its history
#       expiry (s, 0: none), its channel, its words (chatnet.service.popular.joined),
#       1 for a room message (else 0), "" or "=" and the version of the
#       sender's room state the session knows (chatnet.service.roomstate)
# Answers, for each message in turn, {seq, the room's nodes...}, -1 (no
# trusted counter) or -2 (the sender's room state is not that version).
ACCEPT = (
    """
local sec = ARGV[2]
if tonumber(ARGV[3]) > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', tonumber(sec) - tonumber(ARGV[3]))
  redis.call('EXPIRE', KEYS[4], ARGV[4])
  redis.call('SADD', KEYS[5], ARGV[5])
end
local keep = -tonumber(ARGV[1])
local answers = {}
local k = 7
for a = 6, #ARGV, 6 do
  local seq_key, history = KEYS[k], KEYS[k + 1]
  local nodes_key = false
  k = k + 2
  if ARGV[a + 4] == '1' then
    nodes_key = KEYS[k]
    k = k + 1
  end
  local stale = false
  if ARGV[a + 5] ~= '' then
    stale = '=' .. (redis.call('GET', KEYS[k]) or '') ~= ARGV[a + 5]
    k = k + 1
  end
  local channel = ARGV[a + 2]
  if stale then
    answers[#answers + 1] = -2
  elseif redis.call('SISMEMBER', KEYS[6], channel) == 0 or redis.call('EXISTS', seq_key) == 0 then
    answers[#answers + 1] = -1
  else
    local seq = redis.call('INCR', seq_key)
    redis.call('RPUSH', history, ARGV[a] .. string.format('%d', seq) .. '}')
    redis.call('LTRIM', history, keep, -1)
    if tonumber(ARGV[a + 1]) > 0 then redis.call('EXPIRE', history, ARGV[a + 1]) end
    redis.call('ZADD', KEYS[4], sec, channel)
"""
    + count_words_lua(ranking="KEYS[1]", buckets="KEYS[2]", bucket="KEYS[3]", second="sec", words="ARGV[a + 3]")
    + """
    if nodes_key then
      local nodes = redis.call('SMEMBERS', nodes_key)
      table.insert(nodes, 1, seq)
      answers[#answers + 1] = nodes
    else
      answers[#answers + 1] = {seq}
    end
  end
end
return answers
"""
)

# messages per call at most (a call blocks Redis while it runs)
MOST = 50

# a message answered -1 this many times in a row is refused (503)
TRIES = 4


class StaleRoomState(Exception):
    """The sender's room membership and moderation state changed since the
    version its session knows (L{chatnet.service.roomstate}): nothing was
    accepted; read the state again, check again, and try again."""


class Stamp(NamedTuple):
    """What accepting gave a message: its C{seq}, for a room message the
    C{nodes} with members of the room (read with the seq), and its chat
    frame C{data} (JSON bytes, with the seq)."""

    seq: int
    nodes: tuple
    data: bytes


def frame_data_head(message):
    """The JSON of C{message}'s chat frame data up to its seq value
    (L{chatnet.protocols.codec.chat_data_head})."""
    data = message.frame_data()
    del data["seq"]
    return chat_data_head(data)


class _Waiting:
    """A message given to L{Acceptor.accept}, not answered yet."""

    __slots__ = ("message", "words", "head", "d", "tries", "version")

    def __init__(self, message, words, head, d, version=None):
        self.message = message
        self.words = words
        self.head = head
        self.d = d
        self.tries = 0
        self.version = version


class Acceptor:
    """@param redis: the L{chatnet.stores.redis.RedisStore}.
    @param sequences: the L{chatnet.service.sequences.Sequences} (restores a lost
        counter).
    @param history: the L{chatnet.service.history.History} (its length and
        expiries).
    @param popular: the L{chatnet.service.popular.PopularWords} (its clock's
        second).
    @param node_id: this node's id.
    @param reactor: the reactor whose turns gather the messages.
    @param window: the rescue window (s), L{chatnet.service.rescue}.
    """

    def __init__(self, redis, sequences, history, popular, node_id, reactor, window=WINDOW, most=MOST):
        self.redis = redis
        self.sequences = sequences
        self.history = history
        self.popular = popular
        self.node_id = node_id
        self.reactor = reactor
        self.window = window
        self.most = most
        self._accepted = accepted_key(node_id)
        self._trimmed = None  # the second of the last trim
        self._waiting = []  # the _Waiting of this turn

    def accept(self, message, words, version=None):
        """Give C{message} its seq, append it to its channel's history and
        count C{words}: a Deferred of its L{Stamp} (seq, for a room message
        the room's node set, chat frame data); C{message} is left as it
        was. The messages of a turn go in one Redis call, in the order
        given.

        Fails with L{StoreUnavailable} if Redis did not answer; nothing was
        accepted then. With C{version} (a string: the version of the
        sender's room state that the checks before were made against), in
        the same step: fails with L{StaleRoomState}, nothing accepted, if
        the sender's room state has another version now.
        """
        d = defer.Deferred()
        self._add(_Waiting(message, joined(words), frame_data_head(message), d, version))
        return d

    def _add(self, waiting):
        if not self._waiting:
            at_turn_end(self.reactor, self._send)
        self._waiting.append(waiting)

    def _send(self):
        waiting, self._waiting = self._waiting, []
        for i in range(0, len(waiting), self.most):
            self._call(waiting[i:i + self.most])

    def _call(self, batch):
        sec = self.popular.second()
        trim = 0
        if sec != self._trimmed:
            self._trimmed = sec
            trim = self.window + 1
        keys = [RANKING, BUCKETS, f"{BUCKET_PREFIX}{sec}", self._accepted, ACCEPTING, SEQ_TRUSTED]
        args = [self.history.keep, sec, trim, self.window * 2 + 2, self.node_id]
        ttl = self.history.ttl
        for waiting in batch:
            message = waiting.message
            channel = message.channel
            keys.append(seq_key(channel))
            keys.append(history_key(channel))
            if message.roomName:
                keys.append(room_nodes_key(message.roomName))
            if waiting.version is not None:
                keys.append(room_state_key(message.sender))
            args += (waiting.head, ttl(channel), channel, waiting.words, 1 if message.roomName else 0,
                     "" if waiting.version is None else "=" + waiting.version)
        self.redis.eval(ACCEPT, keys, args).addCallbacks(
            self._answered, self._failed, callbackArgs=(batch,), errbackArgs=(batch,))

    def _answered(self, answers, batch):
        if not isinstance(answers, list) or len(answers) != len(batch):
            self._failed(Failure(StoreUnavailable("redis")), batch)
            return
        again = []
        for waiting, answer in zip(batch, answers):
            if answer == -2:
                waiting.d.errback(StaleRoomState(waiting.message.sender))
                continue
            if answer == -1:
                waiting.tries += 1
                if waiting.tries >= TRIES:
                    waiting.d.errback(StoreUnavailable("redis"))
                else:
                    again.append(waiting)
                continue
            seq = int(answer[0])
            waiting.d.callback(Stamp(seq, tuple(answer[1:]), chat_data(waiting.head, seq)))
        channels = {}
        for waiting in again:
            channels.setdefault(waiting.message.channel, []).append(waiting)
        for channel, those in channels.items():
            defer.ensureDeferred(self._restore(channel, those))

    @staticmethod
    def _failed(failure, batch):
        for waiting in batch:
            waiting.d.errback(failure)

    async def _restore(self, channel, those):
        """Restore the counter of C{channel} and give its messages C{those}
        to the script again."""
        try:
            await self.sequences.restore(channel)
        except Exception:
            self._failed(Failure(), those)
            return
        for waiting in those:
            self._add(waiting)
