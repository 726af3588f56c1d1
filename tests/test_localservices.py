"""The real-service launcher: each store starts, answers, restarts and stops."""
import json
import os
import socket
import urllib.request

import pytest
from kazoo.client import KazooClient

from devtools import devcluster
from devtools.localservices import (
    ChatProcess,
    ServiceError,
    free_port,
    port_is_free,
    redis_command,
    zk_four_letter_word,
)


def refuses(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return True
    return False


def test_session_redis_answers(redis_server):
    assert redis_server.url == f"redis://127.0.0.1:{redis_server.port}/0"
    assert redis_command(redis_server.port, "PING") == "PONG"
    assert redis_server.execute("CONFIG", "GET", "save") == [b"save", b""]
    assert redis_server.execute("CONFIG", "GET", "appendonly") == [b"appendonly", b"no"]
    redis_server.execute("SET", "chatnet:localservices", "db3", db=3)
    assert redis_server.execute("GET", "chatnet:localservices", db=3) == b"db3"
    assert redis_server.execute("GET", "chatnet:localservices") is None
    redis_server.execute("DEL", "chatnet:localservices", db=3)
    with pytest.raises(ServiceError):
        redis_server.execute("NO-SUCH-COMMAND")


def test_session_zookeeper_answers(zookeeper_server):
    assert zookeeper_server.url == f"127.0.0.1:{zookeeper_server.port}"
    assert zk_four_letter_word(zookeeper_server.port, "ruok") == "imok"
    conf = zk_four_letter_word(zookeeper_server.port, "conf")
    assert "tickTime=500" in conf
    assert "minSessionTimeout=1000" in conf


def test_session_mongo_answers(mongo_server):
    assert mongo_server.url == f"mongodb://127.0.0.1:{mongo_server.port}/chat"
    client = mongo_server.client()
    try:
        assert client.admin.command("ping")["ok"] == 1
        coll = client.get_default_database()["localservices_test"]
        coll.insert_one({"_id": "x", "v": 1})
        assert coll.find_one({"_id": "x"})["v"] == 1
        coll.drop()
    finally:
        client.close()


def test_free_port_is_free(free_port):
    assert port_is_free(free_port)


def test_redis_restart_keeps_or_wipes_data(services):
    redis = services.redis()
    port, pid = redis.port, redis.pid
    redis.execute("SET", "chatnet:test", "kept")

    redis.restart()
    assert (redis.port, redis.url) == (port, f"redis://127.0.0.1:{port}/0")
    assert redis.pid != pid
    assert redis.execute("GET", "chatnet:test") == b"kept"

    redis.restart(empty=True)
    assert redis.port == port
    assert redis.execute("GET", "chatnet:test") is None
    assert redis.execute("DBSIZE") == 0

    redis.stop()
    assert not redis.running
    assert refuses(port)


def test_zookeeper_kill_and_restart(services):
    zk = services.zookeeper()
    port = zk.port
    client = KazooClient(hosts=zk.url, timeout=4)
    client.start(timeout=10)
    try:
        client.create("/chatnet-test/persistent", b"v", makepath=True)
    finally:
        client.stop()
        client.close()

    assert zk.kill() == -9
    assert refuses(port)

    zk.restart()
    assert zk.port == port
    assert "Mode: standalone" in zk_four_letter_word(port, "srvr")
    client = KazooClient(hosts=zk.url, timeout=2)
    client.start(timeout=10)
    try:
        data, _ = client.get("/chatnet-test/persistent")
        assert data == b"v"
        # tickTime=500 lets a client have a 2 s session.
        assert "to=2000" in zk_four_letter_word(port, "cons")
    finally:
        client.stop()
        client.close()
    assert (zk.directory / "zookeeper.log").stat().st_size > 0


def test_mongo_restart_keeps_data(services):
    mongo = services.mongo()
    client = mongo.client()
    try:
        client.chat.things.insert_one({"_id": 1})
    finally:
        client.close()
    mongo.restart()
    client = mongo.client()
    try:
        assert client.chat.things.find_one({"_id": 1}) == {"_id": 1}
    finally:
        client.close()


@pytest.mark.process
def test_start_fails_clearly_when_the_server_cannot_run(tmp_path):
    proc = ChatProcess("no-such-twistd-plugin", [], tmp_path / "broken.log", ready_log="never")
    with pytest.raises(ServiceError) as info:
        proc.start(timeout=30)
    assert "exited" in str(info.value)
    assert not proc.running


@pytest.mark.process
def test_chat_process_runs_a_twistd_plugin(services, tmp_path):
    # The twisted.web plugin stands in for chatnode/chatgateway here.
    (tmp_path / "hello.txt").write_text("hello")
    port = free_port()
    web = services.chat(
        "web", ["--listen", f"tcp:{port}:interface=127.0.0.1", "--path", str(tmp_path)],
        ready_port=port)
    web.wait_for_log(f"Site starting on {port}", timeout=10)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/hello.txt", timeout=5) as resp:
        assert resp.read() == b"hello"

    mark = web.log_mark()
    web.stop()
    assert web.wait_for_log("Main loop terminated", timeout=5, since=mark)
    with pytest.raises(ServiceError):
        web.wait_for_log("Site starting on", timeout=1, since=web.log_mark())

    web.start()
    assert web.kill() == -9
    assert refuses(port)


@pytest.mark.stores
def test_devcluster_starts_and_stops_the_stores(tmp_path, capsys):
    cluster = tmp_path / "cluster"
    assert devcluster.main(["start", "--dir", str(cluster), "--stores-only"]) == 0
    try:
        state = json.loads((cluster / "pids.json").read_text())
        procs = {p["name"]: p for p in state["processes"]}
        assert set(procs) == {"redis", "zookeeper", "mongo"}
        assert redis_command(procs["redis"]["port"], "PING") == "PONG"
        assert zk_four_letter_word(procs["zookeeper"]["port"], "ruok") == "imok"
        assert not refuses(procs["mongo"]["port"])
        assert devcluster.main(["status", "--dir", str(cluster)]) == 0
        out = capsys.readouterr().out
        assert procs["redis"]["url"] in out
        assert "running" in out
    finally:
        assert devcluster.main(["stop", "--dir", str(cluster)]) == 0
    assert not (cluster / "pids.json").exists()
    for p in procs.values():
        # the process is gone (its port may already serve another test's server)
        assert not os.path.exists(f"/proc/{p['pid']}") or _zombie(p["pid"]), p
    assert devcluster.main(["status", "--dir", str(cluster)]) == 1


def _zombie(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True
