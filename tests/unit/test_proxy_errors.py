"""What the HTTP proxy answers itself comes in the API's shape: the ASGI middleware Serve puts before its Python proxy
(driven here with scripted inner apps standing for Serve's proxy), and HAProxy's error files, through the real HAProxy
binary started by our launcher against servers that refuse, hang up or never answer. The same, through Ray with a
router replica killed under load: tests/e2e/test_operated.py."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from orchestrator.ops import haproxy
from orchestrator.serving.proxy_errors import ProxyErrorMiddleware, haproxy_error_files, proxy_middlewares
from shared.schema import ErrorResponse


def _call(app, path: str = "/v1/backends", headers: list[tuple[bytes, bytes]] | None = None) -> tuple[dict, bytes]:
    """One request through ``ProxyErrorMiddleware(app)``; the response's start message and its whole body."""
    scope = {"type": "http", "method": "GET", "path": path, "headers": headers or [(b"x-request-id", b"rid-1")]}
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    asyncio.run(ProxyErrorMiddleware(app)(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    return start, b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")


def _headers(start: dict) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in start["headers"]}


def _text_answer(status: int, text: str):
    async def app(scope, receive, send):  # what Serve's proxy sends for its own errors
        await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": text.encode()})

    return app


def test_a_replica_that_died_under_the_request_is_answered_503_backend_unavailable():
    async def dead_replica(scope, receive, send):  # Serve's proxy caught RayActorError and sent nothing
        return None

    start, body = _call(dead_replica)
    assert start["status"] == 503
    headers = _headers(start)
    assert headers["content-type"] == "application/json" and int(headers["retry-after"]) > 0
    error = ErrorResponse.model_validate_json(body)
    assert error.error.code == "backend_unavailable" and error.request_id == "rid-1"
    assert headers["x-request-id"] == "rid-1"


def test_an_exception_before_any_answer_is_answered_503_too():
    async def broken(scope, receive, send):
        raise RuntimeError("proxy bug")

    start, body = _call(broken)
    assert start["status"] == 503 and ErrorResponse.model_validate_json(body).error.code == "backend_unavailable"


@pytest.mark.parametrize(
    "status,text,code,answered",
    [
        (500, "Internal Server Error", "backend_unavailable", 503),
        (503, "Deployment 'router' is unavailable.", "backend_unavailable", 503),
        (408, "Request abc timed out after 1.0s.", "timeout", 504),
        (503, "Request dropped due to backpressure (num_queued_requests=9, max_queued_requests=8)", "overloaded", 503),
        (429, "Too many requests", "overloaded", 503),
        (404, "Path '/x' not found. Ping http://.../-/routes for available routes.", "not_found", 404),
    ],
)
def test_serves_plain_text_errors_become_error_responses(status, text, code, answered):
    start, body = _call(_text_answer(status, text))
    error = ErrorResponse.model_validate_json(body)
    assert start["status"] == answered and error.error.code == code
    if text != "Internal Server Error":
        assert text[:20] in error.error.message  # what the proxy said is kept, after what it means
    assert ("retry-after" in _headers(start)) == (code != "not_found")


def test_the_routers_json_answers_and_streams_pass_untouched():
    async def router(scope, receive, send):
        await send({"type": "http.response.start", "status": 413, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": b'{"a":', "more_body": True})
        await send({"type": "http.response.body", "body": b"1}"})

    start, body = _call(router)
    assert start["status"] == 413 and json.loads(body) == {"a": 1}

    async def events(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
        for i in range(3):
            await send({"type": "http.response.body", "body": f"data: {i}\n\n".encode(), "more_body": i < 2})

    start, body = _call(events)
    assert start["status"] == 200 and body == b"data: 0\n\ndata: 1\n\ndata: 2\n\n"


def test_serves_probes_and_other_statuses_keep_their_form():
    start, body = _call(_text_answer(503, "Service Unavailable"), path="/-/healthz")
    assert start["status"] == 503 and body == b"Service Unavailable"
    start, body = _call(_text_answer(401, "who are you"))
    assert start["status"] == 401 and body == b"who are you"


def test_serves_hook_returns_the_middleware():
    (middleware,) = proxy_middlewares()
    assert middleware.cls is ProxyErrorMiddleware


# HAProxy, the real binary, through the launcher ----------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def servers() -> Iterator[dict[str, int]]:
    """Ports of three upstreams: nobody listening, one that hangs up on every request, one that never answers."""
    hang_up = socket.create_server(("127.0.0.1", 0))
    silent = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()
    held: list[socket.socket] = []

    def serve(sock: socket.socket, *, close: bool) -> None:
        sock.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
            except TimeoutError:
                continue
            if close:
                conn.recv(65536)
                conn.close()
            else:
                held.append(conn)

    threads = [
        threading.Thread(target=serve, args=(hang_up,), kwargs={"close": True}, daemon=True),
        threading.Thread(target=serve, args=(silent,), kwargs={"close": False}, daemon=True),
    ]
    for t in threads:
        t.start()
    yield {"refused": _free_port(), "hang_up": hang_up.getsockname()[1], "silent": silent.getsockname()[1]}
    stop.set()
    for t in threads:
        t.join()
    for s in [hang_up, silent, *held]:
        s.close()


HAPROXY_CONFIG = """global
    maxconn 100
defaults
    mode http
    timeout connect 1s
    timeout client 30s
    timeout server 2s
    retries 0
    errorfile 502 {stock}
    errorfile 503 {stock}
    errorfile 504 {stock}
frontend http_frontend
    bind 127.0.0.1:{port}
    use_backend refused if {{ path_beg /refused }}
    use_backend hang_up if {{ path_beg /hang_up }}
    default_backend silent
backend refused
    server s1 127.0.0.1:{refused}
backend hang_up
    server s1 127.0.0.1:{hang_up}
backend silent
    server s1 127.0.0.1:{silent}
"""
"""Ray's template in miniature: the three errorfile lines naming one plain-text file, as Ray writes them."""


def test_haproxy_started_through_the_launcher_answers_its_errors_as_error_responses(tmp_path, servers):
    stock = tmp_path / "500.http"
    stock.write_bytes(b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain\r\nContent-Length: 21\r\n\r\n")
    config = tmp_path / "haproxy.cfg"
    port = _free_port()
    config.write_text(HAPROXY_CONFIG.format(stock=stock, port=port, **servers))
    env = haproxy.install(tmp_path / "launcher")
    launcher = Path(env[haproxy.BINARY_VAR])
    proc = subprocess.Popen([str(launcher), "-db", "-f", str(config)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        answers = {}
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            for path in ("/refused", "/hang_up", "/silent"):
                deadline = time.monotonic() + 30  # hang guard while HAProxy binds its port
                while True:
                    try:
                        answers[path] = client.get(path)
                        break
                    except httpx.TransportError:
                        if time.monotonic() > deadline or proc.poll() is not None:
                            raise
                        time.sleep(0.2)
    finally:
        proc.terminate()
        output = proc.communicate(timeout=30)[0].decode(errors="replace")
    assert f"errorfile 503 {launcher.parent}/503.http" in config.read_text(), output  # Ray's lines, repointed
    for path, status, code in [
        ("/refused", 503, "backend_unavailable"),  # no server to connect to
        ("/hang_up", 503, "backend_unavailable"),  # HAProxy's 502: the server hung up without answering
        ("/silent", 504, "timeout"),  # HAProxy's 504: timeout server
    ]:
        r = answers[path]
        assert r.status_code == status and r.headers["content-type"] == "application/json", (path, r.text, output)
        assert ErrorResponse.model_validate(r.json()).error.code == code and int(r.headers["retry-after"]) > 0


def test_the_error_files_are_complete_http_answers():
    for status, raw in haproxy_error_files().items():
        head, body = raw.split(b"\r\n\r\n", 1)
        lines = head.decode().split("\r\n")
        assert lines[0].startswith("HTTP/1.1 50"), status
        fields = dict(line.split(": ", 1) for line in lines[1:])
        assert int(fields["Content-Length"]) == len(body) and fields["Content-Type"] == "application/json"
        ErrorResponse.model_validate_json(body)
