"""The byte budget of a real node process: a connection, and a user across
their connections, that send more bytes a second than the node allows get
429 for the excess; other users are not affected."""
import pytest

from tests.harness import ChatCluster

MESSAGE = "m" * 900  # a chat frame of about 1 KB


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, redis_server, zookeeper_server, mongo_server):
    c = ChatCluster(
        tmp_path_factory.mktemp("cluster"), redis_server, zookeeper_server, mongo_server, nodes=1,
        extra_args=["--rate-bytes", "1000", "--rate-bytes-burst", "4000",
                    "--user-rate-bytes", "1000", "--user-rate-bytes-burst", "6000"],
    )
    c.start()
    yield c
    c.stop()


def codes(client, count, to, message=MESSAGE):
    """Send `count` direct messages at once; the error codes of the answers
    (None for a message accepted)."""
    ids = [client.send("chat", {"to": to, "message": message}) for _ in range(count)]
    answers = [client.answer(i) for i in ids]
    return [a["data"]["code"] if a["action"] == "error" else None for a in answers], answers


def test_a_connection_and_a_user_over_their_byte_budgets_get_429(cluster):
    first = cluster.client()
    first.login("user1", features=["ack"])
    reader = cluster.client(username="user2")
    got, answers = codes(first, 10, "user2")
    # 4000 bytes of burst and 1000 a second: about 4 of the 10 pass
    assert 3 <= got.count(None) <= 6, answers
    refused = [a for a in answers if a["action"] == "error"]
    assert refused and all(a["data"]["code"] == 429 for a in refused), answers
    assert all("byte rate limit of this connection" in a["data"]["message"] for a in refused), refused
    # the recipient got the accepted ones, nothing else
    assert len(reader.chats(timeout=2.0, count=got.count(None))) == got.count(None)
    # another user is not affected
    other = cluster.client()
    other.login("user3", features=["ack"])
    got_other, answers_other = codes(other, 3, "user2")
    assert got_other == [None, None, None], answers_other


def test_a_user_budget_is_shared_by_their_connections(cluster):
    sessions = []
    for _ in range(5):
        c = cluster.client()
        c.login("user4", features=["multi", "ack"])
        sessions.append(c)
    cluster.client(username="user5")
    # each connection sends about 1,700 bytes (its budget: 4,000 at once),
    # the five together 8,600 (the user's: 6,000 at once, 1,000 a second)
    answers = []
    for c in sessions:
        answers += codes(c, 3, "user5", "m" * 500)[1]
    refused = [a["data"]["message"] for a in answers if a["action"] == "error"]
    assert refused and all("byte rate limit of this user" in m for m in refused), answers
    assert len(refused) < len(answers)
