"""Twisted's AMP, with short ways for reading boxes and for the calls that
carry the most traffic.

AMP's generic machinery (its box parser, and for each call the argument
and response schemas of the command) made a round trip between two nodes
cost several times the delivery it carries. L{FastAMP} offers the short
ways, as documented methods; the parts of AMP they use, besides its
documented interfaces:

- Reading: L{FastAMP.dataReceived} reads the boxes itself (AMP's wire
  encoding: each key and value after its 2-byte length, an empty key
  ending the box) instead of AMP's C{Int16StringReceiver} state machine
  (C{proto_init}, C{proto_key}, C{proto_value}, C{MAX_LENGTH},
  C{_currentBox}), which costs a method call and a state change per
  string; and it bounds the keys and bytes of a box, which AMP does not.
  A key longer than AMP allows sets C{_keyLengthLimitExceeded}, as AMP's
  C{lengthLimitExceeded} does, so that the calls in flight fail with
  C{TooLong} when the connection is lost. Neither C{StartTLS} nor
  C{ProtocolSwitchCommand} is supported: the reader never hands the
  connection to an C{innerProtocol}.
- Sending: L{FastAMP.emit_box} sends a box as AMP sends its answers
  (C{_safeEmit}: nothing if the connection is gone or switched), and
  L{FastAMP.call_with_box} sends a call whose box is made by the caller
  (C{_sendBoxCommand}, which C{Command._doCommand} uses to send the box
  C{makeArguments} makes).
- Answering: L{FastAMP.answer_box} and L{FastAMP.answer_failure} make the
  answer and the error boxes that AMP's C{_commandReceived} makes of a
  responder's result (C{_answer}; an C{UNKNOWN} error in a C{QuitBox},
  which closes the connection once sent).
- Errors: an error answer to a call sent by L{FastAMP.call_with_box} is
  the exception the command declares for its code, as
  C{Command._doCommand} maps it (C{Command.reverseErrors}, set by AMP's
  command metaclass), or C{UnknownRemoteError}.
- Lists: L{pack} and L{unpack} are the encoding of an C{amp.ListOf} value
  (each item after its 2-byte length), without an C{Argument} object per
  item.

The library is pinned to L{PIN} (setup.cfg); ``tests/test_adapters_amp.py``
runs the same boxes, calls, answers and errors through AMP's own parser and
command machinery and through these short ways and requires the same boxes
read, bytes written, values decoded and errors raised.
"""
import math

from twisted.protocols import amp
from twisted.python.failure import Failure

from chatnet.adapters.twisted import PIN  # noqa: F401  (the releases its tests cover)


def pack(items):
    """An AMP C{ListOf} value of C{items} (bytes, each below 64 KiB): the
    bytes C{amp.ListOf(amp.String()).toString(items)} makes."""
    return b"".join([len(item).to_bytes(2, "big") + item for item in items])


def unpack(value):
    """The items (bytes) of an AMP C{ListOf} value, as
    C{amp.ListOf(amp.String()).fromString} reads them.

    @raise ValueError: if C{value} does not end exactly after its last item
        (AMP reads the items before the cut and ignores the rest).
    """
    items, pos, end = [], 0, len(value)
    while pos < end:
        stop = pos + 2 + int.from_bytes(value[pos:pos + 2], "big")
        if stop > end or pos + 2 > end:
            raise ValueError("truncated list")
        items.append(value[pos + 2:stop])
        pos = stop
    return items


def _declared_error(failure, command):
    """An error answer as AMP's C{callRemote} gives it: the exception
    C{command} declares for its code, C{amp.UnknownRemoteError} for any
    other code."""
    failure.trap(amp.RemoteAmpError)
    error = failure.value
    return Failure(command.reverseErrors.get(error.errorCode, amp.UnknownRemoteError)(error.description))


class FastAMP(amp.AMP):
    """An AMP connection that reads its boxes itself, with bounds, and can
    send and answer calls with boxes made by its subclass.

    What it reads is handed to C{ampBoxReceived} box by box, as AMP does. A
    box past a bound, or a key longer than AMP allows, ends the reading and
    is handed to L{box_refused}.

    @ivar maxBoxKeys: the most keys a box may have, or None: no bound.
    @ivar maxBoxBytes: the most bytes a box may have (its keys and values
        with their lengths, counted as each value is read), or None: no
        bound.
    """

    maxBoxKeys = None
    maxBoxBytes = None

    # the box being read: the bytes not yet read, its pairs so far, a key
    # waiting for its value, its keys and bytes so far
    _unread = b""
    _box = None
    _key = None
    _box_keys = 0
    _box_bytes = 0
    _reading = True

    # -- reading ------------------------------------------------------------

    def dataReceived(self, data):
        """Read the boxes in C{data} and hand each to C{ampBoxReceived}."""
        if not self._reading:
            return
        max_keys = math.inf if self.maxBoxKeys is None else self.maxBoxKeys
        max_bytes = math.inf if self.maxBoxBytes is None else self.maxBoxBytes
        buffer = self._unread + data if self._unread else data
        pos, end = 0, len(buffer)
        box, key, keys, size = self._box, self._key, self._box_keys, self._box_bytes
        while end - pos >= 2:
            length = (buffer[pos] << 8) | buffer[pos + 1]
            if key is None and length > amp.MAX_KEY_LENGTH:
                # as AMP's lengthLimitExceeded: the calls in flight fail with
                # TooLong when the connection is lost
                self._keyLengthLimitExceeded = True
                self._refuse(f"a key longer than {amp.MAX_KEY_LENGTH} bytes")
                return
            stop = pos + 2 + length
            if stop > end:
                break
            string = buffer[pos + 2:stop]
            pos = stop
            size += 2 + length
            if key is not None:
                if size > max_bytes:
                    self._refuse(f"a box of more than {max_bytes} bytes")
                    return
                box[key] = string
                key = None
            elif string:
                keys += 1
                if keys > max_keys:
                    self._refuse(f"a box of more than {max_keys} keys")
                    return
                if box is None:
                    box = amp.AmpBox()
                key = string
            else:
                self._box, self._key, self._box_keys, self._box_bytes = None, None, 0, 0
                self.boxReceiver.ampBoxReceived(box if box is not None else amp.AmpBox())
                if not self._reading:
                    return
                box, keys, size = None, 0, 0
        self._box, self._key, self._box_keys, self._box_bytes = box, key, keys, size
        self._unread = buffer[pos:] if pos < end else b""

    def _refuse(self, why):
        self.stop_reading()
        self.box_refused(why)

    def stop_reading(self):
        """Read nothing more of this connection: neither what is buffered
        nor what arrives later."""
        self._reading = False
        self._unread = b""
        self._box = self._key = None

    def box_refused(self, why):
        """The box being read is past a bound, or has a key longer than AMP
        allows; the reading has stopped. Override to choose what happens to
        the connection: by default it is closed, as AMP closes it for a key
        too long.

        @param why: what was wrong, in a few words (C{str}).
        """
        if self.transport is not None:
            self.transport.loseConnection()

    # -- sending --------------------------------------------------------------

    def emit_box(self, box):
        """Send C{box} (an C{amp.AmpBox}), as AMP sends its answers: nothing
        is sent, and nothing raised, once the connection is lost."""
        self._safeEmit(box)

    def call_with_box(self, command, box, decode):
        """Call C{command} with arguments already encoded in C{box} (the
        C{amp.AmpBox} that C{command.makeArguments} would make).

        @param decode: makes the result of the call of the answer box
            (what C{command.parseResponse} would make of it).

        @return: as AMP's C{callRemote}: None if C{command} asks for no
            answer, else a Deferred that fires with C{decode(answer)} or
            fails with the exception C{command} declares for the error
            code of the answer, C{amp.UnknownRemoteError} for an undeclared
            code, or why the connection was lost.
        """
        d = self._sendBoxCommand(command.commandName, box, command.requiresAnswer)
        if not command.requiresAnswer:
            return d
        d.addCallback(decode)
        d.addErrback(_declared_error, command)
        return d

    # -- answering --------------------------------------------------------------

    def answer_box(self, box, answer):
        """Answer the command C{box} with C{answer} (a mapping of the
        response's keys to their encoded values), as AMP answers the result
        of a responder; nothing if C{box} asks for no answer."""
        ask = box.get(amp.ASK)
        if ask is not None:
            answer = amp.AmpBox(answer)
            answer[amp.ANSWER] = ask
            self.emit_box(answer)

    def answer_failure(self, box):
        """Answer the command C{box} as AMP answers a responder that raised
        an undeclared exception: an C{UNKNOWN} error, after which the
        connection is closed. The failure is the caller's to log (AMP logs
        it).

        A box that asks for no answer gets none, and the connection stays
        open (AMP hands that failure to C{unhandledError}).
        """
        ask = box.get(amp.ASK)
        if ask is not None:
            self.emit_box(amp.QuitBox({amp.ERROR: ask, amp.ERROR_CODE: amp.UNKNOWN_ERROR_CODE,
                                       amp.ERROR_DESCRIPTION: b"Unknown Error"}))
