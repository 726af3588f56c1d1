"""CPU and memory cost of --compression deflate, measured with chatnet-bench.

For each mode (off, deflate) it starts a fresh three-node cluster with
``python -m devtools.devcluster --bench`` (plus ``--compression MODE`` on the nodes),
runs ``chatnet-bench`` with the same ``--compression`` (so its clients offer
and accept permessage-deflate), reads the nodes' CPU time (utime + stime from
/proc/PID/stat) around every run, and prints one JSON line per run with the
nodes' CPU per delivery. The ``connections`` run gives the memory per
connection. Linux only.

    python -m bench.compression_cost [--dir /tmp/cc] [--runs 3] [--clients 2000] [--connections-only]

Run it from the repo root (it starts the cluster with devtools, which is not
installed).
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def cluster_of(directory):
    """The nodes' pids by name, and the MongoDB URL."""
    with open(os.path.join(directory, "pids.json")) as f:
        state = json.load(f)
    nodes = {e["name"]: e["pid"] for e in state["processes"] if str(e.get("name", "")).startswith("node")}
    return nodes, state["mongo"]


def devcluster(*args):
    subprocess.run([sys.executable, "-m", "devtools.devcluster", *args], check=True,
                   stdout=subprocess.DEVNULL)


def bench(argv):
    out = subprocess.run([sys.executable, "-m", "chatnet.bench", *argv, "--json", "--quiet"],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def measure(mode, opts):
    directory = os.path.join(opts.dir, mode)
    shutil.rmtree(directory, ignore_errors=True)
    devcluster("start", "--dir", directory, "--nodes", "3", "--gateway-port", str(opts.gateway_port), "--bench",
               "--node-arg=--compression", f"--node-arg={mode}")
    try:
        pids, mongo = cluster_of(directory)
        gateway = f"http://127.0.0.1:{opts.gateway_port}"
        runs = [["direct", "--pairs", "20", "--window", "5"]] * opts.runs
        runs += [["room", "--members", "30", "--senders", "3"]] * opts.runs
        if opts.connections_only:
            runs = []
        for scenario in runs:
            argv = [*scenario, "--gateway", gateway, "--duration", str(opts.duration), "--compression", mode]
            before = sum(cpu_seconds(p) for p in pids.values())
            result = bench(argv)
            used = sum(cpu_seconds(p) for p in pids.values()) - before
            print(json.dumps({
                "mode": mode, "scenario": scenario[0], "delivered": result["delivered"],
                "lost": result["lost"], "msgs_per_s": result["msgs_per_s"], "p99_ms": result["p99_ms"],
                "compressed_connections": result.get("compressed_connections"),
                "node_cpu_us_per_delivery": round(used / max(1, result["delivered"]) * 1e6, 1),
                "load": os.getloadavg()[0], "command": "chatnet-bench " + " ".join(argv),
            }), flush=True)
        argv = ["connections", "--gateway", gateway, "--clients", str(opts.clients), "--node", "node3",
                "--node-pid", str(pids["node3"]), "--create-users", "--mongo", mongo, "--duration", "3",
                "--compression", mode]
        result = bench(argv)
        print(json.dumps({
            "mode": mode, "scenario": "connections", "clients": opts.clients,
            "compressed_connections": result.get("compressed_connections"),
            "rss_per_conn_kb": result.get("rss_per_conn_kb"),
            "command": "chatnet-bench " + " ".join(argv),
        }), flush=True)
    finally:
        devcluster("stop", "--dir", directory)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dir", default="/tmp/chatnet-compression-cost")
    p.add_argument("--gateway-port", type=int, default=18889)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--duration", type=float, default=10.0)
    p.add_argument("--clients", type=int, default=2000)
    p.add_argument("--modes", default="off,deflate")
    p.add_argument("--connections-only", action="store_true", help="only the connections run")
    opts = p.parse_args(argv)
    for mode in opts.modes.split(","):
        measure(mode, opts)


if __name__ == "__main__":
    main()
