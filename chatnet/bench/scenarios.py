"""The scenarios of ``chatnet-bench``: each sets up its clients on a
`BenchRun`, runs, and returns the result dict (bench/README.md says what each
measures)."""

from __future__ import annotations

import collections
import os
import time
from typing import Any, Dict

from chatnet.bench.options import command_line, room_names, room_spread, spread
from chatnet.bench.report import empty_result
from chatnet.bench.run import BenchRun
from chatnet.bench.targets import (
    find_listening_pid,
    pick_node,
    raise_nofile,
    read_rss_kb,
    resolve,
)
from chatnet.bench.tracker import _round, percentile
from chatnet.bench.traffic import Sender


async def scenario_direct(run: BenchRun) -> Dict[str, Any]:
    opts = run.opts
    nodes = await run.discover()
    k = len(nodes)
    if k < 2:
        run.note("only one node: the pairs share it")
    # sender of pair i on node i % k, its receiver on the next node
    idx = []
    for i in range(opts.pairs):
        idx.append(i % k)
        idx.append((i + 1) % k)
    clients = run.make_clients(idx)
    await run.maybe_create_users()
    run.progress.start()
    run.phase = "login"
    await run.login_all(clients)
    pairs = []
    same_node = 0
    for i in range(opts.pairs):
        snd, rcv = clients[2 * i], clients[2 * i + 1]
        if snd.logged_in and rcv.logged_in:
            pairs.append((snd, rcv))
            if snd.nodeId and snd.nodeId == rcv.nodeId and k > 1:
                same_node += 1
    if not pairs:
        return await run.fail("no pair could log in")
    await run.sleep(opts.settle)
    senders = [
        Sender(snd, frozenset((rcv.index,)), {"to": rcv.username, "format": "text"})
        for snd, rcv in pairs
    ]
    await run.traffic.run_senders(senders)
    return await run.traffic_result({
        "pairs": len(pairs),
        "pairs_requested": opts.pairs,
        "same_node_pairs": same_node,
    })


async def join_all(run: BenchRun, joins) -> list:
    """Join each ``(client, room)`` of ``joins`` at once; the clients that
    joined (and are still connected), in the order given. Failures become a
    note."""
    from twisted.internet import defer

    run.phase = "join"
    failures: collections.Counter = collections.Counter()

    def join_failed(f):
        failures[str(f.value)[:120]] += 1
        return False

    results = await defer.gatherResults([
        c.request("joinRoom", {"roomName": room, "username": c.username})
        .addCallbacks(lambda _data: True, join_failed)
        for c, room in joins
    ])
    if failures:
        run.note(f"{sum(failures.values())} joinRoom failures: "
                 + ", ".join(f"{n}x {w}" for w, n in failures.most_common(3)))
    return [c for (c, _room), ok in zip(joins, results) if ok and c.connected]


async def scenario_room(run: BenchRun) -> Dict[str, Any]:
    opts = run.opts
    nodes = await run.discover()
    # the stalled members (--stalled) all on the first node, after the others
    clients = run.make_clients(spread(opts.members, len(nodes)) + [0] * opts.stalled)
    await run.maybe_create_users()
    run.progress.start()
    run.phase = "login"
    await run.login_all(clients)
    members = [c for c in clients[:opts.members] if c.logged_in]
    if not members:
        return await run.fail("no member could log in")
    joined = await join_all(run, [(c, opts.room) for c in members])
    if not joined:
        return await run.fail(f"no member could join {opts.room}")
    stalled = []
    if opts.stalled:
        stalled = await join_all(run, [(c, opts.room) for c in clients[opts.members:] if c.logged_in])
        for c in stalled:
            stall(c)
    await run.sleep(opts.settle)
    recipients = frozenset(c.index for c in joined)
    # the first members are on different nodes (round-robin)
    sending = joined[: opts.senders]
    senders = [Sender(c, recipients, {"roomName": opts.room, "isGroup": True, "format": "text"})
               for c in sending]
    run.traffic.release_on_own_echo = True
    rss = StalledNodeRss(run, nodes[0]) if opts.stalled else None
    await run.traffic.run_senders(senders)
    figures = {
        "members": len(joined),
        "members_requested": opts.members,
        "senders": len(senders),
        "room": opts.room,
        "deliveries_per_s": _round(run.tracker.throughput(), 1),
    }
    if rss is not None:
        figures.update(rss.stop())
        # read again: a connection the node closed shows it now (a client
        # that does not read does not see the end of its connection)
        for c in stalled:
            c.proto.transport.resumeProducing()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not all(c.closed for c in stalled):
            await run.sleep(0.2)
        figures["stalled"] = len(stalled)
        figures["stalled_closed"] = sum(1 for c in stalled if c.closed)
        figures["stalled_close_codes"] = dict(collections.Counter(str(c.close_code) for c in stalled if c.closed))
    return await run.traffic_result(figures)


def stall(client) -> None:
    """Make C{client} stop reading: a 4 KiB receive buffer, and its
    transport no longer reads from the socket."""
    client.stalled = True
    transport = client.proto.transport
    handle = transport.getHandle() if hasattr(transport, "getHandle") else None
    if hasattr(handle, "setsockopt"):
        import socket

        handle.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    transport.pauseProducing()


class StalledNodeRss:
    """The RSS of the node with the stalled members, before the traffic and
    at its peak (read every 0.1 s while the scenario runs)."""

    def __init__(self, run: BenchRun, node):
        from twisted.internet import task

        self.pid = run.node_pids([node]).get(node.name)
        self.node = node.name
        self.before = read_rss_kb(self.pid) if self.pid else None
        self.peak = self.before
        self._loop = task.LoopingCall(self._sample)
        self._loop.clock = run.reactor
        if self.pid:
            self._loop.start(0.1)
        else:
            run.note("stalled node's RSS not measured: pass --node-pids or --cluster-dir")

    def _sample(self):
        rss = read_rss_kb(self.pid)
        if rss is not None and (self.peak is None or rss > self.peak):
            self.peak = rss

    def stop(self) -> Dict[str, Any]:
        if self._loop.running:
            self._loop.stop()
        after = read_rss_kb(self.pid) if self.pid else None
        return {
            "stalled_node": self.node,
            "stalled_node_rss_kb_before": self.before,
            "stalled_node_rss_kb_peak": self.peak,
            "stalled_node_rss_kb_after": after,
        }


async def scenario_rooms(run: BenchRun) -> Dict[str, Any]:
    """``--rooms`` rooms of ``--room-size`` members each, each room's
    members round-robin over the nodes starting at a node of its own (so
    every room has members on every node when it has as many members as
    there are nodes, and the senders are spread too), the first member of
    each room sending. Order is checked per member and room by the server's seq."""
    opts = run.opts
    nodes = await run.discover()
    size = opts.room_size
    rooms = room_names(opts.room_prefix, opts.rooms)
    clients = run.make_clients(room_spread(opts.rooms, size, len(nodes)))
    await run.maybe_create_users()
    await run.maybe_create_rooms(rooms)
    run.progress.start()
    run.phase = "login"
    await run.login_all(clients)
    joins = [(c, rooms[c.index // size]) for c in clients if c.logged_in]
    if not joins:
        return await run.fail("no member could log in")
    joined = await join_all(run, joins)
    if not joined:
        return await run.fail(f"no member could join any of {rooms[0]}..{rooms[-1]}")
    by_room: Dict[str, list] = collections.defaultdict(list)
    for c in joined:
        by_room[rooms[c.index // size]].append(c)
    await run.sleep(opts.settle)
    senders = []
    for room in rooms:
        members = by_room.get(room)
        if not members:
            continue
        recipients = frozenset(c.index for c in members)
        senders.append(Sender(members[0], recipients,
                              {"roomName": room, "isGroup": True, "format": "text"}, group=room))
    if len(senders) < len(rooms):
        run.note(f"{len(rooms) - len(senders)} rooms have no member online and send nothing")
    run.traffic.release_on_own_echo = True
    run.traffic.order_by_seq = True
    await run.traffic.run_senders(senders)
    t = run.tracker
    span = (t.measure_end - t.measure_start) if t.measure_start is not None and t.measure_end else 0
    groups = t.group_summary()
    per_room = groups.pop("per_group")
    return await run.traffic_result({
        "rooms": groups.pop("groups"),
        "rooms_requested": opts.rooms,
        "room_size": size,
        "members": len(joined),
        "senders": len(senders),
        "room_msgs_per_s": _round(t.window_sent / span, 1) if span > 0 else None,
        "deliveries_per_s": _round(t.throughput(), 1),
        "rooms_with_loss": groups["groups_with_loss"],
        "rooms_with_duplicates": groups["groups_with_duplicates"],
        "rooms_reordered": groups["groups_reordered"],
        "room_delivered_min": groups["group_delivered_min"],
        "room_delivered_max": groups["group_delivered_max"],
        "per_room": per_room,
    })


async def scenario_connections(run: BenchRun) -> Dict[str, Any]:
    opts = run.opts
    nodes = await run.discover()
    node = pick_node(nodes, opts.node)
    if node.ip is None:
        resolve(node)
    run.nodes = [node]
    soft, hard = raise_nofile(opts.clients + 256)
    if 0 <= soft < opts.clients + 64:
        run.note(f"file descriptor limit {soft} (hard {hard}) is below {opts.clients} "
                 "clients: raise it with ulimit -n")
    pid = opts.node_pid
    if pid is None:
        pid = find_listening_pid(node.port)
        if pid is None:
            run.note(f"could not find the process listening on port {node.port}: "
                     "pass --node-pid PID for the memory figure")
    if pid is not None and pid == os.getpid():
        run.note("the node runs in this process: its RSS includes the load generator")
    clients = run.make_clients([0] * opts.clients)
    await run.maybe_create_users()
    rss_before = read_rss_kb(pid) if pid else None
    run.progress.start()
    run.phase = "connect"
    t0 = time.perf_counter()
    ok, failures = await run.login_all(clients)
    t1 = time.perf_counter()
    if ok < opts.clients and not any(w.startswith("error 401") for w in failures):
        run.note("some connections failed: the node may be out of file descriptors "
                 "(raise its ulimit -n) or its accept backlog is full")
    run.phase = "idle"
    await run.send_phase(opts.duration)
    rss_after = read_rss_kb(pid) if pid else None
    alive = sum(1 for c in clients if c.logged_in and c.connected)
    run.progress.stop()
    lat = sorted(c.login_latency * 1000.0 for c in clients if c.login_latency is not None)
    r = run.base_result()
    per_conn = None
    if rss_before is not None and rss_after is not None and alive > 0:
        per_conn = round((rss_after - rss_before) / alive, 2)
    r.update({
        "sent": len(clients),
        "delivered": ok,
        "lost": len(clients) - ok,
        "duplicated": 0,
        "msgs_per_s": round(ok / (t1 - t0), 1) if t1 > t0 else None,
        "p50_ms": _round(percentile(lat, 50), 3),
        "p99_ms": _round(percentile(lat, 99), 3),
        "max_ms": _round(lat[-1] if lat else None, 3),
        "seconds": round(t1 - t0, 3),
        "clients": opts.clients,
        "logged_in": ok,
        "alive": alive,
        "failures": dict(failures.most_common(10)),
        "node": node.name,
        "node_url": node.url,
        "node_pid": pid,
        "rss_before_kb": rss_before,
        "rss_after_kb": rss_after,
        "rss_per_conn_kb": per_conn,
        "hold_seconds": opts.duration,
        "nodes": run.node_counts(),
        "nofile_limit": soft,
    })
    if alive < ok:
        run.note(f"{ok - alive} clients were disconnected while idle")
    already = node.extra.get("connections")
    if isinstance(already, int) and already > 0:
        run.note(f"the node already had {already} connections: for a clean memory "
                 "figure use a freshly started node")
    if per_conn is not None and per_conn <= 0:
        run.note("the node's RSS did not grow: it is reusing memory freed earlier; "
                 "measure on a freshly started node")
    await run.close_all(timeout=5.0)
    return run.finish(r)


def scenario_filter(opts, argv) -> Dict[str, Any]:
    """The profanity filter alone (`chatnet.bench.filter_bench`): no cluster, no reactor."""
    r = empty_result("filter")
    r["command"] = command_line(argv)
    try:
        from chatnet.bench.filter_bench import run_filter_bench  # imported only for this scenario
    except ImportError as e:
        r["error"] = f"the filter benchmark is not available: {e}"
        return r
    from chatnet.text.profanity import ProfanityFilter

    filter = ProfanityFilter.from_file(opts.profanity_file) if opts.profanity_file else None
    if opts.worst:
        from chatnet.bench.worst_text import search_worst

        t0 = time.perf_counter()
        r.update(search_worst(filter, chars=opts.chars, seconds=opts.duration, profanity_file=opts.profanity_file))
        r["seconds"] = round(time.perf_counter() - t0, 3)
        r["scenario"] = "filter"
        r["worst_cpu_ms"] = r["worst"][0]["cpu_ms"] if r["worst"] else None
        return r
    t0 = time.perf_counter()
    res = run_filter_bench(opts.duration, filter)
    r["seconds"] = round(time.perf_counter() - t0, 3)
    if isinstance(res, dict):
        r.update(res)
    if r.get("msgs_per_s") is None and r.get("messages") and r.get("seconds"):
        r["msgs_per_s"] = round(r["messages"] / r["seconds"], 1)
    r["scenario"] = "filter"
    r["command"] = command_line(argv)
    return r


#: the scenarios that run on a `BenchRun` in the reactor
SCENARIO_FUNCS = {
    "direct": scenario_direct,
    "room": scenario_room,
    "rooms": scenario_rooms,
    "connections": scenario_connections,
}
