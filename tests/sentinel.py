"""A Redis Sentinel group of real processes for tests: a primary, a replica
and three ``redis-sentinel`` processes watching them, all on loopback.

Failure detection is made quick (``down-after-milliseconds`` and
``failover-timeout`` 1000 ms by default) so that a failover takes a few
seconds. Every wait is bounded and says what it waited for.
"""
import secrets
import shutil
import time

from devtools.localservices import ManagedProcess, RedisServer, ServiceError, redis_command


class GroupRedis(RedisServer):
    """A Redis server of the group: it sends a replica its data at once, not
    after the 5 s Redis waits by default for more replicas to share one
    transfer (the first sync, and each after a failover)."""

    def command(self):
        return super().command() + ["--repl-diskless-sync-delay", "0"]


class RedisReplica(GroupRedis):
    """``redis-server`` replicating the server on C{primary_port}."""

    name = "replica"

    def __init__(self, directory, primary_port, **kwargs):
        super().__init__(directory, **kwargs)
        self.primary_port = primary_port

    def command(self):
        return super().command() + ["--replicaof", "127.0.0.1", str(self.primary_port)]


class SentinelServer(ManagedProcess):
    """One ``redis-sentinel`` watching the master C{name}; it rewrites its
    configuration file as it learns, so the file is written afresh before
    each start."""

    name = "sentinel"

    def __init__(self, directory, primary_port, master_name, quorum=2, down_after_ms=1000,
                 failover_timeout_ms=1000, **kwargs):
        super().__init__(directory, **kwargs)
        self.myid = secrets.token_hex(20)
        # what it knows from the start (else learnt from the others' hello
        # messages, sent every 2 s): the replica's port, the other sentinels
        self.replica_port = None
        self.others = []
        self.primary_port = primary_port
        self.master_name = master_name
        self.quorum = quorum
        self.down_after_ms = down_after_ms
        self.failover_timeout_ms = failover_timeout_ms
        self.log_path = self.directory / "sentinel.log"
        self.config_path = self.directory / "sentinel.conf"

    def prepare(self):
        name = self.master_name
        self.config_path.write_text("\n".join([
            f"port {self.port}",
            "bind 127.0.0.1",
            "daemonize no",
            f"dir {self.directory}",
            f"logfile {self.log_path}",
            f"sentinel monitor {name} 127.0.0.1 {self.primary_port} {self.quorum}",
            f"sentinel down-after-milliseconds {name} {self.down_after_ms}",
            f"sentinel failover-timeout {name} {self.failover_timeout_ms}",
            f"sentinel parallel-syncs {name} 1",
            f"sentinel myid {self.myid}",
            *([f"sentinel known-replica {name} 127.0.0.1 {self.replica_port}"] if self.replica_port else []),
            *(f"sentinel known-sentinel {name} 127.0.0.1 {other.port} {other.myid}" for other in self.others),
            "",
        ]))

    def command(self):
        exe = shutil.which("redis-sentinel") or "/usr/bin/redis-sentinel"
        return [exe, str(self.config_path)]

    def ready(self):
        return self.execute("PING") == "PONG"

    def execute(self, *args, timeout=5.0):
        return redis_command(self.port, *args, timeout=timeout)

    def master_address(self):
        """(host, port) this sentinel names as the master, or None."""
        reply = self.execute("SENTINEL", "get-master-addr-by-name", self.master_name)
        return (reply[0].decode(), int(reply[1])) if reply else None

    def master_state(self):
        reply = self.execute("SENTINEL", "master", self.master_name)
        return {reply[i].decode(): reply[i + 1].decode() for i in range(0, len(reply), 2)}


class SentinelGroup:
    """A primary, a replica and C{sentinels} sentinels (quorum 2)."""

    def __init__(self, root, master_name="chatnet", sentinels=3, down_after_ms=1000, failover_timeout_ms=1000):
        self.root = root
        self.master_name = master_name
        self.primary = GroupRedis(root / "primary", name="primary")
        self.replica = None
        self.sentinels = []
        self.count = sentinels
        self.down_after_ms = down_after_ms
        self.failover_timeout_ms = failover_timeout_ms

    @property
    def servers(self):
        return [s for s in (self.primary, self.replica) if s is not None]

    @property
    def processes(self):
        return self.servers + self.sentinels

    def start(self, timeout=30.0):
        try:
            self.primary.start()
            self.replica = RedisReplica(self.root / "replica", self.primary.port).start()
            self.wait(lambda: _info(self.replica, "master_link_status") == "up", timeout,
                      "the replica did not sync with the primary")
            sentinels = [
                SentinelServer(
                    self.root / f"sentinel{i + 1}", self.primary.port, self.master_name,
                    down_after_ms=self.down_after_ms, failover_timeout_ms=self.failover_timeout_ms,
                    name=f"sentinel{i + 1}",
                )
                for i in range(self.count)
            ]
            for sentinel in sentinels:
                sentinel.replica_port = self.replica.port
                sentinel.others = [other for other in sentinels if other is not sentinel]
            for sentinel in sentinels:
                self.sentinels.append(sentinel.start())
            self.wait(self._watching, timeout, "the sentinels do not all know each other and the replica")
        except BaseException:
            self.stop()
            raise
        return self

    def _watching(self):
        for sentinel in self.sentinels:
            state = sentinel.master_state()
            if int(state["num-other-sentinels"]) != self.count - 1 or int(state["num-slaves"]) < 1:
                return False
        return True

    def url(self, db=0):
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        return f"redis+sentinel://{hosts}/{self.master_name}/{db}"

    def master(self):
        """The server every sentinel names as the master (None while they differ)."""
        addresses = {s.master_address() for s in self.sentinels if s.running}
        if len(addresses) != 1:
            return None
        (_, port), = addresses
        for server in self.servers:
            if server.port == port and server.running:
                return server
        return None

    def wait_for_master(self, server, timeout=30.0):
        """Wait until every running sentinel names C{server} and it says it is a master."""
        self.wait(lambda: self.master() is server and _role(server) == "master", timeout,
                  f"the sentinels do not name {server.name} (port {server.port}) as master")

    def cut_replication(self, timeout=10.0):
        """Stop the replica from receiving the primary's writes while both
        stay up (its AUTH to the primary fails from now on): what the primary
        takes from now on is lost at a failover, as the tail of an
        asynchronous replication is."""
        self.replica.execute("CONFIG", "SET", "masterauth", "not-the-password")
        self.primary.execute("CLIENT", "KILL", "TYPE", "replica")
        self.wait(lambda: _info(self.replica, "master_link_status") == "down", timeout,
                  "the replica still replicates")

    def wait(self, condition, timeout, what):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            try:
                if condition():
                    return
            except (OSError, ServiceError) as e:
                last = e
            time.sleep(0.1)
        logs = "\n".join(p.log_tail(15) for p in self.processes)
        raise AssertionError(f"{what} after {timeout:.0f} s (last error: {last})\n{logs}")

    def stop(self):
        for process in reversed(self.processes):
            try:
                process.stop()
            except Exception:
                process.kill()


def _info(server, field):
    text = server.execute("INFO", "replication").decode()
    for line in text.splitlines():
        if line.startswith(field + ":"):
            return line.split(":", 1)[1].strip()
    return None


def _role(server):
    return server.execute("ROLE")[0].decode()
