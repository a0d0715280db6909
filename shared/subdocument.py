"""A document cut down to some of its pages, keeping their page numbers.

The job runner sends a backend one chunk of a long document at a time. Sending the whole file with a list of page
indices would move a 50 MB, 2,000-page PDF across the cluster once per chunk; :func:`sub_document` makes a small
document of the chunk's pages instead: PDF pages copied by PDFium, image frames re-saved losslessly as TIFF. Every
page before the last one asked for keeps its position, the others as empty 1×1 placeholders (a few dozen bytes
each), so the engine sees the same page numbers as in the whole document: its page indices, raw output, warnings
("page 37: …") and page-range logic (MinerU) are what a run over the whole document gives, with no renumbering.
The pixels of the pages asked for are the same too: a copied PDF page renders as the original, a TIFF frame holds
the decoded frame.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io

from PIL import Image

from shared.documents import IMAGE_TYPES, PDF, PDFIUM_LOCK, Document, _open_image, _open_pdf

TIFF = "image/tiff"


def sub_document(doc: Document, indices: list[int]) -> Document:
    """``doc`` holding only the pages ``indices`` (0-based), at their own positions.

    A document whose selected pages are all its pages, or that has one page or none (structured formats), comes
    back with ``page_indices`` set and its bytes untouched.
    """
    indices = sorted(set(indices))
    if not indices or doc.page_count <= 1 or indices == list(range(doc.page_count)):
        return dataclasses.replace(doc, page_indices=indices)
    if doc.media_type == PDF:
        data, media_type = _cut_pdf(doc.data, indices), PDF
    elif doc.media_type in IMAGE_TYPES:
        data, media_type = _cut_frames(doc.data, indices), TIFF
    else:
        return dataclasses.replace(doc, page_indices=indices)
    return Document(
        data=data,
        name=doc.name,
        media_type=media_type,
        sha256=hashlib.sha256(data).hexdigest(),
        page_count=indices[-1] + 1,
        page_indices=indices,
        dpi=doc.dpi,
    )


def _runs(indices: list[int]) -> list[tuple[bool, list[int]]]:
    """Positions 0..last as runs: (wanted, positions), consecutive positions of the same kind together."""
    wanted = set(indices)
    out: list[tuple[bool, list[int]]] = []
    for i in range(indices[-1] + 1):
        if out and out[-1][0] == (i in wanted):
            out[-1][1].append(i)
        else:
            out.append((i in wanted, [i]))
    return out


def _cut_pdf(data: bytes, indices: list[int]) -> bytes:
    import pypdfium2 as pdfium

    with PDFIUM_LOCK:  # PDFium is not thread-safe
        src = _open_pdf(data)
        out = pdfium.PdfDocument.new()
        try:
            for wanted, positions in _runs(indices):
                if wanted:
                    out.import_pages(src, pages=positions)
                else:
                    for _ in positions:
                        out.new_page(1, 1).close()
            buffer = io.BytesIO()
            out.save(buffer)
        finally:
            out.close()
            src.close()
    return buffer.getvalue()


def _cut_frames(data: bytes, indices: list[int]) -> bytes:
    """The frames of a multi-frame image as one multi-page TIFF: those asked for decoded as they are, the others
    1×1 placeholders."""
    image = _open_image(data)
    wanted = set(indices)
    frames = []
    dpi = None
    for i in range(indices[-1] + 1):
        if i in wanted:
            image.seek(i)
            frames.append(image.copy())
            dpi = dpi or image.info.get("dpi")
        else:
            frames.append(Image.new("1", (1, 1), 1))
    buffer = io.BytesIO()
    extra = {"dpi": dpi} if dpi else {}
    frames[0].save(buffer, format="TIFF", save_all=True, append_images=frames[1:], compression="tiff_deflate", **extra)
    return buffer.getvalue()
