"""One page read as a document: OCR lines + layout regions (+ table structures) -> typed blocks and markdown.

Pure code, no model: the engine hands in what its three models saw, so every rule here is tested on hand-made
inputs. The steps, and why:

1. Regions that mostly lie inside a better one are dropped (tables and figures outrank the text boxes the model
   also proposes over them), and every OCR line goes to the region covering most of it; lines no region holds
   stay *free* and are read as before the layout pass, so a region the model misses never loses text. A text
   region the model is unsure of (score below ``text_min_score``) frees its lines too.
2. Text-like regions shrink to their lines (the model's boxes are loose and overlap; tight boxes give the
   reading order clean gutters). Headers and footers outside the page's top and bottom bands are read as text;
   a "title" of many lines is a paragraph (the model calls dense short pages titles); a lone page number in a
   band becomes furniture, a "Table 1." / "Figure 2" paragraph next to a table or figure a caption.
   A table or figure whose lines contradict its label (:mod:`backends.rapidocr.regions`: a "figure" holding the
   page's sentences, a "table" of prose columns) is not trusted: its lines become free lines, read as without the
   layout pass, in blocks labelled ``figure→text`` / ``table→text``, and the page's warnings say why.
3. Regions and free lines are put in reading order together (:func:`shared.layout.unit_order`: the column-aware
   XY-cut over text lines, with each table and figure one box; each region is read whole where its first item
   falls); text regions and runs of free lines are split into paragraphs.
4. Blocks map to markdown: titles as headings, tables as HTML, figures as image references, formulas marked
   (their text as recognised: no formula model ships), headers and footers left out unless asked for.
"""

from __future__ import annotations

import functools
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from backends.rapidocr.layout import Region
from backends.rapidocr.ocr import OCRLine
from backends.rapidocr.regions import RegionLimits, Verdict, check_figure, check_table
from backends.rapidocr.rules import is_any_caption, is_caption, is_page_number
from backends.rapidocr.table_html import TableParseError, build_table
from backends.rapidocr.tables import TableStructure
from shared.boxes import make_block, union_box
from shared.layout import (
    assign_to_regions,
    group_paragraphs,
    reading_order,
    suppress_overlaps,
    unit_order,
)
from shared.schema import Block, PageResult

TableReader = Callable[[list[float]], TableStructure]
"""Reads a table's structure from its region box (page pixels)."""

FURNITURE = frozenset({"header", "footer"})
VISUAL = frozenset({"table", "figure"})
PRIORITY: dict[str, float] = {
    "table": 4.0,
    "figure": 3.0,
    "formula": 3.0,
    "header": 2.0,
    "footer": 2.0,
    "caption": 1.5,
    "title": 1.0,
    "text": 0.0,
    "other": 0.0,
}
"""Which region wins where the model proposes two over the same pixels (plus the model's score, 0-1)."""
FORMULA_MARK = "<!-- formula: text as recognised, not LaTeX -->"


@dataclass(frozen=True)
class ComposeSettings:
    """How a page is put together (from the engine's config and the request's options)."""

    layout: bool = True
    tables: bool = True
    paragraphs: bool = True
    include_page_furniture: bool = False
    title_ratio: float = 1.35
    furniture_band: float = 0.15
    furniture_min_score: float = 0.7
    furniture_max_lines: int = 2
    check_regions: bool = True
    text_min_score: float = 0.7
    region_limits: RegionLimits = field(default_factory=RegionLimits)


@dataclass
class _Unit:
    """A region read whole, or one free line."""

    type: str
    label: str | None
    box: list[float]
    lines: list[int]
    score: float | None = None
    is_line: bool = False


@dataclass
class PageReading:
    """A composed page and what the raw answer reports about its layout."""

    result: PageResult
    regions: list[dict[str, Any]] = field(default_factory=list)


def left_out(page: PageResult) -> dict[str, list[str]]:
    """The lines a page's markdown leaves out by design: page furniture and the text inside real pictures.

    Everything else the OCR read is in the markdown; tests and the corpus benchmark measure that against the
    plain reading of the same lines.
    """
    out: dict[str, list[str]] = {"furniture": [], "picture": []}
    for block in page.blocks:
        where = "furniture" if block.type in FURNITURE else "picture" if block.type == "figure" else None
        if where:
            out[where].extend(line.text for line in block.lines or [])
    return out


def compose_page(
    *,
    index: int,
    width: int,
    height: int,
    dpi: float | None,
    lines: Sequence[OCRLine],
    regions: Sequence[Region] | None,
    settings: ComposeSettings,
    read_table: TableReader | None = None,
) -> PageReading:
    """The page's blocks in reading order, its markdown and warnings.

    Args:
        index: 0-based page index.
        width: Page image width, pixels.
        height: Page image height, pixels.
        dpi: Resolution of the page image.
        lines: The page's OCR lines.
        regions: The layout model's regions, or None when no layout pass ran (lines and paragraphs only).
        settings: What to build (layout, tables, paragraphs, furniture in markdown) and the thresholds.
        read_table: Table-structure recogniser; None reads tables as plain text.

    Returns:
        The page result and the regions it used, for the raw answer.
    """
    page = _Page(index, width, height, lines, settings)
    if regions is None or not settings.layout:
        plain = page.text_blocks(reading_order([ln.box for ln in lines]), label=None)
        return PageReading(result=page.result(dpi, plain))
    units, raw = page.units(regions)
    blocks: list[Block] = []
    run: list[int] = []
    order = unit_order(
        page.boxes, [u.lines for u in units], [u.box for u in units], whole=[u.type in VISUAL for u in units]
    )
    run_label: str | None = None
    for u in (units[i] for i in order):
        if u.is_line and u.type == "text":
            if run and u.label != run_label:
                blocks.extend(page.text_blocks(run, label=run_label))
                run = []
            run.extend(u.lines)
            run_label = u.label
            continue
        if run:
            blocks.extend(page.text_blocks(run, label=run_label))
            run = []
        blocks.extend(page.region_blocks(u, read_table if settings.tables else None))
    if run:
        blocks.extend(page.text_blocks(run, label=run_label))
    return PageReading(result=page.result(dpi, blocks), regions=raw)


class _Page:
    """The state of one page being composed: its lines, measures and warnings."""

    def __init__(self, index: int, width: int, height: int, lines: Sequence[OCRLine], settings: ComposeSettings):
        self.index, self.width, self.height = index, width, height
        self.lines = list(lines)
        self.boxes = [ln.box for ln in self.lines]
        self.settings = settings
        self.median_h = statistics.median([b[3] - b[1] for b in self.boxes]) if self.boxes else 0.0
        self.warnings: list[str] = []
        self.visual_boxes: list[list[float]] = []
        self.figures = 0

    # -- regions -> units ----------------------------------------------------------------------------------

    def units(self, regions: Sequence[Region]) -> tuple[list[_Unit], list[dict[str, Any]]]:
        """Regions (cleaned, with their lines) and free lines, as the units the reading order works on."""
        kept = suppress_overlaps([r.box for r in regions], [PRIORITY.get(r.type, 0.0) + r.score for r in regions])
        chosen = [regions[i] for i in kept]
        owners = assign_to_regions(self.boxes, [r.box for r in chosen])
        members: list[list[int]] = [[] for _ in chosen]
        for li, owner in enumerate(owners):
            if owner is not None:
                members[owner].append(li)
        units: list[_Unit] = []
        read_as_text: dict[int, str] = {}
        for k, (region, idxs) in enumerate(zip(chosen, members)):
            if region.type == "text" and region.score < self.settings.text_min_score:
                units.extend(self._free_line_unit(li) for li in idxs)
                continue
            verdict = self._check(region, idxs)
            if not verdict.stands:
                read_as_text[kept[k]] = verdict.reason
                self._distrust(region, f"{region.type}→text", verdict.reason)
                units.extend(self._free_line_unit(li, label=f"{region.type}→text") for li in idxs)
                continue
            if region.type == "figure":  # captions the model drew inside the picture's box are read, not hidden
                captions = [li for li in idxs if is_any_caption(self.lines[li].text)]
                units.extend(self._free_line_unit(li) for li in captions)
                idxs = [li for li in idxs if li not in captions]
            unit = self._region_unit(region, idxs)
            if unit is not None:
                units.append(unit)
        self.visual_boxes = [u.box for u in units if u.type in VISUAL]
        for li, owner in enumerate(owners):
            if owner is None:
                units.append(self._free_line_unit(li))
        raw = [
            {
                "type": r.type,
                "label": r.label,
                "box": [round(v, 1) for v in r.box],
                "score": round(r.score, 4),
                "kept": i in kept,
                **({"read_as_text": read_as_text[i]} if i in read_as_text else {}),
            }
            for i, r in enumerate(regions)
        ]
        return units, raw

    def _check(self, region: Region, idxs: list[int]) -> Verdict:
        """Whether a table's or figure's lines agree with its label (:mod:`backends.rapidocr.regions`)."""
        if not self.settings.check_regions or region.type not in VISUAL:
            return Verdict(True)
        texts = [self.lines[i].text for i in idxs]
        limits = self.settings.region_limits
        if region.type == "table":
            return check_table(texts, limits=limits)
        scores = [self.lines[i].score for i in idxs]
        return check_figure(
            region.box,
            texts,
            scores,
            page_lines=len(self.lines),
            page_area=float(self.width * self.height),
            limits=limits,
        )

    def _distrust(self, region: Region, label: str, reason: str) -> None:
        where = [round(v) for v in region.box]
        self.warnings.append(f"{label}: {region.type} region at {where} read as text, {reason}")

    def _region_unit(self, region: Region, idxs: list[int]) -> _Unit | None:
        kind = region.type
        if kind not in VISUAL and not idxs:
            return None  # a text-like region with nothing read in it
        if kind in VISUAL:
            box = union_box([region.box] + [self.boxes[i] for i in idxs])
        else:
            box = union_box([self.boxes[i] for i in idxs])
        text = " ".join(self.lines[i].text for i in idxs).strip()
        if kind in FURNITURE and not self._furniture_holds(kind, region.score, box, idxs):
            kind = "text"
        elif kind == "title" and len(idxs) > 3:
            kind = "text"
        if kind in ("text", "title") and len(idxs) == 1 and is_page_number(text):
            kind = self._page_number_place(box) or kind
        return _Unit(type=kind, label=region.label, box=box, lines=idxs, score=region.score)

    def _furniture_holds(self, kind: str, score: float, box: Sequence[float], idxs: list[int]) -> bool:
        """Whether a header/footer region really is page furniture, not text kept out of the markdown.

        The model must be sure of it, it must lie in its band, and its lines must be no larger than the page's
        text: running heads and footers are set small, while a page's heading the model takes for a header
        ("Page 1" at the top) is large.
        """
        if score < self.settings.furniture_min_score or self._band(box) != kind:
            return False
        if len(idxs) > self.settings.furniture_max_lines:
            return False  # a letterhead or a masthead of several lines is read, not left out
        heights = [self.boxes[i][3] - self.boxes[i][1] for i in idxs]
        return not heights or statistics.median(heights) <= 1.25 * self.median_h

    def _free_line_unit(self, li: int, *, label: str | None = None) -> _Unit:
        box = self.boxes[li]
        place = self._page_number_place(box) if is_page_number(self.lines[li].text) else None
        if place:
            return _Unit(type=place, label="page_number", box=box, lines=[li], is_line=True)
        return _Unit(type="text", label=label, box=box, lines=[li], is_line=True)

    def _band(self, box: Sequence[float]) -> str | None:
        """'header' or 'footer' when the box lies in the page's top or bottom band."""
        band = self.settings.furniture_band * self.height
        if box[3] <= band:
            return "header"
        if box[1] >= self.height - band:
            return "footer"
        return None

    def _page_number_place(self, box: Sequence[float]) -> str | None:
        """Where a lone page-number-like line is furniture: in a band, or beyond every other line of the page.

        Margins vary (a PDF's bottom margin can be a sixth of the page), so a number with no line above it in
        the top quarter, or none below it in the bottom quarter, is a page number too. Page numbers are set no
        larger than the text: a large "Page 3" is a heading. And a page number shares its row with a running head
        at most: a number with several neighbours, or numbers beside it, is a value in a table, a form or a grid.
        """
        if box[3] - box[1] > 1.25 * self.median_h:
            return None
        others = [b for b in self.boxes if b is not box]
        row = [
            i
            for i, b in enumerate(self.boxes)
            if b is not box and min(b[3], box[3]) - max(b[1], box[1]) > 0.5 * (box[3] - box[1])
        ]
        if len(row) > 1 or any(is_page_number(self.lines[i].text) for i in row):
            return None  # a row of numbers: values in a table, a form, a grid (a running head beside it is fine)
        band = self._band(box)
        if band:
            return band
        if box[3] <= 0.25 * self.height and not any(b[3] <= box[1] for b in others):
            return "header"
        if box[1] >= 0.75 * self.height and not any(b[1] >= box[3] for b in others):
            return "footer"
        return None

    def _near_visual(self, box: Sequence[float]) -> bool:
        """Whether a table or figure lies within a few lines above or below the box, overlapping it across."""
        reach = 4 * max(self.median_h, 1.0)
        for v in self.visual_boxes:
            across = min(box[2], v[2]) - max(box[0], v[0]) > 0
            vertical = max(v[1] - box[3], box[1] - v[3])
            if across and vertical <= reach:
                return True
        return False

    # -- units -> blocks -----------------------------------------------------------------------------------

    def text_blocks(self, order: list[int], *, label: str | None) -> list[Block]:
        """Paragraph blocks (titles where lines are much taller than the page's median) from lines in order."""
        groups = group_paragraphs(self.boxes, order) if self.settings.paragraphs else [[i] for i in order]
        blocks = []
        for group in groups:
            height = statistics.median([self.boxes[i][3] - self.boxes[i][1] for i in group])
            is_title = self.median_h > 0 and height >= self.settings.title_ratio * self.median_h and len(group) <= 3
            kind = "title" if is_title else "text"
            text = "\n".join(self.lines[i].text for i in group)
            block_label = label
            if (
                kind == "text"
                and self.settings.layout
                and is_caption(text)
                and self._near_visual(union_box([self.boxes[i] for i in group]))
            ):
                kind, block_label = "caption", label or "caption"
            blocks.append(self._block(kind, text, group, label=block_label))
        return blocks

    def region_blocks(self, unit: _Unit, read_table: TableReader | None) -> list[Block]:
        kind = unit.type
        if kind == "text":
            return self.text_blocks(sorted(unit.lines, key=self.line_rank.__getitem__), label=unit.label)
        if kind == "table":
            return [self._table_block(unit, read_table)]
        ordered = self._row_order(unit.lines) if kind in FURNITURE or kind == "caption" else self._reading(unit.lines)
        text = "\n".join(self.lines[i].text for i in ordered)
        return [self._block(kind, text, ordered, label=unit.label, box=unit.box, score=unit.score)]

    def _table_block(self, unit: _Unit, read_table: TableReader | None) -> Block:
        ordered = self._row_order(unit.lines)
        plain = "\n".join(self.lines[i].text for i in ordered)
        if read_table is None:
            return self._block("table", plain, ordered, label=unit.label, box=unit.box, score=unit.score)
        try:
            structure = read_table(unit.box)
            cells, html = build_table(
                structure.tokens, structure.cell_boxes, [(self.boxes[i], self.lines[i].text) for i in unit.lines]
            )
        except TableParseError as e:
            where = [round(v) for v in unit.box]
            self.warnings.append(f"table at {where} not recognised ({e}): its text is kept, without cells")
            return self._block("table", plain, ordered, label=unit.label, box=unit.box, score=unit.score)
        block = self._block("table", html, ordered, label=unit.label, box=unit.box, score=unit.score)
        block.cells = cells
        return block

    @functools.cached_property
    def line_rank(self) -> list[int]:
        """Each line's position in the page's column-aware reading order of lines."""
        rank = [0] * len(self.boxes)
        for position, li in enumerate(reading_order(self.boxes)):
            rank[li] = position
        return rank

    def _reading(self, idxs: list[int]) -> list[int]:
        return sorted(idxs, key=self.line_rank.__getitem__)

    def _row_order(self, idxs: list[int]) -> list[int]:
        """Lines row by row (a row: lines whose vertical centres are within half a line), left to right."""
        if not idxs:
            return []
        tol = 0.5 * max(self.median_h, 1.0)
        by_y = sorted(idxs, key=self._centre_y)
        rows: list[list[int]] = [[by_y[0]]]
        for i in by_y[1:]:
            if abs(self._centre_y(i) - self._centre_y(rows[-1][0])) <= tol:
                rows[-1].append(i)
            else:
                rows.append([i])
        return [i for row in rows for i in sorted(row, key=lambda i: self.boxes[i][0])]

    def _centre_y(self, i: int) -> float:
        return (self.boxes[i][1] + self.boxes[i][3]) / 2

    def _block(
        self,
        kind: str,
        text: str,
        idxs: list[int],
        *,
        label: str | None,
        box: Sequence[float] | None = None,
        score: float | None = None,
    ) -> Block:
        if box is None:
            box = union_box([self.boxes[i] for i in idxs])
        if score is None and idxs:
            score = sum(self.lines[i].score for i in idxs) / len(idxs)
        return make_block(
            kind,
            text,
            box,
            width=self.width,
            height=self.height,
            score=round(score, 4) if score is not None else None,
            label=label,
            lines=[self.lines[i].to_schema() for i in idxs] if idxs else None,
        )

    # -- blocks -> page ------------------------------------------------------------------------------------

    def markdown(self, block: Block) -> str:
        if block.type == "title":
            return "# " + block.text.replace("\n", " ")
        if block.type in FURNITURE:
            return block.text if self.settings.include_page_furniture else ""
        if block.type == "figure":
            self.figures += 1
            return f"![figure](#page-{self.index + 1}-figure-{self.figures})"
        if block.type == "formula":
            return f"{FORMULA_MARK}\n{block.text}"
        return block.text

    def result(self, dpi: float | None, blocks: list[Block]) -> PageResult:
        parts = [self.markdown(b) for b in blocks]
        return PageResult(
            index=self.index,
            width=self.width,
            height=self.height,
            dpi=dpi,
            markdown="\n\n".join(p for p in parts if p),
            blocks=blocks,
            warnings=list(self.warnings),
        )
