"""Optical compression and extraction refusals over real HTTP on the CPU application (RapidOCR, fakes).

``POST /v1/render`` draws text into pages and says what they cost per DeepSeek mode, with the estimate standing in
for a tokenizer (no DeepSeek backend here); ``ocrserve compress-bench`` renders a passage per mode and has RapidOCR
read it back; ``POST /v1/extract`` is refused where no backend enforces a schema, saying so.
"""

from __future__ import annotations

import base64
import io
import json

import httpx
import pytest
from PIL import Image
from typer.testing import CliRunner

from orchestrator.client import OCRClient
from orchestrator.evaluation.compression import run_compression
from orchestrator.ops import samples
from orchestrator.ops.cli import app
from shared.tokens import ESTIMATE_NAME, estimate_tokens

pytestmark = pytest.mark.cluster

TEXT = (
    "Ray Serve runs each model in its own replica.\n"
    "The router checks every upload before any page reaches a model.\n"
    "Each backend answers in the same schema."
)


def test_render_returns_pages_vision_tokens_per_mode_and_the_estimate(rapidocr_url):
    with httpx.Client(base_url=rapidocr_url, timeout=120) as client:
        r = client.post("/v1/render", json={"text": TEXT, "mode": "tiny", "font": "proportional", "dpi": 200})
        assert r.status_code == 200, r.text
        bad = client.post("/v1/render", json={"text": TEXT, "mode": "huge"})
        named = client.post("/v1/render", json={"text": TEXT, "backend": "rapidocr"})
        missing = client.post("/v1/render", json={"text": TEXT, "backend": "nope"})
    body = r.json()
    assert body["tokenizer"] == ESTIMATE_NAME and body["text_tokens"] == estimate_tokens(TEXT)
    assert body["font"].startswith("proportional") and body["font_size_px"] == 11
    page = body["pages"][0]
    image = Image.open(io.BytesIO(base64.b64decode(page["png"])))
    assert image.size == (512, 512) == (page["width"], page["height"]) and round(image.info["dpi"][0]) == 200
    assert page["text"] == TEXT
    tiny = next(m for m in body["modes"] if m["mode"] == "tiny" and m["model"] == "DeepSeek-OCR")
    assert tiny["vision_tokens"] == 64 and tiny["compression_ratio"] == round(body["text_tokens"] / 64, 3)
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_option"
    assert named.status_code == 400 and "no model tokenizer" in named.json()["error"]["message"]
    assert missing.status_code == 404 and "rapidocr" in missing.json()["error"]["accepted"]


def test_rapidocr_reads_rendered_text_back_and_the_bench_scores_it(rapidocr_url):
    with OCRClient(rapidocr_url) as client:
        rows = run_compression(client, backends=["rapidocr"], modes=["small", "base"], corpus=[("t", TEXT)])
    small, base = rows
    assert (small.mode, base.mode) == ("small", "base") and small.vision_tokens == 100 and base.vision_tokens == 256
    assert small.ratio == pytest.approx(estimate_tokens(TEXT) / 100)
    assert base.precision is not None and base.precision > 0.9  # large clean text: RapidOCR reads it
    assert base.exact_rate is not None and base.exact_rate >= 2 / 3
    assert small.failures == base.failures == 0 and small.vision_ran is None  # RapidOCR reports no vision tokens


def test_compress_bench_command_prints_the_table(rapidocr_url, tmp_path):
    corpus = tmp_path / "one.txt"
    corpus.write_text(TEXT)
    out = tmp_path / "bench.json"
    result = CliRunner().invoke(
        app,
        ["compress-bench", "--url", rapidocr_url, "--modes", "base", "--corpus", str(corpus), "--json", str(out)],
        env={"COLUMNS": "200"},  # the table is wide; rich reads the terminal width from COLUMNS
    )
    assert result.exit_code == 0, result.output
    assert "compression" in result.output and "precision" in result.output
    (row,) = json.loads(out.read_text())
    assert row["mode"] == "base" and row["backend"] == "rapidocr" and row["vision_tokens"] == 256


def test_extract_is_refused_where_no_backend_enforces_a_schema(rapidocr_url):
    png = samples.encode(samples.one_column_page(width=440)[0])
    with httpx.Client(base_url=rapidocr_url, timeout=120) as client:
        auto = client.post("/v1/extract", files={"file": ("p.png", png)}, data={"preset": "receipt"})
        named = client.post(
            "/v1/extract", files={"file": ("p.png", png)}, data={"preset": "receipt", "backend": "rapidocr"}
        )
        schema = client.post("/v1/extract", files={"file": ("p.png", png)}, data={"json_schema": '{"type": "objekt"}'})
        preset = client.post("/v1/extract", files={"file": ("p.png", png)}, data={"preset": "passport"})
    assert auto.status_code == 400 and auto.json()["error"]["accepted"] == {"backends": []}
    assert "none declares the capability" in auto.json()["error"]["message"]  # no engine named (issue 25)
    assert named.status_code == 400 and "cannot extract" in named.json()["error"]["message"]
    assert schema.status_code == 400 and "not a valid JSON Schema" in schema.json()["error"]["message"]
    assert preset.status_code == 400 and preset.json()["error"]["accepted"]["preset"] == [
        "receipt",
        "invoice",
        "id_card",
    ]
