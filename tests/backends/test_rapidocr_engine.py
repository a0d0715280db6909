"""The RapidOCR engine in-process (real bundled models): text, reading order, blocks, health."""

from __future__ import annotations

import pytest

from backends.pipeline import run_document
from backends.rapidocr import FAST_PARAMS, RapidOCREngine
from orchestrator.ops import samples
from shared.documents import open_document
from shared.errors import OCRError
from shared.metrics import ned
from tests.conftest import dev_file
from tests.support.runs import run_request


@pytest.fixture(scope="module")
def engine() -> RapidOCREngine:
    e = RapidOCREngine()
    e.start()
    return e


def ocr(engine, data: bytes, **kw):
    return run_document(
        engine,
        open_document(data),
        run_request("t", **kw),
        backend="rapidocr",
    )


def test_health_reports_model_versions_and_settings(engine):
    h = engine.health()
    assert h.ready and h.model.engine == "onnxruntime" and h.model.version
    assert h.info["params"] == FAST_PARAMS


def test_two_columns_title_and_paragraph_blocks(engine):
    image, truth = samples.two_column_page()
    result = ocr(engine, samples.encode(image), include_raw=True)
    assert ned(result.markdown, truth) <= 0.02
    page = result.pages[0]
    assert len(page.blocks) == 6  # six paragraphs, each its own block
    assert all(b.lines and b.score and 0 < b.score <= 1 for b in page.blocks)
    assert page.blocks[0].bbox[0] < page.width / 2 < page.blocks[3].bbox[0]  # left column first
    assert result.raw_result["pages"][0]["lines"][0]["box"]  # native quadrilaterals kept


def test_title_detected_and_rendered_as_heading(engine):
    image, _ = samples.one_column_page(title="Quarterly Report")
    result = ocr(engine, samples.encode(image))
    first = result.pages[0].blocks[0]
    assert first.type == "title" and first.text == "Quarterly Report"
    assert result.markdown.startswith("# Quarterly Report")


def test_options_change_behaviour_and_are_validated(engine):
    image, _ = samples.two_column_page()
    per_line = ocr(engine, samples.encode(image), options={"paragraphs": False})
    assert len(per_line.pages[0].blocks) > 6
    nothing = ocr(engine, samples.encode(image), options={"min_score": 1.0})
    assert nothing.pages[0].blocks == [] and nothing.markdown == ""
    with pytest.raises(OCRError) as e:
        ocr(engine, samples.encode(image), options={"min_score": 7})
    assert e.value.code == "invalid_option" and "min_score" in e.value.accepted


def test_blank_page_gives_an_empty_page_not_an_error(engine):
    from PIL import Image

    result = ocr(engine, samples.encode(Image.new("RGB", (600, 800), "white")))
    assert len(result.pages) == 1 and result.pages[0].blocks == []


@pytest.mark.parametrize(
    "name,reference,limit",
    [
        ("phototest.tif", "phototest.gold.txt", 0.05),
        ("eurotext.tif", "eurotext.txt", 0.05),
        ("8071_093.3B.tif", "8071_093.3B.txt", 0.20),
    ],
)
def test_dev_scans(engine, name, reference, limit):
    path = dev_file(f"images/{name}")
    result = ocr(engine, path.read_bytes())
    assert ned(result.markdown, path.with_name(reference).read_text()) <= limit
