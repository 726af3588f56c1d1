"""The gateway serves the web client (chatnet/gateway/web/): ``GET /`` and
``/static/<file>`` with their content types, caching headers and a strict
Content-Security-Policy; every other path stays a plain 404. In process,
with Twisted's request doubles."""
import re

import pytest
from twisted.web import resource
from twisted.web.test.requesthelper import DummyRequest

from chatnet.gateway.resource import Root
from chatnet.gateway.web import CSP, load_files


def get(path, method=b"GET", headers=()):
    root = Root(servers=None, policy=None)
    segments = path.split(b"?")[0].split(b"/")[1:]
    request = DummyRequest(segments)
    request.method = method
    request.uri = path
    if b"?" in path:
        name, _, value = path.split(b"?", 1)[1].partition(b"=")
        request.args = {name: [value]}
    for name, value in headers:
        request.requestHeaders.addRawHeader(name, value)
    found = resource.getChildForRequest(root, request)
    body = found.render(request)
    return request, body


def header(request, name):
    values = request.responseHeaders.getRawHeaders(name)
    return values[0] if values else None


def test_the_page_is_served_at_the_root_with_a_strict_policy():
    request, body = get(b"/")
    assert request.responseCode in (None, 200)
    assert header(request, b"content-type") == b"text/html; charset=utf-8"
    assert header(request, b"content-security-policy") == CSP
    assert b"script-src 'self'" in CSP and b"connect-src 'self' ws: wss:" in CSP and b"unsafe" not in CSP
    assert header(request, b"x-content-type-options") == b"nosniff"
    assert header(request, b"cache-control") == b"no-cache"
    assert header(request, b"etag")
    # the page names its files by content hash, and has no inline script or style
    assert re.search(rb'src="/static/app\.js\?v=[0-9a-f]{16}"', body)
    assert re.search(rb'href="/static/app\.css\?v=[0-9a-f]{16}"', body)
    assert b"<script>" not in body and b"style=" not in body and b"<style" not in body


@pytest.mark.parametrize("name, kind", [(b"app.js", b"text/javascript; charset=utf-8"),
                                        (b"app.css", b"text/css; charset=utf-8")])
def test_static_files_have_their_type_and_are_cached_for_good_by_version(name, kind):
    _, static = load_files()
    version = static[name.decode()].version.encode()
    request, body = get(b"/static/" + name + b"?v=" + version)
    assert header(request, b"content-type") == kind
    assert header(request, b"cache-control") == b"public, max-age=31536000, immutable"
    assert header(request, b"content-security-policy") == CSP
    assert body == static[name.decode()].body
    # another (an old) version: served, but revalidated
    request, _ = get(b"/static/" + name + b"?v=0123456789abcdef")
    assert header(request, b"cache-control") == b"no-cache"


def test_an_unchanged_file_is_answered_304():
    first, _ = get(b"/")
    request, body = get(b"/", headers=[(b"if-none-match", header(first, b"etag"))])
    assert request.responseCode == 304 and body == b""


@pytest.mark.parametrize("path", [b"/static/", b"/static/nope.js", b"/static/app.js/x", b"/static",
                                  b"//server", b"/index.html", b"/static/../server"])
def test_other_paths_stay_plain_404(path):
    request, body = get(path)
    assert request.responseCode == 404, path
    assert header(request, b"content-type") == b"text/plain; charset=utf-8"


def test_other_methods_get_405():
    request, _ = get(b"/", method=b"POST")
    assert request.responseCode == 405
    assert header(request, b"allow") == b"GET, HEAD"


def test_the_script_is_a_module_whose_imports_are_all_served_with_one_version():
    """app.js is loaded as a module; every module it reaches is served as
    JavaScript under the policy, its imports naming the shared version (so a
    page never mixes modules of two versions), and nothing imports a file the
    gateway does not serve."""
    _, page = get(b"/")
    assert re.search(rb'<script type="module" src="/static/app\.js\?v=[0-9a-f]{16}"></script>', page)
    _, static = load_files()
    modules = {name for name in static if name.endswith(".js")}
    version = static["app.js"].version
    assert {static[name].version for name in modules} == {version}
    seen, todo = set(), ["app.js"]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        request, body = get(b"/static/" + name.encode() + b"?v=" + version.encode())
        assert header(request, b"content-type") == b"text/javascript; charset=utf-8"
        assert header(request, b"content-security-policy") == CSP
        assert header(request, b"cache-control") == b"public, max-age=31536000, immutable"
        imports = re.findall(rb'(?:from|import)\s*"\./([a-z]+\.js)(\?v=[0-9a-f]+)?"', body)
        for target, query in imports:
            assert query == b"?v=" + version.encode(), (name, target)
            todo.append(target.decode())
    assert seen == modules, "every module is reached from app.js, and only those"


def test_a_change_to_one_module_changes_every_module_url(tmp_path, monkeypatch):
    import importlib.resources
    from chatnet.gateway import web
    base = importlib.resources.files("chatnet.gateway").joinpath("web")
    folder = tmp_path / "pkg" / "web"
    folder.mkdir(parents=True)
    for name in list(web.STATIC) + [web.INDEX]:
        (folder / name).write_bytes(base.joinpath(name).read_bytes())
    (tmp_path / "pkg" / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    _, before = load_files("pkg")
    (folder / "texts.js").write_bytes((folder / "texts.js").read_bytes() + b"\n// changed\n")
    index, after = load_files("pkg")
    assert after["app.js"].version != before["app.js"].version
    assert after["app.css"].version == before["app.css"].version
    assert b"/static/app.js?v=" + after["app.js"].version.encode() in index.body
