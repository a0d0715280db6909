"""Evidence for extracted fields on pages the real RapidOCR reads: generated invoices and receipts with known
values, every value found with the box it was drawn in, a planted value that is not on the page flagged."""

from __future__ import annotations

import copy

import pytest

from backends.pipeline import run_document
from backends.rapidocr import RapidOCREngine
from orchestrator.ops import samples
from shared.documents import open_document
from shared.evidence import find_evidence
from shared.json_schemas import load_preset, validation_errors
from shared.requests import OutputOptions, RunRequest
from shared.schema import OCRResponse
from tests.support.invoice_samples import Sample, invoice, receipt


@pytest.fixture(scope="module")
def engine() -> RapidOCREngine:
    e = RapidOCREngine()
    e.start()
    yield e
    e.close()


def _read(engine: RapidOCREngine, sample: Sample) -> OCRResponse:
    doc = open_document(samples.encode(sample.image))
    return run_document(
        engine, doc, RunRequest(request_id="t", output=OutputOptions(include_boxes_image=False)), backend="rapidocr"
    )


def _inside(box: list[float], drawn: tuple[int, int, int, int]) -> bool:
    cx, cy = (drawn[0] + drawn[2]) / 2, (drawn[1] + drawn[3]) / 2
    return box[0] <= cx <= box[2] and box[1] <= cy <= box[3]


@pytest.mark.parametrize(("maker", "preset"), [(invoice, "invoice"), (receipt, "receipt")])
def test_every_value_on_the_page_is_found_where_it_was_drawn(engine, maker, preset):
    sample = maker()
    assert validation_errors(load_preset(preset), sample.data) == []  # the answer an extraction would give
    page = _read(engine, sample).pages[0]
    evidence = find_evidence(sample.data, [page])
    assert sorted(e.path for e in evidence) == sorted(sample.drawn)  # every leaf
    for e in evidence:
        assert e.match != "not_found", e
        assert e.page == 0 and e.block_refs and len(e.boxes) == 1
        box = e.boxes[0].bbox
        for drawn in sample.drawn[e.path]:
            assert _inside(box, drawn), (e.path, e.value, box, drawn, e.text)
        # the box is where the value is, not the whole page: at most a few lines high
        assert box[3] - box[1] < 0.1 * page.height, (e.path, box)
    by_path = {e.path: e for e in evidence}
    if preset == "invoice":
        assert by_path["/issue_date"].match == "normalised"  # printed '14 March 2026'
        assert by_path["/due_date"].match == "normalised"  # printed '13/04/2026'
        assert by_path["/total"].match == "normalised"  # printed '5,700.00'
        assert by_path["/invoice_number"].match == "exact"
        # the same price printed twice in one row: each column's field takes its own place
        assert by_path["/line_items/1/unit_price"].candidates == 2
        assert by_path["/line_items/1/unit_price"].boxes[0].bbox != by_path["/line_items/1/amount"].boxes[0].bbox
    else:
        # the same amount on two rows: each item's amount is on its own row
        first, second = by_path["/line_items/1/amount"], by_path["/line_items/2/amount"]
        assert first.candidates == second.candidates == 2
        assert first.boxes[0].bbox != second.boxes[0].bbox


def test_a_planted_value_that_is_not_on_the_page_is_flagged_not_dropped(engine):
    sample = invoice()
    page = _read(engine, sample).pages[0]
    data = copy.deepcopy(sample.data)
    data["total"] = "9999.99"
    data["buyer"]["name"] = "Tugboat Towing Company"
    data["line_items"].append(
        {"description": "Submarine rental", "quantity": None, "unit_price": "123.45", "amount": "864.15"}
    )
    evidence = {e.path: e for e in find_evidence(data, [page])}
    for path in (
        "/total",
        "/buyer/name",
        "/line_items/3/description",
        "/line_items/3/unit_price",
        "/line_items/3/amount",
    ):
        assert evidence[path].match == "not_found" and evidence[path].boxes == [] and evidence[path].page is None
        assert evidence[path].value == data["total"] if path == "/total" else True
    assert "/line_items/3/quantity" not in evidence  # a null is no value to look for
    assert evidence["/subtotal"].match == "normalised"  # the rest is still found
