"""Property fuzzing of the gateway's HTTP surface against a real
``twistd chatgateway``, over raw sockets.

Random methods, paths (unicode, %-escapes, very long), query strings,
headers (odd, duplicate, huge), bodies and malformed request lines. Every
request gets a well-formed HTTP answer with a documented status
(docs/protocol.md, "Finding a node") and never a traceback, nor an HTML page
other than the web client's;
and after every example a normal ``GET /server`` still answers 200.
Bounded and deterministic: a fixed number of examples, derandomized.
"""
import json
import string
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from chatnet.protocols.http import MAX_HEAD
from tests.rawhttp import send, start_gateway

DOCUMENTED = {200, 400, 404, 405, 408, 413, 431, 503}
#: the web client's page and files (GET / and /static/<file>), the only answers of other types
WEB_CLIENT_TYPES = ("text/html", "text/css", "text/javascript")
TCHAR = string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~"
PATHS = ["/server", "/server/", "/health", "/metrics", "/", "", "*", "//server", "/server/x", "/./server",
         "/%73erver", "http://127.0.0.1/server", "/server;x", "/static/app.js", "/static/app.css", "/static/x",
         "/static/app.js/x"]


@pytest.fixture(scope="module")
def gateway(tmp_path_factory, redis_server):
    process = start_gateway(tmp_path_factory.mktemp("fuzz"), redis_server, "--request-timeout", "1")
    yield process
    process.stop()


def mostly(good, bad, one_in=5):
    """C{bad} about once in C{one_in} draws, else C{good}."""
    return st.integers(1, one_in).flatmap(lambda n: bad if n == 1 else good)


ascii_text = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40)
methods = mostly(
    st.one_of(st.sampled_from(["GET", "HEAD"]), st.sampled_from(["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT"]),
              st.text(TCHAR, min_size=1, max_size=20)),
    st.text(max_size=10),  # spaces, unicode, empty: not a token
)
segments = mostly(
    st.one_of(
        st.sampled_from(["server", "health", "metrics", "", ".", ".."]),
        st.text(max_size=30).map(lambda s: quote(s, safe="")),  # %-escaped unicode
        st.from_regex(r"\A(%[0-9a-zA-Z]{0,2}|[a-z]){0,12}\Z"),  # good and broken escapes
        st.text(st.characters(min_codepoint=33, max_codepoint=126), max_size=30),  # printable ASCII
        st.integers(1000, 20000).map(lambda n: "a" * n),  # very long
    ),
    st.text(max_size=30),  # raw unicode, spaces, controls
)
paths = st.one_of(
    st.just("/server"),
    st.sampled_from(PATHS),
    st.lists(segments, max_size=4).map(lambda parts: "/" + "/".join(parts)),
)
queries = st.one_of(
    st.just(""),
    st.sampled_from(["?all=1", "?all=", "?all=1&all=0", "?all", "?&&==", "?all=%zz", "?all=%E2%98%83"]),
    mostly(st.text(st.characters(min_codepoint=33, max_codepoint=126), max_size=60), st.text(max_size=60)).map(
        lambda q: "?" + q),
)
header_names = mostly(
    st.one_of(
        st.sampled_from(["Host", "Content-Length", "Transfer-Encoding", "Connection", "Expect", "Content-Type",
                         "Cookie", "Accept", "X-Forwarded-For"]),
        st.text(TCHAR, min_size=1, max_size=30),
    ),
    st.text(max_size=10),  # spaces, colons, unicode, empty: not a field name
    one_in=10,
)
header_values = mostly(
    st.one_of(
        st.sampled_from(["0", "5", "-1", "chunked", "close", "keep-alive", "100-continue", "identity", "1e3", ""]),
        ascii_text,
        st.integers(100, 20000).map(lambda n: "v" * n),  # huge
    ),
    st.text(max_size=40),  # unicode, controls
    one_in=10,
)
headers = st.lists(st.tuples(header_names, header_values), max_size=6)
bodies = st.one_of(st.just(b""), st.binary(max_size=200), st.just(b"5\r\nhello\r\n0\r\n\r\n"))
versions = mostly(
    st.sampled_from(["HTTP/1.1", "HTTP/1.0"]),
    st.sampled_from(["HTTP/2.0", "HTTP/0.9", "http/1.1", "HTTP/1.1 x", "HTTP/1.10", ""]),
)
# an unfinished head waits for --request-timeout: rare, to keep the run short
terminators = mostly(st.just("\r\n\r\n"), st.sampled_from(["\n\n", "\r\n", "\r\r"]), one_in=25)


@st.composite
def requests(draw):
    """(raw bytes, method) of one request, well-formed or not."""
    if draw(st.integers(0, 9)) == 0:  # a line of anything
        return draw(st.binary(max_size=300)) + b"\r\n\r\n", None
    method, path, query, version = draw(methods), draw(paths), draw(queries), draw(versions)
    line = " ".join(p for p in (method, path + query, version) if p)
    fields = draw(headers)
    body = draw(bodies)
    if body and draw(st.booleans()):
        fields.append(("Content-Length", str(len(body))))
    head = "\r\n".join([line, *(f"{name}: {value}" for name, value in fields)])
    terminator = draw(terminators)
    return head.encode("utf-8", "surrogatepass") + terminator.encode() + body, method


def check_answer(answer, raw):
    if answer is None:
        # a head over the limit is answered 431 and the connection closed at
        # once: a client still sending may see it reset before reading that
        assert len(raw) > MAX_HEAD, ("closed without an answer", raw[:300])
        return
    assert answer.status in DOCUMENTED, (answer, raw[:300])
    lowered = answer.body.lower()
    content_type = answer.headers.get("content-type", "")
    web_client = answer.status == 200 and content_type.startswith(WEB_CLIENT_TYPES)
    assert b"traceback" not in lowered, (answer, raw[:300])
    assert b"<html" not in lowered or web_client, (answer, raw[:300])
    if answer.body and not web_client:
        assert content_type.startswith(("text/plain", "application/json")), (answer, raw[:300])
    if web_client:
        assert answer.headers.get("content-security-policy"), answer
    if answer.status == 405:
        assert answer.headers.get("allow"), answer


@settings(max_examples=200, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(request=requests())
def test_every_request_gets_a_documented_plain_answer(gateway, request):
    raw, method = request
    answer = send(gateway.http_port, raw, method="HEAD" if method == "HEAD" else "GET", timeout=15)
    check_answer(answer, raw)
    event(f"status {answer.status if answer else None}")
    normal = send(gateway.http_port, b"GET /server HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    assert normal.status == 200 and json.loads(normal.body)["nodeId"] == "node1", normal
