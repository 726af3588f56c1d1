"""The shipped deploy/ scripts run a real node and gateway from an env file
like deploy/chatnet.env.example, and stop cleanly on SIGTERM."""
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

from devtools.localservices import REPO_ROOT, free_port, redis_command
from tests import harness

pytestmark = pytest.mark.process  # the deploy scripts run twistd (tests/tiers.py)

DEPLOY = REPO_ROOT / "deploy"


def get(port, path):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read()
    except (urllib.error.HTTPError) as e:
        return e.code, e.read()
    except OSError:
        return None, b""


def wait_for(predicate, timeout, what, processes):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for p in processes:
            assert p.poll() is None, f"{p.args} exited with {p.returncode}"
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_deploy_scripts_run_a_node_and_a_gateway(tmp_path, redis_server, zookeeper_server, mongo_server):
    chroot = harness.make_chroot(zookeeper_server.port)
    db = next(harness._redis_dbs)  # a database no other running cluster uses
    redis_command(redis_server.port, "EVAL", "redis.call('SELECT', ARGV[1]) return redis.call('FLUSHDB')", "0", str(db))
    base, internal, metrics = free_port(), free_port(), free_port()
    gateway, gateway_metrics = free_port(), free_port()
    example = (DEPLOY / "chatnet.env.example").read_text()
    settings = {
        "CHATNET_CLUSTER_SECRET": "test-secret",
        "NODE_PREFIX": "deployed",
        "ADVERTISE_HOST": "127.0.0.1",
        "INTERNAL_HOST": "127.0.0.1",
        "BASE_PORT": str(base),
        "BASE_INTERNAL_PORT": str(internal),
        "BASE_METRICS_PORT": str(metrics),
        "GATEWAY_PORT": str(gateway),
        "GATEWAY_METRICS_PORT": str(gateway_metrics),
        "METRICS_INTERFACE": "127.0.0.1",
        "ZOOKEEPER": f"127.0.0.1:{zookeeper_server.port}{chroot}",
        "ZK_SESSION_TIMEOUT": "3",
        "REDIS_URL": f"redis://127.0.0.1:{redis_server.port}/{db}",
        "MONGO_URL": f'"mongodb://127.0.0.1:{mongo_server.port}/d{uuid.uuid4().hex[:8]}"',
        "PLUGINS": '"eventlog"',
        "TLS_DIR": str(tmp_path / "no-tls"),
    }
    lines = []
    for line in example.splitlines():
        key = line.split("=", 1)[0]
        if key in settings:
            line = f"{key}={settings.pop(key)}"
        lines.append(line)
    assert not settings, f"deploy/chatnet.env.example lacks {settings}"
    (tmp_path / "chatnet.env").write_text("\n".join(lines) + "\n")
    env = dict(os.environ, CHATNET_ENV=str(tmp_path / "chatnet.env"), CHATNET_VENV=str(Path(sys.executable).parent.parent),
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])))
    logs = [open(tmp_path / name, "wb") for name in ("node.log", "gateway.log")]
    processes = [
        subprocess.Popen([str(DEPLOY / "chatnet-node"), "0"], env=env, stdout=logs[0], stderr=subprocess.STDOUT,
                         stdin=subprocess.DEVNULL),
        subprocess.Popen([str(DEPLOY / "chatnet-gateway")], env=env, stdout=logs[1], stderr=subprocess.STDOUT,
                         stdin=subprocess.DEVNULL),
    ]
    try:
        wait_for(lambda: get(metrics, "/health")[0] == 200, 60, "the node's /health", processes)
        wait_for(lambda: get(gateway, "/server")[0] == 200, 30, "the gateway to list the node", processes)
        node = json.loads(get(gateway, "/server")[1])
        assert node["nodeId"] == "deployed-0" and node["port"] == base and node["url"].startswith("ws://")
        assert get(gateway_metrics, "/health")[0] == 200
    finally:
        for p in processes:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        codes = [p.wait(30) for p in processes]
        for f in logs:
            f.close()
    # twistd shuts down cleanly, then ends itself with the signal it got
    assert set(codes) <= {0, -signal.SIGTERM}, codes
    text = (tmp_path / "node.log").read_text()
    assert "chat node deployed-0 stopping" in text and "Server Shut Down" in text
    first = json.loads(text.splitlines()[0])  # json lines on standard output
    assert {"time", "level", "message"} <= set(first)
    assert "event plugin eventlog enabled" in text
