"""The web client's files, served by the gateway: ``GET /`` (the page) and
``GET /static/<name>`` (its script and style sheet), all shipped in the
package (``chatnet/gateway/web/``), read once at start-up.

The script is a set of JavaScript modules (``app.js`` imports the others by
relative URL; the page loads it with ``<script type="module">``, which the
policy's ``script-src 'self'`` allows).

Every answer carries a strict Content-Security-Policy (the page loads only its
own files and connects only to its gateway and to WebSocket URLs: the nodes
listen on other ports), and an ``ETag``. The page itself is revalidated on
every load (``no-cache``); it names its files with their content hash
(``/static/app.css?v=<hash>``), which may then be cached for good. The modules
share one version, the hash of them all, written into the page's URL and into
each module's ``import`` URLs: a change to any module gives every module a new
URL, so no page ever mixes modules of two versions.
"""
import hashlib
import re
from importlib import resources

from chatnet.protocols.http import PlainResource

#: the files below ``/static/`` and their content types
JS = b"text/javascript; charset=utf-8"
STATIC = {
    "app.css": b"text/css; charset=utf-8",
    # the modules: app.js (the entry) and what it imports
    "app.js": JS,
    "state.js": JS,
    "connection.js": JS,
    "frames.js": JS,
    "commands.js": JS,
    "view.js": JS,
    "texts.js": JS,
    "history.js": JS,
    "edits.js": JS,
    "typing.js": JS,
    "notify.js": JS,
}
#: ``from "./x.js"`` / ``import "./x.js"`` in a module
IMPORT = re.compile(rb'((?:\bfrom|\bimport)\s*")\./([a-z]+\.js)(")')
INDEX = "index.html"

CSP = (
    b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    b"connect-src 'self' ws: wss:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    b"content-security-policy": CSP,
    b"x-content-type-options": b"nosniff",
    b"referrer-policy": b"no-referrer",
    b"x-frame-options": b"DENY",
}
FOREVER = b"public, max-age=31536000, immutable"
REVALIDATE = b"no-cache"


class WebFile:
    """One file to serve: its bytes, content type and version (a content hash)."""

    def __init__(self, body: bytes, content_type: bytes, version: str = None):
        self.body = body
        self.content_type = content_type
        self.version = version or hashlib.sha256(body).hexdigest()[:16]
        self.etag = b'"%s"' % self.version.encode("ascii")


def load_files(package="chatnet.gateway", folder="web"):
    """The shipped page and static files: ``(index, {name: WebFile})``."""
    base = resources.files(package).joinpath(folder)
    raw = {name: base.joinpath(name).read_bytes() for name in STATIC}
    modules = sorted(name for name, kind in STATIC.items() if kind == JS)
    bundle = hashlib.sha256()
    for name in modules:
        bundle.update(name.encode("ascii") + b"\0" + raw[name] + b"\0")
    version = bundle.hexdigest()[:16]
    static = {}
    for name, kind in STATIC.items():
        if kind == JS:
            body = IMPORT.sub(lambda m: _versioned(m, modules, version), raw[name])
            static[name] = WebFile(body, kind, version)
        else:
            static[name] = WebFile(raw[name], kind)
    page = base.joinpath(INDEX).read_text("utf-8")
    for name, file in static.items():
        page = page.replace(f"/static/{name}", f"/static/{name}?v={file.version}")
    return WebFile(page.encode("utf-8"), b"text/html; charset=utf-8"), static


class WebFileResource(PlainResource):
    """``GET``/``HEAD`` of one L{WebFile}; ``If-None-Match`` answered 304."""

    isLeaf = True

    def __init__(self, file: WebFile, immutable: bool = False):
        super().__init__()
        self.file = file
        self.immutable = immutable

    def render_GET(self, request):
        for name, value in SECURITY_HEADERS.items():
            request.setHeader(name, value)
        version = request.args.get(b"v", [b""])[0]
        forever = self.immutable and version == self.file.version.encode("ascii")
        request.setHeader(b"cache-control", FOREVER if forever else REVALIDATE)
        request.setHeader(b"etag", self.file.etag)
        request.setHeader(b"content-type", self.file.content_type)
        if self.file.etag in _etags(request.getHeader(b"if-none-match")):
            request.setResponseCode(304)
            return b""
        return self.file.body


class WebClient:
    """The resources of the web client: L{page} for ``/``, L{static} for a
    name below ``/static/`` (a plain 404 for any other name)."""

    def __init__(self, files=None):
        index, static = files or load_files()
        self.page = WebFileResource(index)
        self._static = {name.encode("ascii"): WebFileResource(f, immutable=True) for name, f in static.items()}

    def static(self, name: bytes):
        return self._static.get(name)


def _versioned(match, modules, version):
    name = match.group(2).decode("ascii")
    if name not in modules:
        raise ValueError(f"a module imports {name}, which is not served (chatnet.gateway.web.STATIC)")
    return match.group(1) + b"./" + match.group(2) + b"?v=" + version.encode("ascii") + match.group(3)


def _etags(header):
    if not header:
        return set()
    return {part.strip().removeprefix(b"W/") for part in header.split(b",")}
