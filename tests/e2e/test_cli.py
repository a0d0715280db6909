"""The command-line client against the running service: files written, chunks merged in page order."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from orchestrator.ops import samples
from orchestrator.ops.cli import app
from shared.metrics import ned

pytestmark = pytest.mark.cluster


def test_ocr_command_writes_markdown_json_and_boxes_per_page(rapidocr_url, tmp_path):
    images, texts = samples.numbered_pages(5)
    pdf = tmp_path / "five.pdf"
    pdf.write_bytes(samples.multi_page_pdf(images))
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app, ["ocr", str(pdf), "--url", rapidocr_url, "--backend", "rapidocr", "--chunk-pages", "2", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    saved = json.loads((out / "five.json").read_text())
    assert saved["document"]["pages_processed"] == [0, 1, 2, 3, 4]  # three requests, merged in order
    assert [p["index"] for p in saved["pages"]] == [0, 1, 2, 3, 4]
    assert sorted(p.name for p in out.glob("five.page-*.boxes.png")) == [
        f"five.page-{i}.boxes.png" for i in range(1, 6)
    ]
    assert ned((out / "five.md").read_text(), "\n\n".join(texts)) <= 0.05


def test_ocr_command_reports_service_errors(rapidocr_url, tmp_path):
    bad = tmp_path / "empty.pdf"
    bad.write_bytes(b"%PDF-1.4 nothing")
    result = CliRunner().invoke(app, ["ocr", str(bad), "--url", rapidocr_url, "--out", str(tmp_path)])
    assert result.exit_code == 1
    assert "invalid_document" in result.output


def test_backends_command(rapidocr_url):
    result = CliRunner().invoke(app, ["backends", "--url", rapidocr_url])
    assert result.exit_code == 0 and "rapidocr" in result.output and "ready" in result.output


def test_ocr_command_writes_the_servers_chunks_as_json_lines(rapidocr_url, tmp_path):
    """A document that fits one request: the service cuts the chunks (the /v1/ocr chunking fields) and the CLI
    writes them; the words of the chunks are the markdown's."""
    images, _ = samples.numbered_pages(2)
    pdf = tmp_path / "two.pdf"
    pdf.write_bytes(samples.multi_page_pdf(images))
    out = tmp_path / "out"
    args = ["ocr", str(pdf), "--url", rapidocr_url, "--backend", "rapidocr", "--out", str(out)]
    result = CliRunner().invoke(app, [*args, "--chunks", "tokens", "--chunk-tokens", "32", "--chunk-overlap", "8"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in (out / "two.chunks.jsonl").read_text().splitlines()]
    assert len(lines) > 1 and all(c["chunking"]["mode"] == "tokens" and c["tokens"] <= 32 for c in lines)
    own = " ".join(c["text"][c["overlap_chars"] :] for c in lines).split()
    assert own == (out / "two.md").read_text().split()
    assert {p for c in lines for p in c["pages"]} == {0, 1} and all(c["boxes"] for c in lines)
