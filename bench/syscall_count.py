"""System calls per delivery of each server process during one
chatnet-bench run, counted by ``perf stat -e raw_syscalls:sys_enter`` (a
kernel tracepoint: counting costs little and changes no code path).

    python -m bench.syscall_count DIR SCENARIO [chatnet-bench options...]
    python -m bench.syscall_count /tmp/sio direct --pairs 20 --window 5 --messages 1000 --warmup 0

DIR is a running cluster's directory (``scripts/run-cluster start --bench``
or ``python -m bench.peer start``); every process of its ``pids.json`` but
the gateway and ZooKeeper is counted, from just before the run starts to
just after it ends (so the logins and joins of the run are in the counts
too: a few per client). Prints one JSON line: the run's figures, the
system calls of each process, per delivery, and each process's CPU per
delivery (the run's window) and its user and system (kernel) parts over
the span counted. Needs ``perf`` and the right to trace (root). Linux only.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

LEFT_OUT = ("gateway", "zookeeper")
TICK = os.sysconf("SC_CLK_TCK")


def user_system(pid):
    """(user, system) CPU seconds of ``pid`` from /proc."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) / TICK, int(fields[12]) / TICK


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) < 2 or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 2
    directory, bench_args = argv[0], argv[1:]
    if shutil.which("perf") is None:
        print("bench.syscall_count: perf is not installed", file=sys.stderr)
        return 1
    with open(os.path.join(directory, "pids.json")) as f:
        entries = json.load(f)["processes"]
    procs = {e["name"]: e["pid"] for e in entries if e["name"] not in LEFT_OUT}
    counters = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, pid in procs.items():
            out = os.path.join(tmp, f"{name}.csv")
            counters[name] = (subprocess.Popen(
                ["perf", "stat", "-x,", "-e", "raw_syscalls:sys_enter", "-p", str(pid), "-o", out]), out)
        time.sleep(1.0)  # perf attached
        before = {name: user_system(pid) for name, pid in procs.items()}
        run = subprocess.run([sys.executable, "-m", "chatnet.bench", *bench_args, "--cluster-dir",
                              directory, "--json", "--quiet"], capture_output=True, text=True)
        after = {name: user_system(pid) for name, pid in procs.items()}
        for proc, _out in counters.values():
            proc.send_signal(signal.SIGINT)
        counts = {}
        for name, (proc, out) in counters.items():
            proc.wait(30)
            with open(out) as f:
                for line in f:
                    if "raw_syscalls" in line and line.split(",")[0].isdigit():
                        counts[name] = int(line.split(",")[0])
    lines = [ln for ln in run.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        print(f"bench.syscall_count: the run failed: {run.stderr[-2000:]}", file=sys.stderr)
        return 1
    r = json.loads(lines[-1])
    n = r.get("delivered") or 0
    cpu = {**(r.get("node_cpu_s") or {}), **(r.get("store_cpu_s") or {})}
    print(json.dumps({
        "scenario": r.get("scenario"), "target": r.get("target"), "sent": r.get("sent"),
        "delivered": n, "lost": r.get("lost"), "msgs_per_s": r.get("msgs_per_s"),
        "p50_ms": r.get("p50_ms"), "p99_ms": r.get("p99_ms"),
        "syscalls": counts,
        "syscalls_per_delivery": {k: round(v / n, 3) for k, v in counts.items()} if n else None,
        "cpu_us_per_delivery": {k: round(v * 1e6 / n, 1) for k, v in sorted(cpu.items())} if n else None,
        # over the whole span counted (logins included): user and system
        # (kernel) CPU per delivery, from /proc
        "user_us_per_delivery": {k: round((after[k][0] - before[k][0]) * 1e6 / n, 1)
                                 for k in procs} if n else None,
        "system_us_per_delivery": {k: round((after[k][1] - before[k][1]) * 1e6 / n, 1)
                                   for k in procs} if n else None,
        "members": r.get("members"), "pairs": r.get("pairs"), "notes": r.get("notes"),
        "load": round(os.getloadavg()[0], 2),
        "command": r.get("command"),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
