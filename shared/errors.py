"""One error type for every failure a client should hear about, and how it travels.

:class:`OCRError` is raised anywhere in one process (document intake, engines, router) and turned into an
``ErrorResponse`` at the HTTP edge. Between Ray replicas an error travels as a *value*, never as an exception:
a deployment answers ``OCRResponse | ErrorDetail`` (the wire's own ``ErrorDetail``), so a client's mistake does
not fill replica logs with tracebacks, and the caller turns it back with :meth:`OCRError.from_detail`. Each
:class:`~shared.schema.ErrorCode` has exactly one HTTP status, so nothing else needs to cross.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from shared.schema import ErrorCode, ErrorDetail, ErrorResponse

HTTP_STATUS: dict[ErrorCode, int] = {
    ErrorCode.EMPTY_DOCUMENT: 400,
    ErrorCode.INVALID_PAGE_RANGE: 400,
    ErrorCode.INVALID_OPTION: 400,
    ErrorCode.UNAUTHORIZED: 401,
    ErrorCode.UNKNOWN_BACKEND: 404,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.METHOD_NOT_ALLOWED: 405,
    ErrorCode.JOB_NOT_FINISHED: 409,
    ErrorCode.JOB_CANCELLED: 409,
    ErrorCode.JOB_FINISHED: 409,
    ErrorCode.IDEMPOTENCY_KEY_REUSED: 422,
    ErrorCode.DOCUMENT_TOO_LARGE: 413,
    ErrorCode.TOO_MANY_PAGES: 413,
    ErrorCode.TOO_MANY_PIXELS: 413,
    ErrorCode.DOCUMENT_TOO_COMPLEX: 413,
    ErrorCode.UNSUPPORTED_MEDIA_TYPE: 415,
    ErrorCode.INVALID_DOCUMENT: 422,
    ErrorCode.ENCRYPTED_DOCUMENT: 422,
    ErrorCode.UNSAFE_DOCUMENT: 422,
    ErrorCode.INTERNAL_ERROR: 500,
    ErrorCode.BACKEND_UNAVAILABLE: 503,
    ErrorCode.MODELS_MISSING: 503,
    ErrorCode.OVERLOADED: 503,
    ErrorCode.TIMEOUT: 504,
}
assert set(HTTP_STATUS) == set(ErrorCode), "every error code needs its HTTP status"

RETRY_AFTER_S: dict[ErrorCode, int] = {
    ErrorCode.OVERLOADED: 2,
    ErrorCode.BACKEND_UNAVAILABLE: 5,
    ErrorCode.MODELS_MISSING: 60,
}
"""Seconds a client should wait before retrying, for the codes that are worth a retry (``Retry-After``)."""


class OCRError(Exception):
    """A failure with a code, a message for people, and what would have been accepted.

    Args:
        code: An :class:`ErrorCode` or its value; an unknown value raises ``ValueError`` at once.
        message: What went wrong, for a person.
        accepted: What would have worked instead (names, media types, limits, option fields).
    """

    def __init__(self, code: ErrorCode | str, message: str, *, accepted: Any = None) -> None:
        self.code = ErrorCode(code)
        self.message = message
        self.accepted = accepted
        super().__init__(self.code.value, message)

    @property
    def status(self) -> int:
        """The HTTP status of this error's code."""
        return HTTP_STATUS[self.code]

    def __str__(self) -> str:
        return f"{self.code.value}: {self.message}"

    def __reduce__(self):  # keyword-only arguments survive pickling
        return (_rebuild, (self.code.value, self.message, self.accepted))

    def detail(self) -> ErrorDetail:
        """The wire form: what crosses replicas and what clients read."""
        return ErrorDetail(code=self.code, message=self.message, accepted=self.accepted)

    @classmethod
    def from_detail(cls, detail: ErrorDetail) -> OCRError:
        """The exception again, from a value another replica answered."""
        return cls(detail.code, detail.message, accepted=detail.accepted)

    def to_response(self, *, request_id: str | None = None, backend: str | None = None) -> ErrorResponse:
        return ErrorResponse(request_id=request_id, backend=backend, error=self.detail())


def _rebuild(code: str, message: str, accepted: Any) -> OCRError:
    return OCRError(code, message, accepted=accepted)


def validation_problems(error: ValidationError | Any) -> str:
    """A validation error (pydantic's, or FastAPI's ``RequestValidationError``) as one line a client can act on:
    ``field.path: message; ...``."""
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'value'}: {e['msg']}" for e in error.errors())
