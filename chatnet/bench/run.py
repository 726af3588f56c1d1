"""One run of a scenario: its clients, their logins, the notes and errors it
collects, its clock, and its result."""

from __future__ import annotations

import argparse
import collections
import os
import random
import sys
import time
from typing import Any, Dict, List, Sequence, Tuple

import orjson

from chatnet.bench.client import BenchClient, BenchError
from chatnet.bench.cpu import NodeCpu, store_figures
from chatnet.bench.options import command_line, user_names, user_prefix
from chatnet.bench.progress import Progress
from chatnet.bench.report import empty_result
from chatnet.bench.targets import (
    Node,
    _read_body,
    create_rooms,
    create_users,
    find_listening_pid,
    gateway_base,
    node_from_url,
    nodes_from_gateway_answer,
    resolve,
)
from chatnet.bench.tracker import Tracker
from chatnet.bench.traffic import Traffic

RATE_LIMIT_HINT = (
    "the server answered error 429 (rate limit): start the benchmark cluster "
    "with --rate-limit 0"
)
CREATE_USERS_HINT = (
    "logins were refused (401): the bench users may not exist; "
    "pass --create-users --mongo mongodb://HOST:PORT/DB, or use --user-prefix user "
    "(demo users user1..user99)"
)


class BenchRun:
    def __init__(self, opts: argparse.Namespace, argv: Sequence[str], reactor=None):
        if reactor is None:
            from twisted.internet import reactor as _reactor

            reactor = _reactor
        self.reactor = reactor
        self.opts = opts
        self.argv = list(argv)
        self.token = f"{int(time.time()) % 100000:05d}{random.randrange(10000):04d}"
        self.prefix = f"bench:{self.token}:"
        self.tracker = Tracker()
        self.traffic = Traffic(self)
        self.progress = Progress(self)
        self.errors: collections.Counter = collections.Counter()
        self.error_messages: Dict[Any, str] = {}
        self.notes: List[str] = []
        self.nodes: List[Node] = []
        self.clients: List[BenchClient] = []
        self.cpu = NodeCpu({})
        self.store_cpu = NodeCpu(getattr(opts, "store_pids", None) or {})
        # the load generator itself: it shares the machine with the servers
        self.own_cpu = NodeCpu({"bench": os.getpid()})
        self.disconnects = 0
        self.t_start = time.perf_counter()
        self._factories: Dict[str, Any] = {}
        self._stop_early = None
        self.phase = "setup"

    # notes and errors -------------------------------------------------------
    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)
            self.log(text)

    def log(self, text: str) -> None:
        if not self.opts.quiet:
            self.progress.end_line()
            print(f"chatnet-bench: {text}", file=sys.stderr, flush=True)

    def count_error(self, code, message=None) -> None:
        self.errors[code] += 1
        if message and code not in self.error_messages:
            self.error_messages[code] = str(message)[:200]
        if code == 429:
            self.note(RATE_LIMIT_HINT)
        elif code == 409:
            self.note("a bench session was replaced by another login of the same user (409): "
                      "is another run or client using these users?")

    def client_lost(self, client: BenchClient, code, reason) -> None:
        self.disconnects += 1

    # websocket ------------------------------------------------------------------
    def factory_for(self, node: Node):
        f = self._factories.get(node.url)
        if f is None:
            from autobahn.twisted.websocket import WebSocketClientFactory

            from chatnet.bench.client import _accept_deflate, _protocol_class

            f = WebSocketClientFactory(node.url, reactor=self.reactor)
            f.protocol = _protocol_class()
            f.setProtocolOptions(
                utf8validateIncoming=False,
                openHandshakeTimeout=self.opts.connect_timeout,
                closeHandshakeTimeout=2,
                autoPingInterval=0,
                tcpNoDelay=True,
            )
            if self.opts.compression == "deflate":
                from autobahn.websocket.compress import PerMessageDeflateOffer

                f.setProtocolOptions(
                    perMessageCompressionOffers=[PerMessageDeflateOffer()],
                    perMessageCompressionAccept=_accept_deflate,
                )
            f.noisy = False
            self._factories[node.url] = f
        return f

    # discovery --------------------------------------------------------------
    async def discover(self) -> List[Node]:
        opts = self.opts
        if opts.nodes:
            urls = [u.strip() for u in opts.nodes.split(",") if u.strip()]
            if self.socketio:
                from chatnet.bench.socketio import websocket_url

                urls = [websocket_url(u) for u in urls]
            nodes = [node_from_url(u) for u in urls]
        else:
            from twisted.web.client import Agent

            base = gateway_base(opts.gateway)
            agent = Agent(self.reactor, connectTimeout=opts.connect_timeout)
            resp = await agent.request(b"GET", (base + "/server?all=1").encode())
            body = await _read_body(resp)
            if resp.code != 200:
                raise RuntimeError(f"gateway answered {resp.code}: {body[:200]!r}")
            nodes = nodes_from_gateway_answer(orjson.loads(body), base)
        if not nodes:
            raise RuntimeError("no chat node available")
        for node in nodes:
            resolve(node)
        self.nodes = nodes
        self.cpu = NodeCpu(self.node_pids(nodes))
        return nodes

    def node_pids(self, nodes: Sequence[Node]) -> Dict[str, int]:
        """The node processes to measure: those given (``--node-pids``,
        ``--cluster-dir``), else those listening on the nodes' ports here."""
        if self.opts.cluster_pids:
            return dict(self.opts.cluster_pids)
        if self.opts.scenario == "connections":
            return {}
        pids = {}
        for node in nodes:
            if node.ip and (node.ip.startswith("127.") or node.ip == "::1"):
                pid = find_listening_pid(node.port)
                if pid is not None and pid != os.getpid():
                    pids[node.name] = pid
        if not pids:
            self.note("node CPU not measured: pass --node-pids or --cluster-dir")
        return pids

    # clients ------------------------------------------------------------------
    @property
    def socketio(self) -> bool:
        """True when the servers are the Socket.IO peer (``--target socketio``)."""
        return getattr(self.opts, "target", None) == "socketio"

    def make_clients(self, node_indexes: Sequence[int]) -> List[BenchClient]:
        names = user_names(user_prefix(self.opts), self.opts.user_start, len(node_indexes))
        cls = BenchClient
        if self.socketio:
            from chatnet.bench.sioclient import SocketIOClient as cls
        self.clients = [
            cls(self, i, names[i], self.nodes[n]) for i, n in enumerate(node_indexes)
        ]
        return self.clients

    async def maybe_create_users(self) -> None:
        if not self.opts.create_users:
            return
        from twisted.internet.threads import deferToThreadPool

        names = [c.username for c in self.clients]
        pool = self.reactor.getThreadPool()
        added = await deferToThreadPool(self.reactor, pool, create_users, self.opts.mongo, names)
        self.log(f"created {added} users in MongoDB ({len(names) - added} existed)")

    async def maybe_create_rooms(self, names: Sequence[str]) -> None:
        if not self.opts.create_users:
            return
        from twisted.internet.threads import deferToThreadPool

        pool = self.reactor.getThreadPool()
        added = await deferToThreadPool(self.reactor, pool, create_rooms, self.opts.mongo,
                                        list(names))
        self.log(f"created {added} rooms in MongoDB ({len(names) - added} existed)")

    async def login_all(self, clients: Sequence[BenchClient]) -> Tuple[int, collections.Counter]:
        """Connect and log in ``clients``, at most --connect-concurrency at a time."""
        from twisted.internet import defer

        sem = defer.DeferredSemaphore(max(1, self.opts.connect_concurrency))
        failures: collections.Counter = collections.Counter()
        ok = 0

        def failed(f):
            e = f.value
            if isinstance(e, BenchError):
                failures[f"error {e.code} {e.message}".strip()] += 1
            else:
                failures[f"{type(e).__name__}: {e}"[:160]] += 1
            return False

        ds = [sem.run(c.connect).addCallbacks(lambda _: True, failed) for c in clients]
        results = await defer.gatherResults(ds)
        ok = sum(1 for r in results if r)
        if failures:
            top = ", ".join(f"{n}x {why}" for why, n in failures.most_common(3))
            self.note(f"{len(clients) - ok} of {len(clients)} clients failed to log in: {top}")
            if any(why.startswith("error 401") for why in failures):
                self.note(CREATE_USERS_HINT)
            if any("Too many open files" in why or "EMFILE" in why for why in failures):
                self.note("out of file descriptors in the load generator (ulimit -n)")
        return ok, failures

    def node_counts(self) -> Dict[str, int]:
        c: collections.Counter = collections.Counter()
        for cl in self.clients:
            if cl.logged_in:
                c[cl.nodeId or cl.node.name] += 1
        return dict(sorted(c.items()))

    async def close_all(self, timeout: float = 3.0) -> None:
        for c in self.clients:
            c.close()
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline and any(c.connected for c in self.clients):
            await self.sleep(0.05)
        for c in self.clients:
            if not c.closed:
                c.abort()

    # time -----------------------------------------------------------------------
    def sleep(self, seconds: float):
        from twisted.internet import task

        return task.deferLater(self.reactor, max(0.0, seconds), lambda: None)

    async def send_phase(self, seconds: float) -> None:
        """Sleep ``seconds`` or until :meth:`stop_early`."""
        from twisted.internet import defer

        d = defer.Deferred()
        self._stop_early = d
        call = self.reactor.callLater(max(0.0, seconds), lambda: d.called or d.callback(None))
        await d
        if call.active():
            call.cancel()
        self._stop_early = None

    def end_send_phase(self) -> None:
        """End the send phase now (every sender has sent and seen all its
        ``--messages``)."""
        d = self._stop_early
        if d is not None and not d.called:
            d.callback(None)

    def stop_early(self) -> bool:
        d = self._stop_early
        if d is not None and not d.called:
            self.note("interrupted: the send phase was cut short, then drained")
            d.callback(None)
            return True
        return False

    # results ------------------------------------------------------------------------
    def base_result(self) -> Dict[str, Any]:
        return empty_result(self.opts.scenario)

    async def fail(self, error: str) -> Dict[str, Any]:
        """End a run that cannot go on: close everything, report `error`."""
        self.progress.stop()
        await self.close_all()
        r = self.base_result()
        r["error"] = error
        return self.finish(r)

    async def traffic_result(self, figures: Dict[str, Any]) -> Dict[str, Any]:
        """End a traffic scenario: the tracker's figures, the scenario's
        `figures`, and what every traffic run reports."""
        self.progress.stop()
        r = self.base_result()
        r.update(self.tracker.summary())
        r.update(figures)
        r.update(self.cpu.figures(self.tracker.sent, self.tracker.delivered))
        r.update(store_figures(self.store_cpu, self.tracker.sent))
        own = self.own_cpu.seconds().get("bench")
        r["bench_cpu_s"] = own
        r["target"] = getattr(self.opts, "target", None) or "chatnet"
        r.update({
            "timeouts": self.traffic.timeouts,
            "disconnects": self.disconnects,
            "nodes": self.node_counts(),
            "params": traffic_params(self.opts),
        })
        await self.close_all()
        return self.finish(r)

    def finish(self, r: Dict[str, Any]) -> Dict[str, Any]:
        r["errors"] = {str(k): v for k, v in sorted(self.errors.items(), key=lambda kv: str(kv[0]))}
        if self.error_messages:
            r["error_messages"] = {str(k): v for k, v in self.error_messages.items()}
        r["run"] = self.token
        r["wall_seconds"] = round(time.perf_counter() - self.t_start, 3)
        if self.clients:
            r["compression"] = self.opts.compression
            r["compressed_connections"] = sum(1 for c in self.clients if c.compressed)
            if self.opts.compression == "deflate" and r["compressed_connections"] < len(self.clients):
                self.note("some nodes declined permessage-deflate: start them with --compression deflate")
        r["notes"] = list(self.notes)
        r["command"] = command_line(self.argv)
        return r


def traffic_params(opts) -> Dict[str, Any]:
    return {
        "duration": opts.duration,
        "warmup": opts.warmup,
        "drain": opts.drain,
        "window": opts.window,
        "rate": opts.rate,
        "messages": getattr(opts, "messages", 0),
        "size": opts.size,
    }
