"""An interleaved A/B of two running chatnet clusters (two checkouts, two
settings), by the same load generator:

    python -m bench.ab --a on=/tmp/ab/on --b off=/tmp/ab/off --runs 3 \\
        --scenario "direct --pairs 20 --window 5 --messages 1000" \\
        --scenario "room --members 30 --senders 3 --window 20 --messages 500"

Each cluster is a directory of ``scripts/run-cluster start --bench --dir DIR``
(with ``--tls`` for wss). For every scenario, the runs alternate (a, b, a,
b, ...), each after every process of both clusters is idle; after each run
the CPU its processes still used until idle is counted with it. Prints one
JSON line per run, then a Markdown table: the medians of throughput, p50,
p99, the nodes' CPU per delivery and every server process's CPU per
delivery, and the ratio b/a.
"""
import argparse
import json
import os
import shlex
import sys
from pathlib import Path

from chatnet.bench.compare import COMMON_ARGS, calibration_ms, fmt, median, ratio, row, run_bench, settle, wait_idle


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m bench.ab", description=__doc__.split("\n\n")[0])
    p.add_argument("--a", required=True, metavar="NAME=DIR", help="the first cluster")
    p.add_argument("--b", required=True, metavar="NAME=DIR", help="the second cluster")
    p.add_argument("--scenario", action="append", required=True, metavar="ARGS",
                   help="a chatnet-bench scenario and its options (repeatable)")
    p.add_argument("--runs", type=int, default=3, help="runs of each scenario per cluster (default 3)")
    p.add_argument("--idle-wait", type=float, default=60.0, metavar="S")
    opts = p.parse_args(argv)
    opts.clusters = []
    for spec in (opts.a, opts.b):
        name, _, directory = spec.partition("=")
        if not directory:
            p.error(f"{spec!r} is not NAME=DIR")
        opts.clusters.append((name, Path(directory).resolve()))
    return opts


def bench_run(args, directory):
    scenario, *options = shlex.split(args)
    # (the scenario's own options after the common ones: they win)
    return run_bench([scenario, "--cluster-dir", str(directory), *COMMON_ARGS, *options])


def table(rows, clusters, scenarios):
    (a, _), (b, _) = clusters
    out = ["| scenario | cluster | msgs/s | p50 ms | p99 ms | node CPU us/delivery | server CPU us/delivery "
           "| lost | runs |", "|---|---|---|---|---|---|---|---|---|"]
    for scenario in scenarios:
        medians = {}
        for name, _ in clusters:
            mine = [r for r in rows if r["args"] == scenario and r["cluster"] == name and not r["error"]]
            m = {key: median([r[key] for r in mine]) for key in
                 ("msgs_per_s", "p50_ms", "p99_ms", "node_cpu_us_per_delivery", "server_cpu_us_per_delivery")}
            m["lost"] = sum(r["lost"] or 0 for r in mine)
            m["runs"] = len(mine)
            medians[name] = m
            out.append(f"| `{scenario}` | {name} | {fmt(m['msgs_per_s'], 0)} | {fmt(m['p50_ms'])} "
                       f"| {fmt(m['p99_ms'])} | {fmt(m['node_cpu_us_per_delivery'])} "
                       f"| {fmt(m['server_cpu_us_per_delivery'])} | {m['lost']} | {m['runs']} |")
        ratios = [ratio(medians[b][key], medians[a][key]) for key in
                  ("msgs_per_s", "p50_ms", "p99_ms", "node_cpu_us_per_delivery", "server_cpu_us_per_delivery")]
        out.append(f"| | {b}/{a} | " + " | ".join(ratios) + " | | |")
    return "\n".join(out)


def main(argv=None):
    opts = parse_args(argv)
    dirs = [d for _, d in opts.clusters]
    rows = []
    for scenario in opts.scenario:
        for i in range(opts.runs):
            order = opts.clusters if i % 2 == 0 else opts.clusters[::-1]
            for name, directory in order:
                waited = wait_idle(dirs, opts.idle_wait)
                load = os.getloadavg()[0]
                calibration = calibration_ms()
                print(f"ab: {scenario} {i + 1}/{opts.runs} {name} (waited {waited:.0f} s, load {load:.2f})",
                      file=sys.stderr, flush=True)
                r = bench_run(scenario, directory)
                r["load"], r["calibration_ms"] = round(load, 2), calibration
                _, after = settle(directory, opts.idle_wait)
                r["after_cpu"], r["after_cpu_s"] = after, round(sum(after.values()), 3)
                line = row(name, r)
                line.update(cluster=name, args=scenario, node_cpu_us_per_delivery=r.get("node_cpu_us_per_delivery"),
                            lost=r.get("lost"))
                rows.append(line)
                print(json.dumps(line), flush=True)
    print()
    print(table(rows, opts.clusters, opts.scenario))
    return 1 if any(r["error"] for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
