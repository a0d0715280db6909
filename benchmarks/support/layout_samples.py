"""Pages with a known layout, made on the spot: tables, running heads, page numbers, figures.

What :mod:`orchestrator.ops.samples` does for plain text, this does for a page *read as a document*: each maker draws an
A4 page at 150 DPI with Pillow and returns it with what a perfect reader gives back — the body text in reading
order as markdown (running head and page number left out, as the unified markdown leaves them out by default;
the table as HTML), the table's cells, and the furniture's text. Tests and ``benchmarks/rapidocr_layout.py``
use them, so no file has to ship.
"""

from __future__ import annotations

import html
import textwrap
from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageFont

A4_WIDTH = 1240  # A4 at 150 DPI
A4_HEIGHT = 1754

RUNNING_HEAD = "Journal of Document Serving"
TABLE_ROWS: list[list[str]] = [
    ["Backend", "Device", "Pages/s", "NED"],
    ["DeepSeek", "GPU", "2.5", "0.031"],
    ["MinerU", "GPU", "2.1", "0.028"],
    ["RapidOCR", "CPU", "0.6", "0.043"],
]
INTRO = (
    "The table below compares three engines on the same pages. Each engine ran alone on its own device, "
    "and the figures are means over every page of the set."
)
OUTRO = (
    "The chart shows how throughput grows with the number of replicas until the router itself becomes "
    "the bottleneck of the service."
)


@dataclass(frozen=True)
class LayoutPage:
    """A generated page and what reading it should give back."""

    image: Image.Image
    table: list[list[str]]
    """The table's cells, row by row (empty when the page has no table)."""
    header: str = ""
    """The running head (kept out of the body)."""
    page_number: str = ""
    """The page number (kept out of the body)."""
    figure_box: tuple[int, int, int, int] | None = None
    """Where the figure was drawn, pixels, when there is one."""
    markdown: str = ""
    """The reference markdown: title as a heading, the table as HTML, the figure as an image reference."""


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _paragraph(draw: ImageDraw.ImageDraw, text: str, x: int, y: int, *, size: int = 26, width: int = 70) -> int:
    font = _font(size)
    for row in textwrap.wrap(text, width):
        draw.text((x, y), row, fill="black", font=font)
        y += int(size * 1.45)
    return y


def _table(
    draw: ImageDraw.ImageDraw, rows: list[list[str]], x: int, y: int, *, bordered: bool, size: int = 26
) -> tuple[int, tuple[int, int, int, int]]:
    """Draw ``rows`` as a grid (ruled when ``bordered``, rules only under the header otherwise)."""
    font = _font(size)
    col_w = [max(int(draw.textlength(r[c], font=font)) for r in rows) + 70 for c in range(len(rows[0]))]
    row_h = int(size * 2.0)
    x1 = x + sum(col_w)
    y1 = y + row_h * len(rows)
    for r, row in enumerate(rows):
        cx = x
        for c, cell in enumerate(row):
            draw.text((cx + 18, y + r * row_h + (row_h - size) // 2), cell, fill="black", font=font)
            cx += col_w[c]
    if bordered:
        for r in range(len(rows) + 1):
            draw.line([(x, y + r * row_h), (x1, y + r * row_h)], fill="black", width=2)
        cx = x
        for c in range(len(col_w) + 1):
            draw.line([(cx, y), (cx, y1)], fill="black", width=2)
            cx += col_w[c] if c < len(col_w) else 0
    else:  # booktabs style: top rule, header rule, bottom rule
        for yy in (y, y + row_h, y1):
            draw.line([(x, yy), (x1, yy)], fill="black", width=2)
    return y1, (x, y, x1, y1)


def _chart(draw: ImageDraw.ImageDraw, box: tuple[int, int, int, int]) -> None:
    """A bar chart with axes: pixels a layout model takes for a figure."""
    x0, y0, x1, y1 = box
    draw.line([(x0 + 40, y0 + 10), (x0 + 40, y1 - 30)], fill="black", width=3)
    draw.line([(x0 + 40, y1 - 30), (x1 - 10, y1 - 30)], fill="black", width=3)
    heights = [0.35, 0.55, 0.7, 0.8, 0.86, 0.9]
    bar_w = (x1 - x0 - 80) // (2 * len(heights))
    for i, h in enumerate(heights):
        bx = x0 + 60 + i * 2 * bar_w
        top = int(y1 - 30 - h * (y1 - y0 - 50))
        draw.rectangle([bx, top, bx + bar_w, y1 - 31], fill=(70, 110, 170), outline="black")
    for i in range(0, 200, 7):
        draw.arc([x0 + 60, y0 + 20, x1 - 20, y1 - 40 + i // 10], 200, 330, fill=(200, 80, 40), width=2)


def report_page(*, bordered: bool = True, page_number: int = 7) -> LayoutPage:
    """A report page: running head, title, paragraph, a caption and a table, a figure with its caption,
    a closing paragraph and a centred page number.

    Args:
        bordered: Rule every cell (True) or only the header and the table's top and bottom (False).
        page_number: The number printed at the bottom.

    Returns:
        The page and what a perfect reader returns for it.
    """
    page = Image.new("RGB", (A4_WIDTH, A4_HEIGHT), "white")
    d = ImageDraw.Draw(page)
    d.text((100, 60), RUNNING_HEAD, fill=(60, 60, 60), font=_font(22))
    d.line([(100, 95), (A4_WIDTH - 100, 95)], fill=(120, 120, 120), width=1)
    title = "Serving Engines Compared"
    d.text((100, 150), title, fill="black", font=_font(48))
    y = _paragraph(d, INTRO, 100, 250)
    caption = "Table 1. Throughput and accuracy per engine."
    d.text((100, y + 40), caption, fill="black", font=_font(24))
    y, _ = _table(d, TABLE_ROWS, 100, y + 90, bordered=bordered)
    figure_box = (200, y + 80, 1040, y + 560)
    _chart(d, figure_box)
    figure_caption = "Figure 1. Throughput against replicas."
    d.text((100, figure_box[3] + 30), figure_caption, fill="black", font=_font(24))
    _paragraph(d, OUTRO, 100, figure_box[3] + 100)
    number = str(page_number)
    d.text((A4_WIDTH // 2 - 8, A4_HEIGHT - 90), number, fill="black", font=_font(24))
    markdown = "\n\n".join(
        [f"# {title}", INTRO, caption, table_html(TABLE_ROWS), "![figure](figure-1)", figure_caption, OUTRO]
    )
    return LayoutPage(
        image=page,
        table=[list(r) for r in TABLE_ROWS],
        header=RUNNING_HEAD,
        page_number=number,
        figure_box=figure_box,
        markdown=markdown,
    )


def table_html(rows: list[list[str]]) -> str:
    """``rows`` as a plain ``<table>`` (one ``<td>`` per cell), the form the service answers tables in."""
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c, quote=False)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table>{body}</table>"
