"""Layout regions checked against the text they hold: is this "figure" a picture, is this "table" a table?

The layout model labels a region from its pixels alone, and on pages unlike its training set it is confidently
wrong in the two ways that lose or wreck a whole page: a typed letter, a book page or a slide taken for one
*figure* (whose text stays out of the markdown), a page of prose columns taken for one *table* (whose cells then
run sentences of different columns together). The OCR lines inside the region say which it is, so a label the
lines contradict is not trusted, and the region's lines are read as plain text instead — no worse than the page
without the layout pass. Peers do the same from the content: docling keeps the text of figures it is unsure of,
MinerU's pipeline classifies regions by text density.

What the lines must look like for the label to stand (pure functions, tested on hand-made lines):

- **A picture holds labels, not the page.** A figure is read as text when it holds most of the page's lines, or
  sentences (two or more prose-like lines read with confidence), or it covers most of the page and holds text
  that is more than a few labels.
- **A table holds short cells.** A table is read as text columns when a good share of its lines are sentences:
  its cells would hold sentences, run together across its columns.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from shared.layout import area

_WORD = re.compile(r"[^\W\d_]{2,}")  # a word of two letters or more (numbers and symbols are not words here)


@dataclass(frozen=True)
class RegionLimits:
    """Thresholds of the checks: set from what labels, cells and sentences look like, then checked on the real
    corpus (tests/data/corpus; README "No page lost") — none was fitted to a page of it."""

    prose_words: int = 5
    """A line of at least this many words (of 2+ letters) is prose-like: a sentence, not a label or a cell."""
    figure_page_lines: float = 0.5
    """A figure holding this share of the page's lines (and at least ``figure_min_lines``) is the page itself."""
    figure_min_lines: int = 3
    figure_prose_lines: int = 2
    """A figure holding this many prose-like lines holds sentences..."""
    figure_prose_confidence: float = 0.75
    """...when the OCR read them with at least this mean confidence (a photo's blurred sign reads low)."""
    figure_cover: float = 0.5
    """A figure covering this share of the page..."""
    figure_cover_words: int = 12
    """...is the page when its lines hold at least this many words."""
    table_prose_share: float = 0.3
    """A table whose lines are prose-like in this share (of its lines) is text in columns."""


@dataclass(frozen=True)
class Verdict:
    """Whether the layout label stands; when it does not, why (said in the page's warnings)."""

    stands: bool
    reason: str = ""


STANDS = Verdict(True)


def words(text: str) -> int:
    """Words of two letters or more: numbers, symbols and single letters are not counted."""
    return len(_WORD.findall(text or ""))


def is_prose(text: str, limits: RegionLimits) -> bool:
    """Whether a line reads as part of a sentence rather than a label, a value or a cell."""
    return words(text) >= limits.prose_words


def check_figure(
    box: Sequence[float],
    texts: Sequence[str],
    scores: Sequence[float],
    *,
    page_lines: int,
    page_area: float,
    limits: RegionLimits,
) -> Verdict:
    """Whether a figure region is a picture (its text may stay out of the markdown) or text the model took for one.

    Args:
        box: The region, page pixels.
        texts: Its OCR lines' texts.
        scores: Their recognition confidences.
        page_lines: How many lines the page has.
        page_area: The page's area, pixels.
        limits: Thresholds.
    """
    n = len(texts)
    if n == 0:
        return STANDS
    if n >= limits.figure_min_lines and n >= limits.figure_page_lines * page_lines:
        return Verdict(False, f"it holds {n} of the page's {page_lines} lines (a picture holds labels, not the page)")
    prose = [i for i, t in enumerate(texts) if is_prose(t, limits)]
    if len(prose) >= limits.figure_prose_lines:
        confidence = statistics.fmean(scores[i] for i in prose)
        if confidence >= limits.figure_prose_confidence:
            return Verdict(False, f"{len(prose)} of its {n} lines are sentences, read with confidence {confidence:.2f}")
    cover = area(box) / page_area if page_area else 0.0
    total = sum(words(t) for t in texts)
    if cover >= limits.figure_cover and total >= limits.figure_cover_words:
        return Verdict(False, f"it covers {cover:.0%} of the page and holds {total} words")
    return STANDS


def check_table(texts: Sequence[str], *, limits: RegionLimits) -> Verdict:
    """Whether a table region's lines form a table (short cells), before any structure is read.

    Args:
        texts: The region's OCR lines' texts.
        limits: Thresholds.
    """
    n = len(texts)
    if n == 0:
        return STANDS
    prose = sum(1 for t in texts if is_prose(t, limits))
    if prose >= 2 and prose >= limits.table_prose_share * n:
        return Verdict(False, f"{prose} of its {n} lines are sentences (a table holds short cells)")
    return STANDS
