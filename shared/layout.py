"""Reading order and paragraphs from text-line boxes, for engines that only detect lines (RapidOCR).

A plain top-to-bottom sort interleaves the columns of a multi-column page. This is a recursive XY-cut:

1. a *clean* vertical gap (no line crosses it, at least ``0.3 x`` the median line height wide, measured on
   the lines' text cores, without the detector's padding) splits the region
   into columns, read left to right;
2. otherwise a vertical gap crossed by very few line-height boxes (a detector box that ran across the gutter)
   still splits columns, each crossing line going to the side holding its centre;
3. otherwise the widest clean horizontal gap splits it into a top and a bottom part;
4. otherwise lines are read top to bottom, left to right.

Columns come before rows on purpose: aligned lines of neighbouring columns leave common horizontal gaps
between every line, which a rows-first cut would read across.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence

Box = Sequence[float]  # x0, y0, x1, y1


def _gaps(intervals: list[tuple[float, float]], min_gap: float, *, tolerance: int = 0) -> list[tuple[float, float]]:
    """Gaps at least ``min_gap`` wide in the union of intervals, where at most ``tolerance`` intervals overlap."""
    if not intervals:
        return []
    events: list[tuple[float, int]] = []
    for a, b in intervals:
        events.append((a, 1))
        events.append((b, -1))
    events.sort(key=lambda e: (e[0], e[1]))
    lo = min(a for a, _ in intervals)
    hi = max(b for _, b in intervals)
    gaps: list[tuple[float, float]] = []
    depth = 0
    gap_start: float | None = None
    for x, d in events:
        depth += d
        if depth <= tolerance and gap_start is None and lo < x < hi:
            gap_start = x
        elif depth > tolerance and gap_start is not None:
            if x - gap_start >= min_gap:
                gaps.append((gap_start, x))
            gap_start = None
    return gaps


def _split_at(idxs: list[int], boxes: Sequence[Box], cuts: list[float], axis: int) -> list[list[int]]:
    """Partition by the box centre along ``axis`` (0 = x, 1 = y) at the given cut positions."""
    parts: list[list[int]] = [[] for _ in range(len(cuts) + 1)]
    for i in idxs:
        b = boxes[i]
        c = (b[axis] + b[axis + 2]) / 2
        k = sum(1 for cut in cuts if c > cut)
        parts[k].append(i)
    return [p for p in parts if p]


def _xy_cut(idxs: list[int], boxes: Sequence[Box], unit: float) -> list[int]:
    if len(idxs) <= 1:
        return idxs
    xs = [(boxes[i][0], boxes[i][2]) for i in idxs]
    ys = [(boxes[i][1], boxes[i][3]) for i in idxs]
    col_gap = 0.3 * unit

    gaps = _gaps(xs, col_gap)
    if gaps:
        return _recurse(_split_at(idxs, boxes, [(a + b) / 2 for a, b in gaps], 0), boxes, unit)

    if len(idxs) >= 8:
        # Columns run together by a few merged lines. Only line-height boxes may cross: a taller one is a heading
        # that really spans the columns, and must block the cut so a horizontal cut can set it apart.
        tall = [(boxes[i][0], boxes[i][2]) for i in idxs if boxes[i][3] - boxes[i][1] > 1.5 * unit]
        normal = [(boxes[i][0], boxes[i][2]) for i in idxs if boxes[i][3] - boxes[i][1] <= 1.5 * unit]
        tolerance = max(2, len(idxs) // 15)
        gaps = [
            g
            for g in _gaps(normal, col_gap, tolerance=tolerance)
            if _both_sides_hold(idxs, boxes, g) and not any(a < g[1] and b > g[0] for a, b in tall)
        ]
        if gaps:
            parts = _split_at(idxs, boxes, [(a + b) / 2 for a, b in gaps], 0)
            if len(parts) > 1:
                return _recurse(parts, boxes, unit)

    hgaps = _gaps(ys, 0.0)
    if hgaps:
        a, b = max(hgaps, key=lambda g: g[1] - g[0])
        return _recurse(_split_at(idxs, boxes, [(a + b) / 2], 1), boxes, unit)

    return sorted(idxs, key=lambda i: (boxes[i][1], boxes[i][0]))


def _both_sides_hold(idxs: list[int], boxes: Sequence[Box], gap: tuple[float, float]) -> bool:
    """A real gutter has several lines wholly on each side of it."""
    left = sum(1 for i in idxs if boxes[i][2] <= gap[0])
    right = sum(1 for i in idxs if boxes[i][0] >= gap[1])
    return left >= 3 and right >= 3


def _recurse(parts: list[list[int]], boxes: Sequence[Box], unit: float) -> list[int]:
    if len(parts) == 1:  # no progress possible: fall back to plain order
        return sorted(parts[0], key=lambda i: (boxes[i][1], boxes[i][0]))
    out: list[int] = []
    for p in parts:
        out.extend(_xy_cut(p, boxes, unit))
    return out


def median_line_height(boxes: Sequence[Box]) -> float:
    heights = [b[3] - b[1] for b in boxes if b[3] > b[1]]
    return statistics.median(heights) if heights else 1.0


def _text_core(box: Box) -> list[float]:
    """The box without the detector's horizontal padding (DB-style detectors grow boxes by ~1/3 of the height)."""
    x0, y0, x1, y1 = box
    pad = min(0.25 * (y1 - y0), 0.25 * (x1 - x0))
    return [x0 + pad, y0, x1 - pad, y1]


def reading_order(boxes: Sequence[Box]) -> list[int]:
    """Indices of ``boxes`` (text lines, [x0, y0, x1, y1]) in reading order."""
    if not boxes:
        return []
    cores = [_text_core(b) for b in boxes]
    return _xy_cut(list(range(len(cores))), cores, median_line_height(cores))


def group_paragraphs(boxes: Sequence[Box], order: Sequence[int]) -> list[list[int]]:
    """Consecutive lines (in reading order) in one column, of similar size, with ordinary line spacing.

    "Ordinary" is measured on the page itself: a gap more than half a line height above the page's median gap
    between consecutive lines starts a new paragraph.
    """
    if not order:
        return []
    unit = median_line_height(boxes)

    def same_column(p: Box, c: Box) -> bool:
        overlap = min(p[2], c[2]) - max(p[0], c[0])
        return overlap > 0.3 * min(p[2] - p[0], c[2] - c[0])

    pairs = list(zip(order, order[1:]))
    gaps = [boxes[c][1] - boxes[p][3] for p, c in pairs if same_column(boxes[p], boxes[c])]
    gaps = [g for g in gaps if -unit < g < 2 * unit]
    usual = statistics.median(gaps) if gaps else 0.0
    paragraphs: list[list[int]] = [[order[0]]]
    for prev, cur in pairs:
        p, c = boxes[prev], boxes[cur]
        hp, hc = p[3] - p[1], c[3] - c[1]
        gap = c[1] - p[3]
        similar_size = max(hp, hc) <= 1.3 * max(1.0, min(hp, hc))
        if same_column(p, c) and similar_size and -0.5 * unit <= gap <= usual + 0.5 * unit:
            paragraphs[-1].append(cur)
        else:
            paragraphs.append([cur])
    return paragraphs


# --- Regions: what a layout model finds (tables, figures, paragraphs...), read as units ---------------------------


def intersection_area(a: Box, b: Box) -> float:
    """Area shared by two boxes (0 when they do not meet)."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    return w * h if w > 0 and h > 0 else 0.0


def area(box: Box) -> float:
    return max(0.0, box[2] - box[0]) * max(0.0, box[3] - box[1])


def assign_to_regions(items: Sequence[Box], regions: Sequence[Box], *, min_share: float = 0.5) -> list[int | None]:
    """For each item (a text line), the index of the region holding most of it, or None.

    An item belongs to the region covering the largest share of its own area, provided that share reaches
    ``min_share``: a line that only grazes a region (detector padding, a box drawn a little short) is not pulled
    into it, and stays a free line read on its own. Between regions that cover it equally (a title region
    inside a text region), the smaller one wins.

    Args:
        items: Boxes to place, [x0, y0, x1, y1].
        regions: Region boxes, [x0, y0, x1, y1].
        min_share: Smallest share of an item's area a region must cover to own it.

    Returns:
        One region index (or None) per item, in the items' order.
    """
    out: list[int | None] = []
    for box in items:
        own = area(box)
        best, best_key = None, (0.0, 0.0)
        for r, region in enumerate(regions):
            share = intersection_area(box, region) / own if own else 0.0
            key = (round(share, 2), -area(region))  # equal cover: the smaller, more specific region wins
            if share > 0 and key > best_key:
                best, best_key = r, key
        out.append(best if best_key[0] >= min_share else None)
    return out


def suppress_overlaps(boxes: Sequence[Box], ranks: Sequence[float], *, max_share: float = 0.5) -> list[int]:
    """Indices of the boxes kept when a box mostly inside a better-ranked one is dropped.

    Layout models propose overlapping regions (two "titles" over one paragraph, a text box inside a table); the
    reading order needs regions that tile the page. Boxes are taken best rank first; one whose area lies more
    than ``max_share`` inside an already kept box is dropped.

    Args:
        boxes: Region boxes.
        ranks: Higher is better (e.g. a type priority plus the model's score).
        max_share: Largest share of a box's area that may overlap kept boxes.

    Returns:
        Kept indices, in the input order.
    """
    kept: list[int] = []
    for i in sorted(range(len(boxes)), key=lambda i: -ranks[i]):
        own = area(boxes[i])
        if own <= 0:
            continue
        if any(intersection_area(boxes[i], boxes[k]) > max_share * own for k in kept):
            continue
        kept.append(i)
    return sorted(kept)


def unit_order(
    line_boxes: Sequence[Box],
    unit_lines: Sequence[Sequence[int]],
    unit_boxes: Sequence[Box],
    *,
    whole: Sequence[bool] | None = None,
) -> list[int]:
    """Reading order of a page's *units* (layout regions and free lines).

    Region boxes from a layout model are loose: text regions overlap their neighbours and leave no clean
    gutter, and a page has too few of them for the XY-cut's tolerance for a line run across a gutter. So the
    XY-cut runs on what it reads well: the text lines (their text cores) of text-like units, and one box for
    each unit read *whole* — a table or figure, whose own column gaps would otherwise cut the page (a table
    read column by column, its caption after its first column). Each unit is then placed where its first item
    falls, and read whole (its lines in their own order); columns are still read column by column, exactly as
    the lines alone are.

    Args:
        line_boxes: The page's text lines, [x0, y0, x1, y1].
        unit_lines: Per unit, the indices of its lines (a free line is a unit of one line).
        unit_boxes: Per unit, its box.
        whole: Per unit, whether it takes part as one box (units without lines always do).

    Returns:
        Unit indices in reading order.
    """
    whole = whole or [False] * len(unit_lines)
    cores = [_text_core(b) for b in line_boxes]
    items: list[list[float]] = []
    item_unit: list[int] = []
    for u, members in enumerate(unit_lines):
        if whole[u] or not members:
            items.append(list(unit_boxes[u]))
            item_unit.append(u)
        else:
            for li in members:
                items.append(cores[li])
                item_unit.append(u)
    if not items:
        return []
    unit = median_line_height(cores or items)
    rank: dict[int, int] = {}
    for position, item in enumerate(_xy_cut(list(range(len(items))), items, unit)):
        rank.setdefault(item_unit[item], position)
    return sorted(range(len(unit_lines)), key=lambda u: rank.get(u, len(items)))
