"""The command line of ``chatnet-bench``: its options, their checks, and
what they imply (user names, how clients spread over the nodes)."""

from __future__ import annotations

import argparse
import shlex
from typing import List, Optional, Sequence

SCENARIOS = ("direct", "room", "rooms", "connections", "filter")

#: the scenarios that send chat traffic through a cluster
TRAFFIC_SCENARIOS = ("direct", "room", "rooms")

#: the kinds of server the load generator speaks to
TARGETS = ("chatnet", "socketio")

#: the scenarios a Socket.IO peer can serve
SOCKETIO_SCENARIOS = ("direct", "room")


def spread(count: int, nodes: int, offset: int = 0) -> List[int]:
    """Round-robin node index for ``count`` clients over ``nodes`` nodes."""
    if nodes <= 0:
        raise ValueError("no nodes")
    return [(i + offset) % nodes for i in range(count)]


def room_spread(rooms: int, size: int, nodes: int) -> List[int]:
    """Node index of each member of ``rooms`` rooms of ``size``, room by
    room: member j of room r on node (r + j) mod ``nodes``, so that each
    room is on every node it can be and the rooms' first members (their
    senders) are spread over the nodes too, whatever ``nodes`` and ``size``."""
    if nodes <= 0:
        raise ValueError("no nodes")
    return [(r + j) % nodes for r in range(rooms) for j in range(size)]


def room_names(prefix: str, count: int) -> List[str]:
    return [f"{prefix}{i + 1}" for i in range(count)]


def user_names(prefix: str, start: int, count: int) -> List[str]:
    return [f"{prefix}{start + i}" for i in range(count)]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="chatnet-bench",
        description="Load generator for a chatnet cluster. Prints one JSON line "
        "with sent, delivered, lost, duplicated, msgs_per_s, p50_ms, p99_ms, "
        "seconds. Traffic scenarios need the nodes started with --rate-limit 0. "
        "'chatnet-bench compare' runs chatnet against a Socket.IO peer (compare --help).",
    )
    p.add_argument("scenario", choices=SCENARIOS)
    where = p.add_argument_group("cluster")
    where.add_argument("--gateway", help="gateway base URL, e.g. http://127.0.0.1:8080")
    where.add_argument(
        "--nodes",
        help="comma-separated node WebSocket URLs (ws://h:p/,ws://h:p/) instead of --gateway",
    )
    where.add_argument("--cluster-dir", metavar="DIR",
                       help="a run-cluster directory: the gateway, MongoDB URL and node pids "
                            "come from its pids.json (options given explicitly win)")
    where.add_argument("--target", choices=TARGETS, default=None,
                       help="the kind of server: chatnet (default), or socketio, the Socket.IO "
                            "peer of bench/peers/socketio (direct and room; --nodes or "
                            "--cluster-dir of a peer started by python -m bench.peer)")
    where.add_argument("--ca", metavar="FILE",
                       help="PEM certificate to trust for wss:// nodes besides the system's (default: the "
                            "\"ca\" of --cluster-dir's pids.json, made by run-cluster start --tls)")
    where.add_argument("--node-pids", metavar="PIDS",
                       help="node1=PID,node2=PID (or PID,PID): the node processes whose CPU "
                            "time is reported (default: those listening on the nodes' "
                            "ports, when they run on this host)")
    where.add_argument("--connect-timeout", type=float, default=30.0, metavar="S",
                       help="seconds to connect, and to wait for the answer to a login or "
                            "joinRoom (default 30)")
    traffic = p.add_argument_group("traffic")
    traffic.add_argument("--duration", type=float, default=10.0, metavar="S",
                         help="seconds of sending (connections: seconds to hold the clients idle)")
    traffic.add_argument("--warmup", type=float, default=1.0, metavar="S",
                         help="seconds of sending left out of latency and throughput (default 1)")
    traffic.add_argument("--drain", type=float, default=5.0, metavar="S",
                         help="seconds to wait for deliveries after sending stops (default 5)")
    traffic.add_argument("--msg-timeout", type=float, default=5.0, metavar="S",
                         help="a message still in flight after S seconds frees its window slot")
    traffic.add_argument("--settle", type=float, default=0.5, metavar="S",
                         help="pause between logins/joins and the first message")
    traffic.add_argument("--pairs", type=int, default=20, help="direct: sender/receiver pairs")
    traffic.add_argument("--window", type=int, default=5,
                         help="messages in flight per sender (0 with --rate: no limit)")
    traffic.add_argument("--members", type=int, default=30, help="room: members")
    traffic.add_argument("--senders", type=int, default=3, help="room: senders among the members")
    traffic.add_argument("--room", default="room1", help="room: room name (default room1)")
    traffic.add_argument("--stalled", type=int, default=0, metavar="N",
                         help="room: N more members on the first node that log in, join and never "
                              "read again; reports that node's RSS and how many were closed")
    traffic.add_argument("--rooms", type=int, default=30, help="rooms: number of rooms")
    traffic.add_argument("--room-size", type=int, default=10, metavar="N",
                         help="rooms: members per room (the first of them sends)")
    traffic.add_argument("--room-prefix", default="benchroom", metavar="PREFIX",
                         help="rooms: the rooms are PREFIX1..PREFIXN (default benchroom)")
    traffic.add_argument("--messages", type=int, default=0, metavar="N",
                         help="each sender sends N messages, then the run drains (the send "
                              "phase ends once all are delivered; --duration caps it); "
                              "0: send for --duration")
    traffic.add_argument("--rate", type=float, default=0.0,
                         help="messages/s per sender, 0 = as fast as the window allows")
    traffic.add_argument("--compression", choices=("off", "deflate"), default="off",
                         help="deflate: every client offers permessage-deflate and accepts it "
                              "(the nodes need --compression deflate to take it)")
    traffic.add_argument("--size", type=int, default=0, metavar="CHARS",
                         help="pad each message text to this many characters")
    filt = p.add_argument_group("filter")
    filt.add_argument("--worst", action="store_true",
                      help="filter: search for --duration seconds for the message shapes that cost the "
                           "node's text processing most, and report the worst with their CPU per message")
    filt.add_argument("--chars", type=int, default=4096, metavar="N",
                      help="filter --worst: characters a message (default 4096, the node's --max-message-chars)")
    filt.add_argument("--profanity-file", metavar="FILE",
                      help="filter: the word list (default: the shipped list)")
    conns = p.add_argument_group("connections")
    conns.add_argument("--clients", type=int, default=1000, help="connections: idle clients")
    conns.add_argument("--node", help="connections: nodeId (or index in the node list, or URL)")
    conns.add_argument("--node-pid", type=int, help="connections: pid of the node process")
    conns.add_argument("--connect-concurrency", type=int, default=500, metavar="N",
                       help="connections opened at a time (default 500)")
    users = p.add_argument_group("users")
    users.add_argument("--user-prefix",
                       help="user names are PREFIX<N>; default 'user' (demo users) when "
                       "99 or fewer are needed, else 'bench'")
    users.add_argument("--user-start", type=int, default=1, metavar="N")
    users.add_argument("--create-users", action="store_true",
                       help="insert the missing users (and for rooms, the rooms) into "
                       "MongoDB first (needs --mongo or --cluster-dir)")
    users.add_argument("--mongo", metavar="URL", help="MongoDB URL, e.g. mongodb://127.0.0.1:27017/chatnet")
    out = p.add_argument_group("output")
    out.add_argument("--json", action="store_true", help="stdout is exactly one JSON line")
    out.add_argument("--progress", type=float, default=2.0, metavar="S",
                     help="progress line on stderr every S seconds for long runs (0: none)")
    out.add_argument("--quiet", action="store_true", help="no progress or notes on stderr")
    return p


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    opts = build_parser().parse_args(list(argv) if argv is not None else None)
    opts.cluster_pids, opts.store_pids = {}, {}
    if opts.cluster_dir:
        from chatnet.bench.cpu import read_cluster_dir

        try:
            cluster = read_cluster_dir(opts.cluster_dir)
        except ValueError as e:
            build_parser().error(str(e))
        if not (opts.gateway or opts.nodes):
            opts.gateway = cluster["gateway"]
        if not opts.mongo:
            opts.mongo = cluster["mongo"]
        if not opts.ca:
            opts.ca = cluster["ca"]
        opts.cluster_pids = cluster["node_pids"]
        opts.store_pids = cluster["store_pids"]
        if opts.target is None:
            opts.target = cluster["target"]
        if not (opts.gateway or opts.nodes) and cluster["nodes"]:
            opts.nodes = ",".join(cluster["nodes"])
    if opts.target is None:
        opts.target = "chatnet"
    if opts.target == "socketio":
        if opts.scenario not in SOCKETIO_SCENARIOS and opts.scenario != "filter":
            build_parser().error(f"--target socketio runs {' and '.join(SOCKETIO_SCENARIOS)}, "
                                 f"not {opts.scenario}")
        if opts.gateway and not opts.nodes:
            build_parser().error("--target socketio needs --nodes URLS or --cluster-dir DIR "
                                 "(a Socket.IO peer has no gateway)")
        if opts.create_users:
            build_parser().error("--target socketio has no users to create")
    if opts.node_pids:
        from chatnet.bench.cpu import parse_node_pids

        try:
            opts.cluster_pids = parse_node_pids(opts.node_pids)
        except ValueError as e:
            build_parser().error(f"--node-pids: {e}")
    if opts.scenario in (*TRAFFIC_SCENARIOS, "connections") and not (opts.gateway or opts.nodes):
        build_parser().error(f"{opts.scenario} needs --gateway URL, --nodes URLS or --cluster-dir DIR")
    if opts.scenario == "direct" and opts.pairs < 1:
        build_parser().error("--pairs must be at least 1")
    if opts.scenario == "room":
        if opts.members < 1 or opts.senders < 1:
            build_parser().error("--members and --senders must be at least 1")
        if opts.senders > opts.members:
            build_parser().error("--senders cannot exceed --members")
        if opts.stalled < 0:
            build_parser().error("--stalled must be 0 or more")
    if opts.scenario == "rooms" and (opts.rooms < 1 or opts.room_size < 1):
        build_parser().error("--rooms and --room-size must be at least 1")
    if opts.window < 0 or (opts.window == 0 and opts.rate <= 0):
        build_parser().error("--window must be at least 1 (0 only with --rate)")
    if opts.chars < 1:
        build_parser().error("--chars must be at least 1")

    if opts.messages < 0:
        build_parser().error("--messages must be at least 0")
    if opts.create_users and not opts.mongo:
        build_parser().error("--create-users needs --mongo URL")
    return opts


def command_line(argv: Sequence[str]) -> str:
    return shlex.join(["chatnet-bench", *argv])


def users_needed(opts) -> int:
    if opts.scenario == "direct":
        return 2 * opts.pairs
    if opts.scenario == "room":
        return opts.members + opts.stalled
    if opts.scenario == "rooms":
        return opts.rooms * opts.room_size
    if opts.scenario == "connections":
        return opts.clients
    return 0


def user_prefix(opts) -> str:
    if opts.user_prefix:
        return opts.user_prefix
    return "user" if opts.user_start + users_needed(opts) - 1 <= 99 else "bench"
