"""The state of Twisted's HTTP channel that the gateway's limits read
(L{chatnet.protocols.http.GuardedChannel}): whether a request is being
answered (C{_handlingRequest}), and the size and field count of the request
head received so far (C{_receivedHeaderSize}, C{_receivedHeaderCount}).
Twisted documents them as instance variables of C{HTTPChannel}, private.
And the answer to a malformed request
(C{_respondToBadRequestAndDisconnect}), which the limits answer in their
own form.
"""
from twisted.web import http


class HTTPChannel(http.HTTPChannel):
    """Twisted's channel, with its request state readable."""

    @property
    def answering(self):
        """Whether a request is being answered (its head and body are in)."""
        return self._handlingRequest

    @property
    def head_bytes(self):
        """The bytes of the request head received so far (its lines, without
        their line ends)."""
        return self._receivedHeaderSize

    @property
    def head_fields(self):
        """The header fields of the request head received so far (a field
        counts once the line after it arrived: it may go on there)."""
        return self._receivedHeaderCount

    def _respondToBadRequestAndDisconnect(self):
        self.bad_request()

    def bad_request(self):
        """A malformed request arrived: Twisted answers 400 and closes."""
        super()._respondToBadRequestAndDisconnect()
