"""``twistd chatgateway``: the HTTP gateway that hands clients a live node."""
from twisted.application import service, strports
from twisted.python import usage

from chatnet.gateway.balance import POLICIES


class Options(usage.Options):
    synopsis = "[options]"
    longdesc = "Serve GET /server: the address of a live chat node, balanced by load."
    optParameters = [
        ["listen", None, "tcp:8888", "HTTP endpoint (Twisted endpoint string)."],
        ["redis", None, "redis://127.0.0.1:6379/0", "Redis URL, redis://host:port/db."],
        ["balance", None, "least-connections", "least-connections, round-robin or random."],
    ]

    def postOptions(self):
        if self["balance"] not in POLICIES:
            raise usage.UsageError(f"--balance must be one of {', '.join(POLICIES)}")


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
    from twisted.web import server

    from chatnet.gateway.resource import Root
    from chatnet.gateway.servers import ServerList
    from chatnet.stores.redis import RedisStore

    redis = RedisStore(options["redis"], timeout=2.0)
    top = service.MultiService()
    RedisService(redis).setServiceParent(top)
    site = server.Site(Root(ServerList(redis, reactor), POLICIES[options["balance"]]()))
    site.noisy = False
    strports.service(options["listen"], site).setServiceParent(top)
    return top
