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
