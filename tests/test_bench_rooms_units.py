"""The load generator's many-rooms accounts (per-room loss, duplicates and
order by the server's seq), the node CPU figures and the options that find the
node processes (chatnet/bench/tracker.py, cpu.py, options.py)."""
import json
import os

import pytest

from chatnet.bench import cpu, options, targets
from chatnet.bench.tracker import DUPLICATE, NEW, Tracker


def room_tracker():
    """Two rooms: a (members 1, 2, 3; sender 1) and b (members 4, 5; sender 4)."""
    t = Tracker()
    a, b = frozenset({1, 2, 3}), frozenset({4, 5})
    for n in range(3):
        t.on_send((1, n), a, 0.0, group="a")
        t.on_send((4, n), b, 0.0, group="b")
    return t


def test_groups_count_their_own_sends_and_deliveries():
    t = room_tracker()
    for n in range(3):
        for member in (1, 2, 3):
            assert t.on_receive((1, n), member, 0.1, order=10 + n) == NEW
        for member in (4, 5):
            t.on_receive((4, n), member, 0.1, order=n)
    g = t.group_summary()
    assert g["groups"] == 2
    assert g["groups_with_loss"] == g["groups_with_duplicates"] == g["groups_reordered"] == 0
    assert g["per_group"]["a"] == {"sent": 3, "expected": 9, "delivered": 9, "lost": 0,
                                   "duplicated": 0, "reordered": 0}
    assert g["per_group"]["b"]["delivered"] == 6
    assert (g["group_delivered_min"], g["group_delivered_max"]) == (6, 9)
    assert t.lost == 0 and t.duplicated == 0 and t.reordered == 0


def test_a_missing_delivery_is_lost_in_its_room_only():
    t = room_tracker()
    for n in range(3):
        for member in (1, 2, 3):
            if (n, member) != (1, 3):
                t.on_receive((1, n), member, 0.1, order=n)
        for member in (4, 5):
            t.on_receive((4, n), member, 0.1, order=n)
    g = t.group_summary()
    assert g["groups_with_loss"] == 1
    assert g["per_group"]["a"]["lost"] == 1
    assert g["per_group"]["b"]["lost"] == 0
    assert t.lost == 1 and t.lost_messages() == 1


def test_a_second_copy_is_a_duplicate_of_its_room():
    t = room_tracker()
    t.on_receive((4, 0), 5, 0.1, order=0)
    assert t.on_receive((4, 0), 5, 0.2, order=0) == DUPLICATE
    g = t.group_summary()
    assert g["groups_with_duplicates"] == 1
    assert g["per_group"]["b"]["duplicated"] == 1
    assert g["per_group"]["b"]["delivered"] == 1
    assert t.duplicated == 1


def test_order_is_the_rooms_seq_per_member():
    t = room_tracker()
    # member 2 gets seq 11 before seq 10: one delivery out of order
    t.on_receive((1, 0), 2, 0.1, order=10)
    t.on_receive((1, 2), 2, 0.1, order=12)
    t.on_receive((1, 1), 2, 0.1, order=11)
    # member 3 in order; another room's seqs are another stream
    for n in range(3):
        t.on_receive((1, n), 3, 0.1, order=10 + n)
        t.on_receive((4, n), 4, 0.1, order=n)
    assert t.reordered == 1
    g = t.group_summary()
    assert g["groups_reordered"] == 1
    assert g["per_group"]["a"]["reordered"] == 1
    assert g["per_group"]["b"]["reordered"] == 0


def test_two_senders_of_one_room_are_held_to_the_rooms_seq():
    """By sender the deliveries look in order; by the room's seq they are not."""
    t = Tracker()
    room = frozenset({1, 2, 9})
    t.on_send((1, 0), room, 0.0, group="r")
    t.on_send((2, 0), room, 0.0, group="r")
    t.on_receive((2, 0), 9, 0.1, order=6)  # seq 6 first
    t.on_receive((1, 0), 9, 0.1, order=5)  # then seq 5
    assert t.reordered == 1


def test_without_seq_order_falls_back_to_the_senders_n():
    t = room_tracker()
    t.on_receive((1, 1), 2, 0.1)
    t.on_receive((1, 0), 2, 0.1)
    assert t.reordered == 1


def test_ungrouped_messages_have_no_group_figures():
    t = Tracker()
    t.on_send((0, 0), frozenset({1}), 0.0)
    t.on_receive((0, 0), 1, 0.1)
    g = t.group_summary()
    assert g["groups"] == 0 and g["per_group"] == {}
    assert g["group_delivered_min"] is None


# ---------------------------------------------------------------------------
# node CPU


def test_cpu_figures_per_message_and_delivery():
    readings = {11: [1.0, 3.0], 12: [2.0, 3.0], 13: [0.5, 1.5]}

    def read(pid):
        return readings[pid].pop(0)

    c = cpu.NodeCpu({"node1": 11, "node2": 12, "node3": 13}, read=read)
    c.start()
    c.stop()
    f = c.figures(messages=1000, deliveries=10000)
    assert f["node_cpu_s"] == {"node1": 2.0, "node2": 1.0, "node3": 1.0}
    assert f["node_cpu_total_s"] == 4.0
    assert f["node_cpu_busiest_over_mean"] == pytest.approx(1.5)
    assert f["node_cpu_us_per_msg"] == 4000.0
    assert f["node_cpu_us_per_delivery"] == 400.0


def test_cpu_figures_leave_out_a_process_that_went_away():
    readings = {11: [1.0, 2.0], 12: [2.0, None]}
    c = cpu.NodeCpu({"a": 11, "b": 12}, read=lambda pid: readings[pid].pop(0))
    c.start()
    c.stop()
    f = c.figures(messages=10, deliveries=10)
    assert f["node_cpu_s"] == {"a": 1.0}


def test_cpu_figures_without_pids_are_none():
    c = cpu.NodeCpu({})
    c.start()
    c.stop()
    f = c.figures(messages=10, deliveries=10)
    assert set(f.values()) == {None}


def test_store_figures_per_message_sent():
    readings = {5: [1.0, 1.5], 9: [2.0, 4.0]}
    c = cpu.NodeCpu({"redis": 5, "mongo": 9}, read=lambda pid: readings[pid].pop(0))
    c.start()
    c.stop()
    assert cpu.store_figures(c, messages=10_000) == {
        "store_cpu_s": {"mongo": 2.0, "redis": 0.5},
        "store_cpu_us_per_msg": {"mongo": 200.0, "redis": 50.0},
    }
    assert cpu.store_figures(cpu.NodeCpu({}), messages=10) == {}


def test_proc_cpu_seconds_of_this_process_grows():
    before = cpu.proc_cpu_seconds(os.getpid())
    x = 0
    for i in range(3_000_000):
        x += i
    after = cpu.proc_cpu_seconds(os.getpid())
    assert before is not None and after is not None and after > before
    assert cpu.proc_cpu_seconds(2**22 + 12345) is None


def test_parse_node_pids():
    assert cpu.parse_node_pids("node1=10, node2=20") == {"node1": 10, "node2": 20}
    assert cpu.parse_node_pids("10,20") == {"pid10": 10, "pid20": 20}
    for bad in ("node1=x", "0", "a=-3"):
        with pytest.raises(ValueError):
            cpu.parse_node_pids(bad)


def cluster_dir(tmp_path):
    (tmp_path / "pids.json").write_text(json.dumps({
        "gateway": "http://127.0.0.1:18500",
        "mongo": "mongodb://127.0.0.1:31000/chat",
        "processes": [
            {"name": "redis", "pid": 5, "cmdline": ["redis-server"]},
            {"name": "gateway", "pid": 6, "cmdline": ["twistd", "chatgateway"]},
            {"name": "node1", "pid": 7, "cmdline": ["twistd", "-n", "chatnode", "--x"]},
            {"name": "node2", "pid": 8, "cmdline": ["twistd", "-n", "chatnode", "--x"]},
        ],
    }))
    return str(tmp_path)


def test_cluster_dir_gives_gateway_mongo_and_node_pids(tmp_path):
    d = cluster_dir(tmp_path)
    opts = options.parse_args(["rooms", "--cluster-dir", d, "--create-users"])
    assert opts.gateway == "http://127.0.0.1:18500"
    assert opts.mongo == "mongodb://127.0.0.1:31000/chat"
    assert opts.cluster_pids == {"node1": 7, "node2": 8}
    assert opts.store_pids == {"redis": 5}
    # explicit options win
    opts = options.parse_args(["direct", "--cluster-dir", d, "--gateway", "http://h:1",
                               "--node-pids", "n=3"])
    assert opts.gateway == "http://h:1"
    assert opts.cluster_pids == {"n": 3}


def test_cluster_dir_without_a_cluster_is_a_clear_error(tmp_path, capsys):
    with pytest.raises(SystemExit):
        options.parse_args(["rooms", "--cluster-dir", str(tmp_path)])
    assert "no cluster in" in capsys.readouterr().err


def test_rooms_options():
    opts = options.parse_args(["rooms", "--nodes", "ws://h:1/"])
    assert (opts.rooms, opts.room_size, opts.room_prefix) == (30, 10, "benchroom")
    assert options.users_needed(opts) == 300
    assert options.user_prefix(opts) == "bench"
    assert options.room_names("r", 3) == ["r1", "r2", "r3"]
    with pytest.raises(SystemExit):
        options.parse_args(["rooms", "--nodes", "ws://h:1/", "--rooms", "0"])
    with pytest.raises(SystemExit):
        options.parse_args(["rooms", "--nodes", "ws://h:1/", "--create-users"])


@pytest.mark.parametrize("nodes", [1, 2, 3, 4])
def test_rooms_and_their_senders_are_spread_over_the_nodes(nodes):
    size = 10
    placed = options.room_spread(6, size, nodes)
    assert len(placed) == 60
    rooms = [placed[r * size:(r + 1) * size] for r in range(6)]
    assert all(set(room) == set(range(nodes)) for room in rooms)
    senders = [room[0] for room in rooms]
    assert set(senders) == set(range(nodes))
    # the clients are as even over the nodes as they can be
    counts = [placed.count(n) for n in range(nodes)]
    assert max(counts) - min(counts) <= 6


def test_create_rooms_inserts_missing_rooms_once(mongo_server):
    import pymongo

    url = mongo_server.url
    prefix = f"unitroom{os.getpid()}x"
    assert targets.create_rooms(url, [prefix + "1", prefix + "2"]) == 2
    assert targets.create_rooms(url, [prefix + "2", prefix + "3"]) == 1
    mongo = pymongo.MongoClient(url)
    try:
        db = mongo.get_default_database()
        docs = list(db.rooms.find({"roomName": {"$regex": "^" + prefix}}))
    finally:
        mongo.close()
    assert sorted(d["roomName"] for d in docs) == [prefix + "1", prefix + "2", prefix + "3"]
    assert all(d["members"] == [] for d in docs)
