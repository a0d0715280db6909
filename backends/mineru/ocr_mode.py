"""Does a document need OCR? Decided the way MinerU decides it, plus which pages lack a text layer.

Two questions, two tools:

- *Will MinerU run OCR?* MinerU (``ocr_mode=auto``) classifies the whole PDF with DocVortex's classifier: up to 10
  sampled pages, average extractable characters per page (< 50 -> scan), Unicode-map errors, CID fonts without
  ToUnicode, extreme aspect ratios. We call that same classifier on the same pages, so "flash needs models" is
  predicted exactly rather than guessed.
- *Which pages are scans?* A page with no extractable character at all (pypdfium2) has no text layer. This names
  the pages in the models_missing message, and warns when a mixed PDF is classified ``txt``: flash then returns
  nothing for its scanned pages, and the client should know why.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass, field

from shared.documents import IMAGE_TYPES, PDF
from shared.textlayer import page_has_text

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TextLayer:
    """What the selected pages of a document offer as text."""

    classification: str
    """'txt' or 'ocr': what MinerU's ``ocr_mode=auto`` will do with these pages."""
    pages_without_text: list[int] = field(default_factory=list)
    """0-based indices (in the source document) of selected pages with no extractable character."""


def inspect_text_layer(data: bytes, media_type: str, page_indices: list[int]) -> TextLayer:
    """Classify the selected pages of a PDF (or image) as MinerU will, and list the pages without text.

    Args:
        data: The document's bytes.
        media_type: Its detected media type.
        page_indices: 0-based pages that will be parsed.
    """
    if media_type in IMAGE_TYPES:
        return TextLayer(classification="ocr", pages_without_text=list(page_indices))
    if media_type != PDF:
        return TextLayer(classification="txt")

    import pypdfium2 as pdfium
    from docvortex.document.pdf import PDFDocument
    from docvortex.document.pdf.pdfium import pdfium_guard

    with pdfium_guard():  # PDFium is not thread-safe; MinerU serialises on this same lock
        pdf = pdfium.PdfDocument(data)
        try:
            empty = [i for i in page_indices if not page_has_text(pdf[i])]
            selected = data if page_indices == list(range(len(pdf))) else _subset(pdfium, pdf, page_indices)
        finally:
            pdf.close()
    with PDFDocument(selected) as doc:
        classification = doc.classify()
    return TextLayer(classification=classification, pages_without_text=empty)


def _subset(pdfium, pdf, page_indices: list[int]) -> bytes:
    """The selected pages as a new PDF (what MinerU's page_range rewrite hands its classifier)."""
    out = pdfium.PdfDocument.new()
    try:
        out.import_pages(pdf, page_indices)
        buf = io.BytesIO()
        out.save(buf)
        return buf.getvalue()
    finally:
        out.close()
