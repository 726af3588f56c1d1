"""Property fuzzing of the server API (docs/api.md) against a real gateway
and chat node: random methods, paths made of the API's own (with names in
unicode, %-escapes, very long ones), keys and JSON bodies, well-formed or
not. Every request gets one of the documented answers, JSON, with the one
error shape for every failure; and after every example the gateway still
answers a normal API request. Bounded and deterministic: a fixed number of
examples, derandomized.
"""
import json
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from chatnet.domain.names import user_name_problem
from tests.harness import ChatCluster
from tests.rawhttp import send

KEY = "fuzz-" + "k" * 20
DOCUMENTED = {200, 201, 400, 401, 404, 405, 409, 413, 503}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, redis_server, zookeeper_server, mongo_server):
    cluster = ChatCluster(tmp_path_factory.mktemp("fuzz-api"), redis_server, zookeeper_server, mongo_server,
                          nodes=1, session_timeout=2.0, extra_args=["--rate-limit", "0"], api_key=KEY)
    cluster.start(users=5, rooms=3)
    yield cluster
    cluster.stop()


def mostly(good, bad, one_in=5):
    """C{bad} about once in C{one_in} draws, else C{good}."""
    return st.integers(1, one_in).flatmap(lambda n: bad if n == one_in else good)


#: names that are data ('$', '.') or hide characters (control, bidi, zero-width)
tricky_names = st.lists(
    st.sampled_from(["$", ".", "\x00", "\x07", "\t", "\x7f", "\x85", "\u202e", "\u2066", "\u200b", "\ufeff", "\u2028",
                     "a", "b", "é", "房", " "]),
    min_size=1, max_size=10).map("".join) | st.sampled_from(["$gt", "$where", "a.b", "$ne.x", "\u202euser1"])
names = mostly(
    st.one_of(st.sampled_from(["user1", "user2", "room1", "room2", "world", "alliance:red", "nobody", "system"]),
              st.text(st.characters(min_codepoint=48, max_codepoint=0x2fff), min_size=1, max_size=20),
              tricky_names),
    st.one_of(st.text(max_size=20), st.just("alliance:"), st.integers(120, 3000).map(lambda n: "n" * n)),
    one_in=4,
)
segments = mostly(names.map(lambda s: quote(s, safe="")), st.from_regex(r"\A(%[0-9a-zA-Z]{0,2}|[a-z]){0,8}\Z"))
#: the API's paths (None: a name) and their methods
ROUTES = [
    (("messages",), ["POST"]), (("presence", None), ["GET"]), (("rooms", None, "presence"), ["GET"]),
    (("users",), ["POST"]), (("users", None), ["DELETE"]), (("users", None, "disconnect"), ["POST"]),
    (("rooms",), ["POST"]), (("rooms", None), ["DELETE"]), (("rooms", None, "members", None), ["PUT", "DELETE"]),
    (("openapi.json",), ["GET"]), (("nothing",), ["GET"]), ((), ["GET"]),
]
ANY_METHOD = st.sampled_from(["GET", "POST", "PUT", "DELETE", "HEAD", "PATCH", "OPTIONS"])


@st.composite
def targets(draw):
    """(method, path): mostly a method the path serves."""
    route, served = draw(st.sampled_from(ROUTES))
    parts = [draw(segments) if p is None else p for p in route]
    if draw(st.integers(0, 9)) == 0:
        parts.append(draw(segments))
    method = draw(st.sampled_from(served)) if draw(st.integers(0, 4)) else draw(ANY_METHOD)
    return method, "/api/v1/" + "/".join(parts)


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), names, st.text(max_size=50)),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)),
    max_leaves=8,
)
FIELDS = ["roomName", "to", "message", "from", "username", "password", "alliance", "private", "owner"]
fields = st.fixed_dictionaries({}, optional={
    **{f: st.one_of(names, names, json_values) for f in FIELDS if f != "private"},
    "private": st.one_of(st.booleans(), json_values),
})
objects = st.one_of(fields, fields, st.dictionaries(st.text(max_size=10), json_values, max_size=3))
bodies = st.one_of(
    objects.map(lambda o: json.dumps(o).encode()),
    objects.map(lambda o: json.dumps(o).encode()),
    objects.map(lambda o: json.dumps(o).encode()),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=100),
    st.just(b""),
)
keys = mostly(st.just(KEY), st.one_of(st.none(), st.text(st.characters(min_codepoint=33, max_codepoint=126),
                                                        max_size=40)), one_in=10)


def raw_request(method, path, key, body):
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {len(body)}", "Connection: close"]
    if key is not None:
        lines.append(f"Authorization: Bearer {key}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def check_answer(answer, raw, method):
    assert answer is not None, raw[:300]
    assert answer.status in DOCUMENTED, (answer.status, answer.body[:300], raw[:300])
    if answer.status == 413 or method == "HEAD":
        return  # the HTTP layer's own refusal (plain text, docs/protocol.md), or no body
    assert answer.headers.get("content-type") == "application/json", (answer.headers, raw[:300])
    body = json.loads(answer.body)
    if answer.status >= 400:
        assert set(body) == {"error"} and body["error"]["code"] == answer.status, body
        assert isinstance(body["error"]["message"], str) and body["error"]["message"], body
    if answer.status == 405:
        assert answer.headers.get("allow"), answer.headers


@settings(max_examples=300, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(target=targets(), key=keys, body=bodies)
def test_every_api_request_gets_a_documented_json_answer(cluster, target, key, body):
    method, path = target
    raw = raw_request(method, path, key, body)
    answer = send(cluster.gateway_port, raw, method=method if method == "HEAD" else "GET", timeout=30)
    check_answer(answer, raw, method)
    event(f"status {answer.status}")
    normal = send(cluster.gateway_port, raw_request("GET", "/api/v1/rooms/world/presence", KEY, b""), timeout=30)
    assert normal.status == 200 and "online" in json.loads(normal.body), normal.body


@settings(max_examples=60, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(name=tricky_names)
def test_user_names_with_dollars_dots_and_hidden_characters(cluster, name):
    """A user is made exactly when the name hides nothing and is not the
    API's sender (else 400), and such a user is then a room member like any
    other: names are data, never operators (docs/protocol.md, "User names")."""
    body = json.dumps({"username": name}).encode()
    answer = send(cluster.gateway_port, raw_request("POST", "/api/v1/users", KEY, body), timeout=30)
    check_answer(answer, body, "POST")
    if user_name_problem(name) is not None:
        assert answer.status == 400, (name, answer.body)
        return
    assert answer.status in (201, 409), (name, answer.body)
    path = f"/api/v1/rooms/room1/members/{quote(name, safe='')}"
    for method in ("PUT", "DELETE"):
        answer = send(cluster.gateway_port, raw_request(method, path, KEY, b""), timeout=30)
        check_answer(answer, b"", method)
        assert answer.status == 200, (name, method, answer.body)
