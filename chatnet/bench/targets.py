"""Where the load goes and what the host tells about it: the chat nodes
(from their URLs or the gateway's list), the memory and file descriptors of
local processes, and the bench users in MongoDB."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Optional, Tuple
from urllib.parse import urlsplit, urlunsplit


@dataclass
class Node:
    url: str
    host: str
    port: int
    nodeId: Optional[str] = None
    secure: bool = False
    path: str = "/"
    ip: Optional[str] = None
    family: int = socket.AF_INET
    extra: Dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.nodeId or f"{self.host}:{self.port}"


def node_from_url(url: str) -> Node:
    url = url.strip()
    if "://" not in url:
        url = "ws://" + url
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme in ("http", "https"):
        scheme = "ws" if scheme == "http" else "wss"
    if scheme not in ("ws", "wss"):
        raise ValueError(f"not a WebSocket URL: {url}")
    secure = scheme == "wss"
    port = parts.port or (443 if secure else 80)
    host = parts.hostname or "127.0.0.1"
    path = parts.path or "/"
    norm = urlunsplit((scheme, parts.netloc, path, parts.query, ""))
    return Node(url=norm, host=host, port=port, secure=secure, path=path)


def nodes_from_gateway_answer(answer: Any, gateway_url: str) -> List[Node]:
    """Nodes from the JSON of ``GET /server?all=1``."""
    if not isinstance(answer, list):
        raise ValueError(f"gateway answer is not a list: {answer!r:.200}")
    gw_host = urlsplit(gateway_url).hostname or "127.0.0.1"
    nodes = []
    for item in answer:
        if not isinstance(item, dict):
            continue
        host = item.get("host") or gw_host
        if host in ("0.0.0.0", "::", "[::]"):
            host = gw_host
        if item.get("url"):
            node = node_from_url(str(item["url"]))
        else:
            h = f"[{host}]" if ":" in host and not host.startswith("[") else host
            node = node_from_url(f"ws://{h}:{int(item['port'])}/")
        node.nodeId = item.get("nodeId")
        node.extra = {k: item[k] for k in ("isLeader", "connections") if k in item}
        nodes.append(node)
    return nodes


def gateway_base(url: str) -> str:
    if "://" not in url:
        url = "http://" + url
    url = url.rstrip("/")
    if url.endswith("/server"):
        url = url[: -len("/server")]
    return url


def _read_body(response):
    """Deferred firing with the whole body of a twisted.web client response."""
    from twisted.internet import defer, protocol
    from twisted.web.client import PotentialDataLoss, ResponseDone

    d = defer.Deferred()

    class Collect(protocol.Protocol):
        def __init__(self):
            self.chunks = []

        def dataReceived(self, data):
            self.chunks.append(data)

        def connectionLost(self, reason=protocol.connectionDone):
            if reason.check(ResponseDone, PotentialDataLoss):
                d.callback(b"".join(self.chunks))
            else:
                d.errback(reason)

    response.deliverBody(Collect())
    return d


def resolve(node: Node) -> None:
    infos = socket.getaddrinfo(node.host, node.port, type=socket.SOCK_STREAM)
    infos.sort(key=lambda i: 0 if i[0] == socket.AF_INET else 1)
    family, _, _, _, addr = infos[0]
    node.family = family
    node.ip = addr[0]


def read_rss_kb(pid: int) -> Optional[int]:
    """VmRSS of ``pid`` in KiB, from /proc; ``None`` if unreadable."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def _listening_inodes(port: int) -> set:
    inodes = set()
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path) as f:
                next(f, None)
                for line in f:
                    parts = line.split()
                    if len(parts) < 10 or parts[3] != "0A":  # 0A = LISTEN
                        continue
                    if int(parts[1].rsplit(":", 1)[1], 16) == port:
                        inodes.add(parts[9])
        except OSError:
            continue
    return inodes


def find_listening_pid(port: int) -> Optional[int]:
    """Best effort: the pid of a local process listening on TCP ``port``."""
    inodes = _listening_inodes(port)
    if not inodes:
        return None
    targets = {f"socket:[{i}]" for i in inodes}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fd_dir = f"/proc/{entry}/fd"
        try:
            for fd in os.listdir(fd_dir):
                try:
                    if os.readlink(f"{fd_dir}/{fd}") in targets:
                        return int(entry)
                except OSError:
                    continue
        except OSError:
            continue
    return None


def raise_nofile(wanted: int) -> Tuple[int, int]:
    """Raise RLIMIT_NOFILE towards ``wanted``; return the (soft, hard) now in force."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not Linux
        return (-1, -1)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        if hard != resource.RLIM_INFINITY and hard < wanted:
            try:  # works as root
                resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, wanted))
                target = None
            except (ValueError, OSError):
                pass
        if target is not None:
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            except (ValueError, OSError):
                pass
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def create_users(mongo_url: str, names: Iterable[str]) -> int:
    """Insert the users that are missing (no password); return how many were added."""
    import pymongo

    client = pymongo.MongoClient(mongo_url, serverSelectionTimeoutMS=10000)
    try:
        db = client.get_default_database(default="chatnet")
        ops = [
            pymongo.UpdateOne({"username": n}, {"$setOnInsert": {"username": n}}, upsert=True)
            for n in names
        ]
        added = 0
        for i in range(0, len(ops), 5000):
            res = db.users.bulk_write(ops[i : i + 5000], ordered=False)
            added += res.upserted_count
        return added
    finally:
        client.close()


def create_rooms(mongo_url: str, names: Iterable[str]) -> int:
    """Insert the rooms that are missing, as chatnet-seed makes them (no
    members); return how many were added."""
    import pymongo

    client = pymongo.MongoClient(mongo_url, serverSelectionTimeoutMS=10000)
    try:
        db = client.get_default_database(default="chatnet")
        ops = [
            pymongo.UpdateOne({"roomName": n}, {"$setOnInsert": {"roomName": n, "members": []}},
                              upsert=True)
            for n in names
        ]
        if not ops:
            return 0
        return db.rooms.bulk_write(ops, ordered=False).upserted_count
    finally:
        client.close()


def pick_node(nodes: List[Node], wanted: Optional[str]) -> Node:
    """The node ``--node`` names: a nodeId, an index in ``nodes``, or a URL."""
    if not wanted:
        return nodes[0]
    for n in nodes:
        if n.nodeId == wanted or n.url == wanted or f"{n.host}:{n.port}" == wanted:
            return n
    if wanted.isdigit() and int(wanted) < len(nodes):
        return nodes[int(wanted)]
    if "://" in wanted:
        return node_from_url(wanted)
    raise RuntimeError(f"node {wanted!r} not among {[n.name for n in nodes]}")
