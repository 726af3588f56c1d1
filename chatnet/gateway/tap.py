"""``twistd chatgateway``: the HTTP gateway that hands clients a live node."""
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
    ]

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
    from chatnet.logs import with_log_format
    from chatnet.metrics import CountingSite, HealthResource, gateway_metrics
    from chatnet.gateway.servers import ServerList
    from chatnet.stores.redis import RedisStore

    redis = RedisStore(options["redis"], timeout=2.0)
    top = service.MultiService()
    RedisService(redis).setServiceParent(top)
    servers = ServerList(redis, reactor)
    metrics = gateway_metrics(top, redis, servers, reactor, options["metrics"])  # and /health on both ports
    site = CountingSite(
        Root(servers, POLICIES[options["balance"]]()), metrics,
        request_timeout=options["request-timeout"], idle_timeout=options["idle-timeout"],
    )
    site.resource.putChild(b"health", HealthResource(metrics.health))
    strports.service(options["listen"], site).setServiceParent(top)
    return with_log_format(top, options)
