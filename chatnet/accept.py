"""Accepting a chat message: its seq, its history entry and its word counts in
one Redis round trip.

The three used to be three scripts (``NEXT_SEQ``, ``PUSH_HISTORY``, the
popular words' ``ADD``); each Redis call costs the node a command, a reply,
a timeout timer and a few Deferreds, which made them the largest part of a
message's CPU cost. ``ACCEPT`` does all three atomically, so the history list
is also always in seq order. The history entry needs the seq inside its JSON:
the caller sends the frame data without it (``...,"seq":``) and the script
appends the number and the closing brace.

For a room message the script also answers the room's node set
(:mod:`chatnet.service.roomfeed`): the nodes to send it to, read in the same
step as the seq, so a node that added itself before gets every later seq.

The script also notes, per accepting node, which channels it accepted into
and when (``chatnet:accepted:<nodeId>``, :mod:`chatnet.rescue`), so that the
leader can store again what a node acked and may not have written to
MongoDB when it died. The entries older than the rescue window are trimmed
at most once a second (when the node's second changes), which is also when
the key's expiry is renewed and the node is added to the set of accepting
nodes; the other calls only add one ZADD.

If Redis lost the channel's counter (restarted empty), or the counter is not
trusted (not in ``chatnet:seq-trusted``: the data set changed under it, a
Sentinel failover, see :mod:`chatnet.sequences`), the script changes nothing
and answers -1; the counter is restored as before
(:meth:`chatnet.sequences.Sequences.restore`) and the script runs again.
"""
import orjson

from chatnet.errors import StoreUnavailable
from chatnet.popular import BUCKET_PREFIX, BUCKETS, RANKING, count_words_lua, joined
from chatnet.rescue import ACCEPTING, WINDOW, accepted_key
from chatnet.stores.redis import SEQ_TRUSTED, history_key, room_nodes_key, seq_key

# KEYS: seq, history, ranking, buckets, bucket of this second, accepted
#       channels of this node, accepting nodes, trusted counters, the room's
#       node set (a room's message; absent for a direct one)
# ARGV: frame data up to the seq, history length, history expiry (s, 0: none),
#       this second, channel, trim: drop the accepted channels this many
#       seconds old or older (0: not now), accepted expiry (s), node id,
#       the words (chatnet.popular.joined)
# Answers {seq, the room's nodes...}, or -1.
ACCEPT = (
    """
if redis.call('SISMEMBER', KEYS[8], ARGV[5]) == 0 or redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local seq = redis.call('INCR', KEYS[1])
redis.call('RPUSH', KEYS[2], ARGV[1] .. string.format('%d', seq) .. '}')
redis.call('LTRIM', KEYS[2], -tonumber(ARGV[2]), -1)
if tonumber(ARGV[3]) > 0 then redis.call('EXPIRE', KEYS[2], ARGV[3]) end
redis.call('ZADD', KEYS[6], ARGV[4], ARGV[5])
if tonumber(ARGV[6]) > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[6], '-inf', tonumber(ARGV[4]) - tonumber(ARGV[6]))
  redis.call('EXPIRE', KEYS[6], ARGV[7])
  redis.call('SADD', KEYS[7], ARGV[8])
end
"""
    + count_words_lua(ranking=3, buckets=4, bucket=5, second=4, first_word=9)
    + """
if #KEYS < 9 then return {seq} end
local nodes = redis.call('SMEMBERS', KEYS[9])
table.insert(nodes, 1, seq)
return nodes
"""
)


def frame_data_head(message):
    """The JSON of C{message}'s chat frame data up to its seq value:
    C{head + b"%d}" % seq} is C{orjson.dumps(message.frame_data())}."""
    data = message.frame_data()
    del data["seq"]
    return orjson.dumps(data)[:-1] + b',"seq":'


class Acceptor:
    def __init__(self, redis, sequences, history, popular, node_id, window=WINDOW):
        self.redis = redis
        self.sequences = sequences
        self.history = history
        self.popular = popular
        self.node_id = node_id
        self.window = window
        self._accepted = accepted_key(node_id)
        self._trimmed = None  # the second of the last trim

    async def accept(self, message, words):
        """Give C{message} its seq (set on it), append it to its channel's
        history and count C{words}; returns the chat frame data (JSON bytes).
        A room message also gets the room's node set (C{message.nodes}).

        @raise StoreUnavailable: Redis did not answer; nothing was accepted.
        """
        head = frame_data_head(message)
        sec = self.popular.second()
        keys = [
            seq_key(message.channel),
            history_key(message.channel),
            RANKING,
            BUCKETS,
            f"{BUCKET_PREFIX}{sec}",
            self._accepted,
            ACCEPTING,
            SEQ_TRUSTED,
        ]
        if message.roomName:
            keys.append(room_nodes_key(message.roomName))
        trim = 0
        if sec != self._trimmed:
            self._trimmed = sec
            trim = self.window + 1
        args = [head, self.history.keep, self.history.ttl(message.channel), sec,
                message.channel, trim, self.window * 2 + 2, self.node_id, joined(words)]
        answer = await self.redis.eval(ACCEPT, keys, args)
        tries = 0
        while answer == -1:
            tries += 1
            if tries > 3:
                raise StoreUnavailable("redis")
            await self.sequences.restore(message.channel)
            answer = await self.redis.eval(ACCEPT, keys, args)
        seq = message.seq = int(answer[0])
        message.nodes = answer[1:]
        return head + b"%d}" % seq
