"""``chatnet-bench compare``: chatnet and a peer (the Socket.IO 4 + Redis
adapter server of bench/peers/socketio) in the same run of the machine, by
the same load generator, runs alternating (chatnet, peer, chatnet, peer...).

    chatnet-bench compare [--peer socketio] [--scenarios direct,room,light] [--runs 3]
                          [--dir /tmp/chatnet-compare] [--chatnet-dir DIR] [--peer-dir DIR]

It starts a fresh 3-node chatnet cluster (``python -m devtools.devcluster
start --bench``) and the peer (``python -m bench.peer start``: Redis and 3
Node.js processes), unless ``--chatnet-dir`` / ``--peer-dir`` name ones
already running; waits before every run until all their processes are idle;
runs each scenario (`SCENARIO_ARGS`: the issue's loads, a fixed number of
messages per sender; ``light`` is ``direct`` at 100 messages a second, for
the latency of a machine that is not busy) with ``--cluster-dir``; after each run waits again
until that system's processes are idle and reports the CPU they used
meanwhile (``after_cpu_s``: work a run left behind, e.g. a store still
writing, which the run's own window does not see); prints one JSON line per run,
then a Markdown table (medians, every run, the CPU of every process); and
stops what it started (``--keep`` leaves it running). It needs a checkout
(devtools/ and bench/ are not installed).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from chatnet.bench.cpu import CLUSTER_FILE, proc_cpu_seconds

#: each scenario's load, the same for both systems
SCENARIO_ARGS = {
    "direct": ["--pairs", "20", "--window", "5", "--messages", "1000"],
    "room": ["--members", "30", "--senders", "3", "--window", "20", "--messages", "500"],
    "light": ["--pairs", "10", "--rate", "10", "--window", "0", "--messages", "100"],
}
#: the load generator's scenario of each, where it is not the same name
BENCH_SCENARIO = {"light": "direct"}
#: what every run adds: all of its messages measured, a cap on its length
COMMON_ARGS = ["--warmup", "0", "--duration", "120", "--drain", "10"]

PEERS = ("socketio",)
SYSTEMS = ("chatnet", "socketio")

REPO_ROOT = Path(__file__).resolve().parent.parent.parent


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="chatnet-bench compare",
        description="chatnet against a peer (Socket.IO 4 + Redis adapter), same machine, "
                    "same load generator, runs alternating.")
    p.add_argument("--peer", choices=PEERS, default="socketio")
    p.add_argument("--scenarios", default=",".join(SCENARIO_ARGS),
                   help="comma-separated, of: " + ", ".join(SCENARIO_ARGS) + " (default all)")
    p.add_argument("--runs", type=int, default=3, help="runs of each scenario per system (default 3)")
    p.add_argument("--dir", default="/tmp/chatnet-compare",
                   help="where the clusters it starts keep their files (default /tmp/chatnet-compare)")
    p.add_argument("--chatnet-dir", metavar="DIR",
                   help="a running chatnet cluster (scripts/run-cluster start --bench) to use")
    p.add_argument("--peer-dir", metavar="DIR",
                   help="a running peer (python -m bench.peer start) to use")
    p.add_argument("--keep", action="store_true", help="leave the clusters it started running")
    p.add_argument("--idle-wait", type=float, default=60.0, metavar="S",
                   help="wait at most S seconds before each run for the servers to be idle "
                        "(under 5 ticks of CPU in a second, all processes together)")
    p.add_argument("--bench-arg", action="append", default=[], metavar="ARG",
                   help="pass ARG on to every chatnet-bench run (repeatable)")
    p.add_argument("--json", action="store_true", help="JSON lines only (the table as the last one)")
    return p


def _log(text: str) -> None:
    print(f"chatnet-bench compare: {text}", file=sys.stderr, flush=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _checkout() -> None:
    for need in ("devtools/devcluster.py", "bench/peer.py", "bench/peers/socketio/server.js"):
        if not (REPO_ROOT / need).exists():
            raise SystemExit(f"chatnet-bench compare needs a checkout of chatnet ({need} "
                             f"is not under {REPO_ROOT})")


def checkout_env() -> Dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO_ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def _run_module(*args: str) -> None:
    proc = subprocess.run([sys.executable, "-m", *args], cwd=REPO_ROOT, env=checkout_env(),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{shlex.join(args)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}")


def start_chatnet(directory: Path) -> None:
    _log(f"starting a 3-node chatnet cluster in {directory} ...")
    _run_module("devtools.devcluster", "start", "--dir", str(directory), "--nodes", "3",
                "--gateway-port", str(_free_port()), "--bench")


def stop_chatnet(directory: Path) -> None:
    _run_module("devtools.devcluster", "stop", "--dir", str(directory))


def start_peer(directory: Path) -> None:
    _log(f"starting the Socket.IO peer (3 processes, one Redis) in {directory} ...")
    _run_module("bench.peer", "start", "--dir", str(directory), "--processes", "3")


def stop_peer(directory: Path) -> None:
    _run_module("bench.peer", "stop", "--dir", str(directory))


def _named_pids(directory: Path) -> Dict[str, int]:
    data = json.loads((directory / CLUSTER_FILE).read_text())
    return {str(e.get("name") or e["pid"]): e["pid"] for e in data.get("processes") or ()
            if isinstance(e.get("pid"), int)}


def _pids(directory: Path) -> List[int]:
    return list(_named_pids(directory).values())


def wait_idle(dirs: Sequence[Path], limit: float) -> float:
    """Wait (at most ``limit`` s) until the processes of ``dirs`` use under 5
    ticks of CPU in a second together; the seconds waited."""
    pids = [pid for d in dirs for pid in _pids(d)]
    t0 = time.monotonic()
    while True:
        before = sum(proc_cpu_seconds(p) or 0.0 for p in pids)
        time.sleep(1.0)
        used = sum(proc_cpu_seconds(p) or 0.0 for p in pids) - before
        waited = time.monotonic() - t0
        if used < 0.05 or waited >= limit:
            return waited


def settle(directory: Path, limit: float) -> Tuple[float, Dict[str, float]]:
    """After a run: wait (at most ``limit`` s) until the processes of
    ``directory`` are idle; (seconds waited, ``{process: CPU seconds}`` of
    those that used any meanwhile): the work a run left behind (a store
    writing what it was given, a collection), which the run's own window
    does not see."""
    named = _named_pids(directory)

    def snapshot():
        return {name: proc_cpu_seconds(pid) or 0.0 for name, pid in named.items()}

    start = snapshot()
    t0 = time.monotonic()
    while True:
        before = snapshot()
        time.sleep(0.5)
        now = snapshot()
        waited = time.monotonic() - t0
        if sum(now.values()) - sum(before.values()) < 0.03 or waited >= limit:
            used = {name: round(now[name] - start[name], 3) for name in named}
            return waited, {name: s for name, s in used.items() if s > 0}


def calibration_ms() -> float:
    """CPU ms of a fixed pure-Python loop (600,000 dict stores): the
    machine's speed of the moment (bench/RESULTS.md: it moves from one
    minute to the next on a shared guest; the CPU per delivery moves with it)."""
    t0 = time.process_time()
    d: Dict[int, int] = {}
    for i in range(600_000):
        d[i & 1023] = i
    return round((time.process_time() - t0) * 1000.0, 1)


def run_bench(argv: Sequence[str]) -> Dict[str, Any]:
    """One run of ``chatnet-bench ARGV --json --quiet`` (the checkout's):
    its JSON line, or C{error} (and the command) when it printed none."""
    argv = [*argv, "--json", "--quiet"]
    proc = subprocess.run([sys.executable, "-m", "chatnet.bench", *argv], env=checkout_env(),
                          capture_output=True, text=True)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        return {"scenario": argv[0], "error": f"exit {proc.returncode}: {proc.stderr[-500:]}",
                "command": shlex.join(["chatnet-bench", *argv])}
    return json.loads(lines[-1])


def bench_run(scenario: str, directory: Path, extra: Sequence[str]) -> Dict[str, Any]:
    result = run_bench([BENCH_SCENARIO.get(scenario, scenario), "--cluster-dir", str(directory),
                        *SCENARIO_ARGS[scenario], *COMMON_ARGS, *extra])
    result["scenario"] = scenario
    return result


# the figures ------------------------------------------------------------------

def deliveries(r: Dict[str, Any]) -> int:
    return int(r.get("delivered") or 0)


def server_cpu(r: Dict[str, Any]) -> Dict[str, float]:
    """``{process: CPU seconds}`` of every server process of a run: the
    nodes (chatnet) or Node.js processes (peer), Redis, MongoDB."""
    out: Dict[str, float] = {}
    out.update(r.get("node_cpu_s") or {})
    out.update(r.get("store_cpu_s") or {})
    return out


def row(system: str, r: Dict[str, Any]) -> Dict[str, Any]:
    """One run in the shape of the table."""
    cpu = server_cpu(r)
    total = sum(cpu.values())
    n = deliveries(r)
    return {
        "system": system,
        "scenario": r.get("scenario"),
        "msgs_per_s": r.get("msgs_per_s"),
        "p50_ms": r.get("p50_ms"),
        "p99_ms": r.get("p99_ms"),
        "sent": r.get("sent"),
        "delivered": n,
        "lost": r.get("lost"),
        "duplicated": r.get("duplicated"),
        "server_cpu_s": round(total, 3),
        "server_cpu_us_per_delivery": round(total * 1e6 / n, 1) if n else None,
        "cpu_s": {k: round(v, 3) for k, v in sorted(cpu.items())},
        "cpu_us_per_delivery": {k: round(v * 1e6 / n, 1) for k, v in sorted(cpu.items())} if n else {},
        "after_cpu_s": r.get("after_cpu_s"),
        "after_cpu": r.get("after_cpu") or {},
        "server_cpu_with_after_us_per_delivery":
            round((total + (r.get("after_cpu_s") or 0.0)) * 1e6 / n, 1) if n else None,
        "bench_cpu_s": r.get("bench_cpu_s"),
        "load": r.get("load"),
        "calibration_ms": r.get("calibration_ms"),
        "pairs_or_members": r.get("pairs") if r.get("pairs") is not None else r.get("members"),
        "notes": r.get("notes") or [],
        "error": r.get("error"),
        "command": r.get("command"),
    }


def median(values: List[Optional[float]]) -> Optional[float]:
    vs = [v for v in values if v is not None]
    return statistics.median(vs) if vs else None


def fmt(v: Optional[float], digits: int = 1) -> str:
    if v is None:
        return "-"
    if digits == 0 or abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:,.{digits}f}"


def ratio(a: Optional[float], b: Optional[float]) -> str:
    if not a or not b:
        return "-"
    return f"{a / b:.2f}"


def _process_groups(cpu: Dict[str, float], system: str) -> Dict[str, float]:
    """Per-process CPU summed into nodes / redis / mongo."""
    groups: Dict[str, float] = {}
    for name, s in cpu.items():
        key = name if name in ("redis", "mongo") else ("nodes" if system == "chatnet" else "node.js")
        groups[key] = groups.get(key, 0.0) + s
    return groups


def table(rows: List[Dict[str, Any]], peer: str, scenarios: Sequence[str]) -> str:
    """The Markdown tables: medians side by side, then every run."""
    out = [f"| | chatnet (3 nodes) | {peer} (3 processes) | chatnet / {peer} |", "|---|---|---|---|"]
    for scen in scenarios:
        a = [r for r in rows if r["scenario"] == scen and r["system"] == "chatnet" and not r["error"]]
        b = [r for r in rows if r["scenario"] == scen and r["system"] == peer and not r["error"]]
        unit = "deliveries/s" if scen == "room" else "msgs/s"
        ma, mb = median([r["msgs_per_s"] for r in a]), median([r["msgs_per_s"] for r in b])
        out.append(f"| {scen} {unit} (median) | {fmt(ma, 0)} | {fmt(mb, 0)} | {ratio(ma, mb)} |")
        for key in ("p50_ms", "p99_ms"):
            ma, mb = median([r[key] for r in a]), median([r[key] for r in b])
            out.append(f"| {scen} {key[:3]} ms (median) | {fmt(ma)} | {fmt(mb)} | {ratio(ma, mb)} |")
        la, lb = sum(r["lost"] or 0 for r in a), sum(r["lost"] or 0 for r in b)
        out.append(f"| {scen} lost (all runs) | {la} | {lb} | |")
        ma = median([r["server_cpu_s"] for r in a])
        mb = median([r["server_cpu_s"] for r in b])
        out.append(f"| {scen} server CPU s, all processes (median) | {fmt(ma, 2)} | {fmt(mb, 2)} "
                   f"| {ratio(ma, mb)} |")
        ga = {k: median([_process_groups(r['cpu_s'], 'chatnet').get(k) for r in a])
              for k in ("nodes", "redis", "mongo")}
        gb = {k: median([_process_groups(r['cpu_s'], peer).get(k) for r in b])
              for k in ("node.js", "redis")}
        out.append(f"| {scen} of which | " + ", ".join(f"{k} {fmt(v, 2)}" for k, v in ga.items())
                   + " | " + ", ".join(f"{k} {fmt(v, 2)}" for k, v in gb.items()) + " | |")
        ma = median([r["server_cpu_us_per_delivery"] for r in a])
        mb = median([r["server_cpu_us_per_delivery"] for r in b])
        out.append(f"| {scen} server CPU per delivery, us (median) | {fmt(ma)} | {fmt(mb)} "
                   f"| {ratio(ma, mb)} |")
        ma = median([r["after_cpu_s"] for r in a])
        mb = median([r["after_cpu_s"] for r in b])
        out.append(f"| {scen} CPU s after the run, until idle (median) | {fmt(ma, 2)} "
                   f"| {fmt(mb, 2)} | |")
        ma = median([r["server_cpu_with_after_us_per_delivery"] for r in a])
        mb = median([r["server_cpu_with_after_us_per_delivery"] for r in b])
        out.append(f"| {scen} server CPU per delivery with that, us (median) | {fmt(ma)} "
                   f"| {fmt(mb)} | {ratio(ma, mb)} |")
    out += ["", "| # | scenario | system | pairs / members | msgs/s | p50 / p99 ms | lost | server CPU s "
                "| CPU per delivery us | CPU s of each process | after the run | load generator CPU s "
                "| load avg | calibration ms |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for i, r in enumerate(rows, 1):
        if r["error"]:
            out.append(f"| {i} | {r['scenario']} | {r['system']} | | error: {r['error'][:80]} "
                       "| | | | | | | | | |")
            continue
        procs = ", ".join(f"{k} {v:.2f}" for k, v in r["cpu_s"].items())
        after = ", ".join(f"{k} {v:.2f}" for k, v in sorted(r["after_cpu"].items()) if v >= 0.01)
        out.append(f"| {i} | {r['scenario']} | {r['system']} | {r['pairs_or_members']} "
                   f"| {fmt(r['msgs_per_s'], 0)} "
                   f"| {fmt(r['p50_ms'])} / {fmt(r['p99_ms'])} | {r['lost']} "
                   f"| {fmt(r['server_cpu_s'], 2)} | {fmt(r['server_cpu_us_per_delivery'])} "
                   f"| {procs} | {after or '0'} | {fmt(r['bench_cpu_s'], 2)} "
                   f"| {fmt(r['load'], 2)} | {fmt(r['calibration_ms'])} |")
    return "\n".join(out)


def main(argv: Optional[Sequence[str]] = None) -> int:
    opts = build_parser().parse_args(argv)
    scenarios = [s.strip() for s in opts.scenarios.split(",") if s.strip()]
    for s in scenarios:
        if s not in SCENARIO_ARGS:
            build_parser().error(f"--scenarios: {s!r} is not one of {', '.join(SCENARIO_ARGS)}")
    if opts.runs < 1:
        build_parser().error("--runs must be at least 1")
    _checkout()
    base = Path(opts.dir).resolve()
    dirs = {"chatnet": Path(opts.chatnet_dir).resolve() if opts.chatnet_dir else base / "chatnet",
            opts.peer: Path(opts.peer_dir).resolve() if opts.peer_dir else base / opts.peer}
    started: List[str] = []
    rows: List[Dict[str, Any]] = []
    try:
        if not opts.chatnet_dir:
            start_chatnet(dirs["chatnet"])
            started.append("chatnet")
        if not opts.peer_dir:
            start_peer(dirs[opts.peer])
            started.append(opts.peer)
        for scen in scenarios:
            for i in range(opts.runs):
                for system in ("chatnet", opts.peer):
                    waited = wait_idle(list(dirs.values()), opts.idle_wait)
                    load = os.getloadavg()[0]
                    calib = calibration_ms()
                    _log(f"{scen} {i + 1}/{opts.runs} {system} (waited {waited:.0f} s for idle, "
                         f"load {load:.2f}) ...")
                    r = bench_run(scen, dirs[system], opts.bench_arg)
                    r["load"] = round(load, 2)
                    r["calibration_ms"] = calib
                    _waited, after = settle(dirs[system], opts.idle_wait)
                    r["after_cpu"] = after
                    r["after_cpu_s"] = round(sum(after.values()), 3)
                    line = row(system, r)
                    rows.append(line)
                    print(json.dumps(line), flush=True)
    finally:
        if not opts.keep:
            for system in reversed(started):
                try:
                    (stop_chatnet if system == "chatnet" else stop_peer)(dirs[system])
                except SystemExit as e:
                    _log(str(e))
    text = table(rows, opts.peer, scenarios)
    if opts.json:
        print(json.dumps({"table": text}))
    else:
        print()
        print(text)
    return 1 if any(r["error"] for r in rows) else 0
