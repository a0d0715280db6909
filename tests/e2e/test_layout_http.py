"""RapidOCR's layout over real HTTP: tables as HTML with the right cells, furniture apart, figures as blocks.

Generated report pages (``benchmarks.support.layout_samples``) carry a known table — ruled and booktabs-style — a
running head, a page number and a chart; the dev set's paper page has a real table with spans.
"""

from __future__ import annotations

import json

import httpx
import pytest

from benchmarks.support.layout_samples import report_page
from orchestrator.ops import samples
from shared.metrics import document_teds
from shared.schema import OCRResponse
from tests.conftest import dev_file

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def client(rapidocr_url: str) -> httpx.Client:
    with httpx.Client(base_url=rapidocr_url, timeout=180) as c:
        yield c


def ocr(client: httpx.Client, data: bytes, name: str, **fields) -> OCRResponse:
    form = {k: (json.dumps(v) if isinstance(v, dict) else str(v)) for k, v in fields.items()}
    r = client.post("/v1/ocr", files={"file": (name, data)}, data={"backend": "rapidocr", **form})
    assert r.status_code == 200, r.text[:500]
    return OCRResponse.model_validate(r.json())


@pytest.mark.parametrize("bordered", [True, False], ids=["bordered", "borderless"])
def test_table_comes_back_as_html_with_the_right_cells(client, bordered):
    sample = report_page(bordered=bordered)
    result = ocr(client, samples.encode(sample.image), "report.png")
    page = result.pages[0]
    tables = [b for b in page.blocks if b.type == "table"]
    assert len(tables) == 1
    rows: dict[int, list[str]] = {}
    for cell in sorted(tables[0].cells, key=lambda c: (c.row, c.col)):
        rows.setdefault(cell.row, []).append(cell.text)
    assert list(rows.values()) == sample.table
    assert tables[0].text in result.markdown and result.markdown.count("<table>") == 1
    assert document_teds(result.markdown, sample.markdown).teds == 1.0


def test_running_head_and_page_number_are_furniture_out_of_the_markdown(client):
    sample = report_page(page_number=42)
    result = ocr(client, samples.encode(sample.image), "report.png")
    page = result.pages[0]
    headers = [b for b in page.blocks if b.type == "header"]
    footers = [b for b in page.blocks if b.type == "footer"]
    assert [b.text for b in headers] == [sample.header] and [b.text for b in footers] == ["42"]
    assert sample.header not in result.markdown and "42" not in result.markdown
    kept = ocr(client, samples.encode(sample.image), "report.png", options={"include_page_furniture": True})
    assert sample.header in kept.markdown and kept.markdown.rstrip().endswith("42")


def test_figure_region_becomes_a_figure_block_and_the_boxes_image_shows_it(client):
    sample = report_page()
    result = ocr(client, samples.encode(sample.image), "report.png", include_boxes_image="true")
    figures = [b for b in result.pages[0].blocks if b.type == "figure"]
    assert len(figures) == 1 and figures[0].label == "figure"
    x0, y0, x1, y1 = figures[0].bbox
    fx0, fy0, fx1, fy1 = sample.figure_box
    assert abs(x0 - fx0) < 60 and abs(y0 - fy0) < 60 and abs(x1 - fx1) < 60 and abs(y1 - fy1) < 60
    assert "![figure](#page-1-figure-1)" in result.markdown
    assert result.pages[0].boxes_image


def test_layout_off_per_request_gives_lines_and_paragraphs(client):
    result = ocr(client, samples.encode(report_page().image), "report.png", options={"layout": False})
    assert {b.type for b in result.pages[0].blocks} <= {"text", "title"}
    assert "<table>" not in result.markdown


def test_real_paper_table_over_http(client):
    path = dev_file("pdfs/2305.03393v1-pg9.pdf")
    result = ocr(client, path.read_bytes(), path.name)
    tables = [b for b in result.pages[0].blocks if b.type == "table"]
    assert len(tables) == 1 and {"OTSL", "HTML", "0.965"} <= {c.text for c in tables[0].cells}
    assert "Optimized Table Tokenization" not in result.markdown  # the running head is furniture
