"""The internal port carries the message calls itself
(chatnet/protocols/internal.py, with chatnet.adapters.twisted.amp): a call answered
by the fast responders writes what AMP's generic responders write, and a
box the fast paths cannot read is answered the generic way. (The boxes
read and the calls' boxes against AMP's own: tests/test_adapters_amp.py.)"""
import pytest
from hypothesis import given, strategies as st
from twisted.internet import task
from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport
from twisted.protocols import amp

from chatnet.protocols import amp_commands as cmd
from chatnet.protocols import internal
from chatnet.protocols.internal import InternalProtocol
from tests.test_internal_auth import Pair, Responder

texts = st.text(max_size=20)


def node_link(responder):
    """An internal protocol on a string transport, as after a node's
    handshake."""
    protocol = InternalProtocol(responder, b"s3cret", task.Clock())
    transport = StringTransport(peerAddress=IPv4Address("TCP", "10.0.0.2", 40000))
    protocol.makeConnection(transport)
    protocol.authenticated, protocol.peerKind, protocol.peerNodeId = True, "node", "node2"
    return protocol, transport


def both_ways(box, responder):
    """What a node writes for C{box} with its fast responders and with
    AMP's generic ones, and whether it closed."""
    written = []
    for fast in internal._FAST_RESPONDERS, {}:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(internal, "_FAST_RESPONDERS", fast)
            protocol, transport = node_link(responder)
            protocol.dataReceived(amp.AmpBox(box).serialize())
            written.append((transport.value(), transport.disconnecting))
    return written


deliveries = st.lists(st.tuples(texts, st.binary(max_size=100), texts, st.booleans()), max_size=6)


@given(deliveries, st.binary(min_size=1, max_size=10))
def test_deliver_many_is_answered_as_amps_responder_answers(items, tag):
    responder = Responder()
    missing = {msg_id for msg_id, _, _, gone in items if gone}
    responder.deliver = lambda msgId, data, usernames, everyone: (0, usernames) if msgId in missing else (1, [])
    arguments = dict(msgIds=[i[0] for i in items], datas=[i[1] for i in items], usernames=[i[2] for i in items])
    box = {**cmd.DeliverMany.makeArguments(arguments, None), b"_command": b"DeliverMany", b"_ask": tag}
    fast, generic = both_ways(box, responder)
    assert fast == generic and b"_answer" in fast[0]


@given(st.lists(st.tuples(texts, st.integers(0, 2**62), texts, st.binary(max_size=100)), max_size=6),
       st.binary(min_size=1, max_size=10))
def test_room_deliver_is_answered_as_amps_responder_answers(items, tag):
    responder = Responder()
    responder.room_deliver = lambda *args: None
    arguments = dict(roomNames=[i[0] for i in items], seqs=[i[1] for i in items], msgIds=[i[2] for i in items],
                     datas=[i[3] for i in items])
    box = {**cmd.RoomDeliver.makeArguments(arguments, None), b"_command": b"RoomDeliver", b"_ask": tag}
    fast, generic = both_ways(box, responder)
    assert fast == generic and b"_answer" in fast[0]


def test_a_failing_delivery_is_answered_as_amps_responder_answers():
    def broken(*args):
        raise RuntimeError("broken")

    responder = Responder()
    responder.deliver = responder.room_deliver = broken
    for command, arguments in [(cmd.DeliverMany, dict(msgIds=["m1"], datas=[b"a"], usernames=["ann"])),
                               (cmd.RoomDeliver, dict(roomNames=["r"], seqs=[1], msgIds=["m1"], datas=[b"a"]))]:
        box = {**command.makeArguments(arguments, None), b"_command": command.commandName, b"_ask": b"7"}
        fast, generic = both_ways(box, responder)
        assert fast == generic and b"UNKNOWN" in fast[0] and fast[1]


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
