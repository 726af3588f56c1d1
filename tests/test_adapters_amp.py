"""chatnet.adapters.twisted.amp against Twisted's AMP: the same bytes, in the same
pieces, to a protocol reading with the adapter and to AMP's own parser
give the same boxes, and a key too long ends both connections alike; a
call sent with a made box writes the bytes AMP's C{callRemote} writes, and
its answers and errors come back as AMP's; the answers and failures made
by the adapter are the bytes AMP's responder machinery writes; the
C{ListOf} helpers are AMP's encoding. (Twisted's pin, and no private part
of AMP used elsewhere: tests/test_library_internals.py.)"""
import ast
import sys
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import StringTransport
from twisted.protocols import amp
from twisted.python.failure import Failure
from twisted.test import iosim

from chatnet.adapters.twisted import amp as adapter
from chatnet.protocols import amp_commands as cmd
from chatnet.protocols.internal import _FAST_CALLS

ROOT = Path(__file__).resolve().parent.parent / "chatnet"


def repeated(size_and_pattern):
    size, pattern = size_and_pattern
    return (pattern * (size // len(pattern) + 1))[:size]


keys = st.binary(min_size=1, max_size=amp.MAX_KEY_LENGTH)
# small values, and values up to the largest AMP carries (a pattern
# repeated: Hypothesis draws a few bytes, not 64 KiB, for each)
values = st.one_of(
    st.binary(max_size=300),
    st.tuples(st.integers(0, amp.MAX_VALUE_LENGTH), st.binary(min_size=1, max_size=16)).map(repeated),
)
boxes = st.lists(st.dictionaries(keys, values, max_size=6), min_size=1, max_size=5)
small_boxes = st.lists(st.dictionaries(keys, st.binary(max_size=40), max_size=4), max_size=3)
texts = st.text(max_size=20)


def pieces(wire, cuts):
    """C{wire} cut at the offsets C{cuts}."""
    at = sorted({cut for cut in cuts if 0 < cut < len(wire)})
    return [wire[start:stop] for start, stop in zip([0] + at, at + [len(wire)])]


def connected(protocol):
    transport = StringTransport(peerAddress=IPv4Address("TCP", "10.0.0.2", 40000))
    protocol.makeConnection(transport)
    return transport


class Keeping:
    """Keeps the boxes read instead of dispatching them."""

    def connectionMade(self):
        self.boxes = []

    def ampBoxReceived(self, box):
        self.boxes.append(dict(box))


class Fast(Keeping, adapter.FastAMP):
    pass


class Own(Keeping, amp.AMP):
    pass


# -- reading --------------------------------------------------------------------


@settings(max_examples=150)
@given(boxes, st.data())
def test_boxes_are_read_as_amp_reads_them_in_any_pieces(sent, data):
    wire = b"".join(amp.AmpBox(box).serialize() for box in sent)
    unfinished = amp.AmpBox(data.draw(st.dictionaries(keys, values, min_size=1, max_size=2))).serialize()
    wire += unfinished[:data.draw(st.integers(0, len(unfinished) - 1))]  # a box not yet whole
    cuts = data.draw(st.lists(st.integers(0, len(wire)), max_size=30))
    read = []
    for protocol in Fast(), Own():
        transport = connected(protocol)
        for piece in pieces(wire, cuts):
            protocol.dataReceived(piece)
        read.append((protocol.boxes, transport.disconnecting))
    assert read[0] == read[1] == ([dict(box) for box in sent], False)


def test_a_key_of_the_longest_length_amp_allows_is_read():
    box = {b"k" * amp.MAX_KEY_LENGTH: b"v", b"a": b"k" * 300}
    read = []
    for protocol in Fast(), Own():
        transport = connected(protocol)
        protocol.dataReceived(amp.AmpBox(box).serialize())
        read.append((protocol.boxes, transport.disconnecting))
    assert read[0] == read[1] == ([box], False)


@given(small_boxes, st.booleans(), st.integers(amp.MAX_KEY_LENGTH + 1, 65535), st.data())
def test_a_key_too_long_ends_the_connection_as_amps_own(before, inside, length, data):
    """The boxes before it are read, nothing after; the connection is
    closed, and the calls in flight fail with C{TooLong} when it is lost.

    (A closing TCP transport reads nothing more: AMP's parser is given
    nothing after it closes, since it would read again the boxes before the
    key; the adapter reads nothing more whatever it is given.)"""
    wire = b"".join(amp.AmpBox(box).serialize() for box in before)
    if inside:  # after the first pair of a box
        wire += amp.AmpBox({b"k": b"v"}).serialize()[:-2]
    wire += length.to_bytes(2, "big") + b"x" * 300 + amp.AmpBox({b"after": b"x"}).serialize()
    cuts = data.draw(st.lists(st.integers(0, len(wire)), max_size=10))
    ends = []
    for protocol in Fast(), Own():
        transport = connected(protocol)
        failures = []
        protocol.callRemote(cmd.Challenge).addErrback(failures.append)
        for piece in pieces(wire, cuts):
            if not transport.disconnecting:
                protocol.dataReceived(piece)
        refused = protocol._keyLengthLimitExceeded, transport.disconnecting
        if isinstance(protocol, Fast):
            protocol.dataReceived(wire + amp.AmpBox({b"later": b"y"}).serialize())
        protocol.connectionLost(Failure(ConnectionDone()))
        ends.append((protocol.boxes, refused, [f.type for f in failures]))
    assert ends[0] == ends[1]
    assert ends[0] == ([dict(box) for box in before], (True, True), [amp.TooLong])


class Bounded(Fast):
    maxBoxKeys = 3
    maxBoxBytes = 100

    def connectionMade(self):
        super().connectionMade()
        self.refused = []

    def box_refused(self, why):
        self.refused.append(why)
        super().box_refused(why)


def test_a_box_within_the_bounds_is_read():
    protocol = Bounded()
    transport = connected(protocol)
    box = {b"a": b"x" * 42, b"b": b"y" * 43, b"c": b""}  # 3 keys, 100 bytes
    protocol.dataReceived(amp.AmpBox(box).serialize() * 2)
    assert protocol.boxes == [box, box] and protocol.refused == [] and not transport.disconnecting


def test_a_box_past_the_bounds_is_refused_and_nothing_more_is_read():
    for box, why in [({b"a": b"x" * 50, b"b": b"y" * 46}, "a box of more than 100 bytes"),
                     ({b"a": b"", b"b": b"", b"c": b"", b"d": b""}, "a box of more than 3 keys")]:
        protocol = Bounded()
        transport = connected(protocol)
        protocol.dataReceived(amp.AmpBox({b"first": b"1"}).serialize() + amp.AmpBox(box).serialize())
        protocol.dataReceived(amp.AmpBox({b"later": b"2"}).serialize())
        assert protocol.boxes == [{b"first": b"1"}]
        assert protocol.refused == [why] and transport.disconnecting


def test_what_is_buffered_is_not_read_once_reading_stops():
    class Stopping(Fast):
        def ampBoxReceived(self, box):
            super().ampBoxReceived(box)
            self.stop_reading()

    protocol = Stopping()
    connected(protocol)
    protocol.dataReceived(amp.AmpBox({b"a": b"1"}).serialize() * 3)
    protocol.dataReceived(amp.AmpBox({b"b": b"2"}).serialize())
    assert protocol.boxes == [{b"a": b"1"}]


# -- calls ------------------------------------------------------------------------

deliver_many = st.lists(st.tuples(texts, st.binary(max_size=200), texts), max_size=8).map(
    lambda items: dict(msgIds=[i[0] for i in items], datas=[i[1] for i in items], usernames=[i[2] for i in items]))
room_deliver = st.lists(st.tuples(texts, st.integers(0, 2**62), texts, st.binary(max_size=200)), max_size=8).map(
    lambda items: dict(roomNames=[i[0] for i in items], seqs=[i[1] for i in items], msgIds=[i[2] for i in items],
                       datas=[i[3] for i in items]))
fast_calls = st.one_of(st.tuples(st.just(cmd.DeliverMany), deliver_many),
                       st.tuples(st.just(cmd.RoomDeliver), room_deliver))


@given(deliver_many)
def test_deliver_many_box_is_amps(arguments):
    encode, _ = _FAST_CALLS[cmd.DeliverMany]
    assert encode(**arguments).serialize() == cmd.DeliverMany.makeArguments(arguments, amp.AMP()).serialize()


@given(room_deliver)
def test_room_deliver_box_is_amps(arguments):
    encode, _ = _FAST_CALLS[cmd.RoomDeliver]
    assert encode(**arguments).serialize() == cmd.RoomDeliver.makeArguments(arguments, amp.AMP()).serialize()


def call(protocol, command, arguments):
    """C{command} called with a made box by the adapter's protocol, with
    AMP's C{callRemote} by AMP's own."""
    if isinstance(protocol, adapter.FastAMP):
        encode, decode = _FAST_CALLS[command]
        return protocol.call_with_box(command, encode(**arguments), decode)
    return protocol.callRemote(command, **arguments)


def ask_both(command, arguments, *answers):
    """C{command} called with a made box and with AMP's C{callRemote}, over
    a connection that then reads C{answers}: the bytes each wrote and the
    outcome of each call."""
    results = []
    for protocol in Fast(), Own():
        transport = connected(protocol)
        outcome = []
        call(protocol, command, arguments).addBoth(outcome.append)
        for answer in answers:
            amp.BoxDispatcher.ampBoxReceived(protocol, amp.AmpBox(answer))
        results.append((transport.value(), outcome))
    return results


def outcome(result):
    if isinstance(result, Failure):
        return result.type, result.value.args
    return result


@given(fast_calls)
def test_a_call_with_a_made_box_writes_what_call_remote_writes(call):
    (ours, _), (theirs, _) = ask_both(*call)
    assert ours == theirs


@given(st.lists(texts, max_size=8))
def test_answers_are_decoded_as_call_remote_decodes_them(missing):
    answer = {b"_answer": b"1", b"missing": amp.ListOf(amp.Unicode()).toString(missing)}
    for command, arguments in [(cmd.DeliverMany, dict(msgIds=[], datas=[], usernames=[])),
                               (cmd.RoomDeliver, dict(roomNames=[], seqs=[], msgIds=[], datas=[]))]:
        (_, ours), (_, theirs) = ask_both(command, arguments, answer)
        assert [outcome(r) for r in ours] == [outcome(r) for r in theirs]
        assert len(ours) == 1 and not isinstance(ours[0], Failure)


error_codes = st.one_of(
    st.sampled_from(sorted(cmd.COMMON_ERRORS.values()) + [amp.UNKNOWN_ERROR_CODE, amp.UNHANDLED_ERROR_CODE]),
    st.binary(max_size=20),
)


@given(fast_calls, error_codes, st.binary(max_size=40))
def test_errors_are_raised_as_call_remote_raises_them(call, code, description):
    """A code the command declares is its exception, any other an
    C{UnknownRemoteError} (C{UNHANDLED}: AMP's C{UnhandledCommand})."""
    error = {b"_error": b"1", b"_error_code": code, b"_error_description": description}
    (_, ours), (_, theirs) = ask_both(*call, error)
    assert [outcome(r) for r in ours] == [outcome(r) for r in theirs]
    (failure,) = ours
    declared = {code: exception for exception, code in cmd.COMMON_ERRORS.items()}
    expected = declared.get(code, amp.UnhandledCommand if code == amp.UNHANDLED_ERROR_CODE else amp.UnknownRemoteError)
    assert failure.type is expected


def test_a_call_on_a_lost_connection_fails_as_call_remotes():
    results = []
    for protocol in Fast(), Own():
        connected(protocol)
        arguments = dict(roomNames=["r"], seqs=[1], msgIds=["m"], datas=[b"d"])
        in_flight, later = [], []
        call(protocol, cmd.RoomDeliver, arguments).addBoth(in_flight.append)
        protocol.connectionLost(Failure(ConnectionDone()))
        call(protocol, cmd.RoomDeliver, arguments).addBoth(later.append)
        results.append([outcome(r) for r in in_flight + later])
    assert results[0] == results[1]
    assert [r[0] for r in results[0]] == [ConnectionDone, ConnectionDone]


def test_a_call_that_asks_no_answer_writes_what_call_remote_writes():
    arguments = dict(username="ann", nodeId="node2", sessionId="s1", loginTime=5, alliance="", version=1,
                     online=True, multi=False)
    ours, theirs = Fast(), Own()
    ours_transport, theirs_transport = connected(ours), connected(theirs)
    assert ours.call_with_box(cmd.SessionChanged, cmd.SessionChanged.makeArguments(arguments, ours), None) is None
    assert theirs.callRemote(cmd.SessionChanged, **arguments) is None
    assert ours_transport.value() == theirs_transport.value() != b""


# -- answers ------------------------------------------------------------------------


class Generic(amp.AMP):
    """Answers L{cmd.DeliverMany} with AMP's responder machinery."""

    missing = ()
    broken = False

    @cmd.DeliverMany.responder
    def deliver_many(self, msgIds, datas, usernames):
        if self.broken:
            raise RuntimeError("broken")
        return {"missing": list(self.missing)}


class Answering(adapter.FastAMP):
    """Answers L{cmd.DeliverMany} with the adapter's answers."""

    missing = ()
    broken = False

    def ampBoxReceived(self, box):
        if box.get(amp.COMMAND) != cmd.DeliverMany.commandName:
            return super().ampBoxReceived(box)
        if self.broken:
            self.answer_failure(box)
        else:
            self.answer_box(box, {b"missing": adapter.pack([m.encode("utf-8") for m in self.missing])})


def answered(box, missing=(), broken=False):
    """What each server wrote for C{box}, and whether it closed."""
    written = []
    for server in Answering(), Generic():
        server.missing, server.broken = missing, broken
        transport = connected(server)
        server.dataReceived(amp.AmpBox(box).serialize())
        written.append((transport.value(), transport.disconnecting))
    return written


call_boxes = st.builds(
    lambda tag, arguments: {**cmd.DeliverMany.makeArguments(arguments, None), b"_command": b"DeliverMany",
                            **({b"_ask": tag} if tag is not None else {})},
    st.one_of(st.none(), st.binary(min_size=1, max_size=20)),
    deliver_many,
)


@given(call_boxes, st.lists(texts, max_size=8))
def test_an_answer_is_the_box_amp_answers(box, missing):
    ours, theirs = answered(box, missing)
    assert ours == theirs
    assert ours[0] != b"" or b"_ask" not in box


@given(call_boxes.filter(lambda box: b"_ask" in box))
def test_a_failure_is_the_error_amp_answers_and_closes(box):
    ours, theirs = answered(box, broken=True)
    assert ours == theirs
    assert ours[1] and b"UNKNOWN" in ours[0]


def test_a_failure_of_a_call_that_asks_no_answer_sends_nothing():
    """(AMP would hand the failure to C{unhandledError}, which closes the
    connection: the caller of L{answer_failure} logs it and keeps it.)"""
    server = Answering()
    server.broken = True
    transport = connected(server)
    server.dataReceived(amp.AmpBox({b"_command": b"DeliverMany"}).serialize())
    assert transport.value() == b"" and not transport.disconnecting


def test_answers_over_a_connection_are_read_as_amps():
    """A client calling through AMP's own machinery reads the adapter's
    answers as it reads AMP's."""
    results = []
    for server_type in Answering, Generic:
        server, client = server_type(), amp.AMP()
        server.missing = ["m2"]
        _, _, pump = iosim.connectedServerAndClient(lambda: server, lambda: client)
        answers = []
        client.callRemote(cmd.DeliverMany, msgIds=["m1", "m2"], datas=[b"a", b"b"],
                          usernames=["ann", "bob"]).addBoth(answers.append)
        pump.flush()
        results.append(answers)
    assert results[0] == results[1] == [{"missing": ["m2"]}]


def test_a_box_emitted_is_written_and_none_once_the_connection_is_lost():
    protocol = Fast()
    transport = connected(protocol)
    box = amp.AmpBox({b"_answer": b"1", b"x": b"y"})
    protocol.emit_box(box)
    assert transport.value() == box.serialize()
    protocol.connectionLost(Failure(ConnectionDone()))
    protocol.emit_box(box)  # raises nothing, as AMP's answers after a loss


# -- lists ------------------------------------------------------------------------------


@given(st.lists(values, max_size=6))
def test_pack_is_amps_list_of(items):
    packed = adapter.pack(items)
    assert packed == amp.ListOf(amp.String()).toString(items)
    assert adapter.unpack(packed) == amp.ListOf(amp.String()).fromString(packed) == items


@given(st.binary(max_size=300))
def test_unpack_reads_what_amp_reads_or_refuses_a_value_cut_short(value):
    theirs = amp.ListOf(amp.String()).fromString(value)
    try:
        ours = adapter.unpack(value)
    except ValueError:
        # AMP reads the whole items and ignores the rest
        assert amp.ListOf(amp.String()).toString(theirs) != value
    else:
        assert ours == theirs


# -- the adapter stands alone ---------------------------------------------------------


def test_the_adapter_imports_only_twisted_and_the_standard_library():
    source = ast.parse((ROOT / "adapters" / "twisted" / "amp.py").read_text(encoding="utf-8"))
    imported = set()
    for node in ast.walk(source):
        if isinstance(node, ast.ImportFrom) and node.module == "chatnet.adapters.twisted":
            continue  # its own package (the pin)
        if isinstance(node, ast.ImportFrom):
            imported.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
    assert "twisted" in imported
    assert not imported - {"twisted"} - set(sys.stdlib_module_names), imported
