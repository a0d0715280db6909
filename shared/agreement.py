"""Where backends agree, block by block: the same document read by several engines, matched on the page.

Document-level agreement (one NED over the whole markdown) says *that* two engines differ, not *where*. Here
blocks of two backends' answers to the same page are matched by their boxes (normalised, so engines rendering at
different sizes still meet), each match is scored by its text (1 - NED, OmniDocBench-normalised) and, when both
are tables, by TEDS; a block no other backend has a counterpart for is listed as unmatched. A person (or the web
page) can then look at exactly the blocks the engines disagree on.

Matching is one-to-one and greedy on IoU, best first, above :data:`MIN_IOU`: engines segment differently (one
engine's paragraph is another's three lines), so an unmatched block means "no block of similar extent", not
necessarily "text missing" - the text score of the matched ones and the page-level NED tell the rest.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import combinations

from shared.metrics import agreement, teds
from shared.schema import Block, BlockMatch, OCRResponse, PageComparison

MIN_IOU = 0.3
"""Smallest IoU of two normalised boxes for their blocks to count as the same region."""
DISAGREE_BELOW = 0.8
"""A matched block whose text agreement is below this is a disagreement (the web page marks it)."""


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two ``[x0, y0, x1, y1]`` boxes; 0 when either is empty."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def match_blocks(a: Sequence[Block], b: Sequence[Block], *, min_iou: float = MIN_IOU) -> list[tuple[int, int, float]]:
    """Pairs ``(index in a, index in b, iou)``, each block used once, highest IoU first."""
    candidates = sorted(
        ((iou(x.bbox_norm, y.bbox_norm), i, j) for i, x in enumerate(a) for j, y in enumerate(b)),
        reverse=True,
    )
    used_a: set[int] = set()
    used_b: set[int] = set()
    pairs = []
    for overlap, i, j in candidates:
        if overlap < min_iou:
            break
        if i in used_a or j in used_b:
            continue
        used_a.add(i)
        used_b.add(j)
        pairs.append((i, j, overlap))
    return sorted(pairs)


def score_match(x: Block, y: Block) -> tuple[float, float | None]:
    """Text agreement of two matched blocks, and TEDS when both are tables."""
    table_teds = None
    if x.type == "table" and y.type == "table" and "<table" in x.text and "<table" in y.text:
        table_teds = round(teds(x.text, y.text), 4)
    return round(agreement(x.text, y.text), 4), table_teds


def compare_pages(results: Mapping[str, OCRResponse]) -> list[PageComparison]:
    """Block-level agreement of every pair of backends, page by page (pages in document order).

    Args:
        results: Each successful backend's response to the same document, by backend name.

    Returns:
        One entry per page that at least two backends answered.
    """
    pages: dict[int, dict[str, list[Block]]] = {}
    for name, result in results.items():
        for page in result.pages:
            pages.setdefault(page.index, {})[name] = page.blocks
    out = []
    for index in sorted(pages):
        blocks = pages[index]
        if len(blocks) < 2:
            continue
        matches: list[BlockMatch] = []
        matched: dict[str, set[int]] = {name: set() for name in blocks}
        for a, b in combinations(blocks, 2):
            for i, j, overlap in match_blocks(blocks[a], blocks[b]):
                text_agreement, table_teds = score_match(blocks[a][i], blocks[b][j])
                matches.append(
                    BlockMatch(
                        a=a,
                        b=b,
                        a_index=i,
                        b_index=j,
                        iou=round(overlap, 4),
                        agreement=text_agreement,
                        teds=table_teds,
                        agrees=text_agreement >= DISAGREE_BELOW,
                    )
                )
                matched[a].add(i)
                matched[b].add(j)
        unmatched = {name: [i for i in range(len(bl)) if i not in matched[name]] for name, bl in blocks.items()}
        compared = PageComparison(index=index, matches=matches, unmatched=unmatched, disagree_below=DISAGREE_BELOW)
        compared.disagreements = {name: disagreements(compared, name) for name in blocks}
        out.append(compared)
    return out


def disagreements(page: PageComparison, backend: str, *, below: float = DISAGREE_BELOW) -> list[int]:
    """Indices of ``backend``'s blocks on ``page`` that no other backend agrees with (unmatched, or every match
    of theirs scoring below ``below``)."""
    best: dict[int, float] = {}
    for m in page.matches:
        if m.a == backend:
            best[m.a_index] = max(best.get(m.a_index, 0.0), m.agreement)
        elif m.b == backend:
            best[m.b_index] = max(best.get(m.b_index, 0.0), m.agreement)
    low = [i for i, score in best.items() if score < below]
    return sorted(set(page.unmatched.get(backend, [])) | set(low))
