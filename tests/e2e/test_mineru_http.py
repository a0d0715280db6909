"""MinerU (flash tier, model-free) served next to RapidOCR exactly as the CPU profile of README command 1 does,
through Ray Serve and the router over HTTP."""

from __future__ import annotations

import io

import httpx
import pytest
import yaml

from orchestrator.ops import samples
from orchestrator.ops.local import PROFILES_DIR
from shared.metrics import ned
from shared.schema import OCRResponse
from tests.conftest import dev_file

pytestmark = pytest.mark.cluster
pytest.importorskip("mineru")


@pytest.fixture(scope="module")
def client(deploy_app):
    """The CPU profile's own application args, deployed on the shared test cluster."""
    profile = yaml.safe_load((PROFILES_DIR / "cpu.yaml").read_text())
    url = deploy_app("cpuprofile", profile["applications"][0]["args"])
    with httpx.Client(base_url=url, timeout=300) as c:
        yield c
    deploy_app.retire("cpuprofile")


def test_cpu_profile_serves_mineru_flash_next_to_rapidocr(client):
    listing = {b["name"]: b for b in client.get("/v1/backends").json()["backends"]}
    assert listing["rapidocr"]["status"] == "ready" and listing["mineru"]["status"] == "ready"
    assert "flash" in listing["mineru"]["model"]["id"]
    assert any("wordprocessingml" in t for t in listing["mineru"]["media_types"])


def test_multi_page_pdf_through_flash(client):
    path = dev_file("pdfs/multi_page.pdf")
    r = client.post("/v1/ocr", files={"file": (path.name, path.read_bytes())}, data={"backend": "mineru"})
    assert r.status_code == 200, r.text[:300]
    result = OCRResponse.model_validate(r.json())
    assert [p.index for p in result.pages] == list(range(result.document.page_count)) and len(result.pages) == 5
    for page in result.pages:
        assert page.blocks and page.boxes_image
        for b in page.blocks:
            assert 0 <= b.bbox[0] <= b.bbox[2] <= page.width and 0 <= b.bbox[1] <= b.bbox[3] <= page.height
    # measured 0.000 here; 0.005 is about 38 characters, less than the shortest paragraph of the reference
    assert ned(result.markdown, path.with_suffix(".md").read_text()) <= 0.005


def test_generated_text_pdf_and_docx_through_flash(client):
    from backends.textpdf import article_pages

    pdf = article_pages(
        [samples.PARAGRAPHS[:3], samples.PARAGRAPHS[3:] + ["The service will add two GPU nodes."]],
        titles=["Serving", "Outlook"],
    )
    r = client.post("/v1/ocr", files={"file": ("gen.pdf", pdf)}, data={"backend": "mineru"})
    assert r.status_code == 200, r.text[:300]
    result = r.json()
    assert len(result["pages"]) == 2 and "two GPU nodes" in result["pages"][1]["markdown"]

    docx = pytest.importorskip("docx")  # python-docx, from the test extra
    document = docx.Document()
    document.add_heading("Release note", level=1)
    document.add_paragraph("Docx paragraph about Ray Serve replicas.")
    buf = io.BytesIO()
    document.save(buf)
    r = client.post("/v1/ocr", files={"file": ("note.docx", buf.getvalue())}, data={"backend": "auto"})
    assert r.status_code == 200, r.text[:300]
    assert r.json()["backend"] == "mineru"  # the only backend that reads DOCX
    assert "Ray Serve replicas" in r.json()["markdown"]


def test_scan_needing_absent_models_fails_fast_and_clearly(client):
    scan = samples.multi_page_pdf([samples.one_column_page()[0]])  # image-only PDF: needs OCR models
    before = _parse_process(client)
    r = client.post("/v1/ocr", files={"file": ("scan.pdf", scan)}, data={"backend": "mineru"})
    assert r.status_code == 503 and r.json()["error"]["code"] == "models_missing"
    assert "mineru-kit models download" in r.json()["error"]["message"]
    # refused by the engine's own model check, not by MinerU trying a model hub until the parse deadline killed it
    assert "the engine never downloads" in r.json()["error"]["message"]
    after = _parse_process(client)
    assert (after["pid"], after["killed"]) == (before["pid"], before["killed"]), (before, after)
    other_tier = client.post(
        "/v1/ocr", files={"file": ("scan.pdf", scan)}, data={"backend": "mineru", "options": '{"tier": "standard"}'}
    )
    assert other_tier.status_code == 400 and other_tier.json()["error"]["code"] == "invalid_option"


def _parse_process(client) -> dict:
    """The MinerU replica's parse process as /v1/backends reports it (pid, processes started and killed)."""
    backends = {b["name"]: b for b in client.get("/v1/backends").json()["backends"]}
    return backends["mineru"]["info"]["parse_process"]
