"""Pages with known text, made on the spot: for the demo, the tests and benchmarks, with no files to ship.

Each maker returns the document bytes and the text a perfect reader would give back, in reading order.
"""

from __future__ import annotations

import io
import textwrap

from PIL import Image, ImageDraw, ImageFont

PARAGRAPHS = [
    "Ray Serve runs each model in its own replica and scales them apart from one another.",
    "The router checks every upload before any page reaches a model, so bad input costs nothing.",
    "Each backend answers in the same schema with markdown, blocks and boxes for every page.",
    "A comparison run sends one document to several backends and scores their text side by side.",
    "Replicas that stop answering their health checks are replaced without dropping the service.",
    "Long documents are split into chunks of pages so that a client can show its progress.",
]


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _draw_lines(draw: ImageDraw.ImageDraw, lines: list[str], x: int, y: int, size: int) -> int:
    font = _font(size)
    for line in lines:
        draw.text((x, y), line, fill="black", font=font)
        y += int(size * 1.45)
    return y


def one_column_page(
    *, width: int = 1240, paragraphs: list[str] | None = None, title: str = "Serving OCR"
) -> tuple[Image.Image, str]:
    """A page with a title and wrapped paragraphs in one column."""
    paragraphs = paragraphs or PARAGRAPHS[:3]
    page = Image.new("RGB", (width, int(width * 1.414)), "white")
    d = ImageDraw.Draw(page)
    y = _draw_lines(d, [title], 80, 80, 56) + 30
    expected = [title]
    for para in paragraphs:
        lines = textwrap.wrap(para, 48)
        y = _draw_lines(d, lines, 80, y, 30) + 30
        expected.append("\n".join(lines))
    return page, "\n\n".join(expected)


def two_column_page(*, width: int = 1240) -> tuple[Image.Image, str]:
    """A page with two columns of text; the expected text reads the left column first, then the right."""
    page = Image.new("RGB", (width, int(width * 1.414)), "white")
    d = ImageDraw.Draw(page)
    col_w = (width - 80 * 2 - 60) // 2
    expected = []
    for col, paras in enumerate((PARAGRAPHS[:3], PARAGRAPHS[3:])):
        x = 80 + col * (col_w + 60)
        y = 100
        for para in paras:
            lines = textwrap.wrap(para, 26)
            y = _draw_lines(d, lines, x, y, 28) + 24
            expected.append("\n".join(lines))
    return page, "\n\n".join(expected)


def encode(image: Image.Image, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt)
    return buf.getvalue()


def multi_page_pdf(pages: list[Image.Image], *, dpi: float = 150.0) -> bytes:
    """A scanned-style PDF (one image per page, no text layer)."""
    buf = io.BytesIO()
    pages = [p.copy() for p in pages]  # Pillow keeps encoder settings on appended images between saves
    pages[0].save(buf, format="PDF", save_all=True, append_images=pages[1:], resolution=dpi)
    return buf.getvalue()


def multi_frame_tiff(pages: list[Image.Image]) -> bytes:
    buf = io.BytesIO()
    pages = [p.copy() for p in pages]  # Pillow keeps encoder settings on appended images between saves
    pages[0].save(buf, format="TIFF", save_all=True, append_images=pages[1:], compression="tiff_deflate")
    return buf.getvalue()


def numbered_pages(n: int) -> tuple[list[Image.Image], list[str]]:
    """``n`` pages, each with a different paragraph, so page order can be checked from the text."""
    images, texts = [], []
    for i in range(n):
        img, text = one_column_page(paragraphs=[PARAGRAPHS[i % len(PARAGRAPHS)]], title=f"Page {i + 1}")
        images.append(img)
        texts.append(text)
    return images, texts
