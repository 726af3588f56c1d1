"""The Socket.IO peer of the benchmark, for real: ``bench.peer`` installs
its npm packages if needed (the versions of its package-lock.json), starts
Redis and three Node.js processes of bench/peers/socketio/server.js, and
``chatnet-bench --cluster-dir`` drives them with the same scenarios as a
chatnet cluster: every message arrives, exactly once, across the processes.
Speed is not asserted (bench/RESULTS.md has the figures)."""
import pytest

from bench import peer
from chatnet.bench.cli import run_subprocess


@pytest.fixture
def socketio_peer(tmp_path):
    directory = tmp_path / "sio"
    data = peer.start(directory, processes=3, log=lambda text: None)
    yield directory, data
    assert peer.stop(directory) == []


def bench(directory, *args):
    return run_subprocess([*args, "--cluster-dir", str(directory), "--warmup", "0",
                           "--duration", "30", "--drain", "5", "--json", "--quiet"], timeout=90)


def assert_clean(r):
    assert not r.get("error"), r
    assert r["target"] == "socketio", r
    assert r["sent"] > 0 and r["lost"] == 0 and r["duplicated"] == 0, r
    assert r["unexpected"] == 0 and r["errors"] == {}, r
    assert r["delivered"] == r["expected"], r
    # every process's CPU: the three Node.js processes and Redis
    assert sorted(r["node_cpu_s"]) == ["sio1", "sio2", "sio3"], r
    assert list(r["store_cpu_s"]) == ["redis"], r


@pytest.mark.process
def test_socketio_peer_direct_and_room_lose_nothing(socketio_peer):
    directory, data = socketio_peer
    assert len(data["nodes"]) == 3 and data["target"] == "socketio"
    assert peer.installed()

    direct = bench(directory, "direct", "--pairs", "6", "--window", "5", "--messages", "50")
    assert_clean(direct)
    assert direct["sent"] == direct["delivered"] == 300, direct
    assert direct["same_node_pairs"] == 0, direct
    assert direct["nodes"] == {"sio1": 4, "sio2": 4, "sio3": 4}, direct

    room = bench(directory, "room", "--members", "9", "--senders", "3", "--window", "10",
                 "--messages", "30")
    assert_clean(room)
    assert room["sent"] == 90 and room["delivered"] == 90 * 9, room
