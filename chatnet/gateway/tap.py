"""``twistd chatgateway``: the HTTP gateway that hands clients a live node,
and, with an API key, serves the server API (docs/api.md)."""
import os
import uuid
from types import SimpleNamespace

from twisted.application import service, strports
from twisted.python import usage

from chatnet.gateway.balance import POLICIES
from chatnet.stores.redis_url import check_redis_url


class Options(usage.Options):
    synopsis = "[options]"
    longdesc = "Serve GET /server: the address of a live chat node, balanced by load."
    optParameters = [
        ["listen", None, "tcp:8888", "HTTP endpoint (Twisted endpoint string)."],
        ["redis", None, "redis://127.0.0.1:6379/0", "Redis URL: redis://host:port/db, or "
         "redis+sentinel://host:port[,host:port...]/mastername/db for the master of a Redis Sentinel group."],
        ["balance", None, "least-connections", "least-connections, round-robin or random."],
        ["metrics", None, "", "Endpoint serving /metrics (Prometheus) and /health, e.g. tcp:9401."],
        ["log-format", None, "text", "text or json (one JSON object per line)."],
        ["request-timeout", None, 10.0, "Seconds a request's head and body may take to arrive (then 408).", float],
        ["idle-timeout", None, 30.0, "Seconds a connection may send nothing before it is closed.", float],
        ["api-key-file", None, "", "Server API: a file of API keys, one a line (see --api-key)."],
        ["zookeeper", None, "", "Server API: ZooKeeper hosts of the cluster, as the nodes are given them."],
        ["zookeeper-auth", None, "", "Server API: USER:PASSWORD for ZooKeeper, as the nodes are given them."],
        ["cluster-secret", None, "", "Server API: the cluster secret (or CHATNET_CLUSTER_SECRET)."],
        ["internal-host", None, "127.0.0.1",
         "Server API: the address the links to the nodes leave from (registered in ZooKeeper; the nodes check it)."],
        ["gateway-id", None, "", "Server API: this gateway's id in ZooKeeper (default: a random one)."],
        ["internal-ca", None, "", "Server API: PEM CA file of the nodes' internal TLS (as the nodes are given it)."],
    ]

    def __init__(self):
        super().__init__()
        self["api-keys"] = []

    def opt_api_key(self, key):
        """Enable the server API below /api/v1 with this bearer key (repeatable)."""
        self["api-keys"].append(key)

    def _api_options(self):
        keys = list(self["api-keys"])
        if self["api-key-file"]:
            try:
                with open(self["api-key-file"], encoding="utf-8") as f:
                    keys += [line.strip() for line in f if line.strip() and not line.startswith("#")]
            except (OSError, UnicodeDecodeError) as e:
                raise usage.UsageError(f"--api-key-file: {e}")
            if not keys:
                raise usage.UsageError("--api-key-file: no key in the file")
        if any(len(k) < 16 or not k.isascii() or not k.isprintable() or " " in k for k in keys):
            raise usage.UsageError("an API key must be at least 16 printable ASCII characters without spaces")
        self["api-keys"] = [k.encode("ascii") for k in keys]
        if not keys:
            return
        if not self["zookeeper"]:
            raise usage.UsageError("the server API needs --zookeeper (the cluster's, as the nodes are given it)")
        self["cluster-secret"] = self["cluster-secret"] or os.environ.get("CHATNET_CLUSTER_SECRET", "")
        if not self["cluster-secret"]:
            raise usage.UsageError("the server API needs --cluster-secret or CHATNET_CLUSTER_SECRET")
        self["gateway-id"] = self["gateway-id"] or uuid.uuid4().hex[:12]

    def postOptions(self):
        if self["balance"] not in POLICIES:
            raise usage.UsageError(f"--balance must be one of {', '.join(POLICIES)}")
        try:
            check_redis_url(self["redis"])
        except ValueError as e:
            raise usage.UsageError(f"--redis: {e}")
        if self["log-format"] not in ("text", "json"):
            raise usage.UsageError("--log-format must be text or json")
        for name in ("request-timeout", "idle-timeout"):
            if not self[name] > 0:
                raise usage.UsageError(f"--{name} must be a number of seconds above 0")
        self._api_options()


class RedisService(service.Service):
    def __init__(self, redis):
        self.redis = redis

    def startService(self):
        super().startService()
        self.redis.connect()

    def stopService(self):
        super().stopService()
        return self.redis.disconnect()


def makeService(options):
    from twisted.internet import reactor

    from chatnet.gateway.resource import Root
    from chatnet.gateway.servers import ServerList
    from chatnet.ops.logs import with_log_format
    from chatnet.ops.metrics import CountingSite, HealthResource, gateway_metrics
    from chatnet.stores.redis import RedisStore

    redis = RedisStore(options["redis"], timeout=2.0)
    top = service.MultiService()
    RedisService(redis).setServiceParent(top)
    servers = ServerList(redis, reactor)
    metrics = gateway_metrics(top, redis, servers, reactor, options["metrics"])  # and /health on both ports
    api = None
    if options["api-keys"]:
        from chatnet.gateway.api import ApiResource
        from chatnet.gateway.cluster import ClusterApi, NodeLinks

        from chatnet.ops import tls

        internal_tls = {"ca": options["internal-ca"]} if options["internal-ca"] else {}
        nodes = NodeLinks(reactor, options["zookeeper"], options["gateway-id"], options["cluster-secret"].encode(),
                          options["internal-host"], options["zookeeper-auth"],
                          tls_options=tls.client_options(SimpleNamespace(internal_tls=internal_tls)))
        nodes.setServiceParent(top)
        api = ApiResource(options["api-keys"], ClusterApi(nodes))
    site = CountingSite(
        Root(servers, POLICIES[options["balance"]](), api=api), metrics,
        request_timeout=options["request-timeout"], idle_timeout=options["idle-timeout"],
    )
    site.resource.putChild(b"health", HealthResource(metrics.health))
    strports.service(options["listen"], site).setServiceParent(top)
    return with_log_format(top, options)
