"""The FastAPI app of one router replica: routes, error handlers, request ids."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import FastAPI, Request

from orchestrator.serving.api.deps import REQUEST_ID_HEADER, request_id, serve_request_id
from orchestrator.serving.api.errors import install_error_handlers
from orchestrator.serving.api.routes import backends, compare, health, jobs, ocr
from shared.schema import SCHEMA_VERSION

if TYPE_CHECKING:
    from orchestrator.serving.router import Router

DESCRIPTION = """
One API over several OCR backends (DeepSeek-OCR, MinerU, RapidOCR) served by Ray Serve.
`POST /v1/ocr` takes a document and a backend name (or `auto`) and answers in one schema: markdown, layout
blocks with boxes, and a boxes image per page. Every error is an `ErrorResponse`.
"""


def create_api(router: Router) -> FastAPI:
    """A FastAPI app serving ``router`` (a real Router in a replica, or a fake in tests)."""
    app = FastAPI(title="ocrserve", version=SCHEMA_VERSION, description=DESCRIPTION)
    app.state.router = router
    install_error_handlers(app)

    @app.middleware("http")
    async def _request_id(request: Request, call_next):
        rid = request_id(request)
        response = await call_next(request)
        if REQUEST_ID_HEADER not in response.headers and serve_request_id() is None:
            response.headers[REQUEST_ID_HEADER] = rid  # under Serve, the proxy sets it
        return response

    app.include_router(health.router)
    app.include_router(backends.router)
    app.include_router(ocr.router)
    app.include_router(compare.router)
    app.include_router(jobs.router)
    return app
