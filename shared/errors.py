"""One exception type for every failure a client should hear about.

Raised anywhere (document loading, backends, router) and turned into an ``ErrorResponse`` with the right HTTP
status at the edge. It crosses Ray replicas intact: Ray re-raises it as a subclass of both ``RayTaskError`` and
``OCRError``, and :func:`as_ocr_error` unwraps whichever arrives.
"""

from __future__ import annotations

from typing import Any

from shared.schema import ErrorDetail, ErrorResponse

STATUS_BY_CODE: dict[str, int] = {
    "empty_document": 400,
    "unsupported_media_type": 415,
    "invalid_document": 422,
    "encrypted_document": 422,
    "document_too_large": 413,
    "too_many_pages": 413,
    "too_many_pixels": 413,
    "invalid_page_range": 400,
    "invalid_option": 400,
    "unknown_backend": 404,
    "backend_unavailable": 503,
    "models_missing": 503,
    "unauthorized": 401,
    "overloaded": 503,
    "timeout": 504,
    "not_found": 404,
    "internal_error": 500,
}


class OCRError(Exception):
    """A failure with a code, a message for people, and what would have been accepted."""

    def __init__(self, code: str, message: str, *, accepted: Any = None, status: int | None = None) -> None:
        super().__init__(code, message, accepted, status)
        self.code = code
        self.message = message
        self.accepted = accepted
        self.status = status if status is not None else STATUS_BY_CODE.get(code, 400)

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"

    def __reduce__(self):  # keyword-only arguments survive pickling across Ray replicas
        return (_rebuild, (self.code, self.message, self.accepted, self.status))

    def to_response(self, *, request_id: str | None = None, backend: str | None = None) -> ErrorResponse:
        return ErrorResponse(
            request_id=request_id,
            backend=backend,
            error=ErrorDetail(code=self.code, message=self.message, accepted=self.accepted),  # type: ignore[arg-type]
        )


def _rebuild(code: str, message: str, accepted: Any, status: int) -> OCRError:
    return OCRError(code, message, accepted=accepted, status=status)


def as_ocr_error(exc: BaseException) -> OCRError | None:
    """The ``OCRError`` carried by ``exc`` (directly or as a Ray task error's cause), else None."""
    if isinstance(exc, OCRError):
        return exc
    cause = getattr(exc, "cause", None)
    if isinstance(cause, OCRError):
        return cause
    return None
