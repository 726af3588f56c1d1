"""A short run of the load generator (chatnet/bench/) against a real
three-node cluster: every message arrives, exactly once. Speed is not
asserted here (see bench/RESULTS.md for the figures)."""
import pytest

from chatnet.bench.cli import run_subprocess
from tests.harness import ChatCluster

pytestmark = pytest.mark.process  # twistd chat processes (tests/tiers.py)


@pytest.fixture
def cluster(tmp_path, redis_server, zookeeper_server, mongo_server):
    c = ChatCluster(tmp_path, redis_server, zookeeper_server, mongo_server, nodes=3,
                    session_timeout=3.0, extra_args=["--rate-limit", "0"])
    c.start(users=20, rooms=3)
    yield c
    c.stop()


def bench(cluster, *args):
    gateway = f"http://127.0.0.1:{cluster.gateway_port}"
    return run_subprocess(
        [*args, "--gateway", gateway, "--duration", "2", "--warmup", "0.5", "--drain", "5",
         "--json", "--quiet"],
        timeout=60,
    )


def assert_clean(result):
    assert not result.get("error"), result
    assert result["sent"] > 0, result
    assert result["delivered"] > 0, result
    assert result["lost"] == 0, result
    assert result["duplicated"] == 0, result
    assert result["unexpected"] == 0, result
    assert result["rejected"] == 0, result
    assert result["errors"] == {}, result


def test_direct_and_room_lose_nothing(cluster):
    direct = bench(cluster, "direct", "--pairs", "4", "--window", "5")
    assert_clean(direct)
    assert direct["same_node_pairs"] == 0, direct
    assert direct["delivered"] == direct["expected"] == direct["sent"], direct
    assert len(direct["node_cpu_s"]) == 3 and direct["node_cpu_us_per_msg"] > 0, direct

    room = bench(cluster, "room", "--members", "9", "--senders", "3", "--room", "room2",
                 "--user-start", "10")
    assert_clean(room)
    assert room["members"] == 9, room
    assert room["delivered"] == room["expected"] == room["sent"] * 9, room
    assert len(room["nodes"]) == 3, room
    assert room["node_cpu_us_per_delivery"] > 0, room


def test_many_rooms_lose_nothing_and_report_node_cpu(cluster):
    rooms = bench(cluster, "rooms", "--rooms", "4", "--room-size", "4", "--user-start", "40",
                  "--room-prefix", "smokeroom", "--create-users", "--mongo", cluster.mongo_url)
    assert_clean(rooms)
    assert rooms["reordered"] == 0, rooms
    assert rooms["rooms"] == 4 and rooms["members"] == 16 and rooms["senders"] == 4, rooms
    assert rooms["delivered"] == rooms["expected"] == rooms["sent"] * 4, rooms
    assert rooms["rooms_with_loss"] == rooms["rooms_with_duplicates"] == 0, rooms
    assert set(rooms["per_room"]) == {f"smokeroom{i}" for i in range(1, 5)}, rooms
    assert all(r["sent"] > 0 and r["lost"] == 0 for r in rooms["per_room"].values()), rooms
    assert len(rooms["nodes"]) == 3, rooms
    # the node processes are found by their ports on this host
    assert len(rooms["node_cpu_s"]) == 3, rooms
    assert rooms["node_cpu_us_per_delivery"] > 0, rooms
    assert rooms["node_cpu_busiest_over_mean"] >= 1.0, rooms
