"""``scripts/run-cluster stop-node|start-node|restart NODE``: one process of
the local cluster (devtools/devcluster.py) stopped and started again with
its recorded command line, while the rest runs. Real processes: stores, a
gateway and one chat node."""
import json
import os
import signal

import pytest

from devtools import devcluster
from devtools.localservices import free_port
from tests.harness import wait_until

pytestmark = pytest.mark.process  # the local cluster's processes

pytestmark = pytest.mark.process  # stores, a gateway and a twistd chat node (tests/tiers.py)


def _entry(cluster, name):
    state = json.loads((cluster / "pids.json").read_text())
    return next(p for p in state["processes"] if p["name"] == name)


def test_a_killed_node_is_started_again_and_restarted(tmp_path, capsys):
    cluster = tmp_path / "cluster"
    port = free_port()
    assert devcluster.main(["start", "--dir", str(cluster), "--nodes", "1", "--gateway-port", str(port)]) == 0
    gateway = f"http://127.0.0.1:{port}"
    try:
        first = _entry(cluster, "node1")
        os.kill(first["pid"], signal.SIGKILL)
        wait_until(lambda: not devcluster.is_alive(first), 10, "node1 gone")
        assert devcluster.main(["status", "--dir", str(cluster)]) == 1
        capsys.readouterr()

        assert devcluster.main(["start-node", "node1", "--dir", str(cluster)]) == 0
        again = _entry(cluster, "node1")
        assert again["pid"] != first["pid"] and again["port"] == first["port"] and devcluster.is_alive(again)
        assert again["cmdline"] == first["cmdline"]
        wait_until(lambda: [n["nodeId"] for n in devcluster.gateway_nodes(gateway)] == ["node1"], 30,
                   "the gateway lists node1 again")
        assert devcluster.main(["start-node", "node1", "--dir", str(cluster)]) == 0
        assert "already running" in capsys.readouterr().out

        assert devcluster.main(["restart", "node1", "--dir", str(cluster)]) == 0
        restarted = _entry(cluster, "node1")
        assert restarted["pid"] != again["pid"] and not devcluster.is_alive(again)
        assert devcluster.main(["status", "--dir", str(cluster)]) == 0

        assert devcluster.main(["stop-node", "node1", "--dir", str(cluster)]) == 0
        assert not devcluster.is_alive(restarted)
        assert devcluster.main(["stop-node", "nodeX", "--dir", str(cluster)]) == 2
        assert "there are: gateway, node1" in capsys.readouterr().err
    finally:
        assert devcluster.main(["stop", "--dir", str(cluster)]) == 0


def test_the_node_commands_need_a_cluster(tmp_path, capsys):
    assert devcluster.main(["restart", "node1", "--dir", str(tmp_path / "none")]) == 1
    assert "start one first" in capsys.readouterr().err


def test_a_tls_cluster_serves_wss_and_the_load_generator_trusts_it(tmp_path):
    """``run-cluster start --tls``: the gateway lists wss:// nodes, and
    ``chatnet-bench --cluster-dir`` reaches them over TLS with the
    certificate the cluster made."""
    import subprocess
    import sys

    cluster = tmp_path / "cluster"
    port = free_port()
    assert devcluster.main(["start", "--dir", str(cluster), "--nodes", "2", "--gateway-port", str(port),
                            "--bench", "--tls"]) == 0
    try:
        nodes = devcluster.gateway_nodes(f"http://127.0.0.1:{port}")
        assert [n["url"][:6] for n in nodes] == ["wss://", "wss://"]
        assert json.loads((cluster / "pids.json").read_text())["ca"] == str(cluster / "tls" / "cert.pem")
        run = subprocess.run([sys.executable, "-m", "chatnet.bench", "direct", "--cluster-dir", str(cluster),
                              "--pairs", "2", "--window", "2", "--messages", "20", "--warmup", "0", "--json",
                              "--quiet"], capture_output=True, text=True, timeout=120)
        result = json.loads(run.stdout.splitlines()[-1])
        assert (result["sent"], result["delivered"], result["lost"]) == (40, 40, 0), result
    finally:
        assert devcluster.main(["stop", "--dir", str(cluster)]) == 0
