"""Where people plug the service in, over real HTTP through Ray Serve: OpenAI's chat API read by the official
``openai`` client and by MinerU's own OCR client (``mineru-vl-utils``, from PyPI), and chunks for retrieval on
the dev documents.

One application for the module (RapidOCR, MinerU's model-free flash tier, a cascade, an API key taken as
``Authorization: Bearer``), every check made against it. DeepSeek-OCR on real vLLM through the same route:
tests/e2e/test_deepseek_vllm_http.py (its module already serves the tiny model).
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image

from backends.textpdf import article_pages
from benchmarks.support.layout_samples import report_page
from orchestrator.ops import samples
from shared.schema import OCRResponse
from shared.tokens import bundled_counter
from tests.conftest import dev_file
from tests.e2e.test_ui import SHOTS, shot  # README screenshots with OCRSERVE_SCREENSHOTS=docs
from tests.support.chunk_checks import check_chunks

pytestmark = pytest.mark.cluster
openai = pytest.importorskip("openai", reason="the openai client is in the test extra")

APP = "openai"
KEY = "plugin-key"
MINERU = {
    "engine": "mineru",
    "engine_config": {"default_tier": "flash", "tiers": ["flash"], "parse_memory_mb": 1024},
    "max_rss_mb": 1536,
    "deployment": {"max_ongoing_requests": 2, "ray_actor_options": {"num_cpus": 0.3}},
}
PAGE, PAGE_TEXT = samples.one_column_page(width=900)
PNG = samples.encode(PAGE)


def _data_url(data: bytes, media_type: str = "image/png") -> str:
    return f"data:{media_type};base64,{base64.b64encode(data).decode()}"


def _image(url: str) -> dict:
    return {"type": "image_url", "image_url": {"url": url}}


@pytest.fixture(scope="module")
def url(deploy_app) -> Iterator[str]:
    yield deploy_app(
        APP,
        {
            "backends": {
                "rapidocr": {"engine": "rapidocr", "deployment": {"ray_actor_options": {"num_cpus": 0.3}}},
                "mineru": MINERU,
            },
            "router": {
                "api_key": KEY,
                "auto_order": ["rapidocr", "mineru"],
                "cascades": {"cascade": {"first": "mineru", "then": "rapidocr"}},
                "limits": {"max_bytes": 4_000_000, "max_pixels_per_page": 8_000_000},
            },
            "jobs_enabled": False,
        },
    )
    deploy_app.retire(APP)


@pytest.fixture(scope="module")
def client(url):
    with openai.OpenAI(base_url=f"{url}/v1", api_key=KEY, max_retries=0, timeout=300) as c:
        yield c


@pytest.fixture(scope="module")
def http(url):
    with httpx.Client(base_url=url, timeout=300, headers={"x-api-key": KEY}) as c:
        yield c


def _words(text: str) -> set[str]:
    return {w.strip(".,;:").lower() for w in text.split() if len(w) > 3}


def test_openai_client_lists_models_and_reads_a_page_plain_and_streamed_as_v1_ocr_does(client, http):
    assert [m.id for m in client.models.list()] == ["auto", "rapidocr", "mineru", "cascade"]
    messages = [{"role": "user", "content": [_image(_data_url(PNG))]}]
    answer = client.chat.completions.create(model="rapidocr", messages=messages, temperature=0)
    ocr = http.post("/v1/ocr", files={"file": ("p.png", PNG)}, data={"backend": "rapidocr"}).json()
    content = answer.choices[0].message.content
    assert content == ocr["markdown"] and answer.choices[0].finish_reason == "stop"
    assert len(_words(content) & _words(PAGE_TEXT)) >= len(_words(PAGE_TEXT)) * 0.8
    assert answer.usage.completion_tokens == bundled_counter().count([content])[0]
    assert answer.model == "rapidocr" and answer.object == "chat.completion"

    stream = client.chat.completions.create(
        model="rapidocr", messages=messages, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed == content
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == answer.usage.total_tokens


def test_raw_stream_ends_with_done(http):
    body = {"model": "rapidocr", "stream": True, "messages": [{"role": "user", "content": [_image(_data_url(PNG))]}]}
    r = http.post("/v1/chat/completions", json=body, headers={"authorization": f"Bearer {KEY}"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    events = [line for line in r.text.split("\n\n") if line]
    assert all(e.startswith("data: ") for e in events) and events[-1] == "data: [DONE]"


def test_openai_client_through_mineru_flash_with_a_pdf_file_part_and_through_the_cascade(client):
    pdf = article_pages([samples.PARAGRAPHS[:2]], titles=["Serving notes"])
    part = {"type": "file", "file": {"file_data": _data_url(pdf, "application/pdf"), "filename": "notes.pdf"}}
    answer = client.chat.completions.create(model="mineru", messages=[{"role": "user", "content": [part]}])
    content = answer.choices[0].message.content
    assert "Serving notes" in content and samples.PARAGRAPHS[0].split()[0] in content
    assert answer.model_extra["ocrserve"]["backends"] == ["mineru"]
    streamed = client.chat.completions.create(
        model="cascade", messages=[{"role": "user", "content": [part]}], stream=True
    )
    assert "Serving notes" in "".join(c.choices[0].delta.content or "" for c in streamed if c.choices)


def test_mineru_vl_utils_two_step_client_reads_a_page_through_the_service(url):
    from mineru_vl_utils import MinerUClient

    mineru = MinerUClient(
        backend="http-client",
        server_url=f"{url}/v1",
        model_name="rapidocr",
        server_headers={"Authorization": f"Bearer {KEY}"},
        max_retries=0,
        use_tqdm=False,
    )
    blocks = mineru.two_step_extract(PAGE)
    assert blocks and all(len(b["bbox"]) == 4 and all(0 <= v <= 1 for v in b["bbox"]) for b in blocks)
    text = " ".join(b.get("content") or "" for b in blocks)
    assert len(_words(text) & _words(PAGE_TEXT)) >= len(_words(PAGE_TEXT)) * 0.6, text[:300]


def _huge_png() -> bytes:
    buf = io.BytesIO()
    Image.new("L", (4000, 4000), 255).save(buf, format="PNG")  # 16 Mpx, a few KB: over the pixel limit only
    return buf.getvalue()


@pytest.mark.parametrize(
    ("content", "model", "status", "code"),
    [
        ([{"type": "text", "text": "Read this."}], "rapidocr", 400, "invalid_option"),  # no image
        ([_image("https://example.com/page.png")], "rapidocr", 400, "invalid_option"),  # remote URL
        ([_image(_data_url(PNG))], "gpt-4o", 404, "model_not_found"),  # unknown model
        ([_image(_data_url(b"x" * 4_100_000))], "rapidocr", 413, "document_too_large"),  # over max_bytes
        ([_image("huge")], "rapidocr", 413, "too_many_pixels"),  # over max_pixels_per_page
        ([_image("data:image/png;base64,%%%%")], "rapidocr", 400, "invalid_option"),  # bad data URL
        (
            [_image(_data_url(b"not an image at all"))],
            "rapidocr",
            415,
            "unsupported_media_type",
        ),  # bytes of no known type
    ],
)
def test_every_bad_input_gets_its_4xx_in_openais_error_shape(client, http, content, model, status, code):
    content = [_image(_data_url(_huge_png())) if p.get("image_url", {}).get("url") == "huge" else p for p in content]
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model=model, messages=[{"role": "user", "content": content}])
    e = caught.value
    assert e.status_code == status, e.message
    assert isinstance(e.body, dict) and {"message", "type", "param", "code"} <= set(e.body)
    assert e.type == ("not_found_error" if status == 404 else "invalid_request_error")
    if code is not None:
        assert e.code == code, e.body


def test_a_wrong_key_gets_401_in_openais_shape(url):
    with openai.OpenAI(base_url=f"{url}/v1", api_key="wrong", max_retries=0) as bad:
        with pytest.raises(openai.AuthenticationError) as caught:
            bad.models.list()
    assert caught.value.status_code == 401 and caught.value.code == "unauthorized"


@pytest.mark.parametrize(
    ("backend", "file", "form"),
    [
        ("rapidocr", "pdfs/2305.03393v1-pg9.pdf", {"chunking": "layout", "chunk_tokens": "128"}),
        ("mineru", "pdfs/multi_page.pdf", {"chunking": "tokens", "chunk_tokens": "96", "chunk_overlap": "24"}),
        ("rapidocr", "images/phototest.tif", {"chunking": "tokens", "chunk_tokens": "40", "tokenizer": "o200k_base"}),
    ],
)
def test_chunks_over_http_on_dev_documents_keep_their_promises(http, backend, file, form):
    path = dev_file(file)
    data = {"backend": backend, "include_boxes_image": "false", **form}
    r = http.post("/v1/ocr", files={"file": (path.name, path.read_bytes())}, data=data)
    assert r.status_code == 200, r.text[:300]
    result = OCRResponse.model_validate(r.json())
    assert result.chunks and result.chunking is not None
    assert (result.chunking.mode, result.chunking.chunk_tokens) == (form["chunking"], int(form["chunk_tokens"]))
    check_chunks(result, result.chunks, result.chunking, bundled_counter(form.get("tokenizer", "cl100k_base")))
    assert any(c.block_refs for c in result.chunks)
    if "pg9" in file:
        assert any("<table" in c.text.lower() for c in result.chunks)  # the table RapidOCR finds, whole (checked)


def open_with_rapidocr(page, url: str) -> None:
    """The web page, signed in with the service's key, RapidOCR the only backend ticked."""
    page.goto(f"{url}/ui/")
    page.wait_for_selector("#key-panel:not([hidden])")
    page.fill("#api-key", KEY)
    page.click("#key-form button[type=submit]")
    page.wait_for_selector("#backend-list .backend")
    for box in page.locator("#backend-list input[name=backend]").all():
        box.set_checked(box.get_attribute("value") == "rapidocr")


def test_web_page_lists_chunks_and_draws_a_chunks_source_blocks_on_hover(url, page, tmp_path):
    open_with_rapidocr(page, url)
    page.select_option("#chunking", "layout")
    page.fill("#chunk-tokens", "64")
    path = tmp_path / "report.png"
    path.write_bytes(samples.encode(report_page().image))  # sections, a table, a figure: several chunks
    page.set_input_files("#file-input", str(path))
    page.wait_for_selector("#file-summary:has-text('report.png')")
    with page.expect_response(lambda r: r.url.endswith("/v1/ocr")) as answer:
        page.click("#run")
    result = OCRResponse.model_validate(answer.value.json())
    assert len(result.chunks) > 1 and (result.chunking.mode, result.chunking.chunk_tokens) == ("layout", 64)
    rows = page.locator(".chunk-list .chunk")
    rows.first.wait_for()
    assert rows.count() == len(result.chunks)
    for k in (0, len(result.chunks) - 1):
        rows.nth(k).hover()
        marked = page.evaluate(
            "() => [...document.querySelectorAll('.single-view .overlay .block.from-chunk')].map(b => +b.dataset.index)"
        )
        assert marked == [r.block for r in result.chunks[k].block_refs], k
    page.mouse.move(0, 0)
    assert page.locator(".single-view .overlay .block.from-chunk").count() == 0
    rows.first.focus()  # the keyboard too: a focused chunk keeps its blocks drawn
    assert page.locator(".single-view .overlay .block.from-chunk").count() == len(result.chunks[0].block_refs)
    if SHOTS:
        page.screenshot(path=str(Path(SHOTS) / "ui-chunks.png"), full_page=True)


def test_web_page_draws_each_extracted_fields_evidence_boxes(url, http, page, tmp_path):
    """The extract view over an answer whose evidence shared.evidence found in the real RapidOCR's reading of a
    generated invoice (a planted value flagged). /v1/extract needs DeepSeek on vLLM, which this app has not: the
    browser's request is answered with that ExtractResponse, so what is checked is the page's drawing of it."""
    from shared.evidence import find_evidence
    from shared.schema import ExtractResponse, PageExtraction
    from tests.support.invoice_samples import invoice

    sample = invoice()
    png = samples.encode(sample.image)
    r = http.post("/v1/ocr", files={"file": ("invoice.png", png)}, data={"backend": "rapidocr"})
    ocr = OCRResponse.model_validate(r.json())
    data = {**sample.data, "total": "9999.99"}  # planted: not on the page
    evidence = find_evidence(data, ocr.pages)
    answer = ExtractResponse(
        request_id="ui", backend="rapidocr", model=ocr.model, document=ocr.document, json_schema="preset:invoice",
        scope="document", data=data, valid=True, enforced_by="test", usage=ocr.usage, evidence=evidence,
        pages=[PageExtraction(index=0, data=data, valid=True)],
    )  # fmt: skip
    page.route("**/v1/extract", lambda route: route.fulfill(json=answer.model_dump(mode="json")))
    open_with_rapidocr(page, url)
    page.select_option("#extract-preset", "invoice")
    path = tmp_path / "invoice.png"
    path.write_bytes(png)
    page.set_input_files("#file-input", str(path))
    page.wait_for_selector("#file-summary:has-text('invoice.png')")
    page.click("#run")
    fields = page.locator(".extract-view .field")
    fields.first.wait_for()
    assert fields.count() == len(evidence)
    assert page.locator(".extract-view .evidence-box").count() == sum(len(e.boxes) for e in evidence)
    k = next(i for i, e in enumerate(evidence) if e.path == "/invoice_number")
    fields.nth(k).hover()
    rects = page.evaluate(
        """() => { const o = document.querySelector('.extract-view .overlay').getBoundingClientRect();
        return [...document.querySelectorAll('.extract-view .evidence-box.active')].map((b) => {
            const r = b.getBoundingClientRect();
            return [(r.left - o.left) / o.width, (r.top - o.top) / o.height,
                    (r.right - o.left) / o.width, (r.bottom - o.top) / o.height]; }); }"""
    )
    assert rects == [pytest.approx(b.bbox_norm, abs=0.004) for b in evidence[k].boxes]
    shot(page, "evidence")
    flagged = page.locator(".extract-view .field.m-not_found")
    assert flagged.count() == 1 and "/total" in flagged.inner_text() and flagged.locator(".field-flag").count() == 1
