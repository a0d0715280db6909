"""A tiny writer of born-digital PDFs: real text operators in a standard font, no dependencies.

Why hand-written: the engine needs a model-free warm-up document, and tests and the memory benchmark need PDFs
with a *text layer* (Pillow's PDF writer only embeds images, which MinerU rightly treats as scans). Helvetica is
one of the 14 standard PDF fonts, so nothing is embedded and every reader (PDFium included) extracts the text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

PAGE_WIDTH_PT = 612.0
PAGE_HEIGHT_PT = 792.0


@dataclass(frozen=True)
class TextLine:
    """One line of text placed on a page (PDF points, origin *top-left* for convenience)."""

    text: str
    x: float
    y: float
    size: float = 11.0
    bold: bool = False


def _escape(text: str) -> str:
    """Escape a string for a PDF literal; Latin-1 only, as the standard fonts' WinAnsi encoding allows."""
    text.encode("latin-1")  # raises for characters the standard fonts cannot show
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def _content_stream(lines: Sequence[TextLine], height: float) -> bytes:
    ops = []
    for line in lines:
        font = "/F2" if line.bold else "/F1"
        baseline = height - line.y - line.size  # top-left y to PDF's bottom-left baseline
        ops.append(f"BT {font} {line.size:g} Tf {line.x:.2f} {baseline:.2f} Td ({_escape(line.text)}) Tj ET")
    return "\n".join(ops).encode("latin-1")


def text_pdf(
    pages: Sequence[Sequence[TextLine]], *, width: float = PAGE_WIDTH_PT, height: float = PAGE_HEIGHT_PT
) -> bytes:
    """A PDF whose pages carry ``pages``' lines as real text (selectable, extractable).

    Args:
        pages: One sequence of lines per page.
        width: Page width in points.
        height: Page height in points.

    Returns:
        The PDF file's bytes.
    """
    objects: list[bytes] = []  # object n is objects[n - 1]
    n_pages = len(pages)
    first_page = 5  # 1 catalog, 2 pages, 3 regular font, 4 bold font, then (page, content) pairs
    kids = " ".join(f"{first_page + 2 * i} 0 R" for i in range(n_pages))
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {n_pages} >>".encode())
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>")
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica-Bold /Encoding /WinAnsiEncoding >>")
    for i, lines in enumerate(pages):
        content_ref = first_page + 2 * i + 1
        objects.append(
            (
                f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {width:g} {height:g}] "
                f"/Resources << /Font << /F1 3 0 R /F2 4 0 R >> >> /Contents {content_ref} 0 R >>"
            ).encode()
        )
        stream = _content_stream(lines, height)
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")

    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def article_pages(paragraphs_per_page: Sequence[Sequence[str]], *, titles: Sequence[str] | None = None) -> bytes:
    """A simple article: per page an optional bold title, then paragraphs wrapped at ~85 characters.

    Args:
        paragraphs_per_page: The paragraphs of each page.
        titles: A title per page (same length as ``paragraphs_per_page``), or None for no titles.

    Returns:
        The PDF file's bytes.
    """
    pages: list[list[TextLine]] = []
    for i, paragraphs in enumerate(paragraphs_per_page):
        y = 72.0
        lines: list[TextLine] = []
        if titles is not None:
            lines.append(TextLine(titles[i], 72.0, y, size=18.0, bold=True))
            y += 36.0
        for paragraph in paragraphs:
            for row in _wrap(paragraph, 85):
                lines.append(TextLine(row, 72.0, y))
                y += 15.0
            y += 12.0
        pages.append(lines)
    return text_pdf(pages)


def _wrap(text: str, width: int) -> list[str]:
    rows: list[str] = []
    current = ""
    for word in text.split():
        if current and len(current) + 1 + len(word) > width:
            rows.append(current)
            current = word
        else:
            current = f"{current} {word}".strip()
    if current:
        rows.append(current)
    return rows
