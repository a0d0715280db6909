"""Dependencies shared by the routes: the router object, the request id, the API key check.

The dependencies are ``async def`` on purpose: FastAPI runs a plain ``def`` dependency in a worker thread, a
thread hop per dependency per request for work that never blocks.
"""

from __future__ import annotations

import hmac
import uuid
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, Request

from shared.errors import OCRError

if TYPE_CHECKING:
    from orchestrator.serving.router import Router

REQUEST_ID_HEADER = "x-request-id"
API_KEY_HEADER = "x-api-key"
AUTHORIZATION_HEADER = "authorization"


def get_router(request: Request) -> Router:
    return request.app.state.router


def request_id(request: Request) -> str:
    """The request's id: Serve's (which is the client's ``x-request-id`` when it sent one), else the client's,
    else a new one. Serve's proxy echoes its id in the response header itself."""
    rid = getattr(request.state, "request_id", None)
    if rid is None:
        rid = serve_request_id() or new_request_id(request.headers.get(REQUEST_ID_HEADER))
        request.state.request_id = rid
    return rid


def serve_request_id() -> str | None:
    """The id Ray Serve gave the request being handled, when running inside a Serve replica."""
    try:
        from ray.serve.context import _get_serve_request_context

        return _get_serve_request_context().request_id or None
    except Exception:  # not under Serve (tests with TestClient, tools)
        return None


def new_request_id(given: str | None) -> str:
    if given and 0 < len(given) <= 128 and given.isascii() and given.isprintable():
        return given
    return uuid.uuid4().hex


async def _router_dep(request: Request) -> Router:
    return get_router(request)


async def _request_id_dep(request: Request) -> str:
    return request_id(request)


def given_api_key(request: Request) -> str:
    """The key a request carries: ``x-api-key``, else ``Authorization: Bearer <key>`` (as OpenAI clients send it)."""
    given = request.headers.get(API_KEY_HEADER)
    if given is None:
        scheme, _, token = request.headers.get(AUTHORIZATION_HEADER, "").partition(" ")
        given = token.strip() if scheme.lower() == "bearer" else ""
    return given


async def check_api_key(request: Request) -> None:
    """When an API key is configured, every /v1 call must carry it (constant-time comparison), as ``x-api-key``
    or as ``Authorization: Bearer <key>``."""
    key = request.app.state.router.settings.api_key
    if key is None:
        return
    if not hmac.compare_digest(given_api_key(request).encode(), key.get_secret_value().encode()):
        raise OCRError(
            "unauthorized",
            f"missing or wrong {API_KEY_HEADER} header (or Authorization: Bearer)",
            accepted=[API_KEY_HEADER, AUTHORIZATION_HEADER],
        )


RouterDep = Annotated[Any, Depends(_router_dep)]  # the Router, or a fake in tests
RequestIdDep = Annotated[str, Depends(_request_id_dep)]
