"""The layout pass never loses a page: on every page of the real corpus, the words of the plain line reading are in
the layout reading's markdown (page furniture and the labels of real pictures aside, and those bounded).

``tests/data/corpus`` holds 49 real pages of many kinds (scans, letters, forms, slides, posters, newspapers, full-page
tables, math; sources and licences in its README). What the models saw on each page — the OCR lines and the layout
regions, at the service's default DPI — is recorded beside it (``observations/``, written by
``benchmarks/rapidocr_layout.py --observations``), so both readings of every page are composed here by the engine's
own code (tables by the real structure model) in seconds instead of minutes of OCR. That the record is what these
models see is checked live on a sample of pages: the models run again and must see the same lines and regions.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from backends.rapidocr import RapidOCREngine
from backends.rapidocr.compose import ComposeSettings, PageReading, left_out
from backends.rapidocr.engine import PageObservation
from backends.rapidocr.regions import RegionLimits, is_prose
from shared.documents import open_document, rasterize_page
from shared.metrics import word_list, word_recall

CORPUS = Path(__file__).resolve().parents[1] / "data" / "corpus"
PAGES = [json.loads(line) for line in (CORPUS / "manifest.jsonl").read_text().splitlines() if line.strip()]
IDS = [p["id"] for p in PAGES]
WAYS = {"lines": ComposeSettings(layout=False, tables=False), "layout": ComposeSettings()}
LIVE = ["bfh-slide-title", "recipe-cards", "line-chart", "sf424-form", "pypdf-example"]
"""Checked against the live models: pages taken for one figure, a real chart, a form, a page with a table."""


@pytest.fixture(scope="module")
def engine() -> RapidOCREngine:
    e = RapidOCREngine()
    e.start()
    return e


def recorded(page_id: str) -> tuple[dict, PageObservation]:
    data = json.loads((CORPUS / "observations" / f"{page_id}.json").read_text())
    return data, PageObservation.from_dict(data)


def image_of(entry: dict, dpi: float):
    page = rasterize_page(open_document((CORPUS / entry["file"]).read_bytes(), dpi=dpi), 0)
    assert page.image is not None
    return page.image


def assert_nothing_lost(readings: dict[str, PageReading]) -> None:
    """Every word of the line reading is in the layout reading's markdown, but what it leaves out by design; and
    that is what the rules say: labels of real pictures (no sentences), furniture blocks of a line or two."""
    plain, laid_out = readings["lines"].result, readings["layout"].result
    out = left_out(laid_out)
    aside = Counter(w for t in out["furniture"] + out["picture"] for w in word_list(t))
    expected = Counter(word_list(plain.markdown)) - aside
    recall = word_recall(laid_out.markdown, list(expected.elements()))
    assert recall >= 0.98, (recall, laid_out.warnings)

    limits = RegionLimits()
    sentences = [t for t in out["picture"] if is_prose(t, limits)]
    assert len(sentences) < limits.figure_prose_lines, sentences
    assert sum(len(word_list(t)) for t in out["picture"]) <= max(12, 0.25 * len(word_list(plain.markdown)))
    assert all(len(b.lines or []) <= 2 for b in laid_out.blocks if b.type in ("header", "footer"))
    for label in {b.label for b in laid_out.blocks if b.label and "→text" in b.label}:
        assert any(w.startswith(label) for w in laid_out.warnings)  # a region read as text says why


def test_the_corpus_is_broad_and_every_page_says_where_it_comes_from():
    assert len(PAGES) >= 40 and len(set(IDS)) == len(PAGES)
    for page in PAGES:
        assert (CORPUS / page["file"]).is_file() and page["source"] and page["licence"] and page["kind"]
        assert page["truth"] is None or (CORPUS / page["truth"]).is_file()
        assert (CORPUS / "observations" / f"{page['id']}.json").is_file()
    kinds = " ".join(p["kind"] for p in PAGES)
    for kind in ("scan", "letter", "form", "slide", "poster", "newspaper", "table", "math", "chart", "typewritten"):
        assert kind in kinds, kind


@pytest.mark.parametrize("entry", PAGES, ids=IDS)
def test_the_layout_pass_keeps_every_word_of_the_line_reading(engine, entry):
    data, seen = recorded(entry["id"])
    image = image_of(entry, data["dpi"])
    assert image.size == (data["width"], data["height"])
    readings, _ = engine.compose_ways(image, seen, WAYS, dpi=data["dpi"])
    assert_nothing_lost(readings)


def test_pages_taken_for_one_figure_are_read_whole_and_say_so(engine):
    for page_id in ("bfh-slide-title", "recipe-cards", "testflow-page", "minimalistic-slide-dark"):
        entry = PAGES[IDS.index(page_id)]
        data, seen = recorded(page_id)
        readings, _ = engine.compose_ways(image_of(entry, data["dpi"]), seen, WAYS, dpi=data["dpi"])
        page = readings["layout"].result
        assert "![figure]" not in page.markdown and len(word_list(page.markdown)) >= 5
        assert any(b.label == "figure→text" for b in page.blocks)
        assert any(w.startswith("figure→text: figure region") for w in page.warnings)


@pytest.mark.parametrize("page_id", LIVE)
def test_the_record_is_what_the_models_see(engine, page_id):
    entry = PAGES[IDS.index(page_id)]
    data, seen = recorded(page_id)
    image = image_of(entry, data["dpi"])
    readings, _, live = engine.read_ways(image, WAYS, dpi=data["dpi"])
    words = [w for line in live.lines for w in word_list(line.text)]
    were = [w for line in seen.lines for w in word_list(line.text)]
    assert word_recall(words, were) >= 0.97 and word_recall(were, words) >= 0.97
    assert live.regions is not None and seen.regions is not None
    assert Counter(r.label for r in live.regions) == Counter(r.label for r in seen.regions)
    assert_nothing_lost(readings)
