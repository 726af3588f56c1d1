"""txredisapi: a lighter command path for its protocol and its pool.

L{FastRedisProtocol} and L{FastRedisFactory} are base classes for a Redis
client that sends no MULTI and does not pipeline (chatnet's). They use these
parts of txredisapi, none of them in its documentation:

- L{txredisapi.BaseRedisProtocol.execute_command} is replaced whole: each
  command gets one Deferred in a queue of this connection, and one timer per
  connection bounds the wait of the oldest command. txredisapi's own path
  makes three Deferreds (its C{ReplyQueue}'s and two of its own) and starts a
  timer per command. Its transaction and pipelining states (C{inMulti},
  C{pipelining}, C{post_proc}) are not kept: C{multi()} and C{pipeline()} are
  not for this protocol.
- C{HiredisProtocol._reader}, the connection's C{hiredis.Reader}: the replies
  are read from it and handed to the waiting Deferreds in turn, in place of
  txredisapi's C{replyReceived} and C{ReplyQueue}.
- C{tryConvertData}, C{charset}, C{errors}, C{replyTimeout}, C{connected}:
  the protocol's reply conversion (C{convertNumbers}, the charset), its
  request encoding and its state, so that the values handed up and the bytes
  sent are txredisapi's own.
- C{BaseRedisProtocol._build_command} is overridden by L{build_command}: the
  same RESP bytes in a fraction of the time for the usual arguments (bytes,
  str, int), with the short strings' encodings kept; every other argument
  goes to C{_encode_value}, so its rules and errors are txredisapi's.
- C{script_hashes} and C{_eval}: txredisapi's script cache (EVALSHA once the
  server knows the script, EVAL after a NOSCRIPT), with the script's bytes
  and SHA-1 computed once per script instead of on every call.
- C{BaseRedisProtocol.connectionLost} is chained to: it clears
  C{script_hashes} and marks the connection unusable.
- C{RedisFactory.connectionQueue.pending}, the connections ready for a
  command: L{FastRedisFactory.ready} takes them in turn, where the pool's
  handler picks one at random through a generator and two Deferreds per
  command.
- C{RedisFactory.pool}, every connection of the pool, ready or not:
  L{FastRedisFactory.drop_connections} closes them all (each slot then
  connects again), which the pool offers only with C{disconnect}, for good.

The library is pinned to L{PIN} (setup.cfg); ``tests/test_adapters_txredisapi.py``
runs the same requests, replies and timeouts through txredisapi's own
protocol and through these classes and requires the same bytes, values,
errors and end of the connection.
"""
import collections
import hashlib

import txredisapi
from twisted.internet import defer, reactor as default_reactor
from twisted.logger import Logger

log = Logger()

#: the releases the tests of this module cover
PIN = "txredisapi~=1.6.0"

# script -> (its bytes, their SHA-1): a client runs a few scripts, again and
# again
_SCRIPTS = {}

# short strings -> their RESP bulk string (UTF-8, strict): most arguments of
# the hot calls (key names, script hashes, node ids, channels) come again and
# again
_ENCODED = {}
_ENCODED_LENGTH = 100
_ENCODED_SIZE = 10_000


class FastRedisProtocol(txredisapi.HiredisProtocol):
    """txredisapi's protocol with a lighter path for each command: the
    replies are parsed by hiredis and handed to a queue of Deferreds, one
    per command, and one timer per connection bounds the wait of the oldest
    command: when it is C{replyTimeout} seconds old with no answer, every
    waiting command fails with L{txredisapi.TimeoutError} and the connection
    is aborted, as txredisapi's own does.

    The timer runs on the factory's C{clock} (L{FastRedisFactory})."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._waiting = collections.deque()  # (deadline, Deferred), oldest first
        self._watchdog = None

    def seconds(self):
        """The time now, on the factory's clock."""
        return self.factory.clock.seconds()

    def describe_peer(self):
        """C{host:port} of the server, for the log."""
        try:
            peer = self.transport.getPeer()
            return f"{peer.host}:{peer.port}"
        except Exception:
            return "redis"

    def execute_command(self, *args, **kwargs):
        """Send the command C{args}.

        @param kwargs: C{post_proc}, a function of the reply, as txredisapi's
            commands give it; the others are ignored.
        @return: a Deferred that fires with the reply.
        @raise txredisapi.ConnectionError: the connection is not up.
        """
        if not self.connected:
            raise txredisapi.ConnectionError("Not connected")
        self.transport.write(self.build_command(*args))
        d = defer.Deferred()
        if self.replyTimeout:
            self._waiting.append((self.seconds() + self.replyTimeout, d))
            if self._watchdog is None:
                self._watchdog = self.factory.clock.callLater(self.replyTimeout, self._check_oldest)
        else:
            self._waiting.append((None, d))
        post_proc = kwargs.get("post_proc")
        if post_proc is not None:
            d.addCallback(post_proc)
        return d

    def dataReceived(self, data):
        reader = self._reader
        reader.feed(data)
        reply = reader.gets()
        while reply is not False:
            if not self._waiting:
                log.warn("redis: an answer to no command from {peer}; dropping the connection",
                         peer=self.describe_peer())
                self.transport.abortConnection()
                return
            d = self._waiting.popleft()[1]
            if isinstance(reply, Exception):
                d.errback(reply)
            else:
                d.callback(self.tryConvertData(reply))
            reply = reader.gets()

    def _check_oldest(self):
        self._watchdog = None
        if not self._waiting:
            return
        left = self._waiting[0][0] - self.seconds()
        if left > 0:
            self._watchdog = self.factory.clock.callLater(left, self._check_oldest)
            return
        self._fail_all(txredisapi.TimeoutError(f"Not received Redis response in {self.replyTimeout} seconds"))
        if self.transport is not None:
            self.transport.abortConnection()

    def _fail_all(self, why):
        """Fail every waiting command with C{why}."""
        waiting, self._waiting = self._waiting, collections.deque()
        for _, d in waiting:
            d.errback(why)

    def connectionLost(self, why):
        if self._watchdog is not None and self._watchdog.active():
            self._watchdog.cancel()
        self._watchdog = None
        super().connectionLost(why)
        self._fail_all(txredisapi.ConnectionError("Lost connection"))

    def build_command(self, *args):
        """The RESP request of the command C{args}: txredisapi's bytes, in a
        fraction of its time for the usual arguments (bytes, str, int);
        anything else is encoded by txredisapi's own rules (and its errors).

        @raise txredisapi.InvalidData: a string the charset cannot encode.
        """
        parts = [b"*%d\r\n" % len(args)]
        append = parts.append
        charset, errors = self.charset, self.errors
        # (the kept encodings are those of UTF-8 with strict errors)
        encoded = _ENCODED if charset == "utf-8" and errors == "strict" else None
        for arg in args:
            kind = type(arg)
            if kind is bytes:
                value = arg
            elif kind is str:
                if encoded is not None:
                    part = encoded.get(arg)
                    if part is not None:
                        append(part)
                        continue
                try:
                    value = arg.encode(charset, errors)
                except (TypeError, UnicodeError):
                    value = self._encode_value(arg)
            elif kind is int:
                value = b"%d" % arg
            else:
                value = self._encode_value(arg)
            part = b"$%d\r\n%s\r\n" % (len(value), value)
            if kind is str and encoded is not None and len(arg) <= _ENCODED_LENGTH:
                if len(encoded) >= _ENCODED_SIZE:
                    encoded.clear()
                encoded[arg] = part
            append(part)
        return b"".join(parts)

    def _build_command(self, *args, **kwargs):
        # txredisapi's name for it: any of its own paths that builds a
        # request gets the same bytes (its options do not change them)
        return self.build_command(*args)

    def eval(self, script, keys=(), args=()):
        """txredisapi's (EVALSHA once the script is known, EVAL after a
        NOSCRIPT), with the script's bytes and SHA-1 computed once per
        script instead of once per call."""
        cached = _SCRIPTS.get(script)
        if cached is None:
            body = script.encode() if isinstance(script, str) else script
            cached = _SCRIPTS[script] = (body, hashlib.sha1(body).hexdigest())
        body, sha = cached
        if sha in self.script_hashes:
            d = self.execute_command("EVALSHA", sha, len(keys), *keys, *args)
            return d.addErrback(self._no_script, body, sha, keys, args)
        return self._eval(body, sha, keys, args)

    def _no_script(self, failure, body, sha, keys, args):
        """A script the server forgot (restarted, or SCRIPT FLUSH): sent
        whole again."""
        if failure.check(txredisapi.ResponseError) and str(failure.value).startswith("NOSCRIPT"):
            self.script_hashes.discard(sha)
            return self._eval(body, sha, keys, args)
        return failure


class FastRedisFactory(txredisapi.RedisFactory):
    """txredisapi's pool of connections, whose ready connections can be
    used directly (L{ready}) and all dropped at once (L{drop_connections}).

    @ivar clock: the L{IReactorTime<twisted.internet.interfaces.IReactorTime>}
        of the protocols' reply timers.
    """

    protocol = FastRedisProtocol

    def __init__(self, *args, clock=None, **kwargs):
        """
        @param args: those of L{txredisapi.RedisFactory}, and C{kwargs} too.
        @param clock: the clock of the reply timers; the reactor if None.
        """
        super().__init__(*args, **kwargs)
        self.clock = clock or default_reactor
        self._next_ready = -1

    def ready(self):
        """A connection of the pool ready for a command, else None: the
        ready ones in turn (as txredisapi's handler spreads commands, which
        it does by a random pick through a generator and two Deferreds per
        command). One connection for every command was measured slower with
        many rooms: the replies of a whole turn then queue in one
        connection's reply parser."""
        pending = self.connectionQueue.pending
        for _ in range(len(pending)):
            self._next_ready = (self._next_ready + 1) % len(pending)
            connection = pending[self._next_ready]
            if connection.connected:
                return connection
        return None

    def drop_connections(self):
        """Close every connection: each slot connects again."""
        for conn in list(self.pool):
            if conn.transport is not None:
                conn.transport.abortConnection()
