"""The gateway's HTTP listener (and the metrics listener) against bad
clients, over raw sockets to a real ``twistd chatgateway``: slow heads are cut
off, idle connections closed, every method answered in plain text."""
import json
import select
import socket

import pytest

from devtools.localservices import free_port
from tests.rawhttp import closed_within, read_answer, send, start_gateway

METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT", "FOO"]


@pytest.fixture(scope="module")
def gateway(tmp_path_factory, redis_server):
    metrics_port = free_port()
    process = start_gateway(tmp_path_factory.mktemp("gateway"), redis_server,
                            "--request-timeout", "1.5", "--idle-timeout", "2", metrics_port=metrics_port)
    process.metrics_port = metrics_port
    yield process
    process.stop()


def request(method, path, *headers, body=b""):
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *headers]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def assert_plain(answer):
    assert answer is not None
    assert answer.headers.get("content-type", "").startswith("text/plain"), answer
    assert b"<" not in answer.body, answer


def test_server_answers(gateway):
    answer = send(gateway.http_port, request("GET", "/server"))
    assert answer.status == 200 and json.loads(answer.body)["nodeId"] == "node1"


def drip(sock, start, byte, most=150):
    """Send C{start}, then C{byte} every 0.2 s until the server answers or
    closes (at most C{most} bytes); return its answer."""
    sock.sendall(start)
    for _ in range(most):
        readable, _, _ = select.select([sock], [], [], 0.2)
        if readable:
            break
        try:
            sock.sendall(byte)
        except (BrokenPipeError, ConnectionResetError):
            break
    else:
        raise AssertionError(f"still open after {most} drip-fed bytes")
    sock.settimeout(5)
    return read_answer(sock)


def test_drip_fed_head_is_cut_off(gateway):
    with socket.create_connection(("127.0.0.1", gateway.http_port), timeout=5) as sock:
        answer = drip(sock, b"GET /server HTTP/1.1\r\nX-Slow: ", b"a")
        assert answer is not None and answer.status == 408, answer
        assert_plain(answer)
        assert closed_within(sock, 5)


def test_drip_fed_body_is_cut_off(gateway):
    with socket.create_connection(("127.0.0.1", gateway.http_port), timeout=5) as sock:
        answer = drip(sock, request("GET", "/server", "Content-Length: 1000"), b"x")
        assert answer is not None and answer.status == 408, answer
        assert closed_within(sock, 5)


def test_idle_connection_is_closed(gateway):
    with socket.create_connection(("127.0.0.1", gateway.http_port), timeout=5) as sock:
        assert closed_within(sock, 20), "an idle connection is still open after 20 s"


def test_keep_alive_connection_serves_requests_then_idles_out(gateway):
    with socket.create_connection(("127.0.0.1", gateway.http_port), timeout=5) as sock:
        for _ in range(3):
            sock.sendall(request("GET", "/server"))
            assert read_answer(sock).status == 200
        assert closed_within(sock, 20)


@pytest.mark.parametrize("method", METHODS)
def test_every_method_gets_plain_text(gateway, method):
    answer = send(gateway.http_port, request(method, "/server"), method=method)
    if method in ("GET", "HEAD"):
        assert answer.status == 200, answer
        assert answer.body.startswith(b"{") or method == "HEAD" and answer.body == b""
    else:
        assert answer.status == 405, answer
        assert answer.headers["allow"] == "GET, HEAD"
        assert_plain(answer)
    answer = send(gateway.http_port, request(method, "/elsewhere"), method=method)
    assert answer.status == 404, answer
    if method != "HEAD":
        assert_plain(answer)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("path", ["/metrics", "/health"])
def test_metrics_listener_methods(gateway, method, path):
    answer = send(gateway.metrics_port, request(method, path), method=method)
    if method in ("GET", "HEAD"):
        assert answer.status in (200, 503), answer
    else:
        assert answer.status == 405 and answer.headers["allow"] == "GET, HEAD", answer
        assert_plain(answer)
    answer = send(gateway.metrics_port, request(method, path + "/x/y"), method=method)
    assert answer.status == 404, answer


def test_gateway_health_on_the_main_port_refuses_post(gateway):
    answer = send(gateway.http_port, request("POST", "/health"), method="POST")
    assert answer.status == 405
    assert_plain(answer)


def test_too_large_body_is_413(gateway):
    answer = send(gateway.http_port, request("POST", "/server", "Content-Length: 100000000"))
    assert answer.status == 413
    assert_plain(answer)


def test_too_large_head_is_431(gateway):
    answer = send(gateway.http_port, request("GET", "/server", "X-Big: " + "a" * 20000))
    assert answer.status == 431
    assert_plain(answer)
    many = [f"X-{i}: {i}" for i in range(600)]
    answer = send(gateway.http_port, request("GET", "/server", *many))
    assert answer.status == 431


def test_malformed_request_line_is_plain_400(gateway):
    answer = send(gateway.http_port, b"GET /server\r\n\r\n")
    assert answer.status == 400
    assert_plain(answer)
