"""MinerU's middle JSON -> the unified schema: block types, pixel boxes, per-page markdown.

Boxes: MinerU 4 gives each block ``bbox`` as 0-1 fractions of the visible page box, origin top-left, in display
orientation — the same frame as the page image the runner rendered, so pixel = fraction x image width (height).
Office/HTML/EPUB/CSV blocks have no geometry; they get a zero box on a 0 x 0 page.

Blocks: one schema block per MinerU block, except that figures, tables, charts and code are split into their
body and their captions/footnotes (each has its own box), so a client can tell a caption from the table.

Markdown: each top-level block is rendered by MinerU's own single-block renderer (DocVortex), so tables, lists,
formulas and titles look as in MinerU's markdown. Page furniture (running headers, footers, page numbers, margin
notes) is left out, as MinerU's markdown and OmniDocBench's references do — but only when the block really sits
in the page's top/bottom band: flash's header heuristic also labels section headings and first body lines as
``header`` when a document has a running header, and those are body text (demoted to ``text``, label kept).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from shared.boxes import make_block, scale_box
from shared.schema import Block, PageResult

logger = logging.getLogger(__name__)

TYPE_MAP: dict[str, str] = {
    "text": "text",
    "ref_text": "text",
    "doc_title": "title",
    "paragraph_title": "title",
    "header": "header",
    "footer": "footer",
    "page_number": "footer",
    "aside_text": "other",
    "page_footnote": "text",
    "equation": "formula",
    "list": "list",
    "index": "list",
    "image": "figure",
    "image_body": "figure",
    "chart": "figure",
    "chart_body": "figure",
    "table": "table",
    "table_body": "table",
    "code": "text",
    "code_body": "text",
    "algorithm_body": "text",
    "image_caption": "caption",
    "image_footnote": "caption",
    "table_caption": "caption",
    "table_footnote": "caption",
    "chart_caption": "caption",
    "chart_footnote": "caption",
    "code_caption": "caption",
    "code_footnote": "caption",
}
"""MinerU block type -> unified block type (anything unknown becomes ``other``)."""

FURNITURE_TYPES = frozenset({"header", "footer", "page_number", "aside_text"})
"""MinerU's page-auxiliary types (DocVortex ``PAGE_AUXILIARY_BLOCK_TYPES``): not body text."""

VISUAL_TYPES = frozenset({"image", "table", "chart", "code"})


@dataclass(frozen=True)
class MappingOptions:
    """How pages are mapped (from the engine's config and the request's options)."""

    furniture_band: float = 0.1
    include_page_furniture: bool = False
    embed_images: bool = False


def map_page(
    page: Any,
    *,
    index: int,
    width: int,
    height: int,
    dpi: float | None,
    options: MappingOptions,
) -> PageResult:
    """One MinerU ``PageInfo`` as a schema page on a ``width`` x ``height`` image.

    Args:
        page: MinerU's page (``mineru.types.PageInfo``).
        index: 0-based page index in the source document.
        width: Page image width in pixels (0 for formats without pages).
        height: Page image height in pixels.
        dpi: Resolution of the page image.
        options: Mapping choices.
    """
    blocks: list[Block] = []
    markdown_parts: list[str] = []
    renderer = None if options.embed_images else _ImageRef(index)
    for block in page.blocks:
        native = str(block.type)
        furniture = native in FURNITURE_TYPES and _in_band(block, native, options.furniture_band)
        demoted = native in FURNITURE_TYPES and not furniture
        text = _render(block, renderer)
        if text and (not furniture or options.include_page_furniture):
            markdown_parts.append(text)
        blocks.extend(_blocks(block, width=width, height=height, demoted=demoted))
    return PageResult(
        index=index,
        width=width,
        height=height,
        dpi=dpi,
        markdown="\n\n".join(markdown_parts),
        blocks=blocks,
    )


def merge_pages(pages: list[PageResult], *, index: int = 0) -> PageResult:
    """Several logical pages (sheets, slides, chapters) as the one page a structured document has."""
    return PageResult(
        index=index,
        width=0,
        height=0,
        dpi=None,
        markdown="\n\n".join(p.markdown for p in pages if p.markdown),
        blocks=[b for p in pages for b in p.blocks],
    )


def _in_band(block: Any, native: str, band: float) -> bool:
    """Whether a furniture block really sits in the page margin band its type implies.

    Page numbers and margin notes are trusted wherever they are; headers must end in the top band and footers
    start in the bottom band. Blocks without geometry (office formats) are trusted: their header/footer comes
    from the document's own header/footer parts.
    """
    if native in ("page_number", "aside_text") or block.bbox is None:
        return True
    _, y0, _, y1 = block.bbox
    if native == "header":
        return y1 <= band
    return y0 >= 1.0 - band


def _blocks(block: Any, *, width: int, height: int, demoted: bool) -> list[Block]:
    native = str(block.type)
    if native in VISUAL_TYPES:
        out = []
        for child in block.content:
            child_type = str(child.type)
            box = child.bbox or block.bbox
            out.append(_make(TYPE_MAP.get(child_type, "other"), _child_text(child), box, width, height, child_type))
        return out
    unified = "text" if demoted else TYPE_MAP.get(native, "other")
    return [_make(unified, _plain_text(block), block.bbox, width, height, native)]


def _make(unified: str, text: str, box: Any, width: int, height: int, label: str) -> Block:
    if box is None or not width or not height:
        pixel = [0.0, 0.0, 0.0, 0.0]
    else:
        pixel = scale_box(box, sx=width, sy=height)
    return make_block(unified, text, pixel, width=width, height=height, label=label)


def _plain_text(block: Any) -> str:
    """A block's text for ``Block.text``: its markdown, without heading markers; formulas as bare LaTeX."""
    from docvortex.schema import TextBlock

    native = str(block.type)
    if native == "equation":
        return block.content.strip()  # LaTeX without delimiters (empty when the tier recognised none)
    if native in ("doc_title", "paragraph_title") or native in FURNITURE_TYPES or native == "page_footnote":
        return _render(TextBlock(type="text", content=block.content), None)
    return _render(block, None)


def _child_text(child: Any) -> str:
    """Text of a figure/table/chart/code child: the body's own content (HTML table, LaTeX...), captions' text."""
    from docvortex.schema import TextBlock

    content = child.content
    if isinstance(content, str):
        return content.strip()
    return _render(TextBlock(type="text", content=content), None)


def _render(block: Any, image_renderer: Callable[[Any], str] | None) -> str:
    """MinerU's markdown for one top-level block (no cross-page merging, no page filtering)."""
    from docvortex.render.markdown import render_single_block
    from mineru.config import config as mineru_config

    try:
        return render_single_block(
            block,
            delimiters=mineru_config.render.latex_delimiters,
            asset_base_url="",
            image_renderer=image_renderer,
        ).strip()
    except Exception as e:  # one odd block must not cost the page
        logger.warning("MinerU could not render a %s block: %s", getattr(block, "type", "?"), e)
        return ""


class _ImageRef:
    """Markdown for figures and formula images: a short reference instead of a multi-kB data: URI.

    (Without a renderer DocVortex embeds the crop itself, which is what ``embed_images`` asks for.)
    """

    def __init__(self, page_index: int) -> None:
        self.page_index = page_index

    def __call__(self, block: Any) -> str:
        kind = TYPE_MAP.get(str(block.type), "figure")
        return f"![{kind}](#page-{self.page_index + 1}-block-{block.index if block.index is not None else 0})"
