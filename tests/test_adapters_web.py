"""chatnet.adapters.twisted.web: the request state it reads of Twisted's HTTP
channel is what the requests sent make it, for any request head, in any
pieces. (Twisted's pin: tests/test_library_internals.py.)"""
from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.testing import StringTransport
from twisted.web import resource, server

from chatnet.adapters.twisted.web import HTTPChannel
from tests.wire import pieces

names = st.text("abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=12)
values = st.text("abcdefghijklmnopqrstuvwxyz0123456789 ", max_size=30).map(str.strip)


class Held(resource.Resource):
    """Answers nothing until the test says so."""

    isLeaf = True

    def __init__(self):
        super().__init__()
        self.requests = []

    def render_GET(self, request):
        self.requests.append(request)
        return server.NOT_DONE_YET


def channel():
    site = server.Site(Held())
    chan = HTTPChannel()
    chan.requestFactory = server.Request
    chan.site = chan.factory = site
    chan.makeConnection(StringTransport())
    return chan, site.resource


@given(st.lists(st.tuples(names, values), max_size=20), st.lists(st.integers(1, 40), max_size=10))
def test_the_head_read_so_far_and_the_request_answered(fields, cuts):
    chan, held = channel()
    lines = [b"GET / HTTP/1.1"] + [f"{n}: {v}".encode() for n, v in fields]
    head = b"".join(line + b"\r\n" for line in lines)
    for piece in pieces(head, cuts):
        chan.dataReceived(piece)
    complete = b"\r\n".join(head.split(b"\r\n")[:-1])
    assert not chan.answering
    # a field counts once the line after it arrived (it may go on there)
    assert chan.head_fields == max(len(fields) - 1, 0)
    assert chan.head_bytes == sum(len(line) for line in complete.split(b"\r\n"))
    chan.dataReceived(b"\r\n")  # the end of the head: the request is answered
    assert chan.answering and len(held.requests) == 1
    assert (chan.head_fields, chan.head_bytes) == (0, 0)
    held.requests[0].finish()
    assert not chan.answering
    chan.connectionLost(None)
