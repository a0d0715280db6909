"""Which pages of a document carry a text layer: born-digital PDF pages do, scans and images don't.

Asked before an engine runs: a page without a text layer needs OCR whatever an engine that reads text layers
(MinerU's flash tier) says, and a cascade may send it straight to a model that reads pixels.
"""

from __future__ import annotations

from typing import Any

from shared.documents import IMAGE_TYPES, PDF, PDFIUM_LOCK


def page_has_text(page: Any) -> bool:
    """Whether a pypdfium2 page has at least one extractable non-blank character (closes the page)."""
    textpage = page.get_textpage()
    try:
        return bool(textpage.get_text_range().strip())
    finally:
        textpage.close()
        page.close()


def pages_without_text(data: bytes, media_type: str, page_indices: list[int]) -> list[int]:
    """The selected pages (0-based) that have no text layer: every page of an image, scanned pages of a PDF;
    none for formats without pages (office, HTML: their text is the document)."""
    if media_type in IMAGE_TYPES:
        return list(page_indices)
    if media_type != PDF:
        return []
    import pypdfium2 as pdfium

    with PDFIUM_LOCK:
        pdf = pdfium.PdfDocument(data)
        try:
            return [i for i in page_indices if not page_has_text(pdf[i])]
        finally:
            pdf.close()
