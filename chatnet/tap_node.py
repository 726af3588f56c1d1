"""``twistd chatnode``: the options and the service of a chat node."""
import gc
import os

from twisted.python import usage

import chatnet.plugins
from chatnet.config import COMPRESSION, NodeConfig
from chatnet.ops import tls
from chatnet.ops.logs import with_log_format
from chatnet.ops.options import check_options as check_operations
from chatnet.stores.redis_url import check_redis_url
from chatnet.text import stopwords


MAX_MESSAGE_CHARS = 10000


class Options(usage.Options):
    synopsis = "[options]"
    longdesc = "Run one chat node of a chatnet cluster."

    optFlags = [
        ["open-login", None, "Accept a login without password for users that have none."],
    ]
    optParameters = [
        ["zookeeper", None, "127.0.0.1:2181", "ZooKeeper ensemble, HOST:PORT[,HOST:PORT...]."],
        ["zookeeper-auth", None, "", "ZooKeeper digest credentials USER:PASSWORD; only they may change chatnet's "
         "znodes (default: env CHATNET_ZOOKEEPER_AUTH)."],
        ["redis", None, "redis://127.0.0.1:6379/0", "Redis URL: redis://host:port/db, or "
         "redis+sentinel://host:port[,host:port...]/mastername/db for the master of a Redis Sentinel group."],
        ["mongo", None, "mongodb://127.0.0.1:27017/chat", "MongoDB URL, mongodb://host:port/dbname."],
        ["listen", None, "tcp:0:interface=127.0.0.1", "Client WebSocket endpoint (Twisted endpoint string; port 0 = dynamic)."],
        ["internal", None, "tcp:0:interface=127.0.0.1", "Internal AMP endpoint for the other nodes."],
        ["advertise-host", None, "", "Host handed to clients by the gateway (default: the listen interface)."],
        ["internal-host", None, "", "Host the other nodes reach the internal port at (default: its interface)."],
        ["cluster-secret", None, "", "Shared secret of the cluster (default: env CHATNET_CLUSTER_SECRET)."],
        ["jwt-secret", None, "", "Secret of HS256 login tokens, at least 32 bytes (default: env CHATNET_JWT_SECRET; "
         "see docs/protocol.md, Token login)."],
        ["jwt-public-key", None, "", "PEM file of the public key of RS256 (RSA) or ES256 (EC P-256) login tokens."],
        ["profanity-file", None, "", "Word list of the profanity filter (default: the shipped list)."],
        ["popular-window", None, 3600, "Seconds of the popular-words sliding window.", int],
        ["popular-stop-words", None, "", "Word list the popular words do not count (default: the shipped "
         "English and Chinese list; none: count every word)."],
        ["zk-session-timeout", None, 10.0, "ZooKeeper session timeout in seconds (failure detection).", float],
        ["node-id", None, "", "Node id (default: advertised host:port)."],
        ["max-message-chars", None, 4096, "Longest chat message, in characters.", int],
        ["max-frame-bytes", None, 1024 * 1024, "Largest WebSocket frame; a larger one closes the connection.", int],
        ["rate-limit", None, 20.0, "Frames per second per connection (0: no limit).", float],
        ["rate-burst", None, 40.0, "Burst size of the rate limit.", float],
        ["rate-bytes", None, 16384.0, "Bytes per second per connection (0: no limit; see docs/operations.md).",
         float],
        ["rate-bytes-burst", None, 65536.0, "Bytes a connection may send at once.", float],
        ["user-rate-bytes", None, 32768.0, "Bytes per second per user, all their connections to this node "
         "together (0: no limit).", float],
        ["user-rate-bytes-burst", None, 131072.0, "Bytes a user may send at once.", float],
        ["login-timeout", None, 60.0, "Seconds a connection may stay without login (0: forever).", float],
        ["store-timeout", None, 3.0, "Seconds to wait for Redis or MongoDB before answering 503.", float],
        ["offline-limit", None, 1000, "Queued offline messages kept per user.", int],
        ["max-client-backlog", None, 1024 * 1024, "Bytes a client connection may leave unread (beyond the "
         "transport's 64 KiB buffer) before it is closed with 4008 (0: no bound).", int],
        ["client-send-buffer", None, 0, "Kernel send buffer (SO_SNDBUF) of each client connection, bytes "
         "(0: the kernel's, which grows up to net.ipv4.tcp_wmem's maximum while a client does not read).", int],
        ["max-message-log-bytes", None, 64 * 1024 * 1024, "Bytes of accepted messages waiting for MongoDB; past "
         "it new messages get 503.", int],
        ["ping-interval", None, 30.0, "Seconds between keep-alive pings of a client connection.", float],
        ["ping-timeout", None, 20.0, "Seconds a keep-alive ping waits for its pong or any data frame.", float],
        ["metrics", None, "", "Endpoint serving /metrics (Prometheus) and /health, e.g. tcp:9400."],
        ["log-format", None, "text", "text or json (one JSON object per line)."],
        ["internal-ca", None, "", "PEM trust root of the peers' certificates: the internal port over TLS."],
        ["compression", None, "off", "off or deflate: accept clients' permessage-deflate offers."],
        ["allowed-origins", None, "", "Comma-separated origins (scheme://host[:port]) whose browser pages may "
         "connect; another origin is refused with 403 at the handshake (default: any)."],
    ]

    def __init__(self):
        super().__init__()
        self["plugin"] = []

    def opt_plugin(self, name):
        """Enable the event plugin NAME[:key=value,...] (repeatable; see docs/operations.md)."""
        self["plugin"].append(name)

    def postOptions(self):
        if not self["cluster-secret"]:
            self["cluster-secret"] = os.environ.get("CHATNET_CLUSTER_SECRET", "")
        if not self["cluster-secret"]:
            raise usage.UsageError("a cluster secret is needed: --cluster-secret or CHATNET_CLUSTER_SECRET")
        if not self["zookeeper-auth"]:
            self["zookeeper-auth"] = os.environ.get("CHATNET_ZOOKEEPER_AUTH", "")
        if self["zookeeper-auth"]:
            user, _, password = self["zookeeper-auth"].partition(":")
            if not user or not password:
                raise usage.UsageError("--zookeeper-auth must be USER:PASSWORD")
        check_token_options(self)
        for name in ("popular-window", "max-message-chars", "max-frame-bytes", "max-message-log-bytes",
                     "ping-interval", "ping-timeout"):
            if self[name] <= 0:
                raise usage.UsageError(f"--{name} must be positive")
        for name in ("max-client-backlog", "client-send-buffer"):
            if self[name] < 0:
                raise usage.UsageError(f"--{name} must be 0 or positive")
        for name in ("rate-bytes", "user-rate-bytes"):
            if self[name] < 0:
                raise usage.UsageError(f"--{name} must be 0 (no limit) or positive")
            if self[name] > 0 and self[name + "-burst"] <= 0:
                raise usage.UsageError(f"--{name}-burst must be positive")
        if self["max-message-chars"] > MAX_MESSAGE_CHARS:
            # a message crosses the internal port as one AMP value (< 64 KiB),
            # up to 6 bytes a character as JSON (an escaped control character)
            # plus the frame around it
            raise usage.UsageError(f"--max-message-chars can be at most {MAX_MESSAGE_CHARS}")
        if self["zk-session-timeout"] < 1:
            raise usage.UsageError("--zk-session-timeout must be at least 1 second")
        try:
            check_redis_url(self["redis"])
        except ValueError as e:
            raise usage.UsageError(f"--redis: {e}")
        if self["compression"] not in COMPRESSION:
            raise usage.UsageError(f"--compression must be one of {', '.join(COMPRESSION)}")
        check_operations(self, chatnet.plugins)
        try:
            stopwords.load(self["popular-stop-words"])
        except (OSError, UnicodeDecodeError) as e:
            raise usage.UsageError(f"--popular-stop-words: {e}")

    def config(self):
        return NodeConfig(
            zookeeper=self["zookeeper"],
            zookeeper_auth=self["zookeeper-auth"],
            redis=self["redis"],
            mongo=self["mongo"],
            listen=self["listen"],
            internal=self["internal"],
            advertise_host=self["advertise-host"],
            internal_host=self["internal-host"],
            cluster_secret=self["cluster-secret"],
            open_login=bool(self["open-login"]),
            jwt_secret=self["jwt-secret"],
            jwt_public_key=self["jwt-public-key"],
            profanity_file=self["profanity-file"],
            popular_window=self["popular-window"],
            popular_stop_words=self["popular-stop-words"],
            zk_session_timeout=self["zk-session-timeout"],
            node_id=self["node-id"],
            max_message_chars=self["max-message-chars"],
            max_frame_bytes=self["max-frame-bytes"],
            rate_limit=self["rate-limit"],
            rate_burst=self["rate-burst"],
            rate_bytes=self["rate-bytes"],
            rate_bytes_burst=self["rate-bytes-burst"],
            user_rate_bytes=self["user-rate-bytes"],
            user_rate_bytes_burst=self["user-rate-bytes-burst"],
            login_timeout=self["login-timeout"],
            store_timeout=self["store-timeout"],
            offline_limit=self["offline-limit"],
            max_client_backlog=self["max-client-backlog"],
            client_send_buffer=self["client-send-buffer"],
            max_message_log_bytes=self["max-message-log-bytes"],
            ping_interval=self["ping-interval"],
            ping_timeout=self["ping-timeout"],
            plugins=list(self["plugin"]),
            tls_scheme=tls.scheme(self["listen"]),
            internal_tls={"ca": self["internal-ca"]} if self["internal-ca"] else {},
            metrics=self["metrics"],
            log_format=self["log-format"],
            compression=self["compression"],
            allowed_origins=parse_origins(self["allowed-origins"]),
        )


def check_token_options(options):
    """--jwt-secret (or env CHATNET_JWT_SECRET) and --jwt-public-key: a
    secret long enough, a key file that holds an RSA or EC P-256 key."""
    if not options["jwt-secret"]:
        options["jwt-secret"] = os.environ.get("CHATNET_JWT_SECRET", "")
    if not (options["jwt-secret"] or options["jwt-public-key"]):
        return
    try:
        # PyJWT is imported by nodes that take tokens only
        from chatnet.service import tokens
    except ImportError as e:
        raise usage.UsageError(f"token login needs PyJWT ({e}): pip install pyjwt")

    for name, check in (("jwt-secret", tokens.check_secret), ("jwt-public-key", tokens.load_public_key)):
        if options[name]:
            try:
                check(options[name])
            except ValueError as e:
                raise usage.UsageError(f"--{name}: {e}")


def parse_origins(value):
    """C{--allowed-origins}: a tuple of normalised origins (lower case, no
    trailing slash)."""
    origins = tuple(o.strip().lower().rstrip("/") for o in value.split(",") if o.strip())
    for origin in origins:
        scheme, sep, rest = origin.partition("://")
        if scheme not in ("http", "https") or not sep or not rest or "/" in rest:
            raise usage.UsageError(f"--allowed-origins: {origin!r} is not an origin like https://chat.example.com")
    return origins


def raise_nofile_limit():
    """Raise this process's soft limit of open files to the hard limit (every
    client connection is a file descriptor; the usual soft limit of 1024
    would cap a node far below its memory's reach). Returns the new soft
    limit, or None where there is no such limit."""
    try:
        import resource
    except ImportError:
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = max(soft, 1 << 20) if soft != resource.RLIM_INFINITY else soft
    if soft != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    return soft


def makeService(options):
    from chatnet.node import ChatNode

    raise_nofile_limit()
    node = ChatNode(options.config())
    node.started.addCallback(freeze_what_start_up_made)
    return with_log_format(node, options)


def freeze_what_start_up_made(node):
    """What start-up made (modules, the profanity automaton, ...) lives as
    long as the process: the garbage collector's full collections, which
    stop the reactor, need not visit it again."""
    gc.freeze()
    return node
