"""The Socket.IO peer of the benchmark on this machine, in the background:
Socket.IO 4 with the official Redis adapter (bench/peers/socketio/), N Node.js
processes on one Redis, WebSocket transport only, no compression, nothing
stored.

    python -m bench.peer start [--dir /tmp/sio] [--processes 3]
    python -m bench.peer stop [--dir /tmp/sio]
    python -m bench.peer status [--dir /tmp/sio]

Run it from the repo root (it uses devtools, which is not installed). The
first start installs the server's npm packages (``npm ci``, the versions of
bench/peers/socketio/package-lock.json); the redis-server is started as the
chatnet cluster's is (devtools/localservices.py). Every process is detached,
logs under the directory and is listed in ``<dir>/pids.json`` as
``scripts/run-cluster`` lists a cluster's, with ``"target": "socketio"`` and
the servers' URLs under ``nodes``, so that

    chatnet-bench direct --cluster-dir /tmp/sio

drives it (bench/README.md).
"""
import argparse
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from devtools.devcluster import PIDS_FILE, ClusterState, is_alive, stop_entries
from devtools.localservices import (
    REPO_ROOT,
    ManagedProcess,
    RedisServer,
    ServiceError,
)

#: the server's directory: server.js, package.json, package-lock.json
SERVER_DIR = REPO_ROOT / "bench" / "peers" / "socketio"
NPM_TIMEOUT = 600


class PeerError(RuntimeError):
    """The peer could not be installed or started."""


def installed(server_dir=SERVER_DIR):
    """True if node_modules holds what package-lock.json names (npm writes
    node_modules/.package-lock.json at each install)."""
    lock = server_dir / "package-lock.json"
    done = server_dir / "node_modules" / ".package-lock.json"
    return done.exists() and done.stat().st_mtime >= lock.stat().st_mtime


def ensure_installed(server_dir=SERVER_DIR, log=print):
    """``npm ci`` in the server's directory unless already done; the exact
    versions of its package-lock.json. Node.js and npm come from the
    system (scripts/bootstrap.sh installs them)."""
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            raise PeerError(f"{tool} is not installed: run 'source scripts/bootstrap.sh' "
                            "(it installs nodejs and npm)")
    if installed(server_dir):
        return False
    log(f"installing the Socket.IO peer's packages (npm ci in {server_dir}) ...")
    try:
        proc = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=server_dir,
                              capture_output=True, text=True, timeout=NPM_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise PeerError(f"npm ci did not finish within {NPM_TIMEOUT} s") from None
    if proc.returncode != 0:
        raise PeerError(f"npm ci failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return True


class SocketIOProcess(ManagedProcess):
    """One ``node server.js`` of the peer, listening on its own port."""

    start_timeout = 30.0

    def __init__(self, directory, redis_url, *, name, server_dir=SERVER_DIR, **kwargs):
        self.name = name
        self.redis_url = redis_url
        self.server_dir = Path(server_dir)
        super().__init__(directory, name=name, **kwargs)

    @property
    def url(self):
        return f"ws://127.0.0.1:{self.port}/socket.io/?EIO=4&transport=websocket"

    def command(self):
        return [shutil.which("node") or "node", str(self.server_dir / "server.js"),
                "--port", str(self.port), "--host", "127.0.0.1",
                "--redis", self.redis_url, "--name", self.name]

    def ready(self):
        with socket.create_connection(("127.0.0.1", self.port), timeout=1.0):
            return True

    def describe(self):
        info = super().describe()
        info["kind"] = "socketio"
        info["role"] = "node"
        return info


def start(directory, processes=3, log=print):
    """Start Redis and ``processes`` servers in ``directory``; returns its
    ``pids.json`` data. Raises `PeerError` if a peer already runs there or
    something does not start (what did start is stopped again)."""
    directory = Path(directory).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    state = ClusterState(directory)
    if state.load() and any(is_alive(e) for e in state.processes):
        raise PeerError(f"a peer or cluster already runs in {directory}; stop it first")
    if processes < 1:
        raise PeerError("--processes must be at least 1")
    ensure_installed(log=log)
    state = ClusterState(directory)
    state.data.update(target="socketio", started=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                      nodes=[])
    state.save()
    started = []
    try:
        log("starting Redis ...")
        redis = RedisServer(directory / "redis", detach=True)
        started.append(redis)
        redis.start()
        state.add(redis)
        state.data["redis"] = redis.url
        for i in range(1, processes + 1):
            name = f"sio{i}"
            log(f"starting {name} ...")
            proc = SocketIOProcess(directory / name, redis.url, name=name,
                                   detach=True)
            started.append(proc)
            proc.start()
            state.add(proc)
            state.data["nodes"].append(proc.url)
        state.save()
    except (ServiceError, OSError) as e:
        for proc in reversed(started):
            try:
                proc.stop()
            except Exception:  # noqa: BLE001 - best effort while failing
                proc.kill()
        state.remove()
        raise PeerError(f"the peer did not start: {e}") from None
    return state.data


def stop(directory):
    """Stop what ``<directory>/pids.json`` lists; returns the processes that
    could not be stopped."""
    state = ClusterState(directory)
    if not state.load():
        return []
    survivors = stop_entries(state.processes)
    if not survivors:
        state.remove()
    return survivors


def _main_start(args):
    try:
        data = start(args.dir, args.processes)
    except PeerError as e:
        print(f"bench.peer: {e}", file=sys.stderr)
        return 1
    print(f"Socket.IO peer running, files in {data['dir']}")
    print(f"  redis  {data['redis']}")
    for url in data["nodes"]:
        print(f"  server {url}")
    print(f"  chatnet-bench direct --cluster-dir {args.dir}")
    return 0


def _main_stop(args):
    state = ClusterState(args.dir)
    if not state.load():
        print(f"no peer recorded in {state.directory} (no {PIDS_FILE})")
        return 0
    survivors = stop(args.dir)
    if survivors:
        names = ", ".join(f"{e['name']} (pid {e['pid']})" for e in survivors)
        print(f"bench.peer: could not stop {names}", file=sys.stderr)
        return 1
    print("stopped")
    return 0


def _main_status(args):
    state = ClusterState(args.dir)
    if not state.load():
        print(f"no peer recorded in {state.directory} (no {PIDS_FILE})")
        return 1
    up = bool(state.processes)
    for entry in state.processes:
        alive = is_alive(entry)
        up &= alive
        print(f"  {entry['name']:<8} pid {entry['pid']:<8} {'running' if alive else 'NOT RUNNING':<12} "
              f"{entry.get('url') or '-'}")
    return 0 if up else 1


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m bench.peer",
                                     description="Run the Socket.IO peer of chatnet-bench.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, what in (("start", "install if needed, start Redis and the servers"),
                       ("stop", "stop everything listed in pids.json"),
                       ("status", "show what runs")):
        p = sub.add_parser(name, help=what)
        p.add_argument("--dir", default=os.path.join(".cluster", "socketio"),
                       help="where logs and pids.json are kept (default .cluster/socketio)")
        if name == "start":
            p.add_argument("--processes", type=int, default=3,
                           help="Node.js processes (default 3)")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    return {"start": _main_start, "stop": _main_stop, "status": _main_status}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
