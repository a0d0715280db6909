"""A PDF whose first pages are born-digital (a text layer) and whose last pages are scans (pixels only).

The document a cascade exists for: a reader of text layers answers the first pages at once and finds nothing on
the scans, which a rule then sends to a model that reads pixels.
"""

from __future__ import annotations

import io

import pypdfium2 as pdfium
from PIL import Image

from backends.textpdf import article_pages
from orchestrator.ops import samples


def mixed_pdf(digital_paragraphs: list[list[str]], scans: list[Image.Image]) -> bytes:
    """Born-digital pages (one list of paragraphs each), then the scanned ``scans``, in one PDF."""
    parts = [pdfium.PdfDocument(article_pages(digital_paragraphs)), pdfium.PdfDocument(samples.multi_page_pdf(scans))]
    out = pdfium.PdfDocument.new()
    try:
        for part in parts:
            out.import_pages(part)
        buf = io.BytesIO()
        out.save(buf)
        return buf.getvalue()
    finally:
        out.close()
        for part in parts:
            part.close()
