"""The live chat nodes as the gateway sees them: the list the leader publishes
in Redis, joined with the load each node reports; a node whose report is
older than the list's ``staleAfter`` is left out."""
import time

import orjson
from twisted.internet import defer

from chatnet.stores.redis import LOAD, SERVERS


class ServerList:
    def __init__(self, redis, clock, cache_seconds=0.25):
        self.redis = redis
        self.clock = clock
        self.cache_seconds = cache_seconds
        self._cached = None
        self._cached_at = 0.0

    async def live(self):
        now = self.clock.seconds()
        if self._cached is not None and now - self._cached_at < self.cache_seconds:
            return self._cached
        raw, load = await defer.gatherResults(
            [self.redis.call("get", SERVERS), self.redis.call("hgetall", LOAD)], consumeErrors=True
        ).addErrback(lambda f: f.value.subFailure.raiseException())
        nodes = []
        if raw:
            published = orjson.loads(raw)
            stale_ms = float(published.get("staleAfter", 15)) * 1000
            now_ms = time.time() * 1000
            for node in published.get("nodes", ()):
                report = load.get(node["nodeId"]) if load else None
                report = orjson.loads(report) if report else {}
                ts = report.get("ts")
                if ts is not None and now_ms - ts > stale_ms:
                    continue
                nodes.append(dict(node, connections=int(report.get("connections", 0)), reportTs=ts))
        self._cached, self._cached_at = nodes, now
        return nodes
