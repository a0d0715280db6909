"""RapidOCR's layout pass with the real bundled models, in-process: tables, furniture, figures, options, cost."""

from __future__ import annotations

import pytest

from backends.pipeline import run_document
from backends.rapidocr import RapidOCREngine
from benchmarks.support.layout_samples import report_page
from orchestrator.ops import samples
from shared.documents import open_document
from shared.metrics import document_teds, ned
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


@pytest.mark.parametrize("bordered", [True, False], ids=["bordered", "borderless"])
def test_report_page_reads_as_a_document(engine, bordered):
    sample = report_page(bordered=bordered)
    result = ocr(engine, samples.encode(sample.image), include_raw=True)
    page = result.pages[0]
    types = [b.type for b in page.blocks]
    assert types == ["header", "title", "text", "caption", "table", "figure", "caption", "text", "footer"]
    table = page.blocks[types.index("table")]
    grid: dict[tuple[int, int], str] = {(c.row, c.col): c.text for c in table.cells}
    assert grid == {(r, c): text for r, row in enumerate(sample.table) for c, text in enumerate(row)}
    assert all(c.bbox[0] < c.bbox[2] and c.bbox[1] < c.bbox[3] for c in table.cells)
    assert table.text.startswith("<table><tr><td>Backend</td>") and table.text in page.markdown
    assert page.blocks[0].text == sample.header and sample.header not in page.markdown
    footer = page.blocks[-1]
    assert footer.text == sample.page_number and footer.label == "page_number"
    assert not page.markdown.rstrip().endswith(sample.page_number)
    figure = page.blocks[types.index("figure")]
    fx0, fy0, fx1, fy1 = sample.figure_box
    assert figure.bbox[0] < fx0 + 60 and figure.bbox[2] > fx1 - 60 and figure.bbox[1] < fy0 + 60
    assert "![figure](#page-1-figure-1)" in page.markdown
    assert ned(result.markdown, sample.markdown) <= 0.02
    assert document_teds(result.markdown, sample.markdown).teds == 1.0
    timings = result.raw_result["pages"][0]["timings"]
    assert set(timings) == {"ocr_s", "layout_s", "tables_s", "compose_s"} and timings["layout_s"] > 0
    assert {r["label"] for r in result.raw_result["pages"][0]["regions"]} >= {"table", "figure", "header"}


def test_options_switch_layout_tables_and_furniture(engine):
    data = samples.encode(report_page().image)
    plain = ocr(engine, data, options={"layout": False}, include_raw=True)
    assert {b.type for b in plain.pages[0].blocks} <= {"text", "title"}
    assert "regions" in plain.raw_result["pages"][0] and "layout_s" not in plain.raw_result["pages"][0]["timings"]
    no_tables = ocr(engine, data, options={"tables": False}).pages[0]
    table = next(b for b in no_tables.blocks if b.type == "table")
    assert table.cells is None and "<table>" not in no_tables.markdown and "DeepSeek" in table.text
    furniture = ocr(engine, data, options={"include_page_furniture": True})
    assert furniture.markdown.startswith("Journal of Document Serving")


def test_a_backend_configured_without_layout_models_says_so(engine):
    lean = RapidOCREngine({"load_layout_models": False, "warmup": False})
    lean._ocr = engine._ocr  # share the loaded OCR models: this test is about the missing layout models
    result = ocr(lean, samples.encode(report_page().image))
    assert {b.type for b in result.pages[0].blocks} <= {"text", "title"}
    assert any("load_layout_models" in w for w in result.warnings)
    assert "layout_model" not in lean.health().info and "layout_model" in engine.health().info


def test_health_names_the_bundled_layout_and_table_models(engine):
    info = engine.health().info
    assert info["layout_model"]["file"].endswith("layout_cdla.onnx")
    assert info["table_model"]["file"].endswith("slanet-plus.onnx") and "0.3.0" in info["table_model"]["package"]


def test_real_paper_page_table_comes_back_as_html_with_spans(engine):
    path = dev_file("pdfs/2305.03393v1-pg9.pdf")
    result = ocr(engine, path.read_bytes())
    page = result.pages[0]
    tables = [b for b in page.blocks if b.type == "table"]
    assert len(tables) == 1 and tables[0].cells and len(tables[0].cells) >= 40
    texts = {c.text for c in tables[0].cells}
    assert {"OTSL", "HTML", "0.965", "Language"} <= texts
    assert any(c.col_span > 1 or c.row_span > 1 for c in tables[0].cells)
    # running head and page number are furniture, out of the markdown
    assert [b.type for b in page.blocks[:2]] == ["header", "header"]
    assert "Optimized Table Tokenization" not in page.markdown
    reference = path.with_suffix(".md").read_text()
    assert ned(result.markdown, reference) <= 0.10  # 0.150 before the layout pass (furniture in the text)
    assert document_teds(result.markdown, reference).teds_structure > 0.5


def test_defaults_come_from_the_backend_config(engine):
    from backends.registry import check_engine_settings

    data = samples.encode(report_page().image)
    engine.reconfigure({"layout": False})  # what default_options / user_config set for a whole backend
    try:
        assert {b.type for b in ocr(engine, data).pages[0].blocks} <= {"text", "title"}
        assert any(b.type == "table" for b in ocr(engine, data, options={"layout": True}).pages[0].blocks)
    finally:
        engine.reconfigure({})
    with pytest.raises(ValueError, match="layout"):
        check_engine_settings("rapidocr", {}, {"layout": "sometimes"})
    with pytest.raises(ValueError, match="furniture_band"):
        check_engine_settings("rapidocr", {"furniture_band": 0.9}, {})


def test_missing_opencv_system_libraries_are_explained():
    from backends.rapidocr.engine import _opencv_hint

    hint = _opencv_hint(ImportError("libGL.so.1: cannot open shared object file"))
    assert "apt-get install libgl1" in hint and "opencv-python-headless" in hint
    assert _opencv_hint(ImportError("No module named 'rapidocr'")) == "No module named 'rapidocr'"
