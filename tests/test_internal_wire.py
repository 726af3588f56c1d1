"""The internal port reads boxes and carries the message calls itself
(chatnet/protocols/internal.py): the bytes are AMP's own, whatever the
pieces they arrive in, and a box the fast paths cannot read is answered the
generic way."""
from hypothesis import given, strategies as st
from twisted.protocols import amp

from chatnet.protocols import amp_commands as cmd
from chatnet.protocols.internal import InternalProtocol, _FAST_CALLS
from tests.test_internal_auth import Pair

keys = st.binary(min_size=1, max_size=255)
values = st.binary(max_size=3000)
boxes = st.lists(st.dictionaries(keys, values, max_size=6), min_size=1, max_size=5)


class Boxes:
    """Collects what a parser reads."""

    def __init__(self):
        self.boxes = []

    def startReceivingBoxes(self, sender):
        pass

    def ampBoxReceived(self, box):
        self.boxes.append(dict(box))


@given(boxes, st.lists(st.integers(1, 500), max_size=30))
def test_boxes_read_as_twisted_reads_them_in_any_pieces(sent, cuts):
    wire = b"".join(amp.AmpBox(box).serialize() for box in sent)
    ours = InternalProtocol(None, b"s", None)
    ours.maxBoxKeys, ours.maxBoxBytes = 1000, 10**9
    ours.authenticated = True
    read = []
    ours.ampBoxReceived = lambda box: read.append(dict(box))
    pieces, rest = [], wire
    for cut in cuts:
        pieces.append(rest[:cut])
        rest = rest[cut:]
    pieces.append(rest)
    for piece in pieces:
        ours.dataReceived(piece)
    theirs = Boxes()
    parser = amp.BinaryBoxProtocol(theirs)
    parser.makeConnection(None)
    parser.dataReceived(wire)
    assert read == theirs.boxes == [dict(box) for box in sent]


texts = st.text(max_size=20)


@given(st.lists(st.tuples(texts, st.binary(max_size=200), texts), max_size=8))
def test_deliver_many_box_is_amps(items):
    arguments = dict(msgIds=[i[0] for i in items], datas=[i[1] for i in items], usernames=[i[2] for i in items])
    encode, _ = _FAST_CALLS[cmd.DeliverMany]
    proto = InternalProtocol(None, b"s", None)
    assert encode(**arguments).serialize() == cmd.DeliverMany.makeArguments(arguments, proto).serialize()


@given(st.lists(st.tuples(texts, st.integers(0, 2**62), texts, st.binary(max_size=200)), max_size=8))
def test_room_deliver_box_is_amps(items):
    arguments = dict(roomNames=[i[0] for i in items], seqs=[i[1] for i in items], msgIds=[i[2] for i in items],
                     datas=[i[3] for i in items])
    encode, _ = _FAST_CALLS[cmd.RoomDeliver]
    proto = InternalProtocol(None, b"s", None)
    assert encode(**arguments).serialize() == cmd.RoomDeliver.makeArguments(arguments, proto).serialize()


def test_deliver_many_round_trip_and_missing():
    pair = Pair()
    pair.login("node2")
    pair.responder.deliver = lambda msgId, data, usernames, everyone: (0, usernames) if msgId == "m2" else (1, [])
    answer = pair.result(pair.client.callRemote(
        cmd.DeliverMany, msgIds=["m1", "m2", "m3"], datas=[b"a", b"b", b"c"], usernames=["ann", "bob", "cy"]))
    assert answer == {"missing": ["m2"]}


def test_room_deliver_round_trip():
    pair = Pair()
    pair.login("node2")
    got = []
    pair.responder.room_deliver = lambda *args: got.append(args)
    answer = pair.result(pair.client.callRemote(
        cmd.RoomDeliver, roomNames=["r", "é"], seqs=[7, 2**40], msgIds=["m1", "m2"], datas=[b"a", b"b"]))
    assert answer == {}
    assert got == [("r", 7, "m1", b"a"), ("é", 2**40, "m2", b"b")]


def test_a_malformed_deliver_many_is_answered_the_generic_way():
    """A list value cut short: AMP's parser reads what it can and the call
    is answered, as it was before the fast path."""
    pair = Pair()
    pair.login("node2")
    answer = pair.result(pair.client._sendBoxCommand(cmd.DeliverMany.commandName, amp.AmpBox({
        b"msgIds": b"\x00\x02m1\x00", b"datas": b"\x00\x01a", b"usernames": b"\x00\x03ann"})))
    assert answer == {b"_answer": answer[b"_answer"], b"missing": b""}
    assert [d[0] for d in pair.responder.delivered] == ["m1"]


def test_a_failing_delivery_is_an_unknown_error_and_closes(failures_logged):
    pair = Pair()
    pair.login("node2")

    def broken(*args):
        raise RuntimeError("broken")

    pair.responder.deliver = broken
    failure = pair.result(pair.client.callRemote(cmd.DeliverMany, msgIds=["m1"], datas=[b"a"], usernames=["ann"]))
    assert isinstance(failure.value, amp.UnknownRemoteError)
    assert pair.closed()
    assert any(e["log_failure"].check(RuntimeError) for e in failures_logged())
