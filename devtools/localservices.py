"""Real Redis, ZooKeeper, MongoDB (SecantusDB) and chatnet processes on this host.

Used by the test suite (``tests/conftest.py``) and by ``devtools.devcluster`` (``scripts/run-cluster``).
Each class starts the real server as a child process on a free loopback port,
keeps its data and its log in one directory, and waits until the server really
answers. Every wait is bounded: on timeout, or when the process exits early,
:class:`ServiceError` is raised with the end of the process's log.

Only the standard library and ``pymongo`` are used here, so that
importing this module has no Twisted reactor side effects.
"""
import atexit
import codecs
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path


__all__ = [
    "ServiceError",
    "ManagedProcess",
    "RedisServer",
    "ZooKeeperServer",
    "SecantusServer",
    "RabbitMQServer",
    "amqp_answers",
    "ChatProcess",
    "free_port",
    "port_is_free",
    "wait_for_port",
    "redis_command",
    "zk_four_letter_word",
    "REPO_ROOT",
]

#: The directory that holds the ``chatnet`` package (and ``twisted/plugins``).
REPO_ROOT = Path(__file__).resolve().parent.parent

_handed_out = set()


class ServiceError(RuntimeError):
    """A local service did not start, did not answer or did not stop in time."""


# --------------------------------------------------------------------------
# ports and small probes


def port_is_free(port, host="127.0.0.1"):
    """True if a TCP listener could bind C{host:port} right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


# Ports are taken below the kernel's ephemeral range (32768 and up), so that
# no outgoing connection takes the port of a server that is restarted on it;
# parallel test workers (pytest-xdist) each take theirs from a slice of their
# own, so that a server killed by one worker never has its port taken by
# another's before it starts again.
PORTS = (10000, 32000)


def _port_slice():
    low, high = PORTS
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT") or 1)
    index = int(worker[2:]) if worker[:2] == "gw" and worker[2:].isdigit() else 0
    size = (high - low) // max(1, count)
    return low + (index % max(1, count)) * size, low + (index % max(1, count) + 1) * size


def free_port():
    """A TCP port that is free on loopback and not handed out before by this
    process (see L{PORTS})."""
    low, high = _port_slice()
    for _ in range(200):
        port = random.randrange(low, high)
        if port not in _handed_out and port_is_free(port):
            _handed_out.add(port)
            return port
    raise ServiceError("no free TCP port found")


def wait_for_port(port, host="127.0.0.1", timeout=10.0):
    """Wait until something accepts TCP connections on C{host:port}."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=1.0):
                return
        except OSError:
            if time.monotonic() >= deadline:
                raise ServiceError(f"nothing listens on {host}:{port} after {timeout:.0f} s")
            time.sleep(0.05)


def _encode_resp(args):
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        if not isinstance(arg, bytes):
            arg = str(arg).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(arg), arg))
    return b"".join(out)


class _Reader:
    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("connection closed by Redis")
        self.buf += chunk

    def line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def exactly(self, n):
        while len(self.buf) < n + 2:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def reply(self):
        line = self.line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise ServiceError("Redis error: " + rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else self.exactly(n)
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self.reply() for _ in range(n)]
        raise ServiceError(f"unexpected Redis reply {line!r}")


def redis_command(port, *args, host="127.0.0.1", db=0, timeout=5.0):
    """Send one command to Redis (database C{db}) and return its reply.

    Bulk strings come back as bytes, a Redis error raises ServiceError.
    """
    with socket.create_connection((host, port), timeout=timeout) as sock:
        reader = _Reader(sock)
        if db:
            sock.sendall(_encode_resp(("SELECT", db)))
            reader.reply()
        sock.sendall(_encode_resp(args))
        return reader.reply()


def zk_four_letter_word(port, word="srvr", host="127.0.0.1", timeout=2.0):
    """Send a ZooKeeper four-letter command and return the whole answer as text."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(word.encode("ascii"))
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks).decode("utf-8", "replace")


# --------------------------------------------------------------------------
# processes

_live = set()


@atexit.register
def _kill_leftovers():
    # A test run that dies half-way must not leave servers behind; detached
    # processes (the dev cluster) are meant to outlive us and are not listed.
    for proc in list(_live):
        try:
            proc.kill()
        except Exception:
            pass


class ManagedProcess:
    """One server process: start, wait until it answers, stop, kill, restart.

    Subclasses give :meth:`command` and :meth:`ready`, and may write their
    configuration in :meth:`prepare`. The process's standard output and error
    go to :attr:`output_path`; :attr:`log_path` is the file to search and to
    show on errors (the same file unless the server writes its own log).

    @ivar port: the TCP port the server listens on (kept across restarts).
    @ivar directory: where its configuration, data and logs are.
    """

    name = "process"
    start_timeout = 60.0
    stop_timeout = 15.0
    #: False for processes that do not listen on a port of their own choosing.
    needs_port = True

    def __init__(self, directory, port=None, *, name=None, detach=False, env=None,
                 start_timeout=None, stop_timeout=None):
        if name:
            self.name = name
        self.directory = Path(directory).resolve()
        self.directory.mkdir(parents=True, exist_ok=True)
        self._port_chosen = port is None and self.needs_port
        if port is not None:
            self.port = int(port)
        else:
            self.port = free_port() if self.needs_port else None
        self.detach = detach
        self.env = env
        if start_timeout is not None:
            self.start_timeout = start_timeout
        if stop_timeout is not None:
            self.stop_timeout = stop_timeout
        self.output_path = self.directory / f"{self.name}.out"
        self.log_path = self.output_path
        self.process = None
        self._started_once = False
        self._marks = {}

    # -- to be given by subclasses

    def command(self):
        """The argument list that runs the server in the foreground."""
        raise NotImplementedError

    def prepare(self):
        """Write configuration files before each start."""

    def ready(self):
        """True once the server answers; may raise OSError while it does not."""
        raise NotImplementedError

    # -- public API

    @property
    def pid(self):
        return self.process.pid if self.process is not None else None

    @property
    def running(self):
        return self.process is not None and self.process.poll() is None

    @property
    def url(self):
        return f"127.0.0.1:{self.port}"

    def start(self, timeout=None):
        """Start the server and return once it answers (or raise ServiceError)."""
        if self.running:
            raise ServiceError(f"{self.name} is already running (pid {self.pid})")
        timeout = self.start_timeout if timeout is None else timeout
        attempts = 3 if (self._port_chosen and not self._started_once) else 1
        for attempt in range(attempts):
            self._spawn()
            try:
                self._wait_ready(timeout)
            except ServiceError:
                # The port we picked was taken by someone else in between:
                # pick another one and try again.
                if (attempt + 1 < attempts and not self.running
                        and not port_is_free(self.port)):
                    self.port = free_port()
                    continue
                self.kill()
                raise
            break
        self._started_once = True
        return self

    def stop(self, timeout=None):
        """SIGTERM, wait up to C{timeout} seconds, then SIGKILL. Returns the exit code."""
        if self.process is None:
            return None
        timeout = self.stop_timeout if timeout is None else timeout
        if self.process.poll() is None:
            self._signal(signal.SIGTERM)
            self._signal(signal.SIGCONT)  # a paused process must see it
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                self.process.wait(10)
        _live.discard(self)
        return self.process.returncode

    def kill(self):
        """SIGKILL, as a crash would (a paused process too). Returns the exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self._signal(signal.SIGKILL)
            self.process.wait(10)
        _live.discard(self)
        return self.process.returncode

    def restart(self, timeout=None):
        """Stop (if running) and start again on the same port with the same data."""
        self.stop()
        return self.start(timeout)

    def pause(self):
        """SIGSTOP: the process stays, its sockets stay open, it answers
        nothing (a stalled server: connections are accepted by the kernel,
        requests hang). Returns once the kernel shows it stopped: a signal is
        delivered asynchronously, and a request sent in between could still
        be answered."""
        if self.running:
            self._signal(signal.SIGSTOP)
            deadline = time.monotonic() + 5
            while _state(self.process.pid) not in ("T", "t", None) and time.monotonic() < deadline:
                time.sleep(0.005)

    def resume(self):
        """SIGCONT after :meth:`pause`."""
        if self.process is not None and self.process.poll() is None:
            self._signal(signal.SIGCONT)

    def log_paths(self):
        """The log, and the raw output if it is another file."""
        if self.output_path == self.log_path:
            return [self.log_path]
        return [self.log_path, self.output_path]

    def log_tail(self, lines=40, since_start=True):
        """The last lines of the log and of the raw output (of this run only, by default)."""
        parts = []
        for path in self.log_paths():
            start = self._marks.get(path, 0) if since_start else 0
            data = _read_log_since(path, max(start, _log_size(path) - 16384))
            text = "\n".join(data.decode("utf-8", "replace").splitlines()[-lines:])
            if text.strip():
                parts.append(f"--- {path} ---\n{text}")
        return "\n".join(parts) or "(nothing was logged)"

    def log_mark(self):
        """A position in the log; pass it to :meth:`wait_for_log` as C{since}."""
        return _log_size(self.log_path)

    def wait_for_log(self, pattern, timeout=30.0, since=0, regex=False):
        """Wait until a log line written after C{since} contains C{pattern}.

        @param regex: if true, C{pattern} is a regular expression (searched).
        @return: the matching line.
        @raise ServiceError: on timeout or if the process exits first.
        """
        match = re.compile(pattern).search if regex else (lambda line: pattern in line)
        deadline = time.monotonic() + timeout
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        pos, pending = since, ""
        while True:
            exited = not self.running
            chunk = _read_log_since(self.log_path, pos)
            pos += len(chunk)
            pending += decoder.decode(chunk, final=exited)
            *lines, pending = pending.split("\n")
            if exited:
                lines.append(pending)
            for line in lines:
                if match(line):
                    return line
            if exited:
                raise ServiceError(
                    f"{self.name} exited (code {self._returncode()}) before logging "
                    f"{pattern!r}\n{self.log_tail()}")
            if time.monotonic() >= deadline:
                raise ServiceError(
                    f"{self.name} did not log {pattern!r} within {timeout:.0f} s\n"
                    f"{self.log_tail()}")
            time.sleep(0.05)

    def describe(self):
        """What ``devtools.devcluster`` records about this process."""
        return {
            "name": self.name,
            "pid": self.pid,
            "port": self.port,
            "url": self.url,
            "log": str(self.log_path),
            "cmdline": self.process.args if self.process is not None else None,
        }

    def __enter__(self):
        if not self.running:
            self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def __repr__(self):
        return f"<{type(self).__name__} port={self.port} pid={self.pid}>"

    # -- internals

    def _returncode(self):
        return self.process.returncode if self.process is not None else None

    def _signal(self, sig):
        try:
            if self.detach:
                # The process leads its own group: reach anything it spawned too.
                os.killpg(self.process.pid, sig)
            else:
                self.process.send_signal(sig)
        except ProcessLookupError:
            pass

    def environment(self):
        """The environment the process runs with."""
        env = dict(os.environ)
        if self.env:
            env.update(self.env)
        return env

    def _spawn(self):
        self.prepare()
        self._marks = {path: _log_size(path) for path in self.log_paths()}
        env = self.environment()
        with open(self.output_path, "ab") as out:
            self.process = subprocess.Popen(
                self.command(),
                cwd=self.directory,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=self.detach,
                close_fds=True,
            )
        if not self.detach:
            _live.add(self)

    def _wait_ready(self, timeout):
        deadline = time.monotonic() + timeout
        last_error = None
        while True:
            if self.process.poll() is not None:
                raise ServiceError(
                    f"{self.name} exited with code {self.process.returncode} while "
                    f"starting on port {self.port}\n{self.log_tail()}")
            try:
                if self.ready():
                    return
            except (OSError, ServiceError) as e:
                last_error = e
            if time.monotonic() >= deadline:
                self.kill()
                raise ServiceError(
                    f"{self.name} did not answer on port {self.port} within "
                    f"{timeout:.0f} s (last error: {last_error})\n{self.log_tail()}")
            time.sleep(0.1)


def _rotated(path):
    """The log file and its rotated copies, oldest first (twistd rotates at 1 MB)."""
    path = Path(path)
    older = []
    n = 1
    while True:
        candidate = path.with_name(f"{path.name}.{n}")
        if not candidate.exists():
            break
        older.append(candidate)
        n += 1
    return list(reversed(older)) + [path]


def _log_size(path):
    total = 0
    for p in _rotated(path):
        try:
            total += p.stat().st_size
        except OSError:
            pass
    return total


def _read_log_since(path, offset):
    """Bytes written to the log (across rotations) after position C{offset}."""
    out = []
    start = 0
    for p in _rotated(path):
        try:
            size = p.stat().st_size
        except OSError:
            continue
        end = start + size
        if end > offset:
            try:
                with open(p, "rb") as f:
                    f.seek(max(0, offset - start))
                    out.append(f.read(end - max(offset, start)))
            except OSError:
                pass
        start = end
    return b"".join(out)


# --------------------------------------------------------------------------
# the stores


class RedisServer(ManagedProcess):
    """``redis-server`` on loopback, no persistence by default.

    :meth:`restart` keeps the data (it is saved to ``dump.rdb`` first) unless
    C{empty=True}; after :meth:`kill` only what was saved before survives.
    """

    name = "redis"
    executable = "redis-server"

    def __init__(self, directory, port=None, *, appendonly=False, **kwargs):
        super().__init__(directory, port, **kwargs)
        self.appendonly = appendonly
        self.log_path = self.directory / "redis.log"

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}/0"

    def command(self):
        exe = shutil.which(self.executable) or "/usr/bin/redis-server"
        return [
            exe,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.directory),
            "--dbfilename", "dump.rdb",
            "--save", "",
            "--appendonly", "yes" if self.appendonly else "no",
            "--daemonize", "no",
            "--logfile", str(self.log_path),
        ]

    def ready(self):
        return self.execute("PING") == "PONG"

    def execute(self, *args, db=0, timeout=5.0):
        """Run one Redis command against this server and return the reply."""
        return redis_command(self.port, *args, db=db, timeout=timeout)

    def restart(self, timeout=None, empty=False):
        """Restart on the same port; C{empty=True} starts with no data at all."""
        if empty:
            self.stop()
            for leftover in ("dump.rdb", "appendonly.aof", "appendonlydir"):
                target = self.directory / leftover
                if target.is_dir():
                    shutil.rmtree(target)
                elif target.exists():
                    target.unlink()
        elif self.running:
            self.execute("SAVE", timeout=30.0)
            self.stop()
        return self.start(timeout)


class ZooKeeperServer(ManagedProcess):
    """A standalone ZooKeeper (the Debian ``zookeeper`` package) on loopback.

    ``tickTime`` is 500 ms so that session timeouts from 1 s to 60 s are
    accepted; four-letter words are all enabled, the admin HTTP server is off.
    """

    name = "zookeeper"
    java_dir = Path("/usr/share/java")
    main_class = "org.apache.zookeeper.server.quorum.QuorumPeerMain"

    def __init__(self, directory, port=None, *, tick_time=500, **kwargs):
        super().__init__(directory, port, **kwargs)
        self.tick_time = tick_time
        self.data_dir = self.directory / "data"
        self.config_path = self.directory / "zoo.cfg"
        self.log4j_path = self.directory / "log4j.properties"
        self.log_path = self.directory / "zookeeper.log"

    def classpath(self):
        jars = []
        for name in ("zookeeper.jar", "slf4j-log4j12.jar", "log4j-1.2.jar"):
            jar = self.java_dir / name
            if jar.exists():
                jars.append(str(jar))
        if not jars or not jars[0].endswith("zookeeper.jar"):
            raise ServiceError(
                f"{self.java_dir}/zookeeper.jar not found: install the Debian "
                "package 'zookeeper'")
        return ":".join([str(self.directory)] + jars)

    def prepare(self):
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(
            f"tickTime={self.tick_time}\n"
            f"dataDir={self.data_dir}\n"
            f"clientPort={self.port}\n"
            "clientPortAddress=127.0.0.1\n"
            f"minSessionTimeout={max(2 * self.tick_time, 1000)}\n"
            "maxSessionTimeout=60000\n"
            "initLimit=10\n"
            "syncLimit=5\n"
            "maxClientCnxns=0\n"
            "admin.enableServer=false\n"
            "4lw.commands.whitelist=*\n"
            "preAllocSize=4096\n"
            "autopurge.snapRetainCount=3\n"
            "autopurge.purgeInterval=1\n"
        )
        self.log4j_path.write_text(
            "log4j.rootLogger=INFO, FILE\n"
            "log4j.appender.FILE=org.apache.log4j.FileAppender\n"
            f"log4j.appender.FILE.File={self.log_path}\n"
            "log4j.appender.FILE.Append=true\n"
            "log4j.appender.FILE.layout=org.apache.log4j.PatternLayout\n"
            "log4j.appender.FILE.layout.ConversionPattern="
            "%d{ISO8601} %-5p [%t:%C{1}@%L] - %m%n\n"
        )

    def command(self):
        java = shutil.which("java") or "/usr/bin/java"
        return [
            java,
            "-Xms32m", "-Xmx256m",
            "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
            "-Djava.net.preferIPv4Stack=true",
            f"-Dlog4j.configuration=file:{self.log4j_path}",
            f"-Dzookeeper.log.dir={self.directory}",
            "-Dzookeeper.jmx.log4j.disable=true",
            "-cp", self.classpath(),
            self.main_class,
            str(self.config_path),
        ]

    def ready(self):
        # "srvr" answers "not currently serving requests" until the server is up.
        return "Mode:" in zk_four_letter_word(self.port, "srvr")


class SecantusServer(ManagedProcess):
    """SecantusDB, a MongoDB wire-protocol server, on loopback."""

    name = "secantus"
    database = "chat"

    def __init__(self, directory, port=None, *, python=None, cache_size="256M", **kwargs):
        super().__init__(directory, port, **kwargs)
        self.python = python or sys.executable
        self.cache_size = cache_size
        self.data_dir = self.directory / "data"
        self.config_path = self.directory / "secantusd.toml"

    @property
    def url(self):
        return f"mongodb://127.0.0.1:{self.port}/{self.database}"

    def prepare(self):
        # An explicit (empty) config file turns off the search for one in the
        # working directory and in the home directory.
        if not self.config_path.exists():
            self.config_path.write_text("# settings come from the command line\n")

    def command(self):
        return [
            self.python, "-m", "secantus",
            "--config", str(self.config_path),
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--storage-path", str(self.data_dir),
            "--cache-size", self.cache_size,
        ]

    def ready(self):
        with socket.create_connection(("127.0.0.1", self.port), timeout=1.0):
            pass
        import pymongo
        from pymongo.errors import PyMongoError

        client = pymongo.MongoClient(
            self.url, serverSelectionTimeoutMS=1000, connectTimeoutMS=1000,
            socketTimeoutMS=2000)
        try:
            return client.admin.command("ping").get("ok") == 1
        except PyMongoError as e:
            raise ServiceError(f"ping failed: {e}") from e
        finally:
            client.close()

    def client(self, **kwargs):
        """A pymongo client for this server (the caller closes it)."""
        import pymongo

        kwargs.setdefault("serverSelectionTimeoutMS", 5000)
        return pymongo.MongoClient(self.url, **kwargs)


def amqp_answers(port, host="127.0.0.1", timeout=2.0):
    """True if an AMQP 0-9-1 broker answers the protocol header on C{host:port}
    (with its C{connection.start} method frame)."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(b"AMQP\x00\x00\x09\x01")
        frame = sock.recv(7)
    # frame type 1 (method) on channel 0
    return frame[:3] == b"\x01\x00\x00"


class EpmdServer(ManagedProcess):
    """The Erlang port mapper of one RabbitMQ node, on a port of its own, so
    that no system-wide ``epmd`` daemon is started or left behind."""

    name = "epmd"

    def command(self):
        return [shutil.which("epmd") or "/usr/bin/epmd", "-port", str(self.port)]

    def ready(self):
        with socket.create_connection(("127.0.0.1", self.port), timeout=1.0):
            return True


class RabbitMQServer(ManagedProcess):
    """A RabbitMQ broker (the Debian ``rabbitmq-server`` package) on loopback.

    Everything it keeps is under :attr:`directory`: the Mnesia database (so
    durable exchanges, queues and persistent messages survive :meth:`restart`),
    its logs, its Erlang cookie (``HOME``); its node name, AMQP port,
    distribution port and ``epmd`` are its own, and no plugin is enabled. The
    user ``guest``/``guest`` may connect from loopback.
    """

    name = "rabbitmq"
    start_timeout = 90.0
    stop_timeout = 30.0
    script = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")

    def __init__(self, directory, port=None, **kwargs):
        super().__init__(directory, port, **kwargs)
        self.dist_port = free_port()
        self.epmd = EpmdServer(self.directory / "epmd")
        self.nodename = f"chatnet-{self.port}@localhost"
        self.log_path = self.directory / "rabbitmq.out"

    @property
    def url(self):
        return f"amqp://guest:guest@127.0.0.1:{self.port}/%2F"

    def prepare(self):
        (self.directory / "enabled_plugins").write_text("[].\n")
        (self.directory / "rabbitmq-env.conf").write_text("# settings come from the environment\n")

    def environment(self):
        env = super().environment()
        d = self.directory
        env.update(
            HOME=str(d),
            ERL_EPMD_PORT=str(self.epmd.port),
            # run the VM in place of the script (SIGTERM then stops it cleanly), without a shell
            RABBITMQ_ALLOW_INPUT="1",
            RABBITMQ_SERVER_START_ARGS="-noinput",
            RABBITMQ_CONF_ENV_FILE=str(d / "rabbitmq-env.conf"),
            RABBITMQ_CONFIG_FILE=str(d / "rabbitmq"),
            RABBITMQ_ADVANCED_CONFIG_FILE=str(d / "advanced.config"),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(d / "enabled_plugins"),
            RABBITMQ_MNESIA_BASE=str(d / "mnesia"),
            RABBITMQ_LOG_BASE=str(d / "log"),
            RABBITMQ_LOGS="-",
            RABBITMQ_PID_FILE=str(d / "rabbitmq.pid"),
            RABBITMQ_NODENAME=self.nodename,
            RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
            RABBITMQ_NODE_PORT=str(self.port),
            RABBITMQ_DIST_PORT=str(self.dist_port),
        )
        return env

    def command(self):
        script = self.script if self.script.exists() else shutil.which("rabbitmq-server")
        if not script:
            raise ServiceError("rabbitmq-server not found: install the Debian package 'rabbitmq-server'")
        return [str(script)]

    def ready(self):
        return amqp_answers(self.port)

    def start(self, timeout=None):
        if not self.epmd.running:
            self.epmd.start()
        try:
            return super().start(timeout)
        except ServiceError:
            self.epmd.stop()
            raise

    def stop(self, timeout=None):
        code = super().stop(timeout)
        self.epmd.stop()
        return code

    def kill(self):
        code = super().kill()
        self.epmd.kill()
        return code


# --------------------------------------------------------------------------
# chatnet's own processes


def _state(pid):
    """The state letter of process C{pid} (C{T}: stopped), None if gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0].decode()
    except (OSError, IndexError):
        return None


class ChatProcess(ManagedProcess):
    """``twistd -n <kind> <args...>`` (``chatnode``, ``chatgateway``) as a child process.

    twistd writes its log to C{log_path}; what it prints before logging starts
    (a usage error, an import error) goes to C{log_path + ".out"}. The repo
    root goes first on ``PYTHONPATH`` so that this tree's ``chatnet`` and
    ``twisted/plugins`` are used.

    @param name: how it is called in errors (default: C{kind}).
    @param ready_port: if given, :meth:`start` waits until this port accepts
        connections.
    @param ready_log: if given, :meth:`start` waits until the log has a line
        containing it.
    """

    needs_port = False

    def __init__(self, kind, args, log_path, *, name=None, ready_port=None,
                 ready_log=None, python=None, cwd=None, detach=False, env=None,
                 start_timeout=None, stop_timeout=None):
        self.kind = kind
        self.args = [str(a) for a in args]
        self.ready_port = ready_port
        self.ready_log = ready_log
        self.python = python or sys.executable
        log_path = Path(log_path).resolve()
        super().__init__(cwd or log_path.parent, port=ready_port, name=name or kind,
                         detach=detach,
                         env=env, start_timeout=start_timeout, stop_timeout=stop_timeout)
        self.log_path = log_path
        self.output_path = log_path.with_name(log_path.name + ".out")

    @property
    def url(self):
        return f"127.0.0.1:{self.port}" if self.port else None

    def command(self):
        return [
            self.python, "-c", "from twisted.scripts.twistd import run; run()",
            "-n", "--pidfile=", f"--logfile={self.log_path}",
            self.kind, *self.args,
        ]

    def prepare(self):
        self.log_path.parent.mkdir(parents=True, exist_ok=True)

    def environment(self):
        env = super().environment()
        paths = [str(REPO_ROOT)]
        if env.get("PYTHONPATH"):
            paths.append(env["PYTHONPATH"])
        env["PYTHONPATH"] = os.pathsep.join(paths)
        return env

    def _wait_ready(self, timeout):
        deadline = time.monotonic() + timeout
        if self.ready_log:
            self.wait_for_log(self.ready_log, timeout, since=self._marks[self.log_path])
        if self.ready_port:
            super()._wait_ready(max(0.1, deadline - time.monotonic()))
        elif self.process.poll() is not None:
            raise ServiceError(
                f"{self.name} exited with code {self.process.returncode}\n"
                f"{self.log_tail()}")

    def ready(self):
        with socket.create_connection(("127.0.0.1", self.ready_port), timeout=1.0):
            return True

    def describe(self):
        info = super().describe()
        info["kind"] = self.kind
        return info
