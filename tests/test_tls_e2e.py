"""TLS with nothing but endpoint strings: two real nodes serving wss:// and
talking to each other over a TLS internal port (a self-signed certificate
made here), the gateway handing out wss:// URLs; and a peer whose
certificate is not trusted is not talked to."""
import json
import ssl
import urllib.request

import pytest
import pytest_twisted
import websocket
from twisted.internet import reactor
from twisted.internet.endpoints import serverFromString

from chatnet.cluster.identity import MemberIdentity
from chatnet.cluster.peers import Peers
from chatnet.errors import PeerUnavailable
from chatnet.factories.internal import InternalFactory
from chatnet.ops import tls
from devtools.localservices import free_port
from chatnet.protocols import amp_commands as cmd
from tests.harness import ChatCluster, WsClient


def endpoint(port, certs):
    key, cert = certs
    return f"ssl:port={port}:interface=127.0.0.1:privateKey={key}:certKey={cert}"


class TlsCluster(ChatCluster):
    def __init__(self, *args, certs, **kwargs):
        super().__init__(*args, **kwargs)
        self.certs = certs
        self.metrics_ports = {}

    def node_args(self, node_id, port, internal_port):
        args = super().node_args(node_id, port, internal_port)
        args[args.index("--listen") + 1] = endpoint(port, self.certs)
        args[args.index("--internal") + 1] = endpoint(internal_port, self.certs)
        metrics = self.metrics_ports.setdefault(node_id, free_port())
        return args + ["--internal-ca", str(self.certs[1]), "--metrics", f"tcp:{metrics}:interface=127.0.0.1"]

    def client(self, node_id=None, username=None, **kwargs):
        client = WssClient(self.port(node_id or "node1"), str(self.certs[1]))
        if username:
            client.login(username)
        return client


class WssClient(WsClient):
    def __init__(self, port, ca, host="127.0.0.1", timeout=10.0):
        self.port = port
        self.timeout = timeout
        self.ws = websocket.create_connection(
            f"wss://{host}:{port}/", timeout=timeout, sslopt={"ca_certs": ca, "cert_reqs": ssl.CERT_REQUIRED})
        self.frames = []
        self.closed = None


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return tls.make_self_signed(tmp_path_factory.mktemp("certs"), ("localhost", "127.0.0.1"))


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, redis_server, zookeeper_server, mongo_server, certs):
    c = TlsCluster(tmp_path_factory.mktemp("tls"), redis_server, zookeeper_server, mongo_server, nodes=2,
                   certs=certs)
    c.start()
    yield c
    c.stop()


def test_gateway_hands_out_wss_urls(cluster):
    status, body = cluster.gateway_get("/server")
    assert status == 200
    node = json.loads(body)
    assert node["url"] == f"wss://127.0.0.1:{node['port']}/"
    assert {n["url"].split(":")[0] for n in cluster.servers()} == {"wss"}


def test_chat_across_nodes_over_tls(cluster):
    alice = cluster.client("node1", username="user1")
    bob = cluster.client("node2", username="user2")
    try:
        alice.send("chat", {"to": "user2", "message": "over tls"})
        chat = bob.expect(action="chat")
        assert chat["data"]["message"] == "over tls" and chat["data"]["from"] == "user1"
        bob.send("chat", {"to": "user1", "message": "and back"})
        assert alice.expect(action="chat")["data"]["message"] == "and back"
    finally:
        alice.close()
        bob.close()
    # the delivery went through the internal port, counted and timed
    status, body = _get(cluster.metrics_ports["node1"], "/metrics")
    assert b'chatnet_internal_calls_total{command="DeliverMany",outcome="ok"}' in body
    assert b"chatnet_internal_call_seconds_bucket" in body


def test_plain_websocket_is_refused(cluster):
    with pytest.raises(Exception):
        websocket.create_connection(f"ws://127.0.0.1:{cluster.port('node1')}/", timeout=3)


def _get(port, path):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
        return response.status, response.read()


class Responder:
    def deliver(self, msgId, data, usernames, everyone):
        return len(usernames), []


@pytest_twisted.ensureDeferred
async def test_internal_tls_checks_the_peer_certificate(tmp_path, certs):
    """Peers connect only to a node whose certificate the --internal-ca signed."""
    other = tls.make_self_signed(tmp_path / "other", ("127.0.0.1",))
    identity = MemberIdentity(lambda: {n: {"internalHost": "127.0.0.1"} for n in "ab"}, None, reactor)
    port = await serverFromString(reactor, endpoint(0, certs)).listen(InternalFactory(Responder(), b"s", reactor, identity))
    trusting = Peers(reactor, "a", b"s", Responder(), timeout=3,
                     tls_options=tls.client_options(_Config(certs[1])))
    stranger = Peers(reactor, "b", b"s", Responder(), timeout=3,
                     tls_options=tls.client_options(_Config(other[1])))
    members = {"server": {"internalHost": "127.0.0.1", "internalPort": port.getHost().port}}
    try:
        for peers in (trusting, stranger):
            peers.update(members)
        answer = await trusting.call("server", cmd.Deliver, msgId="m", data=b"{}", usernames=["x"], everyone=False)
        assert answer["delivered"] == 1
        with pytest.raises(PeerUnavailable):
            await stranger.call("server", cmd.Deliver, msgId="m", data=b"{}", usernames=["x"], everyone=False)
    finally:
        trusting.close()
        stranger.close()
        await port.stopListening()


class _Config:
    def __init__(self, ca):
        self.internal_tls = {"ca": str(ca)}
