"""Evidence for extracted fields (shared.evidence) on hand-made pages: match kinds, formats, boxes, ties, flags -
and the extraction pipeline (backends.extraction.assemble) answering with it."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from backends.extraction import PageAnswer, assemble
from orchestrator.ops import samples
from shared.boxes import make_block
from shared.documents import open_document
from shared.evidence import dates, find_evidence, leaves, number_value, numbers
from shared.requests import ExtractRunRequest
from shared.schema import Line, ModelInfo, PageResult, Timings

W, H = 1000, 1000


def _page(index: int, blocks: list[tuple[str, list[float], list[tuple[str, list[float]]] | None]]) -> PageResult:
    """A page of blocks (text, box, lines or None - DeepSeek and MinerU report no lines)."""
    out = []
    for text, box, lines in blocks:
        block = make_block("text", text, box, width=W, height=H)
        if lines is not None:
            block.lines = [Line(text=t, bbox=b) for t, b in lines]
        out.append(block)
    return PageResult(index=index, width=W, height=H, markdown="", blocks=out)


def test_leaves_are_strings_and_numbers_with_json_pointers():
    data = {"a": "x", "b": {"c/d": 1.5, "e": None, "f": True, "g": ""}, "items": [{"n": 2}, "y"]}
    assert list(leaves(data)) == [("/a", "x"), ("/b/c~1d", 1.5), ("/items/0/n", 2), ("/items/1", "y")]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Total 1,234.50 EUR", {Decimal("1234.50")}),
        ("Summe 1.234,50 €", {Decimal("1234.50")}),
        ("€ 1 234.5", {Decimal("1234.5")}),
        ("Subtotal4,750.00", {Decimal("4750.00")}),
        ("1,234", {Decimal("1.234"), Decimal("1234")}),  # a thousands separator or a decimal comma
    ],
)
def test_numbers_are_read_in_every_common_format(text, expected):
    assert expected <= numbers(text)


def test_values_that_are_numbers_and_values_that_are_not():
    assert number_value("1234.50") == Decimal("1234.50") and number_value(12) == Decimal("12")
    assert number_value("EUR 12.50") == Decimal("12.50") and number_value("12.50 €") == Decimal("12.50")
    assert number_value("INV-2026") is None and number_value("GB123456789X") is None


@pytest.mark.parametrize(
    "printed",
    [
        "2026-03-14",
        "14/03/2026",
        "03/14/2026",
        "14.03.26",
        "14 March 2026",
        "14th Mar. 2026",
        "March 14, 2026",
        "Mar 14 2026",
    ],
)
def test_dates_are_read_in_common_formats(printed):
    assert dt.date(2026, 3, 14) in dates(f"Date: {printed}")


def test_match_kinds_and_tight_boxes():
    page = _page(
        0,
        [
            (
                "Invoice INV-7 of 14/03/2026",
                [100, 100, 600, 140],
                [("Invoice INV-7 of 14/03/2026", [100, 100, 600, 140])],
            ),
            (
                "Harbour Cranes Ltd\n12 Quay Street\nDover",
                [100, 200, 500, 320],
                [
                    ("Harbour Cranes Ltd", [100, 200, 500, 240]),
                    ("12 Quay Street", [100, 240, 400, 280]),
                    ("Dover", [100, 280, 200, 320]),
                ],
            ),
            ("Total due € 1.380,00", [600, 800, 950, 840], None),
            ("Lighthouse Keepers Gui1d", [600, 200, 900, 240], None),
        ],
    )
    data = {
        "number": "INV-7",
        "date": "2026-03-14",
        "address": "12 Quay Street, Dover",
        "total": "1380.00",
        "currency": "EUR",
        "buyer": "Lighthouse Keepers Guild",
        "note": "Paid by cheque",
    }
    ev = {e.path: e for e in find_evidence(data, [page])}
    assert (ev["/number"].match, ev["/number"].score) == ("exact", 1.0)
    assert ev["/date"].match == "normalised" and ev["/date"].boxes[0].bbox == [100, 100, 600, 140]
    # over two lines: the block is the place, the box the union of the lines that hold it (not the name line)
    assert ev["/address"].match == "normalised" and ev["/address"].boxes[0].bbox == [100, 240, 400, 320]
    assert ev["/address"].block_refs[0].block == 1
    assert ev["/total"].match == "normalised" and ev["/total"].block_refs[0].block == 2  # a block without lines
    assert ev["/total"].boxes[0].bbox == [600, 800, 950, 840] and ev["/total"].boxes[0].bbox_norm == [
        0.6,
        0.8,
        0.95,
        0.84,
    ]
    assert ev["/currency"].match == "normalised" and ev["/currency"].text == "Total due € 1.380,00"
    assert ev["/buyer"].match == "fuzzy" and 0.85 <= ev["/buyer"].score < 1.0  # an OCR slip: 1 for l
    assert ev["/note"].match == "not_found" and ev["/note"].score == 0 and ev["/note"].boxes == []


def test_a_number_is_never_matched_fuzzily():
    page = _page(0, [("Total 1380.01", [0, 0, 100, 20], None)])
    assert find_evidence({"total": "1380.00"}, [page])[0].match == "not_found"


def test_the_same_value_twice_goes_to_the_row_of_its_siblings_then_to_a_free_place():
    rows = []
    for i, (name, amount) in enumerate([("Coffee", "2.80"), ("Scone", "3.10"), ("Muffin", "2.80")]):
        y = 100 + 50 * i
        rows.append((name, [50, y, 300, y + 30], [(name, [50, y, 300, y + 30])]))
        rows.append((amount, [600, y, 700, y + 30], [(amount, [600, y, 700, y + 30])]))
    page = _page(0, rows)
    data = {"items": [{"d": "Coffee", "a": "2.80"}, {"d": "Scone", "a": "3.10"}, {"d": "Muffin", "a": "2.80"}]}
    ev = {e.path: e for e in find_evidence(data, [page])}
    assert ev["/items/0/a"].boxes[0].bbox[1] == 100 and ev["/items/2/a"].boxes[0].bbox[1] == 200
    assert ev["/items/0/a"].candidates == 2
    # no siblings to go by: the second of two equal values takes the place the first did not
    ev2 = find_evidence({"a": "2.80", "b": "2.80"}, [_page(0, rows[1:2] + rows[5:6])])
    assert [e.block_refs[0].block for e in ev2] == [0, 1]


def test_pages_are_searched_together_and_named():
    pages = [_page(0, [("Page one text", [0, 0, 100, 20], None)]), _page(3, [("Total 42.00", [0, 0, 100, 20], None)])]
    (e,) = find_evidence({"total": 42}, pages)
    assert e.page == 3 and e.boxes[0].page == 3 and e.block_refs[0].page == 3


def _request(scope: str, include_markdown: bool = True) -> ExtractRunRequest:
    schema = {"type": "object", "properties": {"total": {"type": ["string", "null"]}, "vendor": {"type": "string"}}}
    return ExtractRunRequest(
        request_id="r",
        received_at=0.0,
        json_schema=schema,
        schema_name="custom:x",
        scope=scope,
        include_markdown=include_markdown,
    )


@pytest.mark.parametrize("scope", ["document", "page"])
def test_the_extraction_answers_with_evidence_when_the_pages_were_ocrd(scope):
    doc = open_document(samples.multi_page_pdf(samples.numbered_pages(2)[0]), name="d.pdf")
    ocr = [
        _page(0, [("CORNER BAKERY", [10, 10, 300, 50], None)]),
        _page(1, [("TOTAL 10.10", [10, 900, 300, 950], None)]),
    ]
    answers = [
        PageAnswer(index=0, text='{"total": null, "vendor": "CORNER BAKERY"}', finish_reason="stop"),
        PageAnswer(index=1, text='{"total": "10.10", "vendor": "Planted Vendor"}', finish_reason="stop"),
    ]
    common = dict(
        backend="b",
        model=ModelInfo(id="m", engine="vllm"),
        document=doc,
        enforced_by="t",
        warnings=[],
        timings=Timings(),
    )
    result = assemble(_request(scope), answers, ocr, **common)
    if scope == "document":
        assert [p.evidence for p in result.pages] == [None, None]
        ev = {e.path: e for e in result.evidence}
        assert ev["/vendor"].page == 0 and ev["/total"].page == 1 and ev["/total"].match == "exact"
    else:
        assert result.evidence is None
        first, second = ({e.path: e for e in p.evidence} for p in result.pages)
        assert first["/vendor"].match == "exact" and "/total" not in first  # null: nothing to look for
        assert second["/total"].page == 1 and second["/vendor"].match == "not_found"  # flagged, not dropped
        assert result.pages[1].data["vendor"] == "Planted Vendor"
    without_ocr = assemble(_request(scope, include_markdown=False), answers, [], **common)
    assert without_ocr.evidence is None and all(p.evidence is None for p in without_ocr.pages)
