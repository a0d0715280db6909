"""The router's one middleware: request ids and ``Server-Timing``, as plain ASGI.

Plain ASGI rather than Starlette's ``BaseHTTPMiddleware`` (``@app.middleware("http")``), which runs the endpoint
in a task group and re-streams every response body through memory channels: measurable per request on a small
machine, and it buys nothing here: all this needs is to add two headers to the response's start message.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from orchestrator.serving import timing
from orchestrator.serving.api.deps import REQUEST_ID_HEADER, request_id, serve_request_id


class RequestContextMiddleware:
    """Gives every HTTP request its id (echoed in ``x-request-id`` when Serve's proxy does not do it) and a
    :class:`~orchestrator.serving.timing.ServerTiming`, answered as the ``Server-Timing`` header."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = request_id(Request(scope))  # stored in the scope's state: the routes' RequestIdDep reads it back
        echo_id = serve_request_id() is None  # under Serve, the proxy sets the header itself
        server_timing, token = timing.start()

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                if echo_id and REQUEST_ID_HEADER not in headers:
                    headers[REQUEST_ID_HEADER] = rid
                headers.append(timing.HEADER, server_timing.header())
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            timing.finish(token)
