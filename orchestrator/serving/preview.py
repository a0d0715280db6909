"""One page of a document as a PNG: the picture a viewer (the web page) draws the blocks over.

Backends answer with boxes in the pixels of the page image they read, and with a ``boxes_image`` that has the
boxes baked in; a viewer that lets a person hover and inspect blocks needs the plain page instead. A browser shows
PNG, JPEG, WebP and BMP uploads itself, but not PDF pages or TIFF frames, so those are rendered here with the
backends' own code (``shared.documents``) — the same pixels at the same DPI, so the boxes fit exactly.

Kept off the OCR path on purpose: nothing is rendered unless a client asks for a page, and the OCR response
carries no extra image. Rendering runs in a worker thread of the router replica (~40 ms a page at 144 DPI,
PDFium serialised by its process-wide lock).
"""

from __future__ import annotations

import io

from shared.documents import PAGED_TYPES, DocumentLimits, open_document, rasterize_page

PNG_COMPRESS_LEVEL = 1
"""zlib level 1: PNG encoding of an A4 page at 150 DPI takes ~20 ms (100 KB) against ~45 ms (75 KB) at the default 6;
rendering plus encoding one scanned PDF page at 144 DPI measured ~40 ms here."""


def page_png(data: bytes, name: str, *, page: int, dpi: float | None, limits: DocumentLimits) -> bytes:
    """PNG of one page (1-based ``page``) exactly as a backend would see it.

    Args:
        data: The document's bytes (checked like an OCR upload: type from the content, limits, page range).
        name: The client's file name (display only).
        page: 1-based page, or TIFF frame.
        dpi: Rasterisation DPI for PDF pages; None means the service's default (what an OCR request uses).
        limits: The router's document limits.

    Raises:
        OCRError: as for an OCR upload; ``unsupported_media_type`` for formats without page images (DOCX...).
    """
    doc = open_document(data, name=name, limits=limits, page_range=str(page), dpi=dpi, accepted=PAGED_TYPES)
    image = rasterize_page(doc, doc.page_indices[0]).image
    assert image is not None  # paged types always decode to pixels
    buf = io.BytesIO()
    image.save(buf, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return buf.getvalue()
