"""A whole chatnet cluster on this machine, in the background: ``scripts/run-cluster``
(``python -m devtools.devcluster`` from the repo root).

``scripts/run-cluster start [--dir .cluster] [--nodes 3] [--gateway-port 8888]``
starts Redis, ZooKeeper and SecantusDB (MongoDB) on free loopback ports, seeds
the stores, then starts the gateway and the chat nodes. Every process is
detached (its own session), keeps its data and log under the directory, and
is listed in ``<dir>/pids.json``; ``stop`` ends them, ``status`` shows them.
``--stores-only`` starts just the three stores, for running nodes by hand.
``--node-arg ARG`` (repeatable) passes ARG on to every chat node's command
line; ``--bench`` starts a benchmark-ready cluster (the nodes without their
per-connection rate limit: ``--rate-limit 0``, see bench/README.md).

``stop-node NODE``, ``start-node NODE`` and ``restart NODE`` stop and start
one process of a running cluster (a chat node such as ``node2``, or the
``gateway``) with the command line recorded for it, e.g. to bring back a node
after ``kill -9``.
"""
import argparse
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from devtools.localservices import (
    REPO_ROOT,
    ChatProcess,
    RedisServer,
    SecantusServer,
    ServiceError,
    ZooKeeperServer,
    free_port,
    port_is_free,
)

PIDS_FILE = "pids.json"
SECRET_FILE = "cluster-secret"
API_KEY_FILE = "api-key"
ZK_SESSION_TIMEOUT = 4
SEED_TIMEOUT = 120.0
STOP_TIMEOUT = 15.0


# --------------------------------------------------------------------------
# processes recorded in pids.json


def _proc_stat(pid):
    """(state, start time) of a process from /proc, or None if there is none."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return fields[0], fields[19]


def _start_time(pid):
    stat = _proc_stat(pid)
    return stat[1] if stat else None


def is_alive(entry):
    """True if the process recorded in C{entry} still runs (and is the same one)."""
    pid = entry.get("pid")
    if not pid:
        return False
    stat = _proc_stat(pid)
    if stat is None:
        if os.path.isdir("/proc"):
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    state, started = stat
    if state in ("Z", "X"):
        return False
    return entry.get("starttime") in (None, started)


def _signal(entry, sig):
    pid = entry["pid"]
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _wait_gone(entries, timeout):
    deadline = time.monotonic() + timeout
    left = [e for e in entries if is_alive(e)]
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = [e for e in left if is_alive(e)]
    return left


def stop_entries(entries, timeout=STOP_TIMEOUT):
    """SIGTERM the processes (last started first), SIGKILL what is left. Returns the survivors."""
    entries = [e for e in entries if is_alive(e)]
    # Chat processes first, so the nodes do not see their stores vanish under them.
    chat = [e for e in entries if e.get("kind")]
    stores = [e for e in entries if not e.get("kind")]
    for group in (chat, stores):
        for entry in reversed(group):
            _signal(entry, signal.SIGTERM)
        for entry in _wait_gone(group, timeout):
            _signal(entry, signal.SIGKILL)
    return _wait_gone(entries, 5.0)


class ClusterState:
    """``<dir>/pids.json``: what runs, where, with which log."""

    def __init__(self, directory):
        self.directory = Path(directory).resolve()
        self.path = self.directory / PIDS_FILE
        self.data = {"dir": str(self.directory), "processes": []}

    def load(self):
        try:
            self.data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return False
        except ValueError as e:
            raise SystemExit(f"run-cluster: {self.path} is not valid JSON: {e}")
        return True

    @property
    def processes(self):
        return self.data["processes"]

    def add(self, process):
        entry = process.describe()
        entry["starttime"] = _start_time(process.pid)
        self.processes.append(entry)
        self.save()

    def save(self):
        # Private: the nodes' command lines carry the cluster secret.
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(self.data, indent=2) + "\n")
        os.replace(tmp, self.path)

    def remove(self):
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass


# --------------------------------------------------------------------------
# start


def cluster_secret(directory):
    """The cluster secret, made once and kept in C{directory} (mode 0600)."""
    path = directory / SECRET_FILE
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32) + "\n")
    return path.read_text().strip()


def api_key(directory):
    """The server API key of the dev cluster, made once and kept in
    C{directory} (mode 0600); its path."""
    path = directory / API_KEY_FILE
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(24) + "\n")
    return path


def _chat_env():
    paths = [str(REPO_ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p]
    return dict(os.environ, PYTHONPATH=os.pathsep.join(paths))


def run_seed(directory, mongo_url, redis_url):
    log_path = directory / "logs" / "seed.log"
    cmd = [sys.executable, "-m", "chatnet.ops.seed", "--mongo", mongo_url, "--redis", redis_url]
    with open(log_path, "ab") as log:
        try:
            result = subprocess.run(
                cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env=_chat_env(), timeout=SEED_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise ServiceError(f"chatnet-seed did not finish within {SEED_TIMEOUT:.0f} s "
                               f"(log: {log_path})")
    if result.returncode != 0:
        tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-30:])
        raise ServiceError(f"chatnet-seed failed (exit code {result.returncode}):\n{tail}")


def gateway_nodes(gateway_url, timeout=2.0):
    """The live nodes the gateway lists (``GET /server?all=1``)."""
    with urllib.request.urlopen(gateway_url + "/server?all=1", timeout=timeout) as resp:
        nodes = json.loads(resp.read())
    if not isinstance(nodes, list):
        raise ValueError(f"unexpected answer: {nodes!r}")
    return nodes


def wait_for_nodes(gateway_url, count, processes, timeout):
    """Wait until the gateway lists C{count} live nodes; fail early if a process dies."""
    deadline = time.monotonic() + timeout
    seen, last_error = [], None
    while True:
        for proc in processes:
            if not proc.running:
                raise ServiceError(
                    f"{proc.name} exited with code {proc.process.returncode}\n"
                    f"{proc.log_tail()}")
        try:
            seen = gateway_nodes(gateway_url)
            if len(seen) >= count:
                return seen
        except (OSError, ValueError) as e:
            last_error = e
        if time.monotonic() >= deadline:
            ids = [n.get("nodeId") for n in seen if isinstance(n, dict)]
            raise ServiceError(
                f"the gateway at {gateway_url} lists {len(seen)} of {count} nodes "
                f"after {timeout:.0f} s (listed: {ids}; last error: {last_error}); "
                f"see the logs in {processes[0].log_path.parent}")
        time.sleep(0.25)


def client_endpoint(port, certificate=None):
    """The client port of a node: plain, or TLS with C{certificate} (the
    paths of its key and certificate)."""
    if certificate is None:
        return f"tcp:{port}:interface=127.0.0.1"
    key, cert = certificate
    return f"ssl:port={port}:interface=127.0.0.1:privateKey={key}:certKey={cert}"


def node_extra_args(args):
    """What every chat node gets on top of the usual arguments."""
    extra = []
    if getattr(args, "bench", False):
        extra += ["--rate-limit", "0"]
    for arg in getattr(args, "node_arg", None) or ():
        extra += arg.split() if arg.startswith("--") and " " in arg else [arg]
    return extra


def start(args):
    directory = Path(args.dir).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "logs").mkdir(exist_ok=True)
    state = ClusterState(directory)
    if state.load():
        if any(is_alive(e) for e in state.processes):
            print(f"run-cluster: a cluster is already running in {directory}; "
                  f"stop it first (scripts/run-cluster stop --dir {args.dir})", file=sys.stderr)
            return 1
        state = ClusterState(directory)
    if not args.stores_only and args.nodes < 1:
        print("run-cluster: --nodes must be at least 1", file=sys.stderr)
        return 1
    if not args.stores_only and not port_is_free(args.gateway_port):
        print(f"run-cluster: port {args.gateway_port} is in use; pick another "
              "with --gateway-port", file=sys.stderr)
        return 1

    state.data["started"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    state.save()
    started = []

    def launch(process, what):
        print(f"starting {what} ...", flush=True)
        started.append(process)
        process.start()
        state.add(process)
        return process

    try:
        redis = launch(RedisServer(directory / "redis", detach=True), "Redis")
        zookeeper = launch(ZooKeeperServer(directory / "zookeeper", detach=True), "ZooKeeper")
        mongo = launch(SecantusServer(directory / "mongo", name="mongo", detach=True),
                       "SecantusDB (MongoDB)")
        state.data.update(redis=redis.url, zookeeper=zookeeper.url, mongo=mongo.url)
        state.save()
        if args.stores_only:
            _print_stores(state.data)
            return 0

        print("seeding the stores ...", flush=True)
        run_seed(directory, mongo.url, redis.url)

        secret = cluster_secret(directory)
        gateway_url = f"http://127.0.0.1:{args.gateway_port}"
        state.data["gateway"] = gateway_url
        launch(ChatProcess(
            "chatgateway",
            ["--listen", f"tcp:{args.gateway_port}:interface=127.0.0.1",
             "--redis", redis.url, "--zookeeper", zookeeper.url, "--cluster-secret", secret,
             "--api-key-file", str(api_key(directory))],
            directory / "logs" / "gateway.log", name="gateway",
            ready_port=args.gateway_port, detach=True), "the gateway")
        certificate = None
        if getattr(args, "tls", False):
            from chatnet.ops.tls import make_self_signed

            certificate = make_self_signed(directory / "tls")
            state.data["ca"] = str(certificate[1])
        nodes = []
        for i in range(1, args.nodes + 1):
            port = free_port()
            nodes.append(launch(ChatProcess(
                "chatnode",
                ["--zookeeper", zookeeper.url, "--redis", redis.url, "--mongo", mongo.url,
                 "--open-login", "--cluster-secret", secret, "--node-id", f"node{i}",
                 "--zk-session-timeout", str(ZK_SESSION_TIMEOUT),
                 "--listen", client_endpoint(port, certificate), *node_extra_args(args)],
                directory / "logs" / f"node{i}.log", name=f"node{i}",
                ready_port=port, detach=True), f"node{i}"))

        print(f"waiting for the gateway to list {args.nodes} nodes ...", flush=True)
        chat = [p for p in started if isinstance(p, ChatProcess)]
        listed = wait_for_nodes(gateway_url, args.nodes, chat, args.timeout)
    except (ServiceError, OSError) as e:
        print(f"run-cluster: start failed: {e}", file=sys.stderr)
        print("stopping what was started ...", file=sys.stderr)
        for process in reversed(started):
            try:
                process.stop()
            except Exception:
                process.kill()
        state.remove()
        return 1
    except BaseException:
        for process in reversed(started):
            process.kill()
        state.remove()
        raise

    _print_ready(state.data, listed, args)
    return 0


def _print_stores(data):
    print(f"\nstores are up, files in {data['dir']}")
    print(f"  --redis {data['redis']}")
    print(f"  --zookeeper {data['zookeeper']}")
    print(f"  --mongo {data['mongo']}")


def _print_ready(data, listed, args):
    gateway = data["gateway"]
    print(f"\nchatnet dev cluster is up with {len(listed)} nodes; files in {data['dir']}")
    print(f"  gateway    {gateway}  (GET /server, GET /server?all=1)")
    for node in sorted(listed, key=lambda n: str(n.get("nodeId"))):
        leader = "  (leader)" if node.get("isLeader") else ""
        print(f"  {node.get('nodeId', '?'):<10} ws://{node.get('host')}:{node.get('port')}/"
              f"{leader}")
    print(f"  redis      {data['redis']}")
    print(f"  zookeeper  {data['zookeeper']}")
    print(f"  mongo      {data['mongo']}")
    print(f"  logs       {Path(data['dir']) / 'logs'}")
    client = Path(sys.executable).with_name("chatnet-client")
    print(f"\nOpen the web client in a browser: {gateway}/  (demo users user1..user99 have no password)")
    print("Or connect with the terminal client:")
    print(f"  {client} --gateway {gateway} --user user1")
    print("or with any raw WebSocket client, at the node the gateway hands out:")
    print(f"  curl -s {gateway}/server")
    example = listed[0] if listed else {"host": "127.0.0.1", "port": "PORT"}
    print(f"  websocat ws://{example.get('host')}:{example.get('port')}/")
    print('  then send: {"id": 1, "action": "login", "data": {"username": "user1"}}')
    print("In either client, rooms of your own: /create games private, /invite games user2,")
    print("  /mute games user2 10m, /kick games user2 (/help lists every command).")
    key_file = Path(data["dir"]) / API_KEY_FILE
    print("\nThe server API (docs/api.md), its key in " + str(key_file) + ":")
    print(f"  curl -H \"Authorization: Bearer $(cat {key_file})\" -H 'Content-Type: application/json' \\")
    print(f"       -d '{{\"roomName\": \"world\", \"message\": \"hello from the API\"}}' {gateway}/api/v1/messages")
    print(f"\nStop it with: scripts/run-cluster stop --dir {args.dir}")


# --------------------------------------------------------------------------
# stop and status


def stop(args):
    state = ClusterState(args.dir)
    if not state.load():
        print(f"no cluster recorded in {state.directory} (no {PIDS_FILE})")
        return 0
    running = [e for e in state.processes if is_alive(e)]
    for entry in reversed(running):
        print(f"stopping {entry['name']} (pid {entry['pid']})")
    survivors = stop_entries(state.processes)
    if survivors:
        names = ", ".join(f"{e['name']} (pid {e['pid']})" for e in survivors)
        print(f"run-cluster: could not stop {names}", file=sys.stderr)
        return 1
    state.remove()
    print("stopped" if running else "nothing was running")
    return 0


def status(args):
    state = ClusterState(args.dir)
    if not state.load():
        print(f"no cluster recorded in {state.directory} (no {PIDS_FILE})")
        return 1
    all_up = bool(state.processes)
    print(f"cluster in {state.directory}, started {state.data.get('started', '?')}")
    for entry in state.processes:
        alive = is_alive(entry)
        all_up &= alive
        where = entry.get("url") or "-"
        print(f"  {entry['name']:<10} pid {entry['pid']:<8} "
              f"{'running' if alive else 'NOT RUNNING':<12} {where:<34} {entry.get('log', '')}")
    gateway = state.data.get("gateway")
    if gateway:
        try:
            nodes = gateway_nodes(gateway)
        except (OSError, ValueError) as e:
            print(f"gateway {gateway} does not answer: {e}")
            all_up = False
        else:
            print(f"gateway {gateway} lists {len(nodes)} nodes:")
            for node in sorted(nodes, key=lambda n: str(n.get("nodeId"))):
                print(f"  {node.get('nodeId')}: {node.get('host')}:{node.get('port')}"
                      f"{' leader' if node.get('isLeader') else ''}, "
                      f"{node.get('connections', '?')} connections")
    return 0 if all_up else 1


# --------------------------------------------------------------------------
# one process: stop-node, start-node, restart


def _entry(state, name):
    for entry in state.processes:
        if entry["name"] == name and entry.get("kind"):
            return entry
    return None


def _process_of(entry):
    """A L{ChatProcess} that runs C{entry}'s recorded command line again."""
    cmdline = entry.get("cmdline") or []
    kind = entry["kind"]
    if kind not in cmdline:
        raise ServiceError(f"{entry['name']}: no command line recorded")
    args = cmdline[cmdline.index(kind) + 1:]
    return ChatProcess(kind, args, entry["log"], name=entry["name"], ready_port=entry.get("port"),
                       detach=True)


def _one(args):
    """The cluster state and the entry of C{args.node}, or an exit code."""
    state = ClusterState(args.dir)
    if not state.load():
        print(f"run-cluster: no cluster recorded in {state.directory} (no {PIDS_FILE}); "
              "start one first", file=sys.stderr)
        return None, None, 1
    entry = _entry(state, args.node)
    if entry is None:
        names = ", ".join(e["name"] for e in state.processes if e.get("kind"))
        print(f"run-cluster: no process {args.node!r} in this cluster (there are: {names})",
              file=sys.stderr)
        return None, None, 2
    return state, entry, 0


def stop_node(args):
    state, entry, code = _one(args)
    if entry is None:
        return code
    if not is_alive(entry):
        print(f"{entry['name']} is not running")
        return 0
    print(f"stopping {entry['name']} (pid {entry['pid']})", flush=True)
    if stop_entries([entry]):
        print(f"run-cluster: could not stop {entry['name']} (pid {entry['pid']})", file=sys.stderr)
        return 1
    print(f"{entry['name']} stopped")
    return 0


def start_node(args):
    state, entry, code = _one(args)
    if entry is None:
        return code
    if is_alive(entry):
        print(f"{entry['name']} is already running (pid {entry['pid']})")
        return 0
    print(f"starting {entry['name']} ...", flush=True)
    try:
        process = _process_of(entry)
        process.start()
    except (ServiceError, OSError) as e:
        print(f"run-cluster: {entry['name']} did not start: {e}", file=sys.stderr)
        return 1
    fresh = process.describe()
    fresh["starttime"] = _start_time(process.pid)
    entry.update(fresh)
    state.save()
    print(f"{entry['name']} is running (pid {entry['pid']}, {entry.get('url')}); log {entry['log']}")
    return 0


def restart(args):
    code = stop_node(args)
    return code if code else start_node(args)


# --------------------------------------------------------------------------


def build_parser():
    parser = argparse.ArgumentParser(
        prog="scripts/run-cluster",
        description="Run a whole chatnet cluster (stores, gateway, nodes) on this machine.")
    sub = parser.add_subparsers(dest="command")

    def with_dir(p):
        p.add_argument("--dir", default=".cluster",
                       help="where data, logs and pids.json are kept (default: .cluster)")
        return p

    p = with_dir(sub.add_parser("start", help="start everything in the background"))
    p.add_argument("--nodes", type=int, default=3, help="number of chat nodes (default: 3)")
    p.add_argument("--gateway-port", type=int, default=8888,
                   help="port of the HTTP gateway (default: 8888)")
    p.add_argument("--timeout", type=float, default=60.0,
                   help="seconds to wait for the gateway to list every node (default: 60)")
    p.add_argument("--stores-only", action="store_true",
                   help="start only Redis, ZooKeeper and SecantusDB")
    p.add_argument("--bench", action="store_true",
                   help="benchmark-ready nodes: no per-connection rate limit (--rate-limit 0)")
    p.add_argument("--tls", action="store_true",
                   help="nodes take clients over TLS (wss://), with a self-signed certificate made in "
                        "DIR/tls (pids.json names it as \"ca\": chatnet-bench --cluster-dir trusts it)")
    p.add_argument("--node-arg", action="append", default=[], metavar="ARG",
                   help="pass ARG to every chat node (repeatable; "
                        "'--node-arg=--rate-limit --node-arg=0' or '--node-arg=\"--rate-limit 0\"')")
    with_dir(sub.add_parser("stop", help="stop everything listed in pids.json"))
    with_dir(sub.add_parser("status", help="show what runs"))
    for name, what in (("stop-node", "stop one node (or the gateway)"),
                       ("start-node", "start a stopped node again, as it was started"),
                       ("restart", "stop and start one node")):
        p = with_dir(sub.add_parser(name, help=what))
        p.add_argument("node", help="node1, node2, ... or gateway")
    return parser


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help")):
        argv.insert(0, "start")
    args = build_parser().parse_args(argv)
    command = {"start": start, "stop": stop, "status": status, "stop-node": stop_node,
               "start-node": start_node, "restart": restart}[args.command]
    return command(args)


if __name__ == "__main__":
    sys.exit(main())
