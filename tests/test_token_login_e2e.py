"""Token login on a real node (twistd chatnode --jwt-secret --jwt-public-key):
good HS256 and ES256 tokens, every kind of bad one, and a user made by
their first login who then chats in their alliance's room."""
import time

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.harness import ChatCluster

jwt = pytest.importorskip("jwt")

SECRET = "an-hs256-secret-of-32-bytes-or-more"


@pytest.fixture
def node(tmp_path, redis_server, zookeeper_server, mongo_server):
    key = ec.generate_private_key(ec.SECP256R1())
    path = tmp_path / "app.pub"
    path.write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    cluster = ChatCluster(tmp_path, redis_server, zookeeper_server, mongo_server, nodes=1,
                          extra_args=["--rate-limit", "0", "--jwt-secret", SECRET, "--jwt-public-key", str(path)])
    cluster.start()
    cluster.key = key
    yield cluster
    cluster.stop()


def mint(sub, key=SECRET, algorithm="HS256", exp=60, **claims):
    payload = {"sub": sub, **claims}
    if exp is not None:
        payload["exp"] = int(time.time()) + exp
    return jwt.encode(payload, key, algorithm=algorithm)


def test_token_logins_on_a_real_node(node):
    hs = node.client()
    assert hs.login("user1", token=mint("user1"))["username"] == "user1"
    es = node.client()
    assert es.login("user2", token=mint("user2", node.key, "ES256"))["username"] == "user2"
    other_key = ec.generate_private_key(ec.SECP256R1())
    # (one user name each: the sixth failure of one name would be locked out, 429)
    bad = {
        "user3": mint("user3", exp=-10),  # expired
        "user4": mint("user4", exp=None),  # no exp
        "user5": mint("user6"),  # another user's
        "user6": mint("user6", key="another-secret-of-32-bytes-or-more"),
        "user7": mint("user7", other_key, "ES256"),
        "user8": jwt.encode({"sub": "user8", "exp": int(time.time()) + 60}, None, algorithm="none"),
        "user9": "garbage",
    }
    client = node.client()
    for username, token in bad.items():
        frame = client.request("login", {"username": username, "token": token})
        assert frame["action"] == "error" and frame["data"]["code"] == 401, (username, frame)
        assert frame["data"]["message"] == "unknown user or wrong password"
    for c in (hs, es, client):
        c.close()


def test_a_new_user_made_by_a_token_chats_in_their_alliance(node):
    alice = node.client()
    alice.login("alice-new", token=mint("alice-new", node.key, "ES256", alliance="red"))
    bob = node.client()
    bob.login("bob-new", token=mint("bob-new", alliance="red"))
    alice.send("chat", {"roomName": "alliance:red", "isGroup": True, "message": "hello red"})
    chats = bob.chats(count=1)
    assert [c["data"]["message"] for c in chats] == ["hello red"] and chats[0]["data"]["from"] == "alice-new"
    for c in (alice, bob):
        c.close()
