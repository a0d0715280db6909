"""Block-level agreement between backends, on hand-built pages where the right answer is known."""

from __future__ import annotations

import pytest

from shared.agreement import compare_pages, disagreements, iou, match_blocks
from shared.boxes import make_block
from shared.schema import DocumentInfo, ModelInfo, OCRResponse, PageResult, Usage

W, H = 1000, 2000


def block(text: str, box, type_: str = "text"):
    return make_block(type_, text, box, width=W, height=H)


def response(backend: str, pages: list[list]) -> OCRResponse:
    return OCRResponse(
        request_id="r",
        backend=backend,
        model=ModelInfo(id="m", engine="e"),
        document=DocumentInfo(
            name="d", media_type="image/png", size_bytes=1, sha256="0", page_count=len(pages), pages_processed=[]
        ),
        markdown="",
        pages=[PageResult(index=i, width=W, height=H, blocks=bl) for i, bl in enumerate(pages)],
        usage=Usage(pages=len(pages)),
    )


def test_iou_by_hand():
    assert iou([0, 0, 2, 2], [1, 1, 3, 3]) == pytest.approx(1 / 7)  # overlap 1, union 4 + 4 - 1
    assert iou([0, 0, 1, 1], [0, 0, 1, 1]) == 1.0
    assert iou([0, 0, 1, 1], [2, 2, 3, 3]) == 0.0
    assert iou([0, 0, 0, 0], [0, 0, 0, 0]) == 0.0


def test_matching_is_one_to_one_best_overlap_first():
    a = [block("x", [100, 100, 900, 200]), block("y", [100, 300, 900, 400])]
    b = [block("y", [110, 305, 905, 395]), block("x", [100, 100, 890, 210]), block("z", [100, 1500, 900, 1600])]
    pairs = match_blocks(a, b)
    assert [(i, j) for i, j, _ in pairs] == [(0, 1), (1, 0)]  # z has no counterpart
    assert all(overlap > 0.8 for _, _, overlap in pairs)


def test_identical_blocks_agree_and_a_changed_block_is_flagged():
    truth = [
        block("Quarterly report", [100, 100, 900, 180], "title"),
        block("Revenue grew by twelve percent in the third quarter.", [100, 250, 900, 400]),
        block("Costs stayed flat across all regions.", [100, 450, 900, 600]),
    ]
    changed = [
        truth[0],
        truth[1],
        block("Profits collapsed after the merger fell through.", [100, 450, 900, 600]),  # same place, other text
    ]
    (page,) = compare_pages({"a": response("a", [truth]), "b": response("b", [changed])})
    scores = {(m.a_index, m.b_index): m.agreement for m in page.matches}
    assert scores[(0, 0)] == 1.0 and scores[(1, 1)] == 1.0
    assert scores[(2, 2)] < 0.5
    assert page.unmatched == {"a": [], "b": []}
    assert disagreements(page, "a") == [2] and disagreements(page, "b") == [2]
    assert page.disagreements == {"a": [2], "b": [2]}  # the answer carries the rule's result: the page only draws it
    assert [m.agrees for m in page.matches] == [True, True, False]


def test_a_block_only_one_backend_found_is_unmatched():
    a = [block("Body text here.", [100, 100, 900, 400]), block("Page 7", [450, 1900, 550, 1950], "footer")]
    b = [block("Body text here.", [105, 100, 905, 410])]
    (page,) = compare_pages({"a": response("a", [a]), "b": response("b", [b])})
    assert page.unmatched == {"a": [1], "b": []}
    assert disagreements(page, "a") == [1] and disagreements(page, "b") == []
    assert page.disagreements == {"a": [1], "b": []}


def test_tables_are_also_scored_by_teds():
    t1 = "<table><tr><td>a</td><td>b</td></tr><tr><td>c</td><td>d</td></tr></table>"
    t2 = "<table><tr><td>a</td><td>b</td></tr><tr><td>c</td><td>x</td></tr></table>"
    a = [block(t1, [100, 100, 900, 500], "table")]
    b = [block(t2, [100, 100, 900, 500], "table")]
    (page,) = compare_pages({"a": response("a", [a]), "b": response("b", [b])})
    (m,) = page.matches
    # PubTabNet counts the table's descendants (2 tr + 4 td = 6); one cell's content differs wholly: TED 1
    assert m.teds == pytest.approx(1 - 1 / 6, abs=1e-3)


def test_three_backends_pages_and_a_page_only_one_read():
    p = [block("same", [100, 100, 900, 200])]
    results = {
        "a": response("a", [p, p]),
        "b": response("b", [p]),
        "c": response("c", [p]),
    }
    pages = compare_pages(results)
    assert [pg.index for pg in pages] == [0]  # page 1 was read by one backend only
    assert {(m.a, m.b) for m in pages[0].matches} == {("a", "b"), ("a", "c"), ("b", "c")}
