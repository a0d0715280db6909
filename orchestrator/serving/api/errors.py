"""Every failure leaves the API as one JSON shape (``ErrorResponse``), whatever raised it.

Exception text is hidden from clients unless ``debug_errors`` is on: a 500 says that something broke and
gives the request id to find it in the logs.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from orchestrator.serving.api.deps import REQUEST_ID_HEADER, request_id, serve_request_id
from shared.errors import HTTP_STATUS, RETRY_AFTER_S, OCRError, validation_problems
from shared.schema import ErrorCode, ErrorDetail, ErrorResponse

logger = logging.getLogger("ray.serve")

HTTP_CODES: dict[int, ErrorCode] = {404: ErrorCode.NOT_FOUND, 405: ErrorCode.METHOD_NOT_ALLOWED}

EVERY_ROUTE = (ErrorCode.UNAUTHORIZED, ErrorCode.INTERNAL_ERROR)
"""What any ``/v1`` route can answer: a missing or wrong API key, a server fault."""
DOCUMENT_ERRORS = (
    ErrorCode.INVALID_OPTION,
    ErrorCode.EMPTY_DOCUMENT,
    ErrorCode.INVALID_PAGE_RANGE,
    ErrorCode.DOCUMENT_TOO_LARGE,
    ErrorCode.TOO_MANY_PAGES,
    ErrorCode.TOO_MANY_PIXELS,
    ErrorCode.DOCUMENT_TOO_COMPLEX,
    ErrorCode.UNSUPPORTED_MEDIA_TYPE,
    ErrorCode.INVALID_DOCUMENT,
    ErrorCode.ENCRYPTED_DOCUMENT,
    ErrorCode.UNSAFE_DOCUMENT,
)
"""What reading an upload and its options can answer (``uploads``, ``shared.documents``)."""
BACKEND_ERRORS = (
    ErrorCode.UNKNOWN_BACKEND,
    ErrorCode.BACKEND_UNAVAILABLE,
    ErrorCode.MODELS_MISSING,
    ErrorCode.OVERLOADED,
    ErrorCode.TIMEOUT,
)
"""What calling a backend deployment can answer."""


def documented(*codes: ErrorCode, model: type[BaseModel] = ErrorResponse) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for a route that can answer ``codes`` (and :data:`EVERY_ROUTE`): one entry per HTTP
    status, as :data:`shared.errors.HTTP_STATUS` maps them, naming the codes behind it; ``model`` is the error body
    (OpenAI's shape on the OpenAI-compatible routes)."""
    by_status: dict[int, list[str]] = {}
    for code in dict.fromkeys((*EVERY_ROUTE, *codes)):
        by_status.setdefault(HTTP_STATUS[code], []).append(code.value)
    return {
        status: {"model": model, "description": "Error codes: " + ", ".join(names)}
        for status, names in sorted(by_status.items())
    }


def error_response(request: Request, error: OCRError, *, backend: str | None = None) -> JSONResponse:
    rid = request_id(request)
    headers = {} if serve_request_id() else {REQUEST_ID_HEADER: rid}
    if error.code in RETRY_AFTER_S:
        headers["Retry-After"] = str(RETRY_AFTER_S[error.code])
    body = error.to_response(request_id=rid, backend=backend)
    return JSONResponse(body.model_dump(mode="json"), status_code=error.status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(OCRError)
    async def _ocr_error(request: Request, exc: OCRError) -> JSONResponse:
        logger.info("request %s failed: %s", request_id(request), exc)
        return error_response(request, exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(request, OCRError(ErrorCode.INVALID_OPTION, f"bad request: {validation_problems(exc)}"))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = HTTP_CODES.get(exc.status_code, ErrorCode.INVALID_OPTION)
        return error_response(request, OCRError(code, str(exc.detail)))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        rid = request_id(request)
        logger.exception("request %s: unexpected error", rid)
        debug = request.app.state.router.settings.debug_errors
        message = f"{type(exc).__name__}: {exc}" if debug else f"internal error; quote request id {rid}"
        body = ErrorResponse(request_id=rid, error=ErrorDetail(code=ErrorCode.INTERNAL_ERROR, message=message))
        headers = {} if serve_request_id() else {REQUEST_ID_HEADER: rid}
        return JSONResponse(body.model_dump(mode="json"), status_code=500, headers=headers)
