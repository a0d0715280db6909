"""The FastAPI app of one router replica: routes, error handlers, request ids."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import FastAPI

from orchestrator.serving.api.errors import install_error_handlers
from orchestrator.serving.api.middleware import RequestContextMiddleware
from orchestrator.serving.api.routes import backends, compare, health, jobs, ocr, openai, pages, ui
from orchestrator.serving.api.routes import extract as extract_routes
from orchestrator.serving.api.routes import render as render_routes
from shared.schema import SCHEMA_VERSION

if TYPE_CHECKING:
    from orchestrator.serving.router import Router

DESCRIPTION = """
One API over several OCR backends served by Ray Serve (`GET /v1/backends` lists them and what each can do).
`POST /v1/ocr` takes a document and a backend name (or `auto`) and answers in one schema: markdown, layout
blocks with boxes, and a boxes image per page. Every error is an `ErrorResponse`.
"""


def create_api(router: Router) -> FastAPI:
    """A FastAPI app serving ``router`` (a real Router in a replica, or a fake in tests)."""
    # docs_url/redoc_url off: FastAPI's pages load their scripts from a CDN; routes/ui.py serves them locally.
    app = FastAPI(title="ocrserve", version=SCHEMA_VERSION, description=DESCRIPTION, docs_url=None, redoc_url=None)
    app.state.router = router
    install_error_handlers(app)
    app.add_middleware(RequestContextMiddleware)  # request ids and Server-Timing (plain ASGI: cheap)

    app.include_router(health.router)
    app.include_router(backends.router)
    app.include_router(ocr.router)
    app.include_router(compare.router)
    app.include_router(jobs.router)
    app.include_router(extract_routes.router)
    app.include_router(render_routes.router)
    app.include_router(pages.router)
    app.include_router(openai.router)  # POST /v1/chat/completions, GET /v1/models (OpenAI's shapes)
    app.include_router(ui.router)  # the web page at /ui (/ redirects there) and /docs, offline
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document without the 422 it adds to every route with parameters: a request that fails validation
    is answered 400 ``invalid_option`` (``errors.install_error_handlers``), as each route documents."""
    if app.openapi_schema is None:
        app.openapi_schema = FastAPI.openapi(app)
        for ops in app.openapi_schema["paths"].values():
            for op in ops.values():
                answer = op.get("responses", {}).get("422", {})
                if "HTTPValidationError" in str(answer.get("content", "")):
                    del op["responses"]["422"]
        schemas = app.openapi_schema.get("components", {}).get("schemas", {})
        for name in ("HTTPValidationError", "ValidationError"):
            schemas.pop(name, None)
    return app.openapi_schema
