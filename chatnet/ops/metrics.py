"""Prometheus metrics and health checks of a chat node and of the gateway.

Each process has its own registry (nothing goes to prometheus_client's
global one). ``--metrics ENDPOINT`` serves it with twisted.web:

* ``GET /metrics``: the Prometheus text format;
* ``GET /health``: ``200 {"status": "ok", "checks": {...}}`` when every check
  passes, ``503 {"status": "failing", ...}`` otherwise. A node checks that it
  is registered in ZooKeeper and that Redis (PING) and MongoDB (the ``ping``
  command) answer; the gateway that Redis answers and that at least one chat
  node is listed.

Most node metrics are counted by :class:`NodeMetrics` as the first listener
of the node's events (``chatnet.ops.events``); the rest are read from the node
when scraped. The code being measured calls one method here, one line each.
"""
import time

import orjson
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from twisted.application import strports
from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web import resource, server

from chatnet.protocols.http import GuardedSite, NotFound, PlainResource

log = Logger()

#: Seconds a health check waits for each store.
HEALTH_TIMEOUT = 2.0
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class _Tracked:
    """Values read from the process when scraped (see L{Metrics.track})."""

    def __init__(self):
        self.items = []

    def collect(self):
        for name, documentation, function, kind, labels in self.items:
            family = (CounterMetricFamily if kind == "counter" else GaugeMetricFamily)(
                name, documentation, labels=list(labels))
            try:
                values = function()
            except Exception:
                log.failure("metric {name} could not be read", name=name)
                continue
            if labels:
                for label_values, value in values:
                    family.add_metric(list(label_values), value)
            else:
                family.add_metric([], values)
            yield family


class Metrics:
    """A registry of one process, and the values read when it is scraped."""

    def __init__(self):
        self.registry = CollectorRegistry(auto_describe=True)
        self._tracked = _Tracked()
        self.registry.register(self._tracked)

    def track(self, name, documentation, function, kind="counter", labels=()):
        """Export C{function()} as C{name} at every scrape (a counter's name
        gets C{_total}). With C{labels}, C{function} returns pairs
        C{(label values, value)}."""
        self._tracked.items.append((name, documentation, function, kind, tuple(labels)))

    def render(self):
        return generate_latest(self.registry)


class NodeGauges:
    """What L{NodeMetrics} reads from a chat node when scraped: functions
    of no argument, given by the node's wiring (L{chatnet.node.ChatNode})."""

    def __init__(self, connections, sessions, leading, nodes, registered):
        self.connections = connections  # -> open client connections
        self.sessions = sessions  # -> users logged in here
        self.leading = leading  # -> true while this node leads
        self.nodes = nodes  # -> live nodes, as this node sees them
        self.registered = registered  # -> true while registered in ZooKeeper


def _timed(result, start, counters):
    (counters[2] if isinstance(result, Failure) else counters[1]).inc()
    counters[3].observe(time.perf_counter() - start)
    return result


class NodeMetrics(Metrics):
    """The metrics of a chat node; an event listener of the node (see
    L{chatnet.ops.events.IChatEventListener}).

    @param gauges: L{NodeGauges}, what is read from the node when scraped.
    @param redis: the L{chatnet.stores.redis.RedisStore} (errors, health).
    @param mongo: the L{chatnet.stores.mongo.MongoStore} (errors, health).
    @param message_log: the L{chatnet.stores.message_log.MessageLog}.
    @param events: the node's L{chatnet.ops.events.EventBus} (its plugins).
    """

    def __init__(self, gauges, redis, mongo, message_log, events, clock):
        super().__init__()
        r = self.registry
        self.gauges = gauges
        self.redis = redis
        self.mongo = mongo
        self.events = events
        self.clock = clock
        g = gauges
        self.logins = Counter("chatnet_logins", "Successful logins.", registry=r)
        self.accepted = Counter("chatnet_messages_accepted", "Chat messages accepted.", ["kind"], registry=r)
        self.delivered = Counter(
            "chatnet_messages_delivered", "Chat frames sent to connections of this node.", registry=r)
        self.rejected = Counter(
            "chatnet_requests_rejected", "Requests answered with an error frame, by error code.", ["code"], registry=r)
        self.rate_limited = Counter("chatnet_rate_limit_hits", "Frames refused by the rate limit (429).", registry=r)
        self.internal_calls = Counter(
            "chatnet_internal_calls", "Calls to other nodes over the internal port.", ["command", "outcome"],
            registry=r)
        self.internal_latency = Histogram(
            "chatnet_internal_call_seconds", "Time until another node answered an internal call.", ["command"],
            buckets=LATENCY_BUCKETS, registry=r)
        self.leaderships = Counter("chatnet_leader_elections", "Times this node became the leader.", registry=r)
        self.slow_clients = Counter(
            "chatnet_slow_client_disconnects", "Client connections closed (4008) for leaving more than "
            "--max-client-backlog unread.", registry=r)
        self._call_counters = {}  # command -> its labelled counters and histogram
        self._accepted_kind = {True: self.accepted.labels("room"), False: self.accepted.labels("direct")}
        self.track("chatnet_connections", "Open client WebSocket connections.",
                   lambda: g.connections(), kind="gauge")
        self.track("chatnet_sessions", "Users logged in on this node.", lambda: g.sessions(), kind="gauge")
        self.track("chatnet_leader", "1 while this node is the cluster leader.",
                   lambda: int(bool(g.leading())), kind="gauge")
        self.track("chatnet_cluster_nodes", "Live nodes of the cluster, as this node sees them.",
                   lambda: g.nodes(), kind="gauge")
        self.track("chatnet_zookeeper_registered", "1 while this node is registered in ZooKeeper.",
                   lambda: int(bool(g.registered())), kind="gauge")
        self.track("chatnet_store_errors", "Store calls that failed or timed out, by store.",
                   lambda: [(("redis",), getattr(redis, "errors", 0)),
                            (("mongodb",), getattr(mongo, "errors", 0))], labels=("store",))
        self.track("chatnet_message_log_pending", "Accepted messages not yet stored in MongoDB.",
                   lambda: message_log.pending, kind="gauge")
        self.track("chatnet_message_log_failures", "Failed MongoDB writes of the message log.",
                   lambda: message_log.failures)
        self.track("chatnet_messages_dead_lettered", "Messages MongoDB refused as invalid, set aside in dead_letters.",
                   lambda: message_log.dead_lettered)
        self.track("chatnet_plugin_dropped_events", "Events not given to a plugin that was too far behind.",
                   lambda: [((s.name,), s.dropped) for s in self._plugins()], labels=("plugin",))
        self.track("chatnet_plugin_failures", "Plugin calls that raised, failed or timed out.",
                   lambda: [((s.name,), s.failures) for s in self._plugins()], labels=("plugin",))
        self.track("chatnet_plugin_pending", "Plugin calls still running.",
                   lambda: [((s.name,), s.pending) for s in self._plugins()], labels=("plugin",), kind="gauge")

    def _plugins(self):
        events = self.events
        return [s for s in events.slots if s.listener is not self] if events is not None else []

    # -- hooks called by the code being measured ------------------------------

    def error_sent(self, code):
        """An error frame with C{code} went to a client."""
        self.rejected.labels(str(code)).inc()
        if code == 429:
            self.rate_limited.inc()

    def slow_client_disconnected(self):
        """A client connection is closed for reading too slowly."""
        self.slow_clients.inc()

    def time_call(self, command, d):
        """Count the internal call C{command} and time C{d}, its answer
        (None for a call without answer)."""
        counters = self._call_counters.get(command)
        if counters is None:
            name = getattr(command, "commandName", None) or getattr(command, "__name__", str(command))
            if isinstance(name, bytes):
                name = name.decode("ascii", "replace")
            counters = self._call_counters[command] = (
                self.internal_calls.labels(name, "sent"), self.internal_calls.labels(name, "ok"),
                self.internal_calls.labels(name, "error"), self.internal_latency.labels(name))
        if d is None:
            counters[0].inc()
            return d
        d.addBoth(_timed, time.perf_counter(), counters)
        return d

    # -- events (chatnet.ops.events.IChatEventListener) ---------------------------

    def user_online(self, username, nodeId):
        self.logins.inc()

    def message_accepted(self, message):
        self._accepted_kind[bool(message.roomName)].inc()

    def message_delivered(self, msgId, count):
        self.delivered.inc(count)

    def node_became_leader(self, nodeId):
        self.leaderships.inc()

    # -- health ------------------------------------------------------------------

    async def health(self):
        checks = {"zookeeper": bool(self.gauges.registered())}
        checks["redis"], checks["mongodb"] = await defer.gatherResults(
            [defer.ensureDeferred(_answers(self.redis.ping(), self.clock)),
             defer.ensureDeferred(_answers(self.mongo.ping(), self.clock))])
        return checks


class GatewayMetrics(Metrics):
    """The metrics of the gateway."""

    def __init__(self, redis, servers, clock):
        super().__init__()
        self.redis = redis
        self.servers = servers
        self.clock = clock
        self.requests = Counter(
            "chatnet_gateway_requests", "HTTP requests answered, by path and status.", ["path", "status"],
            registry=self.registry)
        self.track("chatnet_gateway_nodes", "Chat nodes in the last server list read.",
                   lambda: len(servers._cached or ()), kind="gauge")
        self.track("chatnet_store_errors", "Store calls that failed or timed out, by store.",
                   lambda: [(("redis",), getattr(redis, "errors", 0))], labels=("store",))

    def request_done(self, request):
        path = request.path.decode("utf-8", "replace")
        if path not in ("/server", "/health", "/metrics"):
            path = "other"
        self.requests.labels(path, str(request.code)).inc()

    async def health(self):
        checks = {"redis": await _answers(self.redis.ping(), self.clock)}
        nodes = []
        if checks["redis"]:
            try:
                nodes = await self.servers.live()
            except Exception:
                nodes = []
        checks["nodes"] = len(nodes)
        return checks


async def _answers(d, clock):
    """True if the store call C{d} (a coroutine or Deferred) succeeds in time."""
    try:
        await defer.ensureDeferred(d).addTimeout(HEALTH_TIMEOUT, clock)
        return True
    except Exception:
        return False


def healthy(checks):
    return all(bool(v) for v in checks.values())


# -- HTTP ---------------------------------------------------------------------


class MetricsResource(PlainResource):
    isLeaf = True

    def __init__(self, metrics):
        super().__init__()
        self.metrics = metrics

    def render_GET(self, request):
        request.setHeader(b"content-type", CONTENT_TYPE_LATEST.encode())
        return self.metrics.render()


class HealthResource(PlainResource):
    """C{GET}: 200 when C{check()} (async, -> dict of name -> value) has only
    true values, 503 otherwise; the answer is JSON."""

    isLeaf = True

    def __init__(self, check):
        super().__init__()
        self.check = check

    def render_GET(self, request):
        d = defer.ensureDeferred(self.check())

        def answer(checks):
            ok = healthy(checks)
            request.setResponseCode(200 if ok else 503)
            request.setHeader(b"content-type", b"application/json")
            request.setHeader(b"cache-control", b"no-store")
            request.write(orjson.dumps({"status": "ok" if ok else "failing", "checks": checks}))
            request.finish()

        def failed(failure):
            log.failure("health check failed", failure)
            request.setResponseCode(503)
            request.write(b'{"status": "failing"}')
            request.finish()

        d.addCallbacks(answer, failed)
        return server.NOT_DONE_YET


class MetricsRoot(resource.Resource):
    def __init__(self, metrics):
        super().__init__()
        self.putChild(b"metrics", MetricsResource(metrics))
        self.putChild(b"health", HealthResource(metrics.health))
        self.not_found = NotFound(b"not found: try /metrics or /health\n")

    def getChildWithDefault(self, path, request):
        # only the exact paths: /metrics/x is not found
        child = self.children.get(path) if not request.postpath else None
        return child if child is not None else self.not_found

    def render(self, request):
        return self.not_found.render(request)


class CountingSite(GuardedSite):
    """A Site that counts every answered request (L{GatewayMetrics.request_done})."""

    noisy = False

    def __init__(self, root, metrics, **kwargs):
        super().__init__(root, **kwargs)
        self.metrics = metrics

    def log(self, request):
        self.metrics.request_done(request)
        super().log(request)


def service(endpoint, metrics):
    """The listener of ``--metrics ENDPOINT``: /metrics and /health."""
    site = GuardedSite(MetricsRoot(metrics))
    site.noisy = False
    site.log = lambda request: None
    return strports.service(endpoint, site)


def gateway_metrics(parent, redis, servers, clock, endpoint=""):
    """The gateway's L{GatewayMetrics}; served on C{endpoint} (if any) by a
    child service of C{parent}."""
    metrics = GatewayMetrics(redis, servers, clock)
    if endpoint:
        service(endpoint, metrics).setServiceParent(parent)
    return metrics
