"""What every document request does first: cheap checks of the upload, and what the backend is told with it."""

from __future__ import annotations

import asyncio

from orchestrator.serving.timing import phase
from shared.documents import PAGED_TYPES, STRUCTURED_TYPES, Document, DocumentLimits, may_need_inspection, open_document

KNOWN_TYPES = PAGED_TYPES | STRUCTURED_TYPES
INLINE_VALIDATE_BYTES = 1 << 20
"""Documents up to this size are validated on the event loop (~0.1 ms: headers and a hash), larger ones in a
worker thread (hashing alone is ~1 ms per MiB); a thread hop costs more than the work below this size."""


def validate(
    limits: DocumentLimits,
    data: bytes,
    filename: str,
    *,
    pages: str | None,
    dpi: float | None,
    max_pages: int | None = None,
) -> Document:
    """Cheap checks before anything reaches a backend (no page is decoded)."""
    if max_pages is not None:
        limits = limits.model_copy(update={"max_pages": max_pages})
    return open_document(data, name=filename, limits=limits, page_range=pages, dpi=dpi, accepted=KNOWN_TYPES)


async def validated(
    limits: DocumentLimits, data: bytes, filename: str, *, pages: str | None, dpi: float | None
) -> Document:
    """:func:`validate` on the event loop for small PDFs and images, in a worker thread for large ones and for
    packages and markup, whose inspection can cost seconds however small the upload."""
    with phase("validate"):
        if len(data) <= INLINE_VALIDATE_BYTES and not may_need_inspection(data):
            return validate(limits, data, filename, pages=pages, dpi=dpi)
        return await asyncio.to_thread(validate, limits, data, filename, pages=pages, dpi=dpi)
