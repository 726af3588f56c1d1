"""Configuration of a chat node and of the gateway, as parsed from the command line."""
import os
from dataclasses import dataclass, field

#: values of --compression: off, or permessage-deflate (chatnet.factories.websocket)
COMPRESSION = ("off", "deflate")


@dataclass
class NodeConfig:
    zookeeper: str = "127.0.0.1:2181"
    zookeeper_auth: str = ""  # USER:PASSWORD, ZooKeeper digest auth and ACLs on chatnet's znodes
    redis: str = "redis://127.0.0.1:6379/0"
    mongo: str = "mongodb://127.0.0.1:27017/chat"
    listen: str = "tcp:0:interface=127.0.0.1"
    internal: str = "tcp:0:interface=127.0.0.1"
    advertise_host: str = ""
    internal_host: str = ""
    cluster_secret: str = ""
    open_login: bool = False
    jwt_secret: str = ""  # --jwt-secret: HS256 login tokens (chatnet.service.tokens)
    jwt_public_key: str = ""  # --jwt-public-key: PEM file, RS256 or ES256 login tokens
    profanity_file: str = ""
    popular_window: int = 3600
    popular_stop_words: str = ""  # a list file; "" the shipped list, "none" none (chatnet.text.stopwords)
    zk_session_timeout: float = 10.0
    node_id: str = ""
    max_message_chars: int = 4096
    max_frame_bytes: int = 1024 * 1024
    # bytes of user names one room presence answer of the server API holds
    # (docs/api.md); the internal port splits them over AMP values
    max_presence_bytes: int = 192 * 1024
    rate_limit: float = 20.0
    rate_burst: float = 40.0
    # bytes a second per connection and per user on this node (chatnet.limits.budget)
    rate_bytes: float = 16384.0
    rate_bytes_burst: float = 65536.0
    user_rate_bytes: float = 32768.0
    user_rate_bytes_burst: float = 131072.0
    login_timeout: float = 60.0
    store_timeout: float = 3.0
    offline_limit: int = 1000
    # --max-client-backlog: bytes a client connection may hold unread beyond
    # its transport's buffer before it is closed with 4008 (0: no bound)
    max_client_backlog: int = 1024 * 1024
    # --client-send-buffer: SO_SNDBUF of client connections, bytes (0: the
    # kernel's default, which grows up to net.ipv4.tcp_wmem's maximum)
    client_send_buffer: int = 0
    # --max-message-log-bytes: accepted messages waiting for MongoDB, in
    # bytes (chatnet.stores.message_log); past it new messages get 503
    max_message_log_bytes: int = 64 * 1024 * 1024
    ping_interval: float = 30.0  # --ping-interval: seconds between keep-alive pings
    ping_timeout: float = 20.0  # --ping-timeout: seconds a ping waits for its pong (or any data frame)
    tls_scheme: str = "ws"
    internal_tls: dict = field(default_factory=dict)  # {"ca": PEM file}: peers over TLS
    plugins: list = field(default_factory=list)  # --plugin NAME[:key=value,...]
    plugin_timeout: float = 30.0
    plugin_max_pending: int = 1000
    metrics: str = ""  # endpoint of /metrics and /health
    log_format: str = "text"
    compression: str = "off"  # --compression: off or deflate (permessage-deflate)
    # --allowed-origins: the origins (scheme://host[:port]) whose browser
    # pages may open a connection; empty: any
    allowed_origins: tuple = ()

    @property
    def route_deadline(self):
        """Seconds a message is tried towards the nodes of its recipients
        before it is given up: past two ZooKeeper session timeouts, by when
        the cluster has noticed a dead node (at least 20)."""
        return max(20.0, self.zk_session_timeout * 2 + 5)

    def secret(self):
        secret = self.cluster_secret or os.environ.get("CHATNET_CLUSTER_SECRET", "")
        return secret.encode()


def endpoint_interface(description, default="127.0.0.1"):
    """The C{interface=} of a Twisted server endpoint string, if any."""
    for part in description.split(":"):
        if part.startswith("interface="):
            value = part[len("interface="):]
            return value if value not in ("", "0.0.0.0", "::") else default
    return default
