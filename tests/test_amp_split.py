"""An AMP value longer than AMP carries in one value is split by the
internal layer (chatnet/protocols/amp_commands.py Split), not refused:
over a real AMP connection in memory (iosim)."""
from hypothesis import given, settings, strategies as st
from twisted.protocols import amp
from twisted.test import iosim

from chatnet.protocols.amp_commands import VALUE_BYTES, ApiRoomPresence, Split


class Presence(amp.AMP):
    names = []

    @ApiRoomPresence.responder
    def room_presence(self, roomName):
        return {"usernames": self.names, "truncated": False}


def ask(names):
    server, client = Presence(), amp.AMP()
    server.names = names
    _, _, pump = iosim.connectedServerAndClient(lambda: server, lambda: client)
    answers = []
    client.callRemote(ApiRoomPresence, roomName="r").addBoth(answers.append)
    pump.flush()
    return answers[0]


def test_a_presence_list_of_several_amp_values_arrives_whole():
    names = [f"user{i:06d}-\u00e9\u4e16" * 4 for i in range(4000)]  # about 300 KiB encoded
    assert len(amp.ListOf(amp.Unicode()).toString(names)) > 3 * VALUE_BYTES
    assert ask(names) == {"usernames": names, "truncated": False}


def test_a_small_value_is_what_amp_alone_sends():
    box = amp.AmpBox()
    Split(amp.Unicode()).toBox(b"text", box, {"text": "hi"}, None)
    assert box == {b"text": b"hi"}


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=5 * VALUE_BYTES))
def test_split_and_joined_again_with_pieces_of_at_most_one_value(value):
    box = amp.AmpBox()
    Split(amp.String()).toBox(b"data", box, {"data": value}, None)
    assert all(len(piece) <= VALUE_BYTES for piece in box.values())
    assert len(box) == max(1, -(-len(value) // VALUE_BYTES))
    objects = {}
    Split(amp.String()).fromBox(b"data", dict(box), objects, None)
    assert objects == {"data": value}
