"""The internal AMP port: nothing but the handshake before authentication."""
from twisted.internet import defer
from twisted.test.iosim import connectedServerAndClient

from chatnet.protocols import amp_commands as cmd
from chatnet.protocols.internal import InternalProtocol, client_mac


class Handler:
    def __init__(self):
        self.delivered = []

    def deliver(self, msgId, data, usernames, everyone):
        self.delivered.append((msgId, data, usernames, everyone))
        return len(usernames), []


def pair(server_secret=b"s3cret", client_secret=b"s3cret"):
    handler = Handler()
    client, server, pump = connectedServerAndClient(
        lambda: InternalProtocol(handler, server_secret), lambda: InternalProtocol(Handler(), client_secret)
    )
    return handler, server, client, pump


def result(d, pump):
    pump.flush()
    out = []
    d.addBoth(out.append)
    pump.flush()
    return out[0] if out else None


def test_authenticated_peer_may_deliver():
    handler, server, client, pump = pair()
    login = result(defer.ensureDeferred(client.login("node2")), pump)
    assert login is None
    assert server.authenticated and server.peerNodeId == "node2"
    answer = result(client.callRemote(cmd.Deliver, msgId="m1", data=b"{}", usernames=["a"], everyone=False), pump)
    assert answer == {"delivered": 1, "missing": []}
    assert handler.delivered == [("m1", b"{}", ["a"], False)]


def test_command_before_auth_is_refused_and_closes():
    handler, server, client, pump = pair()
    failure = result(client.callRemote(cmd.Deliver, msgId="m1", data=b"{}", usernames=["a"], everyone=False), pump)
    assert handler.delivered == []
    assert failure is not None
    assert server.transport is None or server.transport.disconnecting  # closed


def test_wrong_secret_is_refused():
    handler, server, client, pump = pair(client_secret=b"guess")
    failure = result(defer.ensureDeferred(client.login("intruder")), pump)
    assert failure is not None and not server.authenticated
    result(client.callRemote(cmd.Deliver, msgId="m", data=b"{}", usernames=[], everyone=True), pump)
    assert handler.delivered == []


def test_replayed_mac_is_refused():
    handler, server, client, pump = pair()
    # a MAC over a nonce that was never issued by this server
    answer = result(client.callRemote(cmd.Authenticate, nodeId="n", nonce=b"x" * 32,
                                      mac=client_mac(b"s3cret", b"y" * 32, "n")), pump)
    assert not server.authenticated
    assert not isinstance(answer, dict)
