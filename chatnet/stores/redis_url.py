"""Redis URLs: one server, or the master of a Redis Sentinel group.

* ``redis://host:port/db`` (port 6379 and database 0 by default);
* ``redis+sentinel://host1:26379,host2:26379/mastername/db``: the sentinels
  to ask (port 26379 by default; an IPv6 address in brackets), the name of the
  master they watch, the database (0 by default).

Nothing here imports the reactor: the command-line options check URLs with it.
"""
from urllib.parse import urlparse

SENTINEL_SCHEME = "redis+sentinel"
SENTINEL_PORT = 26379


def is_sentinel_url(url):
    return url.startswith(SENTINEL_SCHEME + "://")


def parse_redis_url(url):
    """C{redis://host:port/db} -> (host, port, db)."""
    parsed = urlparse(url)
    if parsed.scheme not in ("redis", ""):
        raise ValueError(f"not a redis:// URL: {url}")
    db = parsed.path.strip("/")
    try:
        return parsed.hostname or "127.0.0.1", parsed.port or 6379, _database(db or "0", url)
    except ValueError as e:
        raise ValueError(f"bad redis URL {url}: {e}") from None


def parse_sentinel_url(url):
    """C{redis+sentinel://host1:26379,host2:26379/mastername/db} ->
    ([(host, port), ...], mastername, db). The port defaults to 26379, the
    database to 0.

    @raise ValueError: not such a URL, or no sentinel, or no master name.
    """
    if not is_sentinel_url(url):
        raise ValueError(f"not a {SENTINEL_SCHEME}:// URL: {url}")
    netloc, _, path = url[len(SENTINEL_SCHEME) + 3:].partition("/")
    name, _, db = path.strip("/").partition("/")
    sentinels = []
    for item in netloc.split(","):
        host, port = _host_port(item.strip(), url)
        sentinels.append((host, port))
    if not name:
        raise ValueError(f"no master name in {url} (redis+sentinel://host:port,.../mastername/db)")
    return sentinels, name, _database(db or "0", url)


def _host_port(item, url):
    if not item:
        raise ValueError(f"a sentinel address is empty in {url}")
    if item.startswith("["):  # [IPv6]:port
        host, _, rest = item[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    else:
        host, _, port = item.rpartition(":") if ":" in item else (item, "", "")
    if not host:
        raise ValueError(f"a sentinel address has no host in {url}")
    if not port:
        return host, SENTINEL_PORT
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"bad sentinel port {port!r} in {url}")
    return host, int(port)


def _database(text, url):
    if not text.isdigit():
        raise ValueError(f"the database must be a number, not {text!r}, in {url}")
    return int(text)


def check_redis_url(url):
    """Raise ValueError with a clear message unless C{url} is a Redis URL
    chatnet can use (C{redis://} or C{redis+sentinel://})."""
    if is_sentinel_url(url):
        parse_sentinel_url(url)
    else:
        parse_redis_url(url)
