"""The internal AMP port: nothing but the handshake before authentication, a
peer is the member it claims to be, and what anybody may send is bounded."""
import pytest_twisted
from twisted.internet import defer, reactor, task
from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport
from twisted.protocols import amp
from twisted.python.failure import Failure
from twisted.test.iosim import FakeTransport, connectedServerAndClient

from chatnet.cluster.identity import MemberIdentity
from chatnet.cluster.peers import Peers
from chatnet.cluster.router import BATCH_BYTES
from chatnet.factories.internal import InternalFactory
from chatnet.protocols import amp_commands as cmd
from chatnet.protocols.internal import (
    MAX_BOX_BYTES,
    MAX_BOX_KEYS,
    PRE_AUTH_BYTES,
    PRE_AUTH_SECONDS,
    InternalProtocol,
    client_mac,
)

MEMBERS = {"node2": {"internalHost": "10.0.0.2"}, "node3": {"internalHost": "10.0.0.3"}}


class Responder:
    def __init__(self):
        self.delivered = []
        self.sessions = []

    def deliver(self, msgId, data, usernames, everyone):
        self.delivered.append((msgId, data, usernames, everyone))
        return len(usernames), []

    def session_changed(self, *args):
        self.sessions.append(args)

    def room_notice(self, roomName, data, feature=None, skip_user=None, skip_session=None):
        pass


class Pair:
    """A listening node's protocol (C{server}) and a connecting one from
    C{source}, joined by an in-memory pump, on a fake clock."""

    def __init__(self, server_secret=b"s3cret", client_secret=b"s3cret", source="10.0.0.2", members=MEMBERS,
                 gateways=None, api=None):
        self.clock = task.Clock()
        self.responder = Responder()
        self.members = dict(members)
        self.gateways = dict(gateways or {})
        identity = MemberIdentity(lambda: self.members, lambda at_most: task.deferLater(self.clock, at_most, lambda: None),
                                  self.clock, gateways=lambda: self.gateways)
        self.client, self.server, self.pump = connectedServerAndClient(
            lambda: InternalProtocol(self.responder, server_secret, self.clock, identity, api),
            lambda: InternalProtocol(Responder(), client_secret, self.clock),
            serverTransportFactory=lambda p: FakeTransport(p, True, peerAddress=IPv4Address("TCP", source, 40000)),
            clock=self.clock,
        )

    def result(self, d):
        out = []
        d.addBoth(out.append)
        self.pump.flush()
        return out[0] if out else None

    def login(self, node_id):
        return self.result(defer.ensureDeferred(self.client.login(node_id)))

    def closed(self):
        transport = self.server.transport
        return transport is None or transport.disconnecting or transport.disconnected


def refusal(failure):
    """The error the call failed with (the class the AMP error code maps to)."""
    assert isinstance(failure, Failure), f"expected a refusal, got {failure!r}"
    return type(failure.value)


def test_authenticated_peer_may_deliver():
    p = Pair()
    assert p.login("node2") is None
    assert p.server.authenticated and p.server.peerNodeId == "node2"
    answer = p.result(p.client.callRemote(cmd.Deliver, msgId="m1", data=b"{}", usernames=["a"], everyone=False))
    assert answer == {"delivered": 1, "missing": []}
    assert p.responder.delivered == [("m1", b"{}", ["a"], False)]


def test_command_before_auth_is_refused_and_closes():
    p = Pair()
    failure = p.result(p.client.callRemote(cmd.Deliver, msgId="m1", data=b"{}", usernames=["a"], everyone=False))
    assert p.responder.delivered == []
    assert refusal(failure) is cmd.NotAuthenticated
    assert p.closed()


def test_wrong_secret_is_refused():
    p = Pair(client_secret=b"guess")
    failure = p.login("node2")
    assert isinstance(failure, Failure) and not p.server.authenticated
    p.result(p.client.callRemote(cmd.Deliver, msgId="m", data=b"{}", usernames=[], everyone=True))
    assert p.responder.delivered == []


def test_replayed_mac_is_refused():
    p = Pair()
    # a MAC over a nonce that was never issued by this server
    answer = p.result(p.client.callRemote(cmd.Authenticate, nodeId="node2", nonce=b"x" * 32,
                                          mac=client_mac(b"s3cret", b"y" * 32, "node2")))
    assert not p.server.authenticated
    assert isinstance(answer, Failure)


# -- the node id --------------------------------------------------------------


def test_claiming_another_members_id_is_refused():
    p = Pair(source="10.0.0.2")
    failure = p.login("node3")  # a member, registered at 10.0.0.3
    assert refusal(failure) is cmd.NotAuthenticated
    assert not p.server.authenticated and p.closed()


def test_claiming_an_id_not_in_zookeeper_is_refused_after_a_short_wait():
    p = Pair()
    d = defer.ensureDeferred(p.client.login("ghost"))
    p.pump.flush()
    assert not d.called  # waiting for the membership view to catch up
    p.clock.advance(2.5)  # the wait is shorter than the pre-auth time
    failure = p.result(d)
    assert refusal(failure) is cmd.UnknownNode
    assert not p.server.authenticated and p.closed()


def test_a_node_that_joins_meanwhile_is_admitted():
    p = Pair()
    d = defer.ensureDeferred(p.client.login("node4"))
    p.pump.flush()
    p.members["node4"] = {"internalHost": "10.0.0.2"}
    p.clock.advance(2)
    assert p.result(d) is None
    assert p.server.authenticated and p.server.peerNodeId == "node4"


def test_internal_host_by_name_is_resolved():
    clock = task.Clock()
    identity = MemberIdentity(lambda: {"n": {"internalHost": "chat1.internal"}}, None, clock,
                              resolve=lambda host: defer.succeed(["10.0.0.9", "fd00::9"]))
    results = []
    defer.ensureDeferred(identity.verify("n", "10.0.0.9")).addBoth(results.append)
    defer.ensureDeferred(identity.verify("n", "::ffff:10.0.0.9")).addBoth(results.append)
    defer.ensureDeferred(identity.verify("n", "10.0.0.8")).addBoth(results.append)
    assert results[:2] == ["node", "node"]
    assert isinstance(results[2], Failure) and results[2].check(cmd.NotAuthenticated)


def session(node_id, username="u1"):
    return dict(username=username, nodeId=node_id, sessionId="s", loginTime=1, alliance="", version=1, online=True)


def test_session_changed_only_for_the_peers_own_node():
    p = Pair()
    p.login("node2")
    # (sent with an answer asked, to see the refusal; nodes send it without)
    failure = p.result(p.client.callRemote(_AskedSessionChanged, **session("node3")))
    assert refusal(failure) is cmd.WrongNode
    assert p.responder.sessions == []
    assert p.result(p.client.callRemote(_AskedSessionChanged, **session("node2"))) == {}
    assert [s[1] for s in p.responder.sessions] == ["node2"]


def test_session_changed_for_a_foreign_node_without_answer_drops_the_link(failures_logged):
    p = Pair()
    p.login("node2")
    p.client.callRemote(cmd.SessionChanged, **session("node3"))  # as nodes send it: no answer asked
    p.pump.flush()
    assert p.responder.sessions == [] and p.closed()
    assert failures_logged() == []


class _AskedSessionChanged(cmd.SessionChanged):
    commandName = b"SessionChanged"
    requiresAnswer = True


# -- limits -------------------------------------------------------------------


def endless_box(values=60_000):
    """The start of a box that never ends: keys a1, a2, ... of big values."""
    i = 0
    while True:
        i += 1
        key = b"a%d" % i
        yield len(key).to_bytes(2, "big") + key + values.to_bytes(2, "big") + b"x" * values


def box(pairs):
    return b"".join(len(k).to_bytes(2, "big") + k + len(v).to_bytes(2, "big") + v for k, v in pairs) + b"\0\0"


def listening(clock=None):
    clock = clock or task.Clock()
    protocol = InternalProtocol(Responder(), b"s3cret", clock, MemberIdentity(lambda: MEMBERS, None, clock))
    transport = StringTransport(peerAddress=IPv4Address("TCP", "10.0.0.2", 40000))
    protocol.makeConnection(transport)
    return protocol, transport, clock


def test_endless_box_before_auth_is_cut_after_a_few_kilobytes():
    protocol, transport, _ = listening()
    sent = 0
    for chunk in endless_box(1000):
        protocol.dataReceived(chunk)
        sent += len(chunk)
        if transport.disconnecting:
            break
        assert sent < 100_000
    assert sent <= PRE_AUTH_BYTES + 1004
    assert transport.value() == b""  # no answer
    protocol.dataReceived(b"more" * 10_000)  # ignored once dropped


def test_idle_connection_is_closed_after_the_pre_auth_time():
    protocol, transport, clock = listening()
    clock.advance(PRE_AUTH_SECONDS - 0.1)
    assert not transport.disconnecting
    clock.advance(0.2)
    assert transport.disconnecting


def test_authenticated_link_outlives_the_pre_auth_time():
    p = Pair()
    p.login("node2")
    p.clock.advance(PRE_AUTH_SECONDS * 10)
    assert not p.closed()
    assert p.client.transport is not None and not p.client.transport.disconnecting
    assert p.clock.getDelayedCalls() == []


def test_garbage_before_auth_closes_quietly(failures_logged):
    for garbage in (box([(b"_answer", b"1"), (b"x", b"y")]), box([(b"hello", b"world")]),
                    box([(b"_error", b"7")])):
        protocol, transport, _ = listening()
        protocol.dataReceived(garbage)
        assert transport.disconnecting
    assert failures_logged() == []


def test_malformed_handshake_is_refused(failures_logged):
    protocol, transport, _ = listening()
    protocol.dataReceived(box([(b"_command", b"Challenge"), (b"_ask", b"1")]))
    protocol.dataReceived(box([(b"_command", b"Authenticate"), (b"_ask", b"2"), (b"nodeId", b"\xff\xfe")]))
    assert b"AUTH_FAILED" in transport.value()
    assert transport.disconnecting and not protocol.authenticated
    assert failures_logged() == []


def authenticated_link():
    p = Pair()
    p.login("node2")
    assert p.server.authenticated
    return p


def test_box_of_too_many_keys_after_auth_closes():
    p = authenticated_link()
    keys = [(b"k%d" % i, b"v") for i in range(MAX_BOX_KEYS + 1)]
    p.server.dataReceived(box([(b"_command", b"Deliver"), (b"_ask", b"9")] + keys))
    assert p.closed()
    assert p.responder.delivered == []


def test_oversize_box_after_auth_closes():
    p = authenticated_link()
    for chunk in endless_box():
        p.server.dataReceived(chunk)
        if p.closed():
            break
    assert p.server._box_bytes <= MAX_BOX_BYTES + 70_000


def test_largest_legitimate_boxes_pass():
    """A DeliverMany whose three lists are each just below AMP's 64 KiB per
    value: larger than any the router sends (BATCH_BYTES, NAMES_PER_CALL)."""
    assert BATCH_BYTES < 65535
    p = authenticated_link()
    n = 60
    ids = ["m" * 1000 + "%03d" % i for i in range(n)]
    datas = [b"d" * 1000] * n
    names = ["u" * 1000] * n
    answer = p.result(p.client.callRemote(cmd.DeliverMany, msgIds=ids, datas=datas, usernames=names))
    assert answer == {"missing": []}
    assert len(p.responder.delivered) == n and not p.closed()
    big = p.result(p.client.callRemote(cmd.RoomNotice, roomName="r" * 20000, data=b"x" * 65000))
    assert not p.closed(), big


# -- the connecting side retries a node that does not know it yet --------------


class _Responder:
    def deliver(self, msgId, data, usernames, everyone):
        return len(usernames), []


@pytest_twisted.ensureDeferred
async def test_peers_retry_until_the_other_node_knows_them():
    members = {}
    identity = MemberIdentity(lambda: members, lambda at_most: task.deferLater(reactor, at_most, lambda: None),
                              reactor, wait=0.1)
    port = reactor.listenTCP(0, InternalFactory(_Responder(), b"s", reactor, identity), interface="127.0.0.1")
    peers = Peers(reactor, "newcomer", b"s", _Responder(), timeout=3, join_grace=10, retry_interval=0.1)
    peers.update({"old": {"internalHost": "127.0.0.1", "internalPort": port.getHost().port}})
    # the old node's view lists the newcomer only later (a few refused tries)
    reactor.callLater(0.5, members.update, {"newcomer": {"internalHost": "127.0.0.1"}})
    try:
        answer = await peers.call("old", cmd.Deliver, msgId="m", data=b"{}", usernames=["x"], everyone=False)
        assert answer["delivered"] == 1
    finally:
        peers.close()
        await port.stopListening()


# -- gateways (the server API) ---------------------------------------------------


class Api(amp.CommandLocator):
    def __init__(self):
        self.asked = []

    @cmd.ApiPresence.responder
    def presence(self, username):
        self.asked.append(username)
        return {"online": False, "nodes": [], "onlineFor": None}


GATEWAYS = {"gw1": {"internalHost": "10.0.0.7"}}


def test_gateway_may_send_only_api_commands():
    api = Api()
    p = Pair(source="10.0.0.7", gateways=GATEWAYS, api=api)
    assert p.login("gateway:gw1") is None
    assert p.server.peerKind == "gateway"
    answer = p.result(p.client.callRemote(cmd.ApiPresence, username="alice"))
    assert answer == {"online": False, "nodes": [], "onlineFor": None} and api.asked == ["alice"]
    for command, arguments in [
        (cmd.Deliver, {"msgId": "m1", "data": b"{}", "usernames": ["a"], "everyone": False}),
        (cmd.RoomDeliver, {"roomNames": ["r"], "seqs": [1], "msgIds": ["m"], "datas": [b"{}"]}),
        (cmd.Disconnect, {"username": "alice"}),
    ]:
        assert refusal(p.result(p.client.callRemote(command, **arguments))) is cmd.NotAllowed
    assert p.responder.delivered == [] and not p.closed()


def test_node_may_not_send_api_commands():
    api = Api()
    p = Pair(gateways=GATEWAYS, api=api)
    assert p.login("node2") is None and p.server.peerKind == "node"
    assert refusal(p.result(p.client.callRemote(cmd.ApiPresence, username="alice"))) is cmd.NotAllowed
    assert api.asked == []


def test_gateway_must_be_registered_and_connect_from_its_host():
    p = Pair(source="10.0.0.7", gateways=GATEWAYS, api=Api())
    failure = p.login("gateway:gw2")
    p.clock.advance(5)
    p.pump.flush()
    assert isinstance(failure, Failure) or not p.server.authenticated
    assert not p.server.authenticated
    p = Pair(source="10.0.0.2", gateways=GATEWAYS, api=Api())
    assert isinstance(p.login("gateway:gw1"), Failure) and not p.server.authenticated
    # a gateway's id is not a node's, nor the other way round
    p = Pair(source="10.0.0.7", gateways={"node2": {"internalHost": "10.0.0.7"}}, api=Api())
    assert isinstance(p.login("node2"), Failure) and not p.server.authenticated


def test_api_commands_refused_without_an_api_locator():
    p = Pair(source="10.0.0.7", gateways=GATEWAYS)
    assert p.login("gateway:gw1") is None
    assert refusal(p.result(p.client.callRemote(cmd.ApiPresence, username="alice"))) is cmd.NotAllowed


def test_a_peer_that_does_not_read_what_it_is_sent_is_dropped():
    """The transport's buffer is full (it paused the link's producer): what
    the node sends then counts, and past the bound the link is aborted, as a
    peer breaking the limits is."""
    clock = task.Clock()
    protocol = InternalProtocol(Responder(), b"s3cret", clock, MemberIdentity(lambda: MEMBERS, None, clock))
    protocol.maxOutboundBytes = 10_000
    transport = StringTransport(peerAddress=IPv4Address("TCP", "10.0.0.2", 40000))
    protocol.makeConnection(transport)
    transport.producer.pauseProducing()
    for _ in range(4):
        transport.write(b"x" * 3000)
    assert transport.disconnecting
