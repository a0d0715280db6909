"""The API's error shape for what the HTTP proxy answers itself, when the router replica cannot.

A router replica that dies under a request, a router not running yet, a proxy's own deadline: these answers come
from Ray Serve's proxy, not from the router's FastAPI app, and Serve writes them as plain text. Ray's Python proxy
sends nothing at all for a request whose replica died (uvicorn then answers ``500 Internal Server Error``), and
``503``/``408``/``404`` with a text line; HAProxy answers its own 502/503/504 from one error file that Ray writes
as ``500 Internal Server Error`` (ray/serve/_private/haproxy.py). A client then reads something that is not an
``ErrorResponse``. This module gives both proxies the API's shape, with each code's one status
(:data:`shared.errors.HTTP_STATUS`) and ``Retry-After`` where a retry can succeed:

- :class:`ProxyErrorMiddleware`: an ASGI middleware that Serve puts in front of its Python proxy and of each ingress
  replica's own HTTP server (HAProxy's direct path), through Serve's hook for proxy middlewares,
  ``RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH`` = :data:`CALLBACK` (a process setting: ``ocrserve serve`` sets it
  before Ray starts, :data:`orchestrator.ops.local.PROXY_ENV`);
- :func:`haproxy_error_files`: HAProxy's error files in the same shape (installed by :mod:`orchestrator.ops.haproxy`).

What maps to what: no answer at all, or a plain-text 500/502/503 → 503 ``backend_unavailable``; 408 or 504 → 504
``timeout``; 429, or Serve's "dropped due to backpressure" → 503 ``overloaded``; 404 → ``not_found``. Answers in
JSON (every answer of the router) and Serve's own ``/-/`` endpoints pass untouched, streamed as they come.
"""

from __future__ import annotations

import logging
from http import HTTPStatus

from starlette.datastructures import Headers
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.errors import HTTP_STATUS, RETRY_AFTER_S
from shared.schema import ErrorCode, ErrorDetail, ErrorResponse

logger = logging.getLogger("ray.serve")

CALLBACK = "orchestrator.serving.proxy_errors:proxy_middlewares"
"""What ``RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH`` names: Serve calls it in every proxy and ingress replica."""

MESSAGES: dict[ErrorCode, str] = {
    ErrorCode.BACKEND_UNAVAILABLE: "the service's router did not answer (a router replica stopped, or none is running "
    "yet); retry after Retry-After seconds",
    ErrorCode.TIMEOUT: "the HTTP proxy's deadline passed before the router answered",
    ErrorCode.OVERLOADED: "the router is at its request limit; retry after Retry-After seconds",
    ErrorCode.NOT_FOUND: "no application is served at this path",
}
"""What each answer the proxy gives says, for a person."""


def proxy_error(
    code: ErrorCode, *, detail: str | None = None, request_id: str | None = None
) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body of a proxy's answer in the API's shape.

    Args:
        code: What happened (one of :data:`MESSAGES`' codes).
        detail: What the proxy itself said, appended to the message when it says more than its status.
        request_id: The request's id, when the proxy knows it.
    """
    message = MESSAGES[code]
    if detail and detail.strip() and detail.strip() != HTTPStatus(HTTP_STATUS[code]).phrase:
        message = f"{message} (proxy: {detail.strip()[:300]})"
    body = ErrorResponse(request_id=request_id, error=ErrorDetail(code=code, message=message))
    headers = {"content-type": "application/json", "cache-control": "no-store"}
    if code != ErrorCode.NOT_FOUND:
        headers["retry-after"] = str(RETRY_AFTER_S.get(code, RETRY_AFTER_S[ErrorCode.BACKEND_UNAVAILABLE]))
    if request_id:
        headers["x-request-id"] = request_id
    return HTTP_STATUS[code], headers, body.model_dump_json().encode()


def code_for(status: int, text: str) -> ErrorCode | None:
    """The code of a plain-text answer of Serve's with ``status``, None for a status this module leaves alone."""
    if status in (408, 504):
        return ErrorCode.TIMEOUT
    if status == 429 or "backpressure" in text.lower():
        return ErrorCode.OVERLOADED
    if status == 404:
        return ErrorCode.NOT_FOUND
    if status in (500, 502, 503):
        return ErrorCode.BACKEND_UNAVAILABLE
    return None


def haproxy_error_files() -> dict[int, bytes]:
    """HAProxy error files (raw HTTP answers, HAProxy's ``errorfile`` format) for the 502, 503 and 504 it answers
    itself: 502 and 503 (the router's connection broke, no router up) as ``backend_unavailable``, 504 (HAProxy's
    ``timeout server``) as ``timeout``. Static files: no request id."""
    files = {}
    for status, code in (
        (502, ErrorCode.BACKEND_UNAVAILABLE),
        (503, ErrorCode.BACKEND_UNAVAILABLE),
        (504, ErrorCode.TIMEOUT),
    ):
        answer_status, headers, body = proxy_error(code)
        head = [f"HTTP/1.1 {answer_status} {HTTPStatus(answer_status).phrase}"]
        head += [f"{name.title()}: {value}" for name, value in headers.items()]
        head += [f"Content-Length: {len(body)}", "Connection: close"]
        files[status] = ("\r\n".join(head) + "\r\n\r\n").encode() + body
    return files


def _is_json(content_type: str | None) -> bool:
    media_type = (content_type or "").split(";")[0].strip().lower()
    return media_type == "application/json" or media_type.endswith("+json")


class ProxyErrorMiddleware:
    """Turns what Serve's proxy answers itself into an ``ErrorResponse`` (see the module's docstring); everything
    else passes through message by message, so streamed answers stay streamed."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path", "").startswith("/-/"):  # Serve's probes keep their form
            await self.app(scope, receive, send)
            return
        started = False
        held: tuple[Message, bytearray] | None = None  # a plain-text error being read, to be answered in JSON

        async def send_shaped(message: Message) -> None:
            nonlocal started, held
            if message["type"] == "http.response.start":
                started = True
                status = message["status"]
                if status >= 400 and not _is_json(Headers(raw=message.get("headers", [])).get("content-type")):
                    held = (message, bytearray())
                    return
            elif message["type"] == "http.response.body" and held is not None:
                held[1].extend(message.get("body", b""))
                if not message.get("more_body", False):
                    start, body = held
                    text = body.decode("utf-8", "replace")
                    code = code_for(start["status"], text)
                    if code is None:  # not one of Serve's: the answer as it was
                        await send(start)
                        await send({"type": "http.response.body", "body": bytes(body)})
                    else:
                        await self._answer(scope, send, code, detail=text)
                return
            await send(message)

        try:
            await self.app(scope, receive, send_shaped)
        except Exception:
            if started:
                raise
            logger.warning("the proxy failed before answering %s; answered backend_unavailable", scope.get("path"))
            await self._answer(scope, send, ErrorCode.BACKEND_UNAVAILABLE)
            return
        if not started:  # the replica died under the request: Serve's proxy sends nothing, uvicorn would say 500
            await self._answer(scope, send, ErrorCode.BACKEND_UNAVAILABLE)

    @staticmethod
    async def _answer(scope: Scope, send: Send, code: ErrorCode, *, detail: str | None = None) -> None:
        request_id = Headers(scope=scope).get("x-request-id")  # Serve's own middleware sets it in the scope
        status, headers, body = proxy_error(code, detail=detail, request_id=request_id)
        raw = [(k.encode(), v.encode()) for k, v in {**headers, "content-length": str(len(body))}.items()]
        await send({"type": "http.response.start", "status": status, "headers": raw})
        await send({"type": "http.response.body", "body": body})


def proxy_middlewares() -> list[Middleware]:
    """Serve's hook for proxy middlewares (``RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH``): the list it wraps its
    Python proxy and each ingress replica's HTTP server in."""
    return [Middleware(ProxyErrorMiddleware)]
