"""The walking skeleton end to end: real HTTP → Serve proxy → router replica → RapidOCR replica → response.

Scored with the OmniDocBench-style NED from shared.metrics. Generated pages make the suite meaningful in a
clone without ../shared; the dev scans are checked where they exist.
"""

from __future__ import annotations

import base64
import io
import json

import httpx
import numpy as np
import pytest
from PIL import Image

from orchestrator.ops import samples
from shared.metrics import ned
from shared.schema import ErrorResponse, OCRResponse
from tests.conftest import dev_file
from tests.support.photos import exif_jpeg

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def client(rapidocr_url: str) -> httpx.Client:
    with httpx.Client(base_url=rapidocr_url, timeout=120) as c:
        yield c


def post(client: httpx.Client, data: bytes, name: str, **fields) -> httpx.Response:
    form = {k: (json.dumps(v) if isinstance(v, dict) else str(v)) for k, v in fields.items()}
    return client.post("/v1/ocr", files={"file": (name, data)}, data=form)


def ok(r: httpx.Response) -> OCRResponse:
    assert r.status_code == 200, r.text[:500]
    return OCRResponse.model_validate(r.json())


def test_phototest_scan_reads_almost_perfectly(client):
    path = dev_file("images/phototest.tif")
    result = ok(post(client, path.read_bytes(), path.name, backend="rapidocr"))
    reference = path.with_name("phototest.gold.txt").read_text()
    assert result.backend == "rapidocr" and result.document.media_type == "image/tiff"
    assert ned(result.markdown, reference) <= 0.05
    assert result.timings.total_s >= result.timings.inference_s > 0


def test_two_column_scan_reads_column_by_column(client):
    path = dev_file("images/8071_093.3B.tif")
    result = ok(post(client, path.read_bytes(), path.name, backend="rapidocr"))
    assert ned(result.markdown, path.with_suffix(".txt").read_text()) <= 0.20


def test_boxes_image_differs_from_page_exactly_where_boxes_are(client):
    image, _ = samples.one_column_page()
    result = ok(post(client, samples.encode(image), "page.png", backend="rapidocr"))
    page = result.pages[0]
    assert page.boxes_image and page.blocks
    drawn = np.asarray(Image.open(io.BytesIO(base64.b64decode(page.boxes_image))).convert("RGB")).astype(int)
    plain = np.asarray(image).astype(int)
    drawn = drawn[: plain.shape[0], : plain.shape[1]]  # the legend strip sits below the page
    x0, y0, x1, y1 = (int(v) for v in page.blocks[0].bbox)
    assert np.abs(drawn[y0 : y1 + 1, x0 : x1 + 1] - plain[y0 : y1 + 1, x0 : x1 + 1]).sum() > 0
    margin = plain[-60:, -60:]  # bottom-right corner: no text, no box
    assert np.array_equal(drawn[-60:, -60:], margin)


def test_generated_pages_one_and_two_columns(client):
    for make in (samples.one_column_page, samples.two_column_page):
        image, truth = make()
        result = ok(post(client, samples.encode(image), "page.png", backend="rapidocr"))
        assert ned(result.markdown, truth) <= 0.02, make.__name__
        page = result.pages[0]
        assert (page.width, page.height) == image.size
        for block in page.blocks:
            x0, y0, x1, y1 = block.bbox
            assert 0 <= x0 < x1 <= page.width and 0 <= y0 < y1 <= page.height
            assert block.bbox_norm == pytest.approx(
                [x0 / page.width, y0 / page.height, x1 / page.width, y1 / page.height], abs=1e-5
            )


@pytest.mark.parametrize("kind", ["pdf", "tiff"])
def test_multi_page_documents_give_one_page_each_in_order(client, kind):
    images, texts = samples.numbered_pages(3)
    data = samples.multi_page_pdf(images) if kind == "pdf" else samples.multi_frame_tiff(images)
    result = ok(post(client, data, f"doc.{kind}", backend="rapidocr"))
    assert [p.index for p in result.pages] == [0, 1, 2]
    for page, truth in zip(result.pages, texts):
        assert ned(page.markdown, truth) <= 0.05
    assert result.usage.pages == 3 and result.document.page_count == 3


def test_page_range_selects_pages(client):
    images, texts = samples.numbered_pages(3)
    result = ok(post(client, samples.multi_page_pdf(images), "doc.pdf", backend="rapidocr", pages="1,3"))
    assert [p.index for p in result.pages] == [0, 2]
    assert ned(result.pages[1].markdown, texts[2]) <= 0.05


def test_a_camera_jpeg_turned_by_its_exif_tag_is_read_upright(client):
    """A photo of a page stored sideways with EXIF orientation 6 (as phones write it): the service turns it
    upright before any engine sees it, so the page has the upright size, RapidOCR reads it (its angle classifier
    is off: sideways text reads as garbage) and the page image the web page shows is upright too."""
    upright, truth = samples.one_column_page()
    photo = exif_jpeg(upright, 6)
    assert Image.open(io.BytesIO(photo)).size == upright.size[::-1]  # stored sideways
    result = ok(post(client, photo, "photo.jpg", backend="rapidocr"))
    page = result.pages[0]
    assert result.document.media_type == "image/jpeg" and (page.width, page.height) == upright.size
    assert ned(result.markdown, truth) <= 0.05
    assert all(b.bbox[2] <= upright.width and b.bbox[3] <= upright.height for b in page.blocks)
    shown = client.post("/v1/page-image", files={"file": ("photo.jpg", photo)}, data={"page": "1"})
    assert shown.status_code == 200 and shown.headers["content-type"] == "image/png"
    pixels = Image.open(io.BytesIO(shown.content)).convert("L")
    assert pixels.size == upright.size
    difference = np.abs(np.asarray(pixels, dtype=np.int16) - np.asarray(upright.convert("L"), dtype=np.int16))
    assert difference.mean() < 4  # the same page, up to JPEG's loss (a turned page differs almost everywhere)


def test_dev_pdf_pages_in_order(client):
    path = dev_file("pdfs/multi_page.pdf")
    result = ok(post(client, path.read_bytes(), path.name, backend="rapidocr", dpi=50))
    assert [p.index for p in result.pages] == list(range(result.document.page_count))
    assert result.document.page_count > 1
    assert all(p.dpi == 50 for p in result.pages)


def test_json_body_with_base64_and_request_id(client):
    image, truth = samples.one_column_page()
    body = {"file_base64": base64.b64encode(samples.encode(image)).decode(), "filename": "p.png", "backend": "auto"}
    r = client.post("/v1/ocr", json=body, headers={"x-request-id": "test-req-42"})
    result = ok(r)
    assert result.request_id == "test-req-42" and r.headers["x-request-id"] == "test-req-42"
    assert result.backend == "rapidocr"  # first of auto_order that is ready
    assert ned(result.markdown, truth) <= 0.02


BAD_INPUTS = [
    ("zero bytes", b"", "x.png", {}, 400, "empty_document"),
    ("truncated pdf", b"%PDF-1.7\n1 0 obj <<", "x.pdf", {}, 422, "invalid_document"),
    ("not a document", b"hello, I am text" * 10, "x.png", {}, 415, "unsupported_media_type"),
    ("unknown backend", None, "p.png", {"backend": "nope"}, 404, "unknown_backend"),
    ("bad page range", None, "p.png", {"pages": "3-1"}, 400, "invalid_page_range"),
    ("page beyond end", None, "p.png", {"pages": "5"}, 400, "invalid_page_range"),
    ("negative dpi", None, "p.png", {"dpi": "-5"}, 400, "invalid_option"),
    ("bad options json", None, "p.png", {"options": "{nope"}, 400, "invalid_option"),
    ("unknown engine option", None, "p.png", {"backend": "rapidocr", "options": {"bogus": 1}}, 400, "invalid_option"),
]


@pytest.mark.parametrize("what,data,name,fields,status,code", BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
def test_bad_input_gets_a_json_4xx_and_service_keeps_serving(client, what, data, name, fields, status, code):
    if data is None:
        data = samples.encode(samples.one_column_page()[0])
    r = post(client, data, name, **fields)
    assert r.status_code == status, r.text
    err = ErrorResponse.model_validate(r.json())
    assert err.error.code == code and err.error.message
    assert r.headers.get("x-request-id") == err.request_id
    image, truth = samples.one_column_page()
    assert ned(ok(post(client, samples.encode(image), "p.png", backend="rapidocr")).markdown, truth) <= 0.02


def test_too_many_pixels_is_refused_before_decoding(client):
    # a PNG whose header declares 30000 x 30000 pixels: refused from the header alone
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 30000, 30000, 8, 2, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(b"\x00" * 1000)) + chunk(b"IEND", b"")
    r = post(client, png, "bomb.png", backend="rapidocr")
    assert r.status_code == 413 and r.json()["error"]["code"] == "too_many_pixels"


def test_backends_listing_and_health(client):
    listing = client.get("/v1/backends").json()
    by_name = {b["name"]: b for b in listing["backends"]}
    assert by_name["rapidocr"]["status"] == "ready"
    assert by_name["rapidocr"]["model"]["engine"] == "onnxruntime"
    assert "application/pdf" in by_name["rapidocr"]["media_types"]
    assert listing["auto_order"][0] == "rapidocr"
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and "rapidocr" in ready.json()["ready_backends"]
    missing = client.get("/v1/nothing-here")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


def test_openapi_documents_the_response_schema(client):
    spec = client.get("/openapi.json").json()
    schemas = spec["components"]["schemas"]
    assert {"OCRResponse", "PageResult", "Block", "ErrorResponse"} <= set(schemas)
    assert "multipart/form-data" in spec["paths"]["/v1/ocr"]["post"]["requestBody"]["content"]
