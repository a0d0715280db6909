"""A table's cells from the structure model's tags and boxes, filled with the page's OCR lines, as HTML.

Pure code (no model): the tags say which cell starts a row and which spans how far; the cell boxes say where
each cell is; an OCR line goes to the cell covering most of it. A structure that does not hold together (no
cells, unbalanced tags, a box count that does not match the cells) raises :class:`TableParseError`, and the
caller falls back to the region's text.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from shared.layout import intersection_area
from shared.schema import TableCell

_SPAN = re.compile(r'(colspan|rowspan)\s*=\s*"?(\d+)"?')


class TableParseError(ValueError):
    """The predicted structure cannot be read as a table."""


@dataclass
class _Cell:
    row: int
    col: int
    row_span: int
    col_span: int
    box: list[float]
    texts: list[tuple[float, float, str]] = field(default_factory=list)  # (y centre, x0, text)


def parse_structure(tokens: Sequence[str], boxes: Sequence[Sequence[float]]) -> list[_Cell]:
    """Cells with their grid position and spans, from the structure model's tags (one box per cell tag).

    Raises:
        TableParseError: no rows or cells, a cell outside a row, unknown tags, or boxes not matching cells.
    """
    cells: list[_Cell] = []
    occupied: set[tuple[int, int]] = set()
    row = -1
    col = 0
    in_row = False
    i = 0
    while i < len(tokens):
        tok = tokens[i].strip()
        if tok == "<tr>":
            row, col, in_row = row + 1, 0, True
        elif tok == "</tr>":
            in_row = False
        elif tok in ("<td></td>", "<td>", "<td"):
            if not in_row:
                raise TableParseError("a cell outside a row")
            row_span = col_span = 1
            if tok == "<td":
                i += 1
                while i < len(tokens) and tokens[i].strip() != ">":
                    for name, value in _SPAN.findall(tokens[i]):
                        if name == "colspan":
                            col_span = max(1, int(value))
                        else:
                            row_span = max(1, int(value))
                    i += 1
                if i >= len(tokens):
                    raise TableParseError("a cell tag that never closes")
            while (row, col) in occupied:
                col += 1
            if len(cells) >= len(boxes):
                raise TableParseError(f"more cells than cell boxes ({len(boxes)})")
            cells.append(_Cell(row, col, row_span, col_span, [float(v) for v in boxes[len(cells)]]))
            for r in range(row, row + row_span):
                for c in range(col, col + col_span):
                    occupied.add((r, c))
            col += col_span
        i += 1
    if not cells:
        raise TableParseError("no cells")
    if len(cells) != len(boxes):
        raise TableParseError(f"{len(cells)} cells but {len(boxes)} cell boxes")
    return cells


def fill_cells(cells: list[_Cell], lines: Sequence[tuple[Sequence[float], str]]) -> None:
    """Put each OCR line (box, text) into the cell covering most of it (the nearest cell when none does)."""
    for box, text in lines:
        best, best_area = None, 0.0
        for cell in cells:
            shared = intersection_area(box, cell.box)
            if shared > best_area:
                best, best_area = cell, shared
        if best is None:
            cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
            best = min(cells, key=lambda c: _point_distance(cx, cy, c.box))
        best.texts.append(((box[1] + box[3]) / 2, box[0], text.strip()))


def _point_distance(x: float, y: float, box: Sequence[float]) -> float:
    dx = max(box[0] - x, 0.0, x - box[2])
    dy = max(box[1] - y, 0.0, y - box[3])
    return (dx * dx + dy * dy) ** 0.5


def _cell_text(cell: _Cell) -> str:
    """A cell's lines top to bottom; lines on one visual row left to right."""
    if not cell.texts:
        return ""
    ordered = sorted(cell.texts)
    rows: list[list[tuple[float, float, str]]] = [[ordered[0]]]
    for item in ordered[1:]:
        if abs(item[0] - rows[-1][-1][0]) < 8:
            rows[-1].append(item)
        else:
            rows.append([item])
    return " ".join(" ".join(t for _, _, t in sorted(r, key=lambda it: it[1])) for r in rows)


def to_html(cells: Sequence[TableCell]) -> str:
    """``<table>`` with one ``<tr>`` per row and ``<td>`` per cell (spans as attributes), text escaped."""
    rows: dict[int, list[TableCell]] = {}
    for cell in cells:
        rows.setdefault(cell.row, []).append(cell)
    out = ["<table>"]
    for r in range(max(rows) + 1 if rows else 0):
        out.append("<tr>")
        for cell in sorted(rows.get(r, []), key=lambda c: c.col):
            attrs = (f' rowspan="{cell.row_span}"' if cell.row_span > 1 else "") + (
                f' colspan="{cell.col_span}"' if cell.col_span > 1 else ""
            )
            out.append(f"<td{attrs}>{html.escape(cell.text, quote=False)}</td>")
        out.append("</tr>")
    out.append("</table>")
    return "".join(out)


def build_table(
    tokens: Sequence[str], boxes: Sequence[Sequence[float]], lines: Sequence[tuple[Sequence[float], str]]
) -> tuple[list[TableCell], str]:
    """Cells (schema objects, page-pixel boxes) and their HTML, from the model's structure and the OCR lines.

    Args:
        tokens: The structure model's tags.
        boxes: One [x0, y0, x1, y1] per cell tag, page pixels.
        lines: The table region's OCR lines as (box, text).

    Returns:
        The cells in row-major order and the ``<table>`` HTML.

    Raises:
        TableParseError: the structure cannot be read as a table.
    """
    cells = parse_structure(tokens, boxes)
    fill_cells(cells, lines)
    schema_cells = [
        TableCell(
            row=c.row,
            col=c.col,
            row_span=c.row_span,
            col_span=c.col_span,
            text=_cell_text(c),
            bbox=[round(v, 2) for v in c.box],
        )
        for c in cells
    ]
    return schema_cells, to_html(schema_cells)
