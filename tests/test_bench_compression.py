"""chatnet-bench --compression deflate against real nodes: its clients offer
and accept permessage-deflate, nodes with --compression deflate take it, and
every message still arrives exactly once; nodes with compression off decline
and the run says so."""
import pytest

from chatnet.bench.cli import run_subprocess
from tests.harness import ChatCluster

pytestmark = pytest.mark.process  # twistd chat processes (tests/tiers.py)


@pytest.fixture
def cluster(tmp_path, redis_server, zookeeper_server, mongo_server):
    c = ChatCluster(tmp_path, redis_server, zookeeper_server, mongo_server, nodes=2,
                    session_timeout=3.0, extra_args=["--rate-limit", "0", "--compression", "deflate"])
    c.start(users=20, rooms=3)
    yield c
    c.stop()


def bench(cluster, *args):
    gateway = f"http://127.0.0.1:{cluster.gateway_port}"
    return run_subprocess(
        [*args, "--gateway", gateway, "--duration", "2", "--warmup", "0.5", "--drain", "5", "--json", "--quiet"],
        timeout=60,
    )


def test_deflate_is_negotiated_and_nothing_is_lost(cluster):
    result = bench(cluster, "direct", "--pairs", "3", "--window", "5", "--size", "300", "--compression", "deflate")
    assert not result.get("error"), result
    assert result["compression"] == "deflate"
    assert result["compressed_connections"] == 6, result
    assert result["sent"] > 0 and result["delivered"] == result["expected"] == result["sent"], result
    assert result["lost"] == result["duplicated"] == result["rejected"] == 0, result
    assert result["errors"] == {} and result["notes"] == [], result


def test_without_the_switch_nothing_is_offered(cluster):
    result = bench(cluster, "direct", "--pairs", "2", "--window", "2", "--user-start", "10")
    assert result["compression"] == "off"
    assert result["compressed_connections"] == 0, result
    assert result["lost"] == 0 and result["delivered"] > 0, result
